/**
 * The engine's durable timers: rows of `workflows.timers` (one per kind, unit and attempt),
 * claimed by a lease when due. The engine decides when to write and fire them; the statements
 * are here.
 */
import type pg from 'pg';
import { storableInstant, unitKey, type TimerAction, type WorkflowCommand } from '@switchyard/domain';
import { WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';

/** How long a claimed timer is not claimed again, should its engine die before firing it. */
export const TIMER_LEASE_MS = 30_000;
/** A step timeout is written once its step has run this long (most steps end sooner)... */
export const TIMEOUT_DEFER_MS = 1_000;
/** ...or at once when it is due within this, so it fires on time. */
export const TIMEOUT_WRITE_AHEAD_MS = 3_000;

/** Row key of a timer: one per kind, unit and attempt. */
export function timerKey(t: TimerAction): string {
  const d = t.command.data as { stepId: string; itemIndex?: number; attempt?: number };
  return `${t.kind}:${unitKey(d)}:${d.attempt ?? 1}`;
}

/**
 * Write (or move) timers of one execution. `dueOf` gives a row's `due_at` (default the timer's
 * `dueAt`; the engine moves a timer it armed itself by a step of its wall clock).
 */
export async function armTimerRows(
  pool: pg.Pool,
  executionId: string,
  partition: number,
  timers: readonly TimerAction[],
  dueOf: (t: TimerAction) => string = (t) => t.dueAt,
): Promise<void> {
  const keys: string[] = [];
  const dues: string[] = [];
  const commands: string[] = [];
  for (const t of timers) {
    keys.push(timerKey(t));
    const due = dueOf(t);
    dues.push(storableInstant(due) ?? due);
    commands.push(JSON.stringify(t.command));
  }
  await pool.query(
    `insert into ${WORKFLOW_SCHEMA}.timers (execution_id, timer_key, partition, due_at, command)
     select $1, k, $2, d::timestamptz, c::jsonb from unnest($3::text[], $4::text[], $5::text[]) as t(k, d, c)
     on conflict (execution_id, timer_key) do update set due_at = excluded.due_at, command = excluded.command`,
    [executionId, partition, keys, dues, commands],
  );
}

/** Write (or move) timers of many executions in one statement (`dueAt`: the row's `due_at`, default the timer's). */
export async function writeTimerRows(
  pool: pg.Pool,
  rows: readonly { id: string; partition: number; t: TimerAction; dueAt?: string }[],
): Promise<void> {
  await pool.query(
    `insert into ${WORKFLOW_SCHEMA}.timers (execution_id, timer_key, partition, due_at, command)
     select e, k, p, d::timestamptz, c::jsonb from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[]) as t(e, k, p, d, c)
     on conflict (execution_id, timer_key) do update set due_at = excluded.due_at, command = excluded.command`,
    [
      rows.map((r) => r.id),
      rows.map((r) => timerKey(r.t)),
      rows.map((r) => r.partition),
      rows.map((r) => {
        const due = r.dueAt ?? r.t.dueAt;
        return storableInstant(due) ?? due;
      }),
      rows.map((r) => JSON.stringify(r.t.command)),
    ],
  );
}

/** A claimed timer: its lease is the `due_at` the claim set (whole milliseconds, so exact in a JS Date). */
export interface ClaimedTimer {
  readonly execution_id: string;
  readonly timer_key: string;
  readonly command: WorkflowCommand;
  readonly lease: Date;
}

/** A timer row by its key. */
export interface TimerRef {
  readonly execution_id: string;
  readonly timer_key: string;
}

/**
 * Claim up to `limit` due timers of these partitions: one statement moves their `due_at`
 * TIMER_LEASE_MS ahead (FOR UPDATE SKIP LOCKED, so two engines never claim the same row) and commits.
 * Due means by `now`, the engine's own clock (the clock every `due_at` was computed with), never
 * PostgreSQL's `now()`: a database whose clock is ahead of the engine's host would fire every timer
 * early by the difference, one behind late. A range on `due_at` only, so the `timers_due` index
 * bounds the work by the rows due, not by the rows waiting.
 */
export async function claimDueTimers(
  pool: pg.Pool,
  partitions: readonly number[],
  limit: number,
  now: number,
): Promise<ClaimedTimer[]> {
  const due = await pool.query<ClaimedTimer>(
    `update ${WORKFLOW_SCHEMA}.timers t set due_at = date_trunc('milliseconds', $3::timestamptz + make_interval(secs => $2))
     from (select execution_id, timer_key from ${WORKFLOW_SCHEMA}.timers
           where partition = any($1::int[]) and due_at <= $3::timestamptz
           order by due_at limit ${limit} for update skip locked) d
     where t.execution_id = d.execution_id and t.timer_key = d.timer_key
     returning t.execution_id, t.timer_key, t.command, t.due_at as lease`,
    [partitions, TIMER_LEASE_MS / 1000, new Date(now).toISOString()],
  );
  return due.rows;
}

/** A timer claimed by its key: `previous` is the `due_at` it had before the claim. */
export interface ClaimedByKey extends ClaimedTimer {
  readonly previous: Date;
}

/**
 * Claim these timers by key whatever their `due_at` (timers this process armed whose monotonic
 * deadline has passed while the wall clock says they are not due), with the same lease as
 * `claimDueTimers`. `absent`: those with no row at all (fired, dropped with their execution); a
 * row there but locked by another claim is neither claimed nor absent.
 */
export async function claimTimersByKey(
  pool: pg.Pool,
  partitions: readonly number[],
  refs: readonly TimerRef[],
  now: number,
): Promise<{ claimed: ClaimedByKey[]; absent: TimerRef[] }> {
  // The data-modifying CTE's changes are not seen by the rest of the statement: `exists` looks at
  // the rows as they were, so a row claimed here still counts as there.
  const r = await pool.query<{
    execution_id: string;
    timer_key: string;
    present: boolean;
    command: WorkflowCommand | null;
    lease: Date | null;
    previous: Date | null;
  }>(
    `with want as (select * from unnest($3::text[], $4::text[]) as w(e, k)),
     claimed as (
       update ${WORKFLOW_SCHEMA}.timers t set due_at = date_trunc('milliseconds', $5::timestamptz + make_interval(secs => $2))
       from (select x.execution_id, x.timer_key, x.due_at from ${WORKFLOW_SCHEMA}.timers x join want w
               on x.execution_id = w.e and x.timer_key = w.k
             where x.partition = any($1::int[]) for update of x skip locked) d
       where t.execution_id = d.execution_id and t.timer_key = d.timer_key
       returning t.execution_id, t.timer_key, t.command, t.due_at as lease, d.due_at as previous)
     select w.e as execution_id, w.k as timer_key, c.command, c.lease, c.previous,
            exists (select 1 from ${WORKFLOW_SCHEMA}.timers p where p.execution_id = w.e and p.timer_key = w.k) as present
     from want w left join claimed c on c.execution_id = w.e and c.timer_key = w.k`,
    [
      partitions,
      TIMER_LEASE_MS / 1000,
      refs.map((x) => x.execution_id),
      refs.map((x) => x.timer_key),
      new Date(now).toISOString(),
    ],
  );
  const claimed: ClaimedByKey[] = [];
  const absent: TimerRef[] = [];
  for (const row of r.rows) {
    if (row.command && row.lease && row.previous)
      claimed.push({
        execution_id: row.execution_id,
        timer_key: row.timer_key,
        command: row.command,
        lease: row.lease,
        previous: row.previous,
      });
    else if (!row.present) absent.push({ execution_id: row.execution_id, timer_key: row.timer_key });
  }
  return { claimed, absent };
}

const leaseRows = (xs: readonly Omit<ClaimedTimer, 'command'>[]) => [
  xs.map((f) => f.execution_id),
  xs.map((f) => f.timer_key),
  xs.map((f) => f.lease.toISOString()),
];

/** Delete fired timers, unless re-armed meanwhile (`due_at` no longer their lease). */
export async function deleteFiredTimers(pool: pg.Pool, fired: readonly Omit<ClaimedTimer, 'command'>[]): Promise<void> {
  await pool.query(
    `delete from ${WORKFLOW_SCHEMA}.timers t using unnest($1::text[], $2::text[], $3::timestamptz[]) as f(e, k, l)
     where t.execution_id = f.e and t.timer_key = f.k and t.due_at = f.l`,
    leaseRows(fired),
  );
}

/**
 * Give claimed timers a new `due_at` (by the engine's clock), unless re-armed meanwhile (`due_at`
 * no longer their lease): a command that may work later is due again now rather than after the
 * lease; a timer claimed before its monotonic deadline goes back until then.
 */
export async function moveClaimedTimers(
  pool: pg.Pool,
  moves: readonly { readonly timer: Omit<ClaimedTimer, 'command'>; readonly dueAt: number }[],
): Promise<void> {
  await pool.query(
    `update ${WORKFLOW_SCHEMA}.timers t set due_at = f.d
     from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) as f(e, k, l, d)
     where t.execution_id = f.e and t.timer_key = f.k and t.due_at = f.l`,
    [...leaseRows(moves.map((m) => m.timer)), moves.map((m) => new Date(m.dueAt).toISOString())],
  );
}

import { createHash } from 'node:crypto';
import type pg from 'pg';
import pgLib from 'pg';

/** pg's own value preparation (dates, arrays, JSON) and literal escaping, as its parameters get them. */
const pgUtils = {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- pg's utils.prepareValue is a plain function
  prepareValue: (pgLib as unknown as { utils: { prepareValue(v: unknown): unknown } }).utils.prepareValue,
  escapeLiteral: pgLib.escapeLiteral,
};
import { AppError, JsonText } from '@switchyard/platform';
import type { BatchText, Projection } from './projection.js';
import { toDomainEvent, type RecordedEvent } from '@switchyard/event-store';
import {
  compensationStepIds,
  stepUsesLabel,
  storableInstant,
  workflowEventTypes,
  type WorkflowDefinition,
  type WorkflowEvent,
} from '@switchyard/domain';

/** Schema of the workflow read model tables. */
export const READ_SCHEMA = 'read_models';
const X = `${READ_SCHEMA}.workflow_executions`;
const S = `${READ_SCHEMA}.workflow_steps`;
const A = `${READ_SCHEMA}.workflow_step_attempts`;

/** DDL of the read model; also run by the gateway so its queries work before any engine ran. */
export async function setupWorkflowReadModel(c: pg.PoolClient | pg.Pool): Promise<void> {
  await c.query(`create schema if not exists ${READ_SCHEMA}`);
  await c.query(`create table if not exists ${X} (
    execution_id text primary key, definition_id text not null, definition_version int not null, definition_name text not null,
    status text not null, input jsonb, output jsonb, error jsonb, correlation_id text, parent_execution_id text,
    started_at timestamptz not null, ended_at timestamptz, updated_at timestamptz not null, last_position bigint not null)`);
  await c.query(`create index if not exists workflow_executions_started on ${X} (started_at desc, execution_id)`);
  await c.query(`create index if not exists workflow_executions_status on ${X} (status, started_at desc)`);
  // The list by template (`?template=`): without it, a scan of every execution per page.
  await c.query(
    `create index if not exists workflow_executions_definition on ${X} (definition_id, started_at desc, execution_id)`,
  );
  await c.query(`create table if not exists ${S} (
    execution_id text not null, step_id text not null, ordinal int not null, uses text not null, kind text not null,
    status text not null, skip_reason text, attempts int not null default 0, items int, output jsonb, error jsonb,
    compensation_for text, next_retry_at timestamptz, started_at timestamptz, ended_at timestamptz,
    primary key (execution_id, step_id))`);
  await c.query(`create table if not exists ${A} (
    execution_id text not null, step_id text not null, item_index int not null, attempt int not null,
    status text not null, idempotency_key text, input jsonb, output jsonb, error jsonb,
    scheduled_at timestamptz, dispatched_at timestamptz, timeout_at timestamptz, ended_at timestamptz, duration_ms int,
    primary key (execution_id, step_id, item_index, attempt))`);
  // A fork's source and each copied step's (what time travel showed and the detail did not): rows
  // written before these columns have none until a rebuild.
  await c.query(`alter table ${X} add column if not exists forked_from jsonb`);
  await c.query(`alter table ${S} add column if not exists copied_from jsonb`);
}

const j = (v: unknown): string => JSON.stringify(v ?? null);
const item = (d: { itemIndex?: number }): number => d.itemIndex ?? -1;

/**
 * Apply one workflow event to the read model (runs inside the projection runner's transaction).
 * One statement per event: the row changes and the execution's `updated_at`/`last_position`
 * ("touch") go together through data-modifying CTEs, a third of the round trips (and of the
 * parse/plan work in PostgreSQL) of one statement each. Parameters: $1 execution id,
 * $2 recorded_at, $3 position, then the event's own from $4. No statement changes one row twice.
 */
async function applyEvent(c: pg.PoolClient, r: RecordedEvent, touch = true): Promise<void> {
  const id = r.streamId.slice('workflow_execution-'.length);
  const e = toDomainEvent<WorkflowEvent>(r);
  const TOUCH = `update ${X} set updated_at = $2, last_position = $3 where execution_id = $1`;
  const run = async (ctes: string[], main: string, params: unknown[]) => {
    // Without the touch (a later event of the same execution in the batch touches the row), the
    // last change goes as the statement itself; an event that only touches costs nothing.
    if (!touch && main === TOUCH) {
      if (ctes.length === 0) return;
      main = ctes[ctes.length - 1]!;
      ctes = ctes.slice(0, -1);
    }
    await c.query(`${ctes.length ? `with ${ctes.map((q, i) => `m${i} as (${q})`).join(', ')} ` : ''}${main}`, [
      id,
      r.recordedAt,
      r.position,
      ...params,
    ]);
  };
  const unit = `execution_id = $1 and step_id = $4 and item_index = $5 and attempt = $6`;
  switch (e.type) {
    case 'WorkflowStarted': {
      const def: WorkflowDefinition = e.data.definition;
      const parent = (r.metadata as { parent?: { executionId?: string } }).parent?.executionId ?? null;
      const comp = compensationStepIds(def);
      // On a replay the row exists: the insert does nothing and the touch updates it (the touch
      // does not see a row inserted by the same statement, whose values are the same anyway).
      await run(
        [
          `insert into ${X} (execution_id, definition_id, definition_version, definition_name, status, input, correlation_id, parent_execution_id, started_at, updated_at, last_position, forked_from)
           values ($1, $4, $5, $6, 'running', $7, $8, $9, $10, $2, $3, $15) on conflict do nothing`,
          `insert into ${S} (execution_id, step_id, ordinal, uses, kind, status)
           select $1, t.step_id, t.ordinal, t.uses, t.kind, 'pending' from unnest($11::text[], $12::int[], $13::text[], $14::text[]) as t(step_id, ordinal, uses, kind)
           on conflict do nothing`,
        ],
        TOUCH,
        [
          def.id,
          def.version,
          def.name,
          j(e.data.input),
          e.metadata.correlationId,
          parent,
          e.data.startedAt,
          def.steps.map((s) => s.id),
          def.steps.map((_, i) => i),
          def.steps.map((s) => stepUsesLabel(s)),
          def.steps.map((s) => (comp.has(s.id) ? 'compensation' : s.for_each ? 'for_each' : s.wait ? 'wait' : 'step')),
          e.data.forkedFrom
            ? j({ execution_id: e.data.forkedFrom.executionId, from_step: e.data.forkedFrom.fromStep })
            : null,
        ],
      );
      return;
    }
    case 'WaitStarted':
      // A wait step runs while it waits; its end comes as StepSucceeded / StepFailed (attempt 0).
      await run(
        [
          `update ${S} set status = 'running', started_at = coalesce(started_at, $5) where execution_id = $1 and step_id = $4`,
        ],
        TOUCH,
        [e.data.stepId, e.data.startedAt],
      );
      return;
    case 'StepExpanded':
      await run([`update ${S} set items = $5 where execution_id = $1 and step_id = $4`], TOUCH, [
        e.data.stepId,
        e.data.items.length,
      ]);
      return;
    case 'StepScheduled':
      await run(
        [
          `insert into ${A} (execution_id, step_id, item_index, attempt, status, idempotency_key, input, scheduled_at)
           values ($1, $4, $5, $6, 'scheduled', $7, $8, $9) on conflict do nothing`,
          `update ${S} set status = 'running', attempts = greatest(attempts, $6), next_retry_at = null, started_at = coalesce(started_at, $9)
           where execution_id = $1 and step_id = $4`,
        ],
        TOUCH,
        [e.data.stepId, item(e.data), e.data.attempt, e.data.idempotencyKey, j(e.data.input), e.data.scheduledAt],
      );
      return;
    case 'StepDispatched':
    case 'StepRedispatched':
      await run([`update ${A} set status = 'dispatched', dispatched_at = $7, timeout_at = $8 where ${unit}`], TOUCH, [
        e.data.stepId,
        item(e.data),
        e.data.attempt,
        e.data.dispatchedAt,
        e.data.timeoutAt,
      ]);
      return;
    case 'StepQueued':
    case 'StepStarted':
      // The attempt's deadline moved (its call waits for a slot, or started after waiting).
      await run([`update ${A} set timeout_at = $7 where ${unit}`], TOUCH, [
        e.data.stepId,
        item(e.data),
        e.data.attempt,
        e.data.timeoutAt,
      ]);
      return;
    case 'StepSucceeded':
      // An item's success may come after its step's failure stopped it (`late`): its attempt row
      // leaves `canceled` and its error, and the step row keeps the step's failure.
      await run(
        [
          `update ${A} set status = 'succeeded', output = $7, error = null, ended_at = $8,
             duration_ms = greatest(0, (extract(epoch from ($8::timestamptz - coalesce(dispatched_at, scheduled_at))) * 1000)::int)
           where ${unit}`,
          ...(e.data.itemIndex === undefined
            ? [
                `update ${S} set status = 'succeeded', output = $7, error = null, ended_at = $8 where execution_id = $1 and step_id = $4`,
              ]
            : []),
        ],
        TOUCH,
        [e.data.stepId, item(e.data), e.data.attempt, j(e.data.output), e.data.at],
      );
      return;
    case 'StepFailed':
      await run(
        [
          `update ${A} set status = case when status = 'timed_out' then status else 'failed' end, error = $7, ended_at = coalesce(ended_at, $8),
             duration_ms = greatest(0, (extract(epoch from ($8::timestamptz - coalesce(dispatched_at, scheduled_at))) * 1000)::int)
           where ${unit}`,
          ...(e.data.itemIndex === undefined && e.data.final
            ? [`update ${S} set status = 'failed', error = $7, ended_at = $8 where execution_id = $1 and step_id = $4`]
            : []),
        ],
        TOUCH,
        [e.data.stepId, item(e.data), e.data.attempt, j(e.data.error), e.data.at],
      );
      return;
    case 'StepTimedOut':
      await run([`update ${A} set status = 'timed_out', ended_at = $7 where ${unit}`], TOUCH, [
        e.data.stepId,
        item(e.data),
        e.data.attempt,
        e.data.at,
      ]);
      return;
    case 'StepStopped': {
      // Given up in flight (its step or its execution settled): the attempt ends canceled, and a
      // step still running ends failed (`canceled`). Without an item: every live attempt of the step
      // (a plain step's, or those a failure or a cancel abandoned without an event of their own).
      const error = j({ code: 'canceled', message: `stopped: ${e.data.reason}`, retryable: false });
      const ended = `status = 'canceled', error = $ERR, ended_at = $AT,
             duration_ms = greatest(0, (extract(epoch from ($AT::timestamptz - coalesce(dispatched_at, scheduled_at))) * 1000)::int)`;
      if (e.data.itemIndex === undefined) {
        await run(
          [
            `update ${A} set ${ended.replaceAll('$ERR', '$5').replaceAll('$AT', '$6')}
             where execution_id = $1 and step_id = $4 and status in ('scheduled', 'dispatched')`,
            `update ${S} set status = 'failed', error = $5, ended_at = $6, next_retry_at = null
             where execution_id = $1 and step_id = $4 and status = 'running'`,
          ],
          TOUCH,
          [e.data.stepId, error, e.data.at],
        );
      } else {
        await run(
          [
            `update ${A} set ${ended.replaceAll('$ERR', '$7').replaceAll('$AT', '$8')}
             where ${unit} and status in ('scheduled', 'dispatched')`,
          ],
          TOUCH,
          [e.data.stepId, item(e.data), e.data.attempt, error, e.data.at],
        );
      }
      return;
    }
    case 'StepRetryScheduled':
      await run([`update ${S} set next_retry_at = $5 where execution_id = $1 and step_id = $4`], TOUCH, [
        e.data.stepId,
        storableInstant(e.data.dueAt),
      ]);
      return;
    case 'StepSkipped':
      await run(
        [
          `update ${S} set status = 'skipped', skip_reason = $5, ended_at = $6 where execution_id = $1 and step_id = $4`,
        ],
        TOUCH,
        [e.data.stepId, e.data.reason, e.data.at],
      );
      return;
    case 'ExecutionCancelRequested':
      // Status and error change only from running; the touch always (one update of the row).
      await run(
        [],
        `update ${X} set status = case when status = 'running' then 'canceling' else status end,
           error = case when status = 'running' then $4::jsonb else error end, updated_at = $2, last_position = $3
         where execution_id = $1`,
        [j({ reason: e.data.reason, actor: e.data.actor, requestedAt: e.data.requestedAt })],
      );
      return;
    case 'CompensationStarted':
      // A for_each step's compensation runs once per item undone (itemIndex): an attempt row each,
      // and the step row running until the last of them ends.
      await run(
        [
          `update ${S} set status = 'running', compensation_for = $5, attempts = 1, started_at = coalesce(started_at, $6), ended_at = null
           where execution_id = $1 and step_id = $4`,
          `insert into ${A} (execution_id, step_id, item_index, attempt, status, idempotency_key, input, scheduled_at, dispatched_at)
           values ($1, $4, $9, 1, 'dispatched', $7, $8, $6, $6) on conflict do nothing`,
        ],
        TOUCH,
        [e.data.stepId, e.data.forStepId, e.data.startedAt, e.data.idempotencyKey, j(e.data.input), item(e.data)],
      );
      return;
    case 'CompensationSucceeded':
    case 'CompensationFailed': {
      const ok = e.type === 'CompensationSucceeded';
      // The step row: failed when any run failed, running while another item's is under way
      // (`other`: the step's other runs, read once; this event's own attempt row is not read, as
      // a statement does not see its CTE's update); its output and error are the run's own for a
      // plain compensation.
      await run(
        [
          `update ${S} set
             status = case when $5 = 'failed' or other.failed then 'failed' when other.running then 'running' else 'succeeded' end,
             output = case when $9 = -1 then $6::jsonb else output end,
             error = case when $9 = -1 then $7::jsonb else coalesce(error, $7::jsonb) end,
             ended_at = case when not other.running then $8::timestamptz end
           from (select coalesce(bool_or(a.status = 'failed'), false) as failed, coalesce(bool_or(a.status = 'dispatched'), false) as running
                   from ${A} a where a.execution_id = $1 and a.step_id = $4 and a.item_index <> $9) other
           where execution_id = $1 and step_id = $4`,
          `update ${A} set status = $5, output = $6, error = $7, ended_at = $8,
             duration_ms = greatest(0, (extract(epoch from ($8::timestamptz - dispatched_at)) * 1000)::int)
           where execution_id = $1 and step_id = $4 and item_index = $9 and attempt = 1`,
        ],
        TOUCH,
        [
          e.data.stepId,
          ok ? 'succeeded' : 'failed',
          ok ? j(e.data.output) : null,
          ok ? null : j(e.data.error),
          e.data.at,
          item(e.data),
        ],
      );
      return;
    }
    case 'WorkflowCompleted':
      await run(
        [],
        `update ${X} set status = 'completed', output = $4, ended_at = $5, updated_at = $2, last_position = $3 where execution_id = $1`,
        [j(e.data.outputs), e.data.completedAt],
      );
      return;
    case 'WorkflowFailed':
      await run(
        [],
        `update ${X} set status = 'failed', error = $4, ended_at = $5, updated_at = $2, last_position = $3 where execution_id = $1`,
        [j({ reason: e.data.reason, stepId: e.data.stepId, error: e.data.error }), e.data.failedAt],
      );
      return;
    case 'WorkflowCanceled':
      await run(
        [],
        `update ${X} set status = 'canceled', error = coalesce(error, '{}'::jsonb) || $4::jsonb, ended_at = $5, updated_at = $2, last_position = $3 where execution_id = $1`,
        [j({ reason: e.data.reason }), e.data.canceledAt],
      );
      return;
    case 'StepOutputCopied':
      // A fork took the output over: the step is done without an attempt of its own.
      await run(
        [
          `update ${S} set status = 'succeeded', output = $5, error = null, skip_reason = null, ended_at = $6, copied_from = $7 where execution_id = $1 and step_id = $4`,
        ],
        TOUCH,
        [
          e.data.stepId,
          j(e.data.output),
          e.data.at,
          j({ execution_id: e.data.fromExecutionId, revision: e.data.revision }),
        ],
      );
      return;
    case 'ExecutionRetried':
      // Running again: the named steps are pending (their attempt rows stay: the history shows both runs).
      await run(
        [
          `update ${S} set status = 'pending', skip_reason = null, output = null, error = null, next_retry_at = null, ended_at = null
           where execution_id = $1 and step_id = any($4::text[])`,
        ],
        `update ${X} set status = 'running', output = null, error = null, ended_at = null, updated_at = $2, last_position = $3 where execution_id = $1`,
        [e.data.steps],
      );
      return;
    default:
      await run([], TOUCH, []);
  }
}

/**
 * A whole batch in one round trip: each event's statement (exactly what `applyEvent` sends) as
 * `execute <prepared>(<literals>)` (pg's own escaping), joined into one multi-statement query.
 * One statement per event still runs, in order, in the runner's transaction. What goes is a round
 * trip per event, and the parse and plan of each: every statement shape is prepared once per
 * connection (`prepare` is not transactional, so a rolled-back batch keeps what it prepared).
 * Measured on the bench database: ~100 us of backend CPU per statement with the values written
 * into its text, ~15 us executing a prepared one.
 */
async function applyBatch(c: pg.PoolClient, events: readonly RecordedEvent[]): Promise<void> {
  // Executions that start in this batch are folded in memory and inserted whole (see foldNew);
  // the others go statement by statement.
  const rest = await insertNewExecutions(c, events);
  await applyStatements(c, rest);
}

async function applyStatements(c: pg.PoolClient, events: readonly RecordedEvent[]): Promise<void> {
  const body = await statementsText(c, events);
  if (!body) return;
  try {
    await c.query(body.text);
  } catch (err) {
    body.settled(false);
    throw err;
  }
  body.settled(true);
}

/**
 * A live batch (fewer events than a fold takes) as one SQL text for the runner's one-query
 * commit; a larger one goes through applyBatch (its new executions are folded and inserted with
 * parameters).
 */
async function batchText(c: pg.PoolClient, events: readonly RecordedEvent[]): Promise<BatchText | undefined> {
  if (events.length >= FOLD_MIN_EVENTS) return undefined;
  return (await statementsText(c, events)) ?? { text: '', settled: () => undefined };
}

/** The batch's statements as one text: each prepared once per connection, then executed with literal values. */
async function statementsText(c: pg.PoolClient, events: readonly RecordedEvent[]): Promise<BatchText | undefined> {
  const calls: { text: string; params: unknown[] }[] = [];
  const collect = {
    query(text: string, params: unknown[] = []) {
      calls.push({ text, params });
      return Promise.resolve({ rows: [], rowCount: 0 });
    },
  } as unknown as pg.PoolClient;
  // Only each execution's last event in the batch moves its row's updated_at / last_position:
  // the row ends as one touch per event would leave it, with one update of it instead of many.
  const last = new Map<string, number>();
  events.forEach((e, i) => last.set(e.streamId, i));
  for (const [i, e] of events.entries()) await applyEvent(collect, e, last.get(e.streamId) === i);
  if (calls.length === 0) return undefined;
  let known = preparedOn.get(c);
  if (!known) {
    // A connection of a shared pool may have prepared them for an earlier batch (or another runner).
    const r = await c.query<{ name: string }>(`select name from pg_prepared_statements where name like 'wfrm\\_%'`);
    known = new Set(r.rows.map((x) => x.name));
    preparedOn.set(c, known);
  }
  const sql: string[] = [];
  const fresh = new Set<string>();
  for (const call of calls) {
    const { name, text, order } = preparedShape(call.text);
    if (!known.has(name) && !fresh.has(name)) {
      sql.push(`prepare ${name} as ${text}`);
      fresh.add(name);
    }
    sql.push(
      order.length > 0
        ? `execute ${name}(${order.map((n) => literal(call.params[n - 1])).join(', ')})`
        : `execute ${name}`,
    );
  }
  const preparedHere = known;
  return {
    text: sql.join(';\n'),
    settled(committed) {
      // Which of the statements got prepared is unknown after a failure: ask the connection next time.
      if (!committed) preparedOn.delete(c);
      else for (const n of fresh) preparedHere.add(n);
    },
  };
}

// ---- executions that start in the batch ------------------------------------------------------

/** The event types `foldExecution` plays exactly as `applyEvent`'s statements do on new rows. */
const FOLDABLE = new Set([
  'WorkflowStarted',
  'WaitStarted',
  'StepExpanded',
  'StepScheduled',
  'StepDispatched',
  'StepRedispatched',
  'StepQueued',
  'StepStarted',
  'StepSucceeded',
  'StepFailed',
  'StepTimedOut',
  'StepRetryScheduled',
  'StepSkipped',
  'WorkflowCompleted',
  'WorkflowFailed',
]);
/** Smallest batch that is folded. */
const FOLD_MIN_EVENTS = 64;
/** Timestamps whose difference JavaScript computes to the millisecond as PostgreSQL does. */
const MS_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$/;

type Json = string | null;
interface XRow {
  definition_id: unknown;
  definition_version: unknown;
  definition_name: unknown;
  status: string;
  input: Json;
  output: Json;
  error: Json;
  correlation_id: unknown;
  parent_execution_id: unknown;
  started_at: unknown;
  ended_at: unknown;
  updated_at: unknown;
  last_position: number;
}
interface SRow {
  ordinal: number;
  uses: string;
  kind: string;
  status: string;
  skip_reason: unknown;
  attempts: number;
  items: unknown;
  output: Json;
  error: Json;
  next_retry_at: unknown;
  started_at: unknown;
  ended_at: unknown;
}
interface ARow {
  step_id: string;
  item_index: number;
  attempt: unknown;
  status: string;
  idempotency_key: unknown;
  input: Json;
  output: Json;
  error: Json;
  scheduled_at: unknown;
  dispatched_at: unknown;
  timeout_at: unknown;
  ended_at: unknown;
  duration_ms: number | null;
}
interface Folded {
  id: string;
  x: XRow;
  steps: Map<string, SRow>;
  attempts: Map<string, ARow>;
}

/** Thrown when an execution is outside what the fold reproduces exactly; it then goes statement by statement. */
class NotFoldable extends Error {}

/**
 * Event times are the engine's wall clock: a step of it back between an attempt's start and end
 * made their difference negative (-54 s for a 7 s call). A duration is never below 0, here as in the
 * statements (`greatest(0, ...)`).
 */
const elapsedMs = (start: Date, end: Date): number => Math.max(0, end.getTime() - start.getTime());

/** `greatest(0, (extract(epoch from (end - start)) * 1000)::int)` for millisecond timestamps (null when start is). */
function durationMs(end: unknown, start: unknown): number | null {
  if (start === null || start === undefined) return null;
  if (typeof end !== 'string' || typeof start !== 'string' || !MS_TIME.test(end) || !MS_TIME.test(start))
    throw new NotFoldable();
  const ms = Date.parse(end) - Date.parse(start);
  // Past int4 PostgreSQL raises an error (the batch stalls); the statement path keeps that.
  if (!Number.isSafeInteger(ms) || ms > 2_147_483_647 || ms < -2_147_483_648) throw new NotFoldable();
  return Math.max(0, ms);
}

/**
 * The rows one execution that starts in this batch ends the batch with, played in memory
 * from nothing: each case does what its statement in `applyEvent` does (an update of a row
 * that does not exist changes nothing, an insert that conflicts keeps the first row).
 */
function foldExecution(id: string, events: readonly RecordedEvent[]): Folded {
  let x: XRow | undefined;
  const steps = new Map<string, SRow>();
  const attempts = new Map<string, ARow>();
  const key = (stepId: string, itemIndex: number, attempt: unknown) => JSON.stringify([stepId, itemIndex, attempt]);
  for (const r of events) {
    const e = toDomainEvent<WorkflowEvent>(r);
    if (!FOLDABLE.has(e.type) || (e.type === 'WorkflowStarted') !== (x === undefined)) throw new NotFoldable();
    switch (e.type) {
      case 'WorkflowStarted': {
        // A fork's source goes through the statements (forks are rare; the fold keeps no such column).
        if (e.data.forkedFrom) throw new NotFoldable();
        const def: WorkflowDefinition = e.data.definition;
        const comp = compensationStepIds(def);
        x = {
          definition_id: def.id,
          definition_version: def.version,
          definition_name: def.name,
          status: 'running',
          input: j(e.data.input),
          output: null,
          error: null,
          correlation_id: e.metadata.correlationId ?? null,
          parent_execution_id: (r.metadata as { parent?: { executionId?: string } }).parent?.executionId ?? null,
          started_at: e.data.startedAt,
          ended_at: null,
          updated_at: r.recordedAt,
          last_position: r.position,
        };
        def.steps.forEach((st, i) => {
          if (steps.has(st.id)) return;
          steps.set(st.id, {
            ordinal: i,
            uses: stepUsesLabel(st),
            kind: comp.has(st.id) ? 'compensation' : st.for_each ? 'for_each' : st.wait ? 'wait' : 'step',
            status: 'pending',
            skip_reason: null,
            attempts: 0,
            items: null,
            output: null,
            error: null,
            next_retry_at: null,
            started_at: null,
            ended_at: null,
          });
        });
        break;
      }
      case 'WaitStarted': {
        const st = steps.get(e.data.stepId);
        if (st) {
          st.status = 'running';
          st.started_at ??= e.data.startedAt ?? null;
        }
        break;
      }
      case 'StepExpanded': {
        const st = steps.get(e.data.stepId);
        if (st) st.items = e.data.items.length;
        break;
      }
      case 'StepScheduled': {
        const k = key(e.data.stepId, item(e.data), e.data.attempt);
        if (!attempts.has(k)) {
          attempts.set(k, {
            step_id: e.data.stepId,
            item_index: item(e.data),
            attempt: e.data.attempt,
            status: 'scheduled',
            idempotency_key: e.data.idempotencyKey ?? null,
            input: j(e.data.input),
            output: null,
            error: null,
            scheduled_at: e.data.scheduledAt ?? null,
            dispatched_at: null,
            timeout_at: null,
            ended_at: null,
            duration_ms: null,
          });
        }
        const st = steps.get(e.data.stepId);
        if (st) {
          st.status = 'running';
          if (typeof e.data.attempt !== 'number' || !Number.isInteger(e.data.attempt)) throw new NotFoldable();
          st.attempts = Math.max(st.attempts, e.data.attempt);
          st.next_retry_at = null;
          st.started_at ??= e.data.scheduledAt ?? null;
        }
        break;
      }
      case 'StepDispatched':
      case 'StepRedispatched': {
        const a = attempts.get(key(e.data.stepId, item(e.data), e.data.attempt));
        if (a) {
          a.status = 'dispatched';
          a.dispatched_at = e.data.dispatchedAt ?? null;
          a.timeout_at = e.data.timeoutAt ?? null;
        }
        break;
      }
      case 'StepQueued':
      case 'StepStarted': {
        const a = attempts.get(key(e.data.stepId, item(e.data), e.data.attempt));
        if (a) a.timeout_at = e.data.timeoutAt ?? null;
        break;
      }
      case 'StepSucceeded': {
        const a = attempts.get(key(e.data.stepId, item(e.data), e.data.attempt));
        if (a) {
          a.status = 'succeeded';
          a.output = j(e.data.output);
          a.error = null;
          a.ended_at = e.data.at ?? null;
          a.duration_ms = durationMs(e.data.at, a.dispatched_at ?? a.scheduled_at);
        }
        const st = e.data.itemIndex === undefined ? steps.get(e.data.stepId) : undefined;
        if (st) {
          st.status = 'succeeded';
          st.output = j(e.data.output);
          st.error = null;
          st.ended_at = e.data.at ?? null;
        }
        break;
      }
      case 'StepFailed': {
        const a = attempts.get(key(e.data.stepId, item(e.data), e.data.attempt));
        if (a) {
          if (a.status !== 'timed_out') a.status = 'failed';
          a.error = j(e.data.error);
          a.ended_at ??= e.data.at ?? null;
          a.duration_ms = durationMs(e.data.at, a.dispatched_at ?? a.scheduled_at);
        }
        const st = e.data.itemIndex === undefined && e.data.final ? steps.get(e.data.stepId) : undefined;
        if (st) {
          st.status = 'failed';
          st.error = j(e.data.error);
          st.ended_at = e.data.at ?? null;
        }
        break;
      }
      case 'StepTimedOut': {
        const a = attempts.get(key(e.data.stepId, item(e.data), e.data.attempt));
        if (a) {
          a.status = 'timed_out';
          a.ended_at = e.data.at ?? null;
        }
        break;
      }
      case 'StepRetryScheduled': {
        const st = steps.get(e.data.stepId);
        if (st) st.next_retry_at = storableInstant(e.data.dueAt);
        break;
      }
      case 'StepSkipped': {
        const st = steps.get(e.data.stepId);
        if (st) {
          st.status = 'skipped';
          st.skip_reason = e.data.reason ?? null;
          st.ended_at = e.data.at ?? null;
        }
        break;
      }
      case 'WorkflowCompleted':
        x!.status = 'completed';
        x!.output = j(e.data.outputs);
        x!.ended_at = e.data.completedAt ?? null;
        break;
      case 'WorkflowFailed':
        x!.status = 'failed';
        x!.error = j({ reason: e.data.reason, stepId: e.data.stepId, error: e.data.error });
        x!.ended_at = e.data.failedAt ?? null;
        break;
      default:
        throw new NotFoldable();
    }
    // The touch every statement of applyEvent ends with.
    x!.updated_at = r.recordedAt;
    x!.last_position = r.position;
  }
  return { id, x: x!, steps, attempts };
}

/**
 * Executions whose WorkflowStarted is in this batch (as their first event here) have no rows
 * yet, since a batch commits with its checkpoint: their events are folded in memory and each row
 * is inserted once, in three multi-row inserts for the whole batch. Returns the events left
 * for the statement path (other executions, one already in the table, or one the fold does not
 * reproduce exactly), in their order.
 */
async function insertNewExecutions(
  c: pg.PoolClient,
  events: readonly RecordedEvent[],
): Promise<readonly RecordedEvent[]> {
  // Live batches are a few events: their one round trip stays as it was (the fold pays off when catching up).
  if (events.length < FOLD_MIN_EVENTS) return events;
  const byStream = new Map<string, RecordedEvent[]>();
  for (const e of events) {
    const list = byStream.get(e.streamId);
    if (list) list.push(e);
    else byStream.set(e.streamId, [e]);
  }
  const folded: Folded[] = [];
  for (const [stream, list] of byStream) {
    if (list[0]!.type !== 'WorkflowStarted' || list.length < 2) continue;
    try {
      folded.push(foldExecution(stream.slice('workflow_execution-'.length), list));
    } catch (err) {
      if (!(err instanceof NotFoldable)) throw err;
    }
  }
  if (folded.length === 0) return events;
  // A row already there (the read model was written by something else) takes the statement path.
  const existing = await c.query<{ execution_id: string }>(
    `select execution_id from ${X} where execution_id = any($1::text[])`,
    [folded.map((f) => f.id)],
  );
  const skip = new Set(existing.rows.map((r) => r.execution_id));
  const fresh = folded.filter((f) => !skip.has(f.id));
  if (fresh.length === 0) return events;
  const xs = fresh.map((f) => f.x);
  await c.query(
    `insert into ${X} (execution_id, definition_id, definition_version, definition_name, status, input, output, error, correlation_id,
       parent_execution_id, started_at, ended_at, updated_at, last_position)
     select execution_id, definition_id, definition_version, definition_name, status, input::jsonb, output::jsonb, error::jsonb, correlation_id,
       parent_execution_id, started_at, ended_at, updated_at, last_position
     from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                 $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::bigint[])
       as v(execution_id, definition_id, definition_version, definition_name, status, input, output, error, correlation_id,
            parent_execution_id, started_at, ended_at, updated_at, last_position)`,
    [
      fresh.map((f) => f.id),
      xs.map((x) => x.definition_id),
      xs.map((x) => x.definition_version),
      xs.map((x) => x.definition_name),
      xs.map((x) => x.status),
      xs.map((x) => x.input),
      xs.map((x) => x.output),
      xs.map((x) => x.error),
      xs.map((x) => x.correlation_id),
      xs.map((x) => x.parent_execution_id),
      xs.map((x) => x.started_at),
      xs.map((x) => x.ended_at),
      xs.map((x) => x.updated_at),
      xs.map((x) => x.last_position),
    ],
  );
  const sIds: string[] = [],
    sRows: (SRow & { step_id: string })[] = [];
  const aIds: string[] = [],
    aRows: ARow[] = [];
  for (const f of fresh) {
    for (const [step_id, st] of f.steps) {
      sIds.push(f.id);
      sRows.push({ ...st, step_id });
    }
    for (const a of f.attempts.values()) {
      aIds.push(f.id);
      aRows.push(a);
    }
  }
  if (sRows.length > 0) {
    await c.query(
      `insert into ${S} (execution_id, step_id, ordinal, uses, kind, status, skip_reason, attempts, items, output, error, next_retry_at, started_at, ended_at)
       select execution_id, step_id, ordinal, uses, kind, status, skip_reason, attempts, items, output::jsonb, error::jsonb, next_retry_at, started_at, ended_at
       from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::int[], $10::text[], $11::text[],
                   $12::timestamptz[], $13::timestamptz[], $14::timestamptz[])
         as v(execution_id, step_id, ordinal, uses, kind, status, skip_reason, attempts, items, output, error, next_retry_at, started_at, ended_at)
       on conflict do nothing`,
      [
        sIds,
        sRows.map((r) => r.step_id),
        sRows.map((r) => r.ordinal),
        sRows.map((r) => r.uses),
        sRows.map((r) => r.kind),
        sRows.map((r) => r.status),
        sRows.map((r) => r.skip_reason),
        sRows.map((r) => r.attempts),
        sRows.map((r) => r.items),
        sRows.map((r) => r.output),
        sRows.map((r) => r.error),
        sRows.map((r) => r.next_retry_at),
        sRows.map((r) => r.started_at),
        sRows.map((r) => r.ended_at),
      ],
    );
  }
  if (aRows.length > 0) {
    await c.query(
      `insert into ${A} (execution_id, step_id, item_index, attempt, status, idempotency_key, input, output, error, scheduled_at, dispatched_at, timeout_at, ended_at, duration_ms)
       select execution_id, step_id, item_index, attempt, status, idempotency_key, input::jsonb, output::jsonb, error::jsonb, scheduled_at, dispatched_at, timeout_at, ended_at, duration_ms
       from unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                   $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::int[])
         as v(execution_id, step_id, item_index, attempt, status, idempotency_key, input, output, error, scheduled_at, dispatched_at, timeout_at, ended_at, duration_ms)
       on conflict do nothing`,
      [
        aIds,
        aRows.map((r) => r.step_id),
        aRows.map((r) => r.item_index),
        aRows.map((r) => r.attempt),
        aRows.map((r) => r.status),
        aRows.map((r) => r.idempotency_key),
        aRows.map((r) => r.input),
        aRows.map((r) => r.output),
        aRows.map((r) => r.error),
        aRows.map((r) => r.scheduled_at),
        aRows.map((r) => r.dispatched_at),
        aRows.map((r) => r.timeout_at),
        aRows.map((r) => r.ended_at),
        aRows.map((r) => r.duration_ms),
      ],
    );
  }
  const done = new Set(fresh.map((f) => `workflow_execution-${f.id}`));
  return events.filter((e) => !done.has(e.streamId));
}

/** Statement names prepared on each connection (a pool's client is one connection for its life). */
const preparedOn = new WeakMap<object, Set<string>>();
const shapes = new Map<string, { name: string; text: string; order: number[] }>();

/**
 * A statement as it is prepared: only the parameters its text uses, renumbered from $1 (a
 * statement without the touch leaves $2/$3 out, and an unused parameter has no type), and
 * `order`, the original parameter numbers in the new order.
 */
function preparedShape(original: string): { name: string; text: string; order: number[] } {
  let shape = shapes.get(original);
  if (!shape) {
    const order = [...new Set([...original.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))].sort((a, b) => a - b);
    const text = original.replace(/\$(\d+)/g, (_, n: string) => `$${order.indexOf(Number(n)) + 1}`);
    shape = { name: `wfrm_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text, order };
    shapes.set(original, shape);
  }
  return shape;
}

/** A parameter as an SQL literal (NULL, or a quoted string the parameter's type takes). */
function literal(value: unknown): string {
  const v = pgUtils.prepareValue(value);
  return v === null || v === undefined ? 'NULL' : pgUtils.escapeLiteral(String(v));
}

/** The workflow_executions read model (executions, steps, attempts) for the list/detail endpoints. */
export const workflowExecutionsProjection: Projection = {
  name: 'workflow_executions',
  // Its rows are never deleted: found empty behind its checkpoint, it was emptied by hand.
  async isEmpty(pool) {
    const { rows } = await pool.query<{ empty: boolean }>(
      'select not exists (select 1 from read_models.workflow_executions) as empty',
    );
    return rows[0]!.empty;
  },
  handles: workflowEventTypes,
  streamPrefixes: ['workflow_execution-'],
  setup: (c) => setupWorkflowReadModel(c),
  apply: applyEvent,
  applyBatch,
  batchText,
  async reset(c) {
    await c.query(`truncate ${X}, ${S}, ${A}`);
  },
};

// ---- queries ------------------------------------------------------------------------------

export interface ExecutionSummary {
  readonly execution_id: string;
  readonly definition_id: string;
  readonly definition_version: number;
  readonly definition_name: string;
  readonly status: string;
  readonly input: unknown;
  readonly output: unknown;
  readonly error: unknown;
  readonly correlation_id: string | null;
  readonly parent_execution_id: string | null;
  readonly started_at: string;
  readonly ended_at: string | null;
  readonly duration_ms: number | null;
}

export interface ExecutionQuery {
  readonly status?: string;
  readonly definitionId?: string;
  readonly startedAfter?: string;
  readonly startedBefore?: string;
  readonly limit: number;
  /** Opaque cursor from the previous page (`<started_at>|<execution_id>`). */
  readonly cursor?: string;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

function summary(r: Record<string, unknown>): ExecutionSummary {
  const started = r.started_at as Date;
  const ended = (r.ended_at as Date | null) ?? null;
  return {
    execution_id: r.execution_id as string,
    definition_id: r.definition_id as string,
    definition_version: r.definition_version as number,
    definition_name: r.definition_name as string,
    status: r.status as string,
    input: r.input,
    output: r.output,
    error: r.error,
    correlation_id: (r.correlation_id as string | null) ?? null,
    parent_execution_id: (r.parent_execution_id as string | null) ?? null,
    started_at: started.toISOString(),
    ended_at: iso(ended),
    duration_ms: ended ? elapsedMs(started, ended) : null,
  };
}

/** Largest input or output (as stored) a list of executions carries; past it, a note to read the execution. */
export const LIST_VALUE_MAX_BYTES = 16_384;

/** Newest first, keyset-paged. */
export async function listExecutions(
  pool: pg.Pool,
  q: ExecutionQuery,
): Promise<{ items: ExecutionSummary[]; next_cursor: string | null }> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (q.status) where.push(`status = $${args.push(q.status)}`);
  if (q.definitionId) where.push(`definition_id = $${args.push(q.definitionId)}`);
  if (q.startedAfter) where.push(`started_at >= $${args.push(q.startedAfter)}`);
  if (q.startedBefore) where.push(`started_at < $${args.push(q.startedBefore)}`);
  if (q.cursor) {
    const [at, id] = Buffer.from(q.cursor, 'base64url').toString().split('|');
    // Only cursors this function made are accepted; anything else would reach SQL as a bad timestamp.
    if (!at || !id || !isCursorTime(at) || !isCursorId(id)) {
      throw new AppError('validation', 'invalid cursor: pass the next_cursor of a previous page', {
        errors: [{ path: 'cursor', message: 'not a cursor this API made', code: 'invalid_cursor', in: 'query' }],
      });
    }
    where.push(`(started_at, execution_id) < ($${args.push(at)}::timestamptz, $${args.push(id)})`);
  }
  // A list carries an input or output only up to LIST_VALUE_MAX_BYTES as stored: outputs may be
  // megabytes each, and a page of 200 of them was built in memory whole (96 MB in one answer).
  // The stored size first (no decompressing); a compressible one is measured as text.
  const omitted = (bytes: string) =>
    `jsonb_build_object('omitted', 'larger than ${LIST_VALUE_MAX_BYTES} bytes in a list: read the execution', 'bytes', ${bytes})`;
  const bounded = (column: string) =>
    `case when pg_column_size(${column}) > ${LIST_VALUE_MAX_BYTES} then ${omitted(`pg_column_size(${column})`)} ` +
    `when octet_length(${column}::text) > ${LIST_VALUE_MAX_BYTES} then ${omitted(`octet_length(${column}::text)`)} ` +
    `else ${column} end as ${column}`;
  const sql = `select execution_id, definition_id, definition_version, definition_name, status, error, correlation_id, parent_execution_id, started_at, ended_at, ${bounded('input')}, ${bounded('output')} from ${X} ${where.length ? `where ${where.join(' and ')}` : ''} order by started_at desc, execution_id desc limit $${args.push(q.limit + 1)}`;
  const r = await pool.query(sql, args);
  const rows = r.rows.slice(0, q.limit).map(summary);
  const last = rows[rows.length - 1];
  const next =
    r.rows.length > q.limit && last
      ? Buffer.from(`${last.started_at}|${last.execution_id}`).toString('base64url')
      : null;
  return { items: rows, next_cursor: next };
}

export interface StepAttemptView {
  readonly item_index: number | null;
  readonly attempt: number;
  readonly status: string;
  readonly idempotency_key: string | null;
  readonly input: unknown;
  readonly output: unknown;
  readonly error: unknown;
  readonly scheduled_at: string | null;
  readonly dispatched_at: string | null;
  readonly timeout_at: string | null;
  readonly ended_at: string | null;
  readonly duration_ms: number | null;
}

export interface StepView {
  readonly step_id: string;
  readonly uses: string;
  readonly kind: string;
  readonly status: string;
  readonly skip_reason: string | null;
  readonly attempts: number;
  readonly items: number | null;
  readonly output: unknown;
  readonly error: unknown;
  readonly compensation_for: string | null;
  readonly next_retry_at: string | null;
  readonly started_at: string | null;
  readonly ended_at: string | null;
  readonly attempt_history: StepAttemptView[];
  readonly copied_from?: CopiedFrom;
}

/**
 * The bytes an execution's inputs and outputs take in the read model as stored (compressed: a
 * lower bound of what reading them costs), from their sizes alone: no payload is read.
 */
export async function executionStoredPayloadBytes(pool: pg.Pool, executionId: string): Promise<number> {
  const size = (c: string) => `coalesce(pg_column_size(${c}), 0)`;
  const r = await pool.query<{ bytes: string }>(
    `select coalesce((select ${size('input')} + ${size('output')} from ${X} where execution_id = $1), 0)
          + coalesce((select sum(${size('output')}) from ${S} where execution_id = $1), 0)
          + coalesce((select sum(${size('input')} + ${size('output')}) from ${A} where execution_id = $1), 0) as bytes`,
    [executionId],
  );
  return Number(r.rows[0]?.bytes ?? 0);
}

/** One execution with every step and every attempt; undefined when the read model has no such execution. */
export async function getExecutionView(
  pool: pg.Pool,
  executionId: string,
  opts: { readonly payloads?: boolean | 'text' } = {},
): Promise<(ExecutionSummary & { forked_from?: ForkedFrom; steps: StepView[] }) | undefined> {
  // Without payloads (a viewer's view, which redacts them anyway) the inputs and outputs are not
  // read at all: each set one is `true`, an unset one (SQL or JSON null) null. Tens of MB of them
  // cost a full read; only a value small enough to be a JSON null is looked at.
  // As text, each set one is its JSON text unparsed (JsonText), for an answer that writes it as it
  // is: parsing 100 MB of them and serialising them again took three seconds of one thread.
  const payload = (column: string): string =>
    opts.payloads === false
      ? `case when ${column} is null then null when pg_column_size(${column}) > 32 then 'true'::jsonb
              when ${column} = 'null'::jsonb then null else 'true'::jsonb end as ${column}`
      : opts.payloads === 'text'
        ? `${column}::text as ${column}`
        : column;
  const value = (v: unknown): unknown => (opts.payloads === 'text' && typeof v === 'string' ? new JsonText(v) : v);
  const x = await pool.query(
    `select execution_id, definition_id, definition_version, definition_name, status, ${payload('input')},
            ${payload('output')}, error, correlation_id, parent_execution_id, started_at, ended_at, updated_at, last_position,
            forked_from
       from ${X} where execution_id = $1`,
    [executionId],
  );
  if (!x.rows[0]) return undefined;
  const execution = { ...x.rows[0], input: value(x.rows[0].input), output: value(x.rows[0].output) };
  const steps = await pool.query(
    `select execution_id, step_id, ordinal, uses, kind, status, skip_reason, attempts, items, ${payload('output')}, error,
            compensation_for, next_retry_at, started_at, ended_at, copied_from
       from ${S} where execution_id = $1 order by ordinal`,
    [executionId],
  );
  const attempts = await pool.query(
    `select execution_id, step_id, item_index, attempt, status, idempotency_key, ${payload('input')}, ${payload('output')},
            error, scheduled_at, dispatched_at, timeout_at, ended_at, duration_ms
       from ${A} where execution_id = $1 order by step_id, item_index, attempt`,
    [executionId],
  );
  const byStep = new Map<string, StepAttemptView[]>();
  for (const a of attempts.rows) {
    const list = byStep.get(a.step_id) ?? [];
    list.push({
      item_index: a.item_index === -1 ? null : a.item_index,
      attempt: a.attempt,
      status: a.status,
      idempotency_key: a.idempotency_key,
      input: value(a.input),
      output: value(a.output),
      error: a.error,
      scheduled_at: iso(a.scheduled_at),
      dispatched_at: iso(a.dispatched_at),
      timeout_at: iso(a.timeout_at),
      ended_at: iso(a.ended_at),
      // A row written before durations were kept at 0 or more may hold a negative one.
      duration_ms: a.duration_ms === null ? null : Math.max(0, a.duration_ms as number),
    });
    byStep.set(a.step_id, list);
  }
  return {
    ...summary(execution),
    ...(execution.forked_from ? { forked_from: execution.forked_from as ForkedFrom } : {}),
    steps: steps.rows.map((s) => ({
      step_id: s.step_id,
      uses: s.uses,
      kind: s.kind,
      status: s.status,
      skip_reason: s.skip_reason,
      attempts: s.attempts,
      items: s.items,
      output: value(s.output),
      error: s.error,
      compensation_for: s.compensation_for,
      next_retry_at: iso(s.next_retry_at),
      started_at: iso(s.started_at),
      ended_at: iso(s.ended_at),
      attempt_history: byStep.get(s.step_id) ?? [],
      ...(s.copied_from ? { copied_from: s.copied_from as CopiedFrom } : {}),
    })),
  };
}

/** The execution a fork was made from, and the step it ran again from. */
export interface ForkedFrom {
  readonly execution_id: string;
  readonly from_step: string;
}
/** Where a fork's copied step took its output: the source execution, and the revision that recorded it. */
export interface CopiedFrom {
  readonly execution_id: string;
  readonly revision: number;
}

/**
 * A cursor's time as this module writes it (an ISO instant), and a real one: Date.parse takes
 * 2026-02-30 (rolling it over) where PostgreSQL refuses it, which answered 500.
 */
function isCursorTime(at: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?(?:Z|[+-](\d{2}):(\d{2}))$/.exec(at);
  if (!m) return false;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const [oh, om] = [Number(m[7] ?? 0), Number(m[8] ?? 0)];
  const day = new Date(Date.UTC(2000, mo - 1, d));
  day.setUTCFullYear(y); // Date.UTC reads years 0-99 as 1900-1999
  return (
    y >= 1 &&
    day.getUTCMonth() === mo - 1 &&
    day.getUTCDate() === d &&
    h < 24 &&
    mi < 60 &&
    sec < 60 &&
    oh <= 15 &&
    om < 60
  );
}

/** An execution id as a cursor may carry it: bounded, and no control character (PostgreSQL refuses a NUL in text). */
const isCursorId = (id: string): boolean => id.length <= 512 && ![...id].some((c) => c.charCodeAt(0) < 0x20);

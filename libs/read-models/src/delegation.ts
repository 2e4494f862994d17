import type pg from 'pg';
import { deleteInBatches, type DeleteBounds } from '@switchyard/platform';
import type { RecordedEvent } from '@switchyard/event-store';
import { oneStatementBatches, type BatchStatement, type Projection } from './projection.js';
import { isCallerError, TASK_STREAM_PREFIX, type TaskEvent } from '@switchyard/domain';
import {
  EXTERNAL_AGENT_STREAM_PREFIX,
  externalAgentRegisteredData,
  externalAgentRemovedData,
} from '@switchyard/contracts';

const ident = (schema: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  return schema;
};

/** The comment of `tasks.error`; also the mark that rows of an earlier rule were cleared (setup). */
const TASKS_ERROR_COMMENT = 'the last failed attempt of a task that did not complete';

/**
 * `<schema>.tasks`: one row per delegated task with its status. The durable queue: after a
 * restart the dispatcher reads the tasks still queued or in flight from here (and their
 * streams for the exact state).
 */
export function tasksProjection(schema = 'delegation'): Projection {
  const s = ident(schema);
  return {
    name: `${s}.tasks`,
    // Its rows are never deleted: found empty behind its checkpoint, it was emptied by hand.
    async isEmpty(pool) {
      const { rows } = await pool.query<{ empty: boolean }>(`select not exists (select 1 from ${s}.tasks) as empty`);
      return rows[0]!.empty;
    },
    handles: [
      'TaskSubmitted',
      'TaskQueued',
      'TaskAssigned',
      'TaskStarted',
      'TaskCompleted',
      'TaskFailed',
      'TaskRetryScheduled',
      'TaskCanceled',
      'TaskTimedOut',
    ],
    streamPrefixes: [TASK_STREAM_PREFIX],
    async setup(c) {
      await c.query(`create schema if not exists ${s}`);
      await c.query(`create table if not exists ${s}.tasks (
        task_id text primary key,
        task_type text not null,
        status text not null,
        priority text not null,
        requested_agent text,
        agent text,
        instance text,
        attempts int not null default 0,
        idempotency_key text,
        submitted_at timestamptz not null,
        updated_at timestamptz not null,
        completed_at timestamptz,
        error jsonb)`);
      await c.query(
        `create index if not exists tasks_active_idx on ${s}.tasks (status) where status in ('submitted','queued','assigned','working')`,
      );
      // Rows written before a completion cleared the error of an earlier attempt: cleared once,
      // the column's comment marking it done (a scan of every task at each start otherwise).
      await c.query(`do $completed_error$ begin
        if coalesce(col_description('${s}.tasks'::regclass,
             (select attnum from pg_attribute where attrelid = '${s}.tasks'::regclass and attname = 'error')), '')
           <> '${TASKS_ERROR_COMMENT}' then
          update ${s}.tasks set error = null where status = 'completed' and error is not null;
          comment on column ${s}.tasks.error is '${TASKS_ERROR_COMMENT}';
        end if;
      end $completed_error$`);
    },
    async reset(c) {
      await c.query(`truncate ${s}.tasks`);
    },
    ...oneStatementBatches((events) => taskBatchStatement(s, events)),
    async apply(c: pg.PoolClient, recorded: RecordedEvent) {
      const e = { type: recorded.type, data: recorded.data } as TaskEvent;
      const at = recorded.metadata.timestamp;
      const set = (sql: string, params: unknown[]) =>
        c.query(`update ${s}.tasks set ${sql}, updated_at = $2 where task_id = $1`, params);
      switch (e.type) {
        case 'TaskSubmitted':
          await c.query(
            `insert into ${s}.tasks (task_id, task_type, status, priority, requested_agent, idempotency_key, submitted_at, updated_at)
             values ($1, $2, 'submitted', $3, $4, $5, $6, $6) on conflict (task_id) do nothing`,
            [
              e.data.task_id,
              e.data.task_type,
              e.data.priority,
              e.data.agent ?? null,
              e.data.idempotency_key ?? null,
              e.data.submitted_at,
            ],
          );
          return;
        case 'TaskQueued':
          await set(`status = 'queued'`, [e.data.task_id, at]);
          return;
        case 'TaskAssigned':
          await set(`status = 'assigned', agent = $3, instance = $4`, [
            e.data.task_id,
            at,
            e.data.agent,
            e.data.instance,
          ]);
          return;
        case 'TaskStarted':
          await set(`status = 'working'`, [e.data.task_id, at]);
          return;
        case 'TaskCompleted':
          // A completed task has no error (an earlier attempt's stays in the log).
          await set(`status = 'completed', completed_at = $2, error = null`, [e.data.task_id, at]);
          return;
        case 'TaskFailed':
          await set(`status = 'failed', completed_at = $2, attempts = $3, error = $4`, [
            e.data.task_id,
            at,
            e.data.attempts,
            JSON.stringify(e.data.error),
          ]);
          return;
        case 'TaskRetryScheduled':
          await set(`attempts = $3, error = $4`, [e.data.task_id, at, e.data.attempts, JSON.stringify(e.data.error)]);
          return;
        case 'TaskCanceled':
          await set(`status = 'canceled', completed_at = $2`, [e.data.task_id, at]);
          return;
        case 'TaskTimedOut':
          await set(`status = 'timed_out', completed_at = $2`, [e.data.task_id, at]);
          return;
      }
    },
  };
}

/** The columns one task event sets (updated_at always); `undefined`: left as it is. */
interface TaskPatch {
  status?: string;
  agent?: unknown;
  instance?: unknown;
  completed_at?: unknown;
  attempts?: unknown;
  error?: unknown;
  updated_at?: unknown;
}

/** What `apply` sets for a task event other than TaskSubmitted (undefined for none). */
function taskPatch(recorded: RecordedEvent): TaskPatch | undefined {
  const e = { type: recorded.type, data: recorded.data } as TaskEvent;
  const at = recorded.metadata.timestamp;
  switch (e.type) {
    case 'TaskQueued':
      return { status: 'queued', updated_at: at };
    case 'TaskAssigned':
      return { status: 'assigned', agent: e.data.agent ?? null, instance: e.data.instance ?? null, updated_at: at };
    case 'TaskStarted':
      return { status: 'working', updated_at: at };
    case 'TaskCompleted':
      return { status: 'completed', completed_at: at, error: null, updated_at: at };
    case 'TaskFailed':
      return {
        status: 'failed',
        completed_at: at,
        attempts: e.data.attempts ?? null,
        error: e.data.error ?? null,
        updated_at: at,
      };
    case 'TaskRetryScheduled':
      return { attempts: e.data.attempts ?? null, error: e.data.error ?? null, updated_at: at };
    case 'TaskCanceled':
      return { status: 'canceled', completed_at: at, updated_at: at };
    case 'TaskTimedOut':
      return { status: 'timed_out', completed_at: at, updated_at: at };
    default:
      return undefined;
  }
}

/** A patch as a jsonb row of the batch statement: `has_*` tells a column set to null from one left alone. */
const patchRow = (p: TaskPatch | undefined) => ({
  status: p?.status ?? null,
  has_agent: p !== undefined && 'agent' in p,
  agent: p?.agent ?? null,
  instance: p?.instance ?? null,
  has_completed: p !== undefined && 'completed_at' in p,
  completed_at: p?.completed_at ?? null,
  has_attempts: p !== undefined && 'attempts' in p,
  attempts: p?.attempts ?? null,
  has_error: p !== undefined && 'error' in p,
  error: p?.error ?? null,
  updated_at: p?.updated_at ?? null,
});

const PATCH_COLUMNS = `status text, has_agent bool, agent text, instance text, has_completed bool, completed_at timestamptz,
  has_attempts bool, attempts int, has_error bool, error jsonb, updated_at timestamptz`;

/**
 * The tasks read model for a whole batch in one statement, each task row written once: the
 * events are folded per task in memory (every update sets whole columns, so the last value of
 * each column is the one that stays), then
 * - a task whose first TaskSubmitted is in the batch is inserted with the updates after it
 *   already applied (`on conflict do nothing`, as `apply`);
 * - a row that existed before the statement gets all of the batch's updates of its task (the
 *   statement's update does not see the rows its own insert adds, so it touches exactly those).
 * The rows end exactly as `apply` event by event leaves them; a batch replayed after a rollback
 * gives the same rows. One statement instead of an insert and an update: a lone task's submit,
 * queue and assignment cost the database one round trip.
 */
function taskBatchStatement(s: string, events: readonly RecordedEvent[]): BatchStatement | undefined {
  const tasks = new Map<
    string,
    {
      submit?: {
        task_type: unknown;
        priority: unknown;
        agent: unknown;
        idempotency_key: unknown;
        submitted_at: unknown;
      };
      /** The updates after the task's first TaskSubmitted of the batch (applied to the inserted row). */
      after?: TaskPatch;
      /** Every update of the batch (applied to a row that was there before). */
      all?: TaskPatch;
    }
  >();
  for (const r of events) {
    const e = { type: r.type, data: r.data } as TaskEvent;
    const id = e.data.task_id;
    const t = tasks.get(id) ?? {};
    tasks.set(id, t);
    if (e.type === 'TaskSubmitted') {
      t.submit ??= {
        task_type: e.data.task_type,
        priority: e.data.priority,
        agent: e.data.agent ?? null,
        idempotency_key: e.data.idempotency_key ?? null,
        submitted_at: e.data.submitted_at,
      };
      continue;
    }
    const patch = taskPatch(r);
    if (!patch) continue;
    if (t.submit) t.after = { ...t.after, ...patch };
    t.all = { ...t.all, ...patch };
  }
  const rows = [...tasks]
    .filter(([, t]) => t.submit || t.all)
    .map(([task_id, t]) => ({
      task_id,
      is_submit: t.submit !== undefined,
      task_type: t.submit?.task_type ?? null,
      priority: t.submit?.priority ?? null,
      requested_agent: t.submit?.agent ?? null,
      idempotency_key: t.submit?.idempotency_key ?? null,
      submitted_at: t.submit?.submitted_at ?? null,
      has_patch: t.all !== undefined,
      after: patchRow(t.after),
      all: patchRow(t.all),
    }));
  if (rows.length === 0) return undefined;
  return {
    text: `with v as (
       select v.task_id, v.is_submit, v.task_type, v.priority, v.requested_agent, v.idempotency_key, v.submitted_at, v.has_patch,
              a.status as a_status, a.has_agent as a_has_agent, a.agent as a_agent, a.instance as a_instance,
              a.has_completed as a_has_completed, a.completed_at as a_completed_at, a.has_attempts as a_has_attempts,
              a.attempts as a_attempts, a.has_error as a_has_error, a.error as a_error, a.updated_at as a_updated_at,
              p.*
       -- One jsonb per task in an array: unnest of a parameter is planned as a few rows, so the
       -- update below looks each task up by its key (a set-returning jsonb function is planned as
       -- 100 rows, which turned the update into a scan of the whole table).
       from unnest($1::jsonb[]) as x(j)
       cross join lateral jsonb_to_record(x.j) as v(task_id text, is_submit bool, task_type text, priority text, requested_agent text,
              idempotency_key text, submitted_at timestamptz, has_patch bool, "after" jsonb, "all" jsonb)
       cross join lateral jsonb_to_record(v."after") as a(${PATCH_COLUMNS})
       cross join lateral jsonb_to_record(v."all") as p(${PATCH_COLUMNS})
     ), inserted as (
       insert into ${s}.tasks (task_id, task_type, status, priority, requested_agent, idempotency_key, submitted_at, updated_at,
                              agent, instance, completed_at, attempts, error)
       select task_id, task_type, coalesce(a_status, 'submitted'), priority, requested_agent, idempotency_key, submitted_at,
              coalesce(a_updated_at, submitted_at),
              case when a_has_agent then a_agent end, case when a_has_agent then a_instance end,
              case when a_has_completed then a_completed_at end, case when a_has_attempts then a_attempts else 0 end,
              case when a_has_error then a_error end
       from v where is_submit
       on conflict (task_id) do nothing
     )
     update ${s}.tasks t set
       status = coalesce(v.status, t.status),
       agent = case when v.has_agent then v.agent else t.agent end,
       instance = case when v.has_agent then v.instance else t.instance end,
       completed_at = case when v.has_completed then v.completed_at else t.completed_at end,
       attempts = case when v.has_attempts then v.attempts else t.attempts end,
       error = case when v.has_error then v.error else t.error end,
       updated_at = v.updated_at
     from v where t.task_id = v.task_id and v.has_patch`,
    values: [rows.map((r) => JSON.stringify(r))],
  };
}

/** The counter of agent_performance a finished task adds one to. */
type Outcome = 'succeeded' | 'failed' | 'timed_out' | 'caller_errors';

/** The outcome a task end counts as: a failure through the caller's input is not the agent's (isCallerError). */
function outcomeOf(e: TaskEvent): Outcome | undefined {
  switch (e.type) {
    case 'TaskCompleted':
      return 'succeeded';
    case 'TaskFailed':
      return isCallerError(e.data.error) ? 'caller_errors' : 'failed';
    case 'TaskTimedOut':
      return 'timed_out';
    default:
      return undefined;
  }
}

/**
 * `<schema>.agent_performance` (counters per agent) and `<schema>.task_latency` (one row per
 * finished task with its duration), so p50/p95 are computed with percentile_cont at query time.
 * A task that failed through its caller's input counts as `caller_errors`, not `failed`, and is
 * left out of the success rate: a caller's bad inputs say nothing of how well the agent works.
 */
export function performanceProjection(schema = 'delegation'): Projection {
  const s = ident(schema);
  const bump = (c: pg.PoolClient, agent: string, at: string, col: Outcome) =>
    c.query(
      `insert into ${s}.agent_performance (agent, tasks_done, ${col}, last_task_at) values ($1, 1, 1, $2)
       on conflict (agent) do update set tasks_done = ${s}.agent_performance.tasks_done + 1,
         ${col} = ${s}.agent_performance.${col} + 1, last_task_at = greatest(${s}.agent_performance.last_task_at, $2)`,
      [agent, at],
    );
  return {
    // v2: caller errors counted apart. A new name starts a checkpoint of its own, so the counters
    // (emptied by setup below) are replayed from the log by the new rule.
    name: `${s}.agent_performance.v2`,
    handles: ['TaskCompleted', 'TaskFailed', 'TaskTimedOut'],
    streamPrefixes: [TASK_STREAM_PREFIX],
    async setup(c) {
      await c.query(`create schema if not exists ${s}`);
      // A table of the first version counted caller errors as failures: emptied once, as the
      // column is added (ALTER TABLE locks the table even when the column is there, hence the test).
      await c.query(`do $caller_errors$ begin
        if to_regclass('${s}.agent_performance') is not null and not exists (
             select 1 from pg_attribute
              where attrelid = to_regclass('${s}.agent_performance') and attname = 'caller_errors' and not attisdropped) then
          truncate ${s}.agent_performance;
          alter table ${s}.agent_performance add column caller_errors int not null default 0;
        end if;
      end $caller_errors$`);
      await c.query(`create table if not exists ${s}.agent_performance (
        agent text primary key,
        tasks_done int not null default 0,
        succeeded int not null default 0,
        failed int not null default 0,
        timed_out int not null default 0,
        caller_errors int not null default 0,
        last_task_at timestamptz)`);
      await c.query(`create table if not exists ${s}.task_latency (
        task_id text primary key, agent text not null, task_type text not null, succeeded boolean not null,
        duration_ms int not null, finished_at timestamptz not null)`);
      await c.query(`create index if not exists task_latency_agent_idx on ${s}.task_latency (agent, finished_at desc)`);
    },
    async reset(c) {
      await c.query(`truncate ${s}.agent_performance, ${s}.task_latency`);
    },
    housekeeping: {
      everyMs: LATENCY_TRIM_EVERY_MS,
      run: (pool) => trimTaskLatency(pool, schema, Date.now()),
    },
    /**
     * A whole batch in one statement: the counters summed per agent in SQL (a sum of the `+ 1`s
     * and the greatest time, as `apply` event by event leaves them) and, in the same statement,
     * the latency rows (the first per task, as `on conflict do nothing` keeps it).
     */
    ...oneStatementBatches((events) => performanceBatchStatement(s, events)),
    async apply(c, recorded) {
      const e = { type: recorded.type, data: recorded.data } as TaskEvent;
      switch (e.type) {
        case 'TaskCompleted':
          await bump(c, e.data.agent, e.data.completed_at, 'succeeded');
          await c.query(
            `insert into ${s}.task_latency values ($1, $2, $3, true, $4, $5) on conflict (task_id) do nothing`,
            [e.data.task_id, e.data.agent, e.data.task_type, Math.round(e.data.duration_ms), e.data.completed_at],
          );
          return;
        case 'TaskFailed':
          await bump(c, e.data.agent, e.data.failed_at, outcomeOf(e)!);
          await c.query(
            `insert into ${s}.task_latency values ($1, $2, $3, false, $4, $5) on conflict (task_id) do nothing`,
            [e.data.task_id, e.data.agent, e.data.task_type, Math.round(e.data.duration_ms), e.data.failed_at],
          );
          return;
        case 'TaskTimedOut':
          await bump(c, e.data.agent, e.data.timed_out_at, 'timed_out');
          return;
        default:
          return;
      }
    },
  };
}

/** What the latency readers ask for: the last hour (status, with room for a late clock), the newest 1,000 successes per agent. */
export const LATENCY_KEPT_MS = 2 * 3_600_000;
export const LATENCY_KEPT_SUCCESSES = 1_000;
const LATENCY_TRIM_EVERY_MS = 60_000;

/**
 * Delete the `task_latency` rows no reader asks for: older than `LATENCY_KEPT_MS` before `now`
 * and not among their agent's newest `LATENCY_KEPT_SUCCESSES` successful ones (failures are
 * read only within the window). One row per ended task otherwise stays for good. Returns rows deleted.
 */
export async function trimTaskLatency(
  pool: Pick<pg.Pool, 'query'>,
  schema: string,
  now: number,
  bounds?: DeleteBounds,
): Promise<number> {
  const s = ident(schema);
  return deleteInBatches(
    pool,
    `${s}.task_latency`,
    `select t.ctid from ${s}.task_latency t
       left join (select p.agent,
                         (select k.finished_at from ${s}.task_latency k where k.agent = p.agent and k.succeeded
                           order by k.finished_at desc offset ${LATENCY_KEPT_SUCCESSES - 1} limit 1) as keep_from
                    from ${s}.agent_performance p) c on c.agent = t.agent
      where t.finished_at < $1 and (not t.succeeded or t.finished_at < c.keep_from)`,
    [new Date(now - LATENCY_KEPT_MS)],
    bounds,
  );
}

/**
 * Performance per agent: counters, success rate (of the tasks the agent is answerable for: caller
 * errors left out), p50/p95 latency of successful tasks (last 1000 per agent).
 */
export async function queryPerformance(pool: pg.Pool, schema = 'delegation') {
  const s = ident(schema);
  const r = await pool.query<{
    agent: string;
    tasks_done: number;
    succeeded: number;
    failed: number;
    timed_out: number;
    caller_errors: number;
    last_task_at: string | null;
    p50: number | null;
    p95: number | null;
  }>(
    `select p.agent, p.tasks_done, p.succeeded, p.failed, p.timed_out, p.caller_errors,
            to_char(p.last_task_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as last_task_at,
            l.p50, l.p95
       from ${s}.agent_performance p
       left join lateral (
         select percentile_cont(0.5) within group (order by duration_ms)::float8 as p50,
                percentile_cont(0.95) within group (order by duration_ms)::float8 as p95
           from (select duration_ms from ${s}.task_latency t where t.agent = p.agent and t.succeeded order by finished_at desc limit 1000) x
       ) l on true
      order by p.agent`,
  );
  return r.rows.map((row) => ({
    agent: row.agent,
    tasks_done: row.tasks_done,
    succeeded: row.succeeded,
    failed: row.failed,
    timed_out: row.timed_out,
    caller_errors: row.caller_errors,
    success_rate: successRate(row.succeeded, row.failed, row.timed_out),
    latency_p50_ms: row.p50,
    latency_p95_ms: row.p95,
    last_task_at: row.last_task_at,
  }));
}

/** Succeeded of the tasks an agent is answerable for (caller errors are not); null before any. */
export const successRate = (succeeded: number, failed: number, timedOut: number): number | null =>
  succeeded + failed + timedOut > 0 ? succeeded / (succeeded + failed + timedOut) : null;

/**
 * `<schema>.external_agents`: the external agents registered at run time, from their
 * ExternalAgentRegistered / ExternalAgentRemoved events. Their bearer tokens are not in the log
 * and not here: the dispatcher keeps them apart (`<schema>_secrets.external_agent_tokens`), so a
 * role that reads the read models never reads a token.
 */
export function externalAgentsProjection(schema = 'delegation'): Projection {
  const s = ident(schema);
  return {
    name: `${s}.external_agents`,
    handles: ['ExternalAgentRegistered', 'ExternalAgentRemoved'],
    streamPrefixes: [EXTERNAL_AGENT_STREAM_PREFIX],
    async setup(c) {
      await c.query(`create schema if not exists ${s}`);
      await c.query(`create table if not exists ${s}.external_agents (
        name text primary key,
        url text not null,
        task_types text[] not null,
        max_concurrency int not null,
        description text not null default '',
        registered_at timestamptz not null,
        updated_at timestamptz not null,
        a2a_card_url text)`);
    },
    async reset(c) {
      await c.query(`truncate ${s}.external_agents`);
    },
    async apply(c: pg.PoolClient, recorded: RecordedEvent) {
      if (recorded.type === 'ExternalAgentRemoved') {
        const { name } = externalAgentRemovedData.parse(recorded.data);
        await c.query(`delete from ${s}.external_agents where name = $1`, [name]);
        return;
      }
      const a = externalAgentRegisteredData.parse(recorded.data);
      await c.query(
        `insert into ${s}.external_agents (name, url, task_types, max_concurrency, description, registered_at, updated_at, a2a_card_url)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (name) do update set url = excluded.url, task_types = excluded.task_types,
           max_concurrency = excluded.max_concurrency, description = excluded.description,
           updated_at = excluded.updated_at, a2a_card_url = excluded.a2a_card_url`,
        [
          a.name,
          a.url,
          a.task_types,
          a.max_concurrency,
          a.description,
          a.registered_at,
          recorded.metadata.timestamp,
          a.a2a_card_url ?? null,
        ],
      );
    },
  };
}

/** The delegation projections (tasks table, per-agent performance, external agents) for a ProjectionRunner. */
export const delegationProjections = (schema = 'delegation') => [
  tasksProjection(schema),
  performanceProjection(schema),
  externalAgentsProjection(schema),
];

/** The performance read models for a whole batch, as one statement (see performanceProjection). */
function performanceBatchStatement(s: string, events: readonly RecordedEvent[]): BatchStatement | undefined {
  const agents: unknown[] = [],
    cols: string[] = [],
    ats: unknown[] = [];
  const lat = new Map<string, unknown[]>();
  for (const recorded of events) {
    const e = { type: recorded.type, data: recorded.data } as TaskEvent;
    if (e.type !== 'TaskCompleted' && e.type !== 'TaskFailed' && e.type !== 'TaskTimedOut') continue;
    agents.push(e.data.agent);
    cols.push(outcomeOf(e)!);
    ats.push(
      e.type === 'TaskCompleted'
        ? e.data.completed_at
        : e.type === 'TaskFailed'
          ? e.data.failed_at
          : e.data.timed_out_at,
    );
    if (e.type !== 'TaskTimedOut' && !lat.has(e.data.task_id)) {
      const ok = e.type === 'TaskCompleted';
      lat.set(e.data.task_id, [
        e.data.agent,
        e.data.task_type,
        ok,
        Math.round(e.data.duration_ms),
        ok ? e.data.completed_at : e.data.failed_at,
      ]);
    }
  }
  // Every latency row comes from an event that also counts, so no counts means no rows.
  if (agents.length === 0) return undefined;
  const v = [...lat.values()];
  return {
    text: `with latency as (
         insert into ${s}.task_latency
         select * from unnest($4::text[], $5::text[], $6::text[], $7::bool[], $8::int[], $9::timestamptz[])
         on conflict (task_id) do nothing)
       insert into ${s}.agent_performance as p (agent, tasks_done, succeeded, failed, timed_out, caller_errors, last_task_at)
       select agent, count(*), count(*) filter (where col = 'succeeded'), count(*) filter (where col = 'failed'),
              count(*) filter (where col = 'timed_out'), count(*) filter (where col = 'caller_errors'), max(at)
       from unnest($1::text[], $2::text[], $3::timestamptz[]) as v(agent, col, at) group by agent
       on conflict (agent) do update set tasks_done = p.tasks_done + excluded.tasks_done,
         succeeded = p.succeeded + excluded.succeeded, failed = p.failed + excluded.failed, timed_out = p.timed_out + excluded.timed_out,
         caller_errors = p.caller_errors + excluded.caller_errors,
         last_task_at = greatest(p.last_task_at, excluded.last_task_at)`,
    values: [
      agents,
      cols,
      ats,
      [...lat.keys()],
      v.map((x) => x[0]),
      v.map((x) => x[1]),
      v.map((x) => x[2]),
      v.map((x) => x[3]),
      v.map((x) => x[4]),
    ],
  };
}

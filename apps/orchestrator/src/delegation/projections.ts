import type pg from 'pg';
import type { RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';
import { TASK_STREAM_PREFIX, type TaskEvent } from '@switchyard/domain';

const ident = (schema: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  return schema;
};

/**
 * `<schema>.tasks`: one row per delegated task with its status. The durable queue: after a
 * restart the dispatcher reads the tasks still queued or in flight from here (and their
 * streams for the exact state).
 */
export function tasksProjection(schema = 'delegation'): Projection {
  const s = ident(schema);
  return {
    name: `${s}.tasks`,
    handles: ['TaskSubmitted', 'TaskQueued', 'TaskAssigned', 'TaskStarted', 'TaskCompleted', 'TaskFailed', 'TaskRetryScheduled', 'TaskCanceled', 'TaskTimedOut'],
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
      await c.query(`create index if not exists tasks_active_idx on ${s}.tasks (status) where status in ('submitted','queued','assigned','working')`);
    },
    async reset(c) {
      await c.query(`truncate ${s}.tasks`);
    },
    async apply(c: pg.PoolClient, recorded: RecordedEvent) {
      const e = { type: recorded.type, data: recorded.data } as TaskEvent;
      const at = recorded.metadata.timestamp;
      const set = (sql: string, params: unknown[]) => c.query(`update ${s}.tasks set ${sql}, updated_at = $2 where task_id = $1`, params);
      switch (e.type) {
        case 'TaskSubmitted':
          await c.query(
            `insert into ${s}.tasks (task_id, task_type, status, priority, requested_agent, idempotency_key, submitted_at, updated_at)
             values ($1, $2, 'submitted', $3, $4, $5, $6, $6) on conflict (task_id) do nothing`,
            [e.data.task_id, e.data.task_type, e.data.priority, e.data.agent ?? null, e.data.idempotency_key ?? null, e.data.submitted_at],
          );
          return;
        case 'TaskQueued':
          await set(`status = 'queued'`, [e.data.task_id, at]);
          return;
        case 'TaskAssigned':
          await set(`status = 'assigned', agent = $3, instance = $4`, [e.data.task_id, at, e.data.agent, e.data.instance]);
          return;
        case 'TaskStarted':
          await set(`status = 'working'`, [e.data.task_id, at]);
          return;
        case 'TaskCompleted':
          await set(`status = 'completed', completed_at = $2`, [e.data.task_id, at]);
          return;
        case 'TaskFailed':
          await set(`status = 'failed', completed_at = $2, attempts = $3, error = $4`, [e.data.task_id, at, e.data.attempts, JSON.stringify(e.data.error)]);
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

/**
 * `<schema>.agent_performance` (counters per agent) and `<schema>.task_latency` (one row per
 * finished task with its duration), so p50/p95 are computed with percentile_cont at query time.
 */
export function performanceProjection(schema = 'delegation'): Projection {
  const s = ident(schema);
  const bump = (c: pg.PoolClient, agent: string, at: string, col: 'succeeded' | 'failed' | 'timed_out') =>
    c.query(
      `insert into ${s}.agent_performance (agent, tasks_done, ${col}, last_task_at) values ($1, 1, 1, $2)
       on conflict (agent) do update set tasks_done = ${s}.agent_performance.tasks_done + 1,
         ${col} = ${s}.agent_performance.${col} + 1, last_task_at = greatest(${s}.agent_performance.last_task_at, $2)`,
      [agent, at],
    );
  return {
    name: `${s}.agent_performance`,
    handles: ['TaskCompleted', 'TaskFailed', 'TaskTimedOut'],
    streamPrefixes: [TASK_STREAM_PREFIX],
    async setup(c) {
      await c.query(`create schema if not exists ${s}`);
      await c.query(`create table if not exists ${s}.agent_performance (
        agent text primary key,
        tasks_done int not null default 0,
        succeeded int not null default 0,
        failed int not null default 0,
        timed_out int not null default 0,
        last_task_at timestamptz)`);
      await c.query(`create table if not exists ${s}.task_latency (
        task_id text primary key, agent text not null, task_type text not null, succeeded boolean not null,
        duration_ms int not null, finished_at timestamptz not null)`);
      await c.query(`create index if not exists task_latency_agent_idx on ${s}.task_latency (agent, finished_at desc)`);
    },
    async reset(c) {
      await c.query(`truncate ${s}.agent_performance, ${s}.task_latency`);
    },
    async apply(c, recorded) {
      const e = { type: recorded.type, data: recorded.data } as TaskEvent;
      switch (e.type) {
        case 'TaskCompleted':
          await bump(c, e.data.agent, e.data.completed_at, 'succeeded');
          await c.query(`insert into ${s}.task_latency values ($1, $2, $3, true, $4, $5) on conflict (task_id) do nothing`, [
            e.data.task_id, e.data.agent, e.data.task_type, Math.round(e.data.duration_ms), e.data.completed_at,
          ]);
          return;
        case 'TaskFailed':
          await bump(c, e.data.agent, e.data.failed_at, 'failed');
          await c.query(`insert into ${s}.task_latency values ($1, $2, $3, false, $4, $5) on conflict (task_id) do nothing`, [
            e.data.task_id, e.data.agent, e.data.task_type, Math.round(e.data.duration_ms), e.data.failed_at,
          ]);
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

/** Performance per agent: counters, success rate, p50/p95 latency of successful tasks (last 1000 per agent). */
export async function queryPerformance(pool: pg.Pool, schema = 'delegation') {
  const s = ident(schema);
  const r = await pool.query<{
    agent: string; tasks_done: number; succeeded: number; failed: number; timed_out: number; last_task_at: string | null; p50: number | null; p95: number | null;
  }>(
    `select p.agent, p.tasks_done, p.succeeded, p.failed, p.timed_out, to_char(p.last_task_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as last_task_at,
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
    success_rate: row.tasks_done > 0 ? row.succeeded / row.tasks_done : null,
    latency_p50_ms: row.p50,
    latency_p95_ms: row.p95,
    last_task_at: row.last_task_at,
  }));
}

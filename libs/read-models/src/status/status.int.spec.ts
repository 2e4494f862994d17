import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { ProjectionRunner } from '../projection-runner.js';
import { freshDatabase } from '@switchyard/testing';
import { mcpEvent, mcpEventSchema, mcpServerStreamId, type McpEvent } from '@switchyard/contracts';
import { delegationProjections } from '../delegation.js';
import { workflowExecutionsProjection } from '../workflow-executions.js';
import { exactQuantile, LATENCY_BUCKET_RATIO, readIntegrationStatus, statusProjections } from './index.js';

const logger = createLogger('status-int', process.env.LOG_LEVEL ?? 'silent');
const MIN = 60_000;

/** percentile_cont as Postgres computes it (linear interpolation between ranks). */
function percentileCont(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

describe('integration status from the read models (real PostgreSQL, real projections)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let runner: ProjectionRunner;
  const now = new Date();
  const at = (msAgo: number) => new Date(now.getTime() - msAgo).toISOString();

  // Expected figures, computed here from what is appended.
  const calls: Record<
    string,
    { durations: number[]; calls: number; failures: number; toolErrors: number; lastCall: string }
  > = {};
  let seq = 0;

  const meta = (timestamp: string) => ({ correlationId: `c-${++seq}`, actor: 'test', timestamp });
  const appendMcp = async (e: McpEvent) => {
    mcpEventSchema.parse(e); // the connectors' own contract
    await store.append(mcpServerStreamId(e.data.server), [{ type: e.type, data: e.data, metadata: meta(e.data.at) }]);
  };
  /** One tool call: Called then Succeeded or Failed, counted in the expectations when inside the hour. */
  const call = async (
    server: string,
    msAgo: number,
    duration: number,
    outcome: 'success' | 'error' | 'tool_error' | 'rejected',
  ) => {
    const id = `call-${++seq}`;
    const base = { server, tool: 'query', call_id: id };
    await appendMcp(
      mcpEvent('McpToolCalled', { ...base, arguments: { value: {}, size: 2, truncated: false }, at: at(msAgo) }),
    );
    const end = at(msAgo - duration);
    if (outcome === 'success') {
      await appendMcp(
        mcpEvent('McpToolSucceeded', {
          ...base,
          duration_ms: duration,
          outcome,
          attempts: 1,
          result: { value: 1, size: 1, truncated: false },
          at: end,
        }),
      );
    } else {
      await appendMcp(
        mcpEvent('McpToolFailed', {
          ...base,
          duration_ms: duration,
          outcome,
          error_code: outcome === 'tool_error' ? 'tool_error' : 'unavailable',
          error_message: `boom ${id}`,
          attempts: outcome === 'rejected' ? 0 : 1,
          at: end,
        }),
      );
    }
    if (msAgo > 55 * MIN) return; // outside the hour (the test keeps clear of the window's edge)
    const c = (calls[server] ??= { durations: [], calls: 0, failures: 0, toolErrors: 0, lastCall: at(msAgo) });
    c.calls++;
    if (outcome !== 'success') c.failures++;
    if (outcome === 'tool_error') c.toolErrors++;
    if (outcome !== 'rejected') c.durations.push(duration);
    if (at(msAgo) > c.lastCall) c.lastCall = at(msAgo);
  };

  const task = async (id: string, events: { type: string; data: Record<string, unknown>; ts: string }[]) => {
    const evs: NewEvent[] = events.map((e) => ({
      type: e.type,
      data: { task_id: id, ...e.data },
      metadata: meta(e.ts),
    }));
    await store.append(`task-${id}`, evs);
  };
  const submitted = (agent: string | undefined, ts: string) => ({
    type: 'TaskSubmitted',
    data: {
      task_type: 'analyze',
      context: {},
      priority: 'normal',
      ...(agent ? { agent } : {}),
      max_attempts: 2,
      timeout_ms: 30_000,
      submitted_at: ts,
    },
    ts,
  });
  const assigned = (agent: string, ts: string) => ({
    type: 'TaskAssigned',
    data: { agent, instance: `${agent}-1`, assignment: 1, attempt: 1, assigned_at: ts, deadline: ts },
    ts,
  });
  const completed = (agent: string, duration: number, ts: string) => ({
    type: 'TaskCompleted',
    data: {
      task_type: 'analyze',
      agent,
      instance: `${agent}-1`,
      assignment: 1,
      result: {},
      duration_ms: duration,
      completed_at: ts,
    },
    ts,
  });
  const failed = (
    agent: string,
    ts: string,
    error: { code: string; message: string; details?: Record<string, unknown> } = { code: 'x', message: 'no' },
  ) => ({
    type: 'TaskFailed',
    data: {
      task_type: 'analyze',
      agent,
      instance: `${agent}-1`,
      assignment: 1,
      attempts: 2,
      error,
      duration_ms: 40,
      failed_at: ts,
    },
    ts,
  });
  const timedOut = (agent: string, ts: string) => ({
    type: 'TaskTimedOut',
    data: { task_type: 'analyze', agent, instance: `${agent}-1`, assignment: 1, timeout_ms: 30_000, timed_out_at: ts },
    ts,
  });

  const workflow = async (
    id: string,
    startedMsAgo: number,
    end?: {
      type: 'WorkflowCompleted' | 'WorkflowFailed' | 'WorkflowCanceled' | 'ExecutionCancelRequested';
      msAgo: number;
    },
  ) => {
    const startedAt = at(startedMsAgo);
    const evs: NewEvent[] = [
      {
        type: 'WorkflowStarted',
        data: {
          executionId: id,
          definition: { id: 'def', version: 1, name: 'Def', steps: [] },
          input: {},
          seed: 1,
          startedAt,
        },
        metadata: meta(startedAt),
      },
    ];
    if (end) {
      const t = at(end.msAgo);
      const data =
        end.type === 'WorkflowCompleted'
          ? { outputs: {}, completedAt: t }
          : end.type === 'WorkflowFailed'
            ? { reason: 'step_failed', stepId: null, error: null, failedAt: t }
            : end.type === 'WorkflowCanceled'
              ? { reason: 'asked', canceledAt: t }
              : { reason: 'asked', actor: 'test', requestedAt: t };
      evs.push({ type: end.type, data, metadata: meta(t) });
    }
    await store.append(`workflow_execution-${id}`, evs);
  };

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('status'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();

    // MCP: `db` is busy with a mix of outcomes and an old burst outside the hour; `fs` goes down.
    for (let i = 0; i < 5; i++) await call('db', 2 * 60 * MIN + i * MIN, 5_000, 'error'); // two hours ago: outside
    const durations = [3, 7, 12, 15, 18, 22, 25, 31, 40, 44, 52, 60, 75, 90, 120, 150, 180, 240, 400, 900];
    for (const [i, d] of durations.entries())
      await call('db', (50 - i * 2) * MIN, d, i % 7 === 3 ? 'error' : i % 5 === 4 ? 'tool_error' : 'success');
    await call('db', 5 * MIN, 0, 'rejected');
    await appendMcp(
      mcpEvent('McpCircuitOpened', {
        server: 'db',
        last_error: 'three failures',
        half_open_after_ms: 30_000,
        at: at(10 * MIN),
      }),
    );
    await appendMcp(mcpEvent('McpCircuitHalfOpened', { server: 'db', at: at(9 * MIN) }));
    await appendMcp(mcpEvent('McpCircuitClosed', { server: 'db', at: at(8 * MIN) }));
    await appendMcp(mcpEvent('McpServerRecovered', { server: 'db', down_for_ms: 1000, at: at(40 * MIN) }));
    // `burst`: many calls inside one minute, slowest first, so the minute's histogram grows downwards too.
    for (let i = 0; i < 30; i++)
      await call('burst', 7 * MIN - i * 1_000, Math.round(900 / (i + 1)) + (i % 3), i % 10 === 9 ? 'error' : 'success');
    await call('fs', 20 * MIN, 8, 'success');
    await call('fs', 4 * MIN, 2_000, 'error');
    await appendMcp(
      mcpEvent('McpServerWentDown', { server: 'fs', previous: 'up', error: 'connection refused', at: at(3 * MIN) }),
    );
    await appendMcp(
      mcpEvent('McpCircuitOpened', {
        server: 'fs',
        last_error: 'connection refused',
        half_open_after_ms: 30_000,
        at: at(3 * MIN),
      }),
    );

    // Tasks: analyst has 2 in flight, 1 queued by name, 3 completed (one two hours ago), 1 failed, 1 timed out; one queued for anyone.
    const t = (m: number) => at(m * MIN);
    await task('a1', [submitted('analyst', t(30)), assigned('analyst', t(29))]);
    await task('a2', [
      submitted(undefined, t(30)),
      assigned('analyst', t(29)),
      { type: 'TaskStarted', data: { assignment: 1, instance: 'analyst-1', started_at: t(28) }, ts: t(28) },
    ]);
    await task('a3', [
      submitted('analyst', t(10)),
      { type: 'TaskQueued', data: { reason: 'submitted', queued_at: t(10) }, ts: t(10) },
    ]);
    await task('a4', [
      submitted(undefined, t(10)),
      { type: 'TaskQueued', data: { reason: 'submitted', queued_at: t(10) }, ts: t(10) },
    ]);
    await task('c1', [submitted(undefined, t(50)), assigned('analyst', t(50)), completed('analyst', 100, t(49))]);
    await task('c2', [submitted(undefined, t(40)), assigned('analyst', t(40)), completed('analyst', 300, t(39))]);
    await task('c3', [submitted(undefined, t(130)), assigned('analyst', t(130)), completed('analyst', 9_000, t(125))]);
    await task('f1', [submitted(undefined, t(20)), assigned('analyst', t(20)), failed('analyst', t(19))]);
    await task('x1', [submitted(undefined, t(20)), assigned('analyst', t(20)), timedOut('analyst', t(15))]);
    await task('w1', [submitted(undefined, t(20)), assigned('writer', t(20)), completed('writer', 55, t(18))]);
    // writer also failed twice: once through its caller's input, once for a result the store refused (its own).
    await task('w2', [
      submitted(undefined, t(20)),
      assigned('writer', t(20)),
      failed('writer', t(17), { code: 'not_found', message: 'customer not found' }),
    ]);
    await task('w3', [
      submitted(undefined, t(20)),
      assigned('writer', t(20)),
      failed('writer', t(16), {
        code: 'validation',
        message: "the agent's result could not be recorded",
        details: { reason: 'result_unrecordable' },
      }),
    ]);

    // Workflows: 2 running, 1 canceling, completed 2 (+1 two hours ago), failed 1, canceled 1.
    await workflow('r1', 5 * MIN);
    await workflow('r2', 70 * MIN);
    await workflow('k1', 5 * MIN, { type: 'ExecutionCancelRequested', msAgo: 4 * MIN });
    await workflow('d1', 30 * MIN, { type: 'WorkflowCompleted', msAgo: 20 * MIN });
    await workflow('d2', 90 * MIN, { type: 'WorkflowCompleted', msAgo: 10 * MIN });
    await workflow('d3', 180 * MIN, { type: 'WorkflowCompleted', msAgo: 150 * MIN });
    await workflow('e1', 30 * MIN, { type: 'WorkflowFailed', msAgo: 25 * MIN });
    await workflow('q1', 30 * MIN, { type: 'WorkflowCanceled', msAgo: 2 * MIN });

    runner = new ProjectionRunner({
      store,
      db: { pool },
      projections: [...statusProjections(), ...delegationProjections(), workflowExecutionsProjection],
      logger,
    });
    await runner.start();
    await runner.waitFor();
  });

  after(async () => {
    await runner?.stop();
    await store?.close();
    await pool?.end();
  });

  it('a database with no read models at all answers "no data yet", not an error', async () => {
    const empty = new pg.Pool({ connectionString: await freshDatabase('status_empty'), max: 1 });
    try {
      const s = await readIntegrationStatus(empty, { now });
      assert.deepEqual(
        [s.mcp.available, s.agents.available, s.workflows.available, s.alerts.available],
        [false, false, false, false],
      );
      assert.deepEqual(s.mcp.servers, []);
      assert.equal(s.workflows.running, 0);
    } finally {
      await empty.end();
    }
  });

  it("MCP servers not called yet (no projection row) are listed from the monitor's probes, with the probe's health", async () => {
    const fresh = new pg.Pool({ connectionString: await freshDatabase('status_probes'), max: 1 });
    try {
      // The columns of the monitor's services table this read uses.
      await fresh.query(`
        create schema monitoring;
        create table monitoring.services (service text primary key, kind text not null, status text not null, reason text, since timestamptz,
          failing_since timestamptz, last_probe_at timestamptz, last_error text);
        insert into monitoring.services (service, kind, status, since, last_error) values
          ('mcp:database', 'mcp', 'up', '${at(5 * MIN)}', null),
          ('mcp:fetch', 'mcp', 'down', '${at(2 * MIN)}', 'connection refused'),
          ('mcp:github', 'mcp', 'unknown', null, null),
          ('agent:data_analyst:i1', 'agent', 'up', '${at(5 * MIN)}', null),
          ('postgres', 'infra', 'up', '${at(5 * MIN)}', null);`);
      const s = await readIntegrationStatus(fresh, { now });
      assert.equal(s.mcp.available, false);
      assert.deepEqual(
        s.mcp.servers.map((x) => [x.server, x.health, x.health_since, x.health_error, x.breaker, x.last_hour.calls]),
        [
          ['database', 'up', at(5 * MIN), null, 'closed', 0],
          ['fetch', 'down', at(2 * MIN), 'connection refused', 'closed', 0],
          ['github', 'unknown', null, null, 'closed', 0],
        ],
      );
      assert.deepEqual(
        s.agents.items.map((a) => [a.agent, a.instances?.map((i) => i.instance)]),
        [['data_analyst', ['i1']]],
      );
    } finally {
      await fresh.end();
    }
  });

  it('MCP servers: calls, failures and p95 of the last hour, breaker and health with their times', async () => {
    const s = await readIntegrationStatus(pool, { now });
    assert.equal(s.mcp.available, true);
    assert.deepEqual(
      s.mcp.servers.map((x) => x.server),
      ['burst', 'db', 'fs'],
    );
    for (const srv of s.mcp.servers) {
      const want = calls[srv.server]!;
      assert.equal(srv.last_hour.calls, want.calls, `${srv.server} calls`);
      assert.equal(srv.last_hour.failures, want.failures, `${srv.server} failures`);
      assert.equal(srv.last_hour.tool_errors, want.toolErrors, `${srv.server} tool errors`);
      const exact = exactQuantile(want.durations, 0.95)!;
      const got = srv.last_hour.p95_ms!;
      assert.ok(
        Math.abs(got - exact) / exact <= LATENCY_BUCKET_RATIO - 1,
        `${srv.server} p95 ${got} vs exact ${exact}`,
      );
      assert.equal(srv.last_call_at, want.lastCall);
    }
    const db = s.mcp.servers.find((x) => x.server === 'db')!;
    const fs = s.mcp.servers.find((x) => x.server === 'fs')!;
    assert.equal(db.totals.calls, calls.db!.calls + 5, 'lifetime totals include the old burst');
    // Compact rows: each minute's array spans only its buckets (no NULL padding from bucket 1).
    const bounds = await pool.query(
      `select min(array_lower(hist, 1)) as lo from status.mcp_minutes where server = 'burst'`,
    );
    assert.ok(Number(bounds.rows[0].lo) > 1, `lower bound ${bounds.rows[0].lo}`);
    assert.equal(db.breaker, 'closed');
    assert.equal(db.breaker_since, at(8 * MIN));
    assert.equal(db.health, 'up');
    assert.equal(db.health_since, at(40 * MIN));
    assert.equal(fs.breaker, 'open');
    assert.equal(fs.breaker_since, at(3 * MIN));
    assert.equal(fs.health, 'down');
    assert.equal(fs.health_error, 'connection refused');
    assert.deepEqual(fs.last_error, { code: 'circuit_open', message: 'connection refused', at: at(3 * MIN) });
  });

  it('the breaker closes again: the next read shows it', async () => {
    await appendMcp(mcpEvent('McpCircuitHalfOpened', { server: 'fs', at: at(1 * MIN) }));
    await appendMcp(mcpEvent('McpCircuitClosed', { server: 'fs', at: at(0.5 * MIN) }));
    await runner.waitFor();
    const fs = (await readIntegrationStatus(pool, { now })).mcp.servers.find((x) => x.server === 'fs')!;
    assert.equal(fs.breaker, 'closed');
    assert.equal(fs.breaker_since, at(0.5 * MIN));
  });

  it('agents: in flight, queued, finished in the last hour, success rate and latency percentiles', async () => {
    const s = await readIntegrationStatus(pool, { now });
    assert.equal(s.agents.available, true);
    assert.equal(s.agents.queued_any_agent, 1);
    const analyst = s.agents.items.find((a) => a.agent === 'analyst')!;
    assert.equal(analyst.in_flight, 2);
    assert.equal(analyst.queued, 1);
    assert.deepEqual(
      { c: analyst.last_hour.completed, f: analyst.last_hour.failed, t: analyst.last_hour.timed_out },
      { c: 2, f: 1, t: 1 },
    );
    assert.equal(analyst.last_hour.success_rate, 0.5);
    assert.equal(analyst.last_hour.latency_p50_ms, percentileCont([100, 300], 0.5));
    assert.equal(analyst.last_hour.latency_p95_ms, percentileCont([100, 300], 0.95));
    assert.equal(analyst.totals?.tasks_done, 5);
    assert.equal(analyst.instances, null, 'no monitor tables: liveness unknown');
    const writer = s.agents.items.find((a) => a.agent === 'writer')!;
    // The caller's failure is counted apart and left out of the success rate (the performance read model's rule).
    assert.deepEqual(writer.last_hour, {
      completed: 1,
      failed: 1,
      timed_out: 0,
      caller_errors: 1,
      success_rate: 0.5,
      latency_p50_ms: 55,
      latency_p95_ms: 55,
    });
    assert.deepEqual(
      [writer.totals?.tasks_done, writer.totals?.succeeded, writer.totals?.failed, writer.totals?.caller_errors],
      [3, 1, 1, 1],
    );
    assert.equal(analyst.last_hour.caller_errors, 0);
  });

  it('workflows: running now and ended in the last hour; no monitoring schema reads as no data', async () => {
    const s = await readIntegrationStatus(pool, { now });
    assert.equal(s.workflows.available, true);
    assert.equal(s.workflows.running, 2);
    assert.equal(s.workflows.canceling, 1);
    assert.deepEqual(s.workflows.last_hour, { completed: 2, failed: 1, canceled: 1 });
    assert.deepEqual(s.alerts, { available: false, firing: 0, pending: 0, items: [] });
  });

  it('creates the end-time indexes, and a rebuild of the MCP projection gives the same figures', async () => {
    const idx = await pool.query(
      `select indexname from pg_indexes where indexname in ('workflow_executions_ended', 'tasks_ended_idx') order by 1`,
    );
    assert.deepEqual(
      idx.rows.map((r) => r.indexname),
      ['tasks_ended_idx', 'workflow_executions_ended'],
    );
    const before_ = (await readIntegrationStatus(pool, { now })).mcp;
    await runner.rebuild('status.mcp_servers');
    await runner.waitFor();
    assert.deepEqual((await readIntegrationStatus(pool, { now })).mcp, before_);
  });

  it('reads quickly (information only, not asserted)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await readIntegrationStatus(pool, { now: new Date() });
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(
      `# readIntegrationStatus over 200 reads: p50 ${times[100]!.toFixed(2)} ms, p95 ${times[190]!.toFixed(2)} ms, max ${times[199]!.toFixed(2)} ms`,
    );
  });
});

describe('integration status at a realistic size (read models filled by SQL; timing printed, plans checked)', () => {
  let pool: pg.Pool;
  // One instant for the data and the reads: a minute boundary in between must not move the window.
  const now = new Date();

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('status_scale'), max: 2 });
    const c = await pool.connect();
    try {
      await c.query('begin');
      for (const p of statusProjections()) await p.setup(c);
      for (const p of delegationProjections()) await p.setup(c);
      await c.query('commit');
      // 20 servers x 120 minutes, a few buckets each; 50 000 tasks over a day, 8 agents; 20 000 executions over a day.
      await c.query(
        `insert into status.mcp_servers (server, health, breaker, last_call_at) select 'srv' || g, 'up', 'closed', $1::timestamptz from generate_series(1, 20) g`,
        [now],
      );
      await c.query(
        `insert into status.mcp_minutes (server, minute, calls, failures, tool_errors, hist)
        select 'srv' || s, date_trunc('minute', $1::timestamptz) - make_interval(mins => m), 50, 1, 0, '[40:46]={3,10,20,10,5,2,1}'::int[]
          from generate_series(1, 20) s, generate_series(0, 119) m`,
        [now],
      );
      await c.query(
        `insert into delegation.tasks (task_id, task_type, status, priority, agent, submitted_at, updated_at, completed_at)
        select 't' || g, 'analyze',
               case when g % 500 = 0 then 'working' when g % 97 = 0 then 'failed' when g % 89 = 0 then 'timed_out' else 'completed' end,
               'normal', 'agent' || (g % 8), $1::timestamptz - make_interval(secs => g * 1.7), $1::timestamptz,
               case when g % 500 = 0 then null else $1::timestamptz - make_interval(secs => g * 1.7) end
          from generate_series(1, 50000) g`,
        [now],
      );
      await c.query(
        `insert into delegation.task_latency (task_id, agent, task_type, succeeded, duration_ms, finished_at)
        select 't' || g, 'agent' || (g % 8), 'analyze', true, 50 + g % 400, $1::timestamptz - make_interval(secs => g * 1.7) from generate_series(1, 50000) g where g % 500 <> 0`,
        [now],
      );
      await c.query(
        `insert into delegation.agent_performance (agent, tasks_done, succeeded) select 'agent' || g, 6000, 5900 from generate_series(0, 7) g`,
      );
      await c.query(
        `insert into read_models.workflow_executions (execution_id, definition_id, definition_version, definition_name, status, started_at, ended_at, updated_at, last_position)
        select 'x' || g, 'def', 1, 'Def', case when g % 1000 = 0 then 'running' when g % 50 = 0 then 'failed' else 'completed' end,
               $1::timestamptz - make_interval(secs => g * 4.3), case when g % 1000 = 0 then null else $1::timestamptz - make_interval(secs => g * 4.3 - 1) end, $1::timestamptz, g
          from generate_series(1, 20000) g`,
        [now],
      );
      await c.query('analyze');
    } finally {
      c.release();
    }
  });

  after(async () => {
    await pool?.end();
  });

  it('the "ended in the last hour" counts use the end-time indexes', async () => {
    const plan = async (sql: string) =>
      (await pool.query(`explain ${sql}`, [new Date(now.getTime() - 3_600_000)])).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n');
    assert.match(
      await plan(
        `select agent, count(*) from delegation.tasks where completed_at >= $1 and completed_at is not null group by agent`,
      ),
      /tasks_ended_idx/,
    );
    assert.match(
      await plan(
        `select status, count(*) from read_models.workflow_executions where ended_at >= $1 and ended_at is not null group by status`,
      ),
      /workflow_executions_ended/,
    );
  });

  it('reads all sections (information: time printed)', async () => {
    const s = await readIntegrationStatus(pool, { now });
    assert.equal(s.mcp.servers.length, 20);
    assert.equal(s.mcp.servers[0]!.last_hour.calls, 60 * 50);
    assert.equal(s.agents.items.length, 8);
    assert.equal(s.workflows.running, 20);
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await readIntegrationStatus(pool, { now });
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(
      `# readIntegrationStatus, 20 servers x 120 minutes, 50k tasks, 20k executions: p50 ${times[100]!.toFixed(2)} ms, p95 ${times[190]!.toFixed(2)} ms`,
    );
  });
});

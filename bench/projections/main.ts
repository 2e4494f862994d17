/**
 * Projection rebuild benchmark: `node bench/projections/dist/main.js`
 * Fills a fresh event store (PostgreSQL adapter) with BENCH_EVENTS events (default 1,000,000)
 * shaped as the domain writes them: workflow executions (started, two steps scheduled,
 * dispatched, succeeded, completed), delegated tasks (submitted, assigned, started, completed or
 * failed) and MCP tool calls (called, succeeded or failed), then replays every read model the
 * launcher's read-models role runs (workflow executions, delegation tasks and agent performance,
 * MCP status) from position -1 in one ProjectionRunner, and prints events/s per projection, in
 * total, and the wall time, against a target of the whole log into every read model in 60 s.
 * Uses DATABASE_URL when set (a fresh database is created on it), otherwise an embedded
 * PostgreSQL on a free port with its data under .tmp/ (removed afterwards).
 * Knobs: BENCH_EVENTS, BENCH_BATCH_SIZE (runner batch size, default the runner's own).
 */
import path from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createLogger, ensureDatabase, freePort, startEmbeddedPostgres, type PostgresHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { ProjectionRunner, type Projection } from '@switchyard/read-models';
import { delegationProjections, statusProjections, workflowExecutionsProjection } from '@switchyard/orchestrator';

const logger = createLogger('bench-projections', process.env.LOG_LEVEL ?? 'warn');
const total = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const batchSize = process.env.BENCH_BATCH_SIZE ? Number(process.env.BENCH_BATCH_SIZE) : undefined;
const TARGET_S = 60;

interface Row {
  stream: string;
  type: string;
  data: unknown;
  ts: string;
}

/** The events of one "unit of work": a workflow execution, a delegated task, MCP calls (14 events). */
function unit(n: number, t0: number): Row[] {
  const at = (ms: number) => new Date(t0 + n * 1000 + ms).toISOString();
  const wf = `workflow_execution-bench-${n}`;
  const task = `task-bench-${n}`;
  const server = `srv${n % 8}`;
  const agent = `agent${n % 5}`;
  const rows: Row[] = [];
  const definition = {
    id: `def${n % 10}`,
    version: 1,
    name: `Definition ${n % 10}`,
    steps: [
      { id: 'fetch', uses: `mcp:${server}/query`, with: { q: 'select 1' } },
      { id: 'analyze', uses: `agent:${agent}`, needs: ['fetch'], with: { v: '${{ steps.fetch.output.v }}' } },
    ],
  };
  rows.push({ stream: wf, type: 'WorkflowStarted', data: { executionId: `bench-${n}`, definition, input: { n }, seed: n, startedAt: at(0) }, ts: at(0) });
  for (const [i, stepId] of ['fetch', 'analyze'].entries()) {
    const key = `bench-${n}:${stepId}:1`;
    rows.push({ stream: wf, type: 'StepScheduled', data: { stepId, attempt: 1, idempotencyKey: key, uses: definition.steps[i]!.uses, input: { n }, timeoutMs: 30_000, scheduledAt: at(10 + i * 100) }, ts: at(10 + i * 100) });
    rows.push({ stream: wf, type: 'StepDispatched', data: { stepId, attempt: 1, idempotencyKey: key, dispatchedAt: at(12 + i * 100), timeoutAt: at(30_012 + i * 100) }, ts: at(12 + i * 100) });
    rows.push({ stream: wf, type: 'StepSucceeded', data: { stepId, attempt: 1, output: { v: n, rows: [{ a: 1, b: 'x' }] }, at: at(60 + i * 100) }, ts: at(60 + i * 100) });
  }
  rows.push({ stream: wf, type: 'WorkflowCompleted', data: { outputs: { analyze: { v: n } }, completedAt: at(200) }, ts: at(200) });
  const ok = n % 10 !== 7;
  const base = { task_id: `bench-${n}` };
  rows.push({ stream: task, type: 'TaskSubmitted', data: { ...base, task_type: 'analyze', context: { n }, priority: 'normal', agent, max_attempts: 2, timeout_ms: 30_000, submitted_at: at(100) }, ts: at(100) });
  rows.push({ stream: task, type: 'TaskAssigned', data: { ...base, agent, instance: `${agent}-1`, assignment: 1, attempt: 1, assigned_at: at(101), deadline: at(30_101) }, ts: at(101) });
  rows.push({ stream: task, type: 'TaskStarted', data: { ...base, assignment: 1, instance: `${agent}-1`, started_at: at(102) }, ts: at(102) });
  rows.push(
    ok
      ? { stream: task, type: 'TaskCompleted', data: { ...base, task_type: 'analyze', agent, instance: `${agent}-1`, assignment: 1, result: { v: n }, duration_ms: 50 + (n % 90), completed_at: at(150) }, ts: at(150) }
      : { stream: task, type: 'TaskFailed', data: { ...base, task_type: 'analyze', agent, instance: `${agent}-1`, assignment: 1, attempts: 2, error: { code: 'x', message: 'no' }, duration_ms: 40, failed_at: at(150) }, ts: at(150) },
  );
  const call = { server, tool: 'query', call_id: `call-bench-${n}` };
  const mcp = `mcpserver-${server}`;
  rows.push({ stream: mcp, type: 'McpToolCalled', data: { ...call, arguments: { value: { q: 'select 1' }, size: 18, truncated: false }, at: at(12) }, ts: at(12) });
  rows.push(
    n % 20 === 3
      ? { stream: mcp, type: 'McpToolFailed', data: { ...call, duration_ms: 30, outcome: 'error', error_code: 'unavailable', error_message: 'boom', attempts: 1, at: at(42) }, ts: at(42) }
      : { stream: mcp, type: 'McpToolSucceeded', data: { ...call, duration_ms: 5 + (n % 200), outcome: 'success', attempts: 1, result: { value: { v: n }, size: 9, truncated: false }, at: at(17 + (n % 200)) }, ts: at(17 + (n % 200)) },
  );
  rows.push({ stream: mcp, type: 'McpToolCalled', data: { ...call, call_id: `call-bench-${n}b`, arguments: { value: {}, size: 2, truncated: false }, at: at(300) }, ts: at(300) });
  rows.push({ stream: mcp, type: 'McpToolSucceeded', data: { ...call, call_id: `call-bench-${n}b`, duration_ms: 8, outcome: 'success', attempts: 1, result: { value: 1, size: 1, truncated: false }, at: at(308) }, ts: at(308) });
  return rows;
}

/**
 * Bulk insert straight into the adapter's table (same columns, dense positions and revisions,
 * as append_batch writes them): appending 1M events one stream at a time would take longer than
 * the replay measured. Nothing else writes to this fresh database meanwhile.
 */
async function fill(pool: pg.Pool, n: number): Promise<Map<string, number>> {
  const revisions = new Map<string, number>();
  const perType = new Map<string, number>();
  const t0 = Date.now() - 30 * 24 * 3600_000; // a month ago, one unit a second
  let position = 0;
  let u = 0;
  const chunk = 5000;
  while (position < n) {
    const pos: number[] = [], streams: string[] = [], revs: number[] = [], types: string[] = [], datas: string[] = [], metas: string[] = [];
    while (pos.length < chunk && position < n) {
      for (const r of unit(u, t0)) {
        if (position >= n) break;
        const rev = (revisions.get(r.stream) ?? -1) + 1;
        revisions.set(r.stream, rev);
        perType.set(r.type, (perType.get(r.type) ?? 0) + 1);
        pos.push(position++);
        streams.push(r.stream);
        revs.push(rev);
        types.push(r.type);
        datas.push(JSON.stringify(r.data));
        metas.push(JSON.stringify({ correlationId: `bench-${u}`, actor: 'bench', timestamp: r.ts }));
      }
      u++;
    }
    await pool.query(
      `insert into eventstore.events (position, stream_id, revision, event_id, type, data, metadata)
       select p, s, r, gen_random_uuid(), t, d::jsonb, m::jsonb
       from unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) as x(p, s, r, t, d, m)`,
      [pos, streams, revs, types, datas, metas],
    );
  }
  return perType;
}

async function main(): Promise<void> {
  let pgh: PostgresHandle | undefined;
  let tmp: string | undefined;
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    tmp = path.resolve('.tmp', `bench-projections-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    pgh = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort(), logger });
    serverUrl = pgh.url;
  }
  const dbUrl = await ensureDatabase(serverUrl, `bench_rm_${randomBytes(4).toString('hex')}`);
  const pool = new pg.Pool({ connectionString: dbUrl, max: 8 });
  const store = new PostgresEventStore({ pool, logger });
  await store.init();
  console.log(`# PostgreSQL ${pgh ? `(${pgh.kind}, started for the bench)` : '(DATABASE_URL)'}; fresh database; ${total.toLocaleString('en')} events`);
  try {
    const tf = performance.now();
    const perType = await fill(pool, total);
    await pool.query('vacuum analyze eventstore.events');
    const fillS = (performance.now() - tf) / 1000;
    const head = await store.headPosition();
    console.log(`fill (bulk insert + vacuum analyze): ${fillS.toFixed(1)} s, head position ${head}`);
    console.log(`event types: ${[...perType].map(([t, c]) => `${t} ${c}`).join(', ')}`);

    // The read-models role's projections, in one runner as the launcher's migrate() lists them.
    const projections: Projection[] = [workflowExecutionsProjection, ...delegationProjections(), ...statusProjections()];
    const runner = new ProjectionRunner({ store, db: { pool }, projections, logger, ...(batchSize ? { batchSize } : {}) });
    await runner.migrate();
    // A rebuild is reset() + checkpoint -1 + replay: do the reset explicitly so the replay starts from -1 on empty tables.
    await runner.start();
    await Promise.all(projections.map((p) => runner.rebuild(p.name)));
    const t0 = performance.now();
    const done = new Map<string, number>();
    await Promise.all(
      projections.map(async (p) => {
        await runner.waitFor(head, p.name, 30 * 60_000);
        done.set(p.name, (performance.now() - t0) / 1000);
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    await runner.stop();

    const events = head + 1;
    console.log(`\nrebuild from position -1, all projections in one runner (batch size ${batchSize ?? 'default'}):`);
    console.log('projection                     handled events  seconds  log events/s  handled events/s');
    for (const p of projections) {
      const handled = p.handles.reduce((a, t) => a + (perType.get(t) ?? 0), 0);
      const s = done.get(p.name)!;
      console.log(
        `${p.name.padEnd(30)} ${String(handled).padStart(14)}  ${s.toFixed(1).padStart(7)}  ${Math.round(events / s).toString().padStart(12)}  ${Math.round(handled / s).toString().padStart(16)}`,
      );
    }
    const counts = await pool.query<{ executions: string; tasks: string; servers: string }>(
      `select (select count(*) from read_models.workflow_executions) executions, (select count(*) from delegation.tasks) tasks, (select count(*) from status.mcp_servers) servers`,
    ).catch(() => undefined);
    if (counts) console.log(`rows: ${JSON.stringify(counts.rows[0])}`);
    console.log(`\ntotal: ${events} events into ${projections.length} read models in ${wall.toFixed(1)} s wall = ${Math.round(events / wall)} log events/s, ${Math.round((events * projections.length) / wall)} projection-events/s`);
    console.log(`target (${(1_000_000).toLocaleString('en')} events into every read model in < ${TARGET_S} s): ${events >= 1_000_000 ? (wall < TARGET_S ? 'MET' : 'NOT met') : `n/a (only ${events} events; scaled: ${((wall * 1_000_000) / events).toFixed(1)} s per million)`}`);
  } finally {
    await store.close();
    await pool.end();
    await pgh?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

await main();

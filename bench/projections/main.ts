/**
 * Projection rebuild benchmark: `node bench/projections/dist/main.js`
 * Fills a fresh event store (PostgreSQL adapter) with BENCH_EVENTS events (default 1,000,000)
 * shaped as the domain writes them: workflow executions (started, two steps scheduled,
 * dispatched, succeeded, completed), delegated tasks (submitted, assigned, started, completed or
 * failed) and MCP tool calls (called, succeeded or failed), then replays every read model the
 * launcher's read-models role runs (workflow executions, delegation tasks and agent performance,
 * MCP status) from position -1, all at once (one runner each), and prints events/s per projection, in
 * total, and the wall time, against a target of the whole log into every read model in 60 s.
 * Uses DATABASE_URL when set (a fresh database is created on it), otherwise an embedded
 * PostgreSQL on a free port with its data under .tmp/ (removed afterwards).
 * First, as the baseline measured in the same run, the per-event path (the projections without
 * their `applyBatch`, as they ran before) over the first BENCH_BASELINE_EVENTS events; then the
 * batched rebuild of the whole log.
 * Knobs: BENCH_EVENTS, BENCH_BASELINE_EVENTS (default 50,000; 0 skips the baseline),
 * BENCH_BATCH_SIZE (runner batch size, default the runner's own), BENCH_READ_ONLY=1 (also time the
 * replay with batches that write nothing: the cost of reading the log).
 */
import os from 'node:os';
import path from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import {
  createLogger,
  ensureDatabase,
  freePort,
  startEmbeddedPostgres,
  type PostgresHandle,
} from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import {
  ProjectionRunner,
  type Projection,
  delegationProjections,
  statusProjections,
  workflowExecutionsProjection,
} from '@switchyard/read-models';

const logger = createLogger('bench-projections', process.env.LOG_LEVEL ?? 'warn');
const total = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const batchSize = process.env.BENCH_BATCH_SIZE ? Number(process.env.BENCH_BATCH_SIZE) : undefined;
const TARGET_S = 60;
/** Events of the baseline phase (0: none); the per-event path is slow, so it measures a prefix of the log. */
const baselineEvents = Number(process.env.BENCH_BASELINE_EVENTS ?? 50_000);

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
  rows.push({
    stream: wf,
    type: 'WorkflowStarted',
    data: { executionId: `bench-${n}`, definition, input: { n }, seed: n, startedAt: at(0) },
    ts: at(0),
  });
  for (const [i, stepId] of ['fetch', 'analyze'].entries()) {
    const key = `bench-${n}:${stepId}:1`;
    rows.push({
      stream: wf,
      type: 'StepScheduled',
      data: {
        stepId,
        attempt: 1,
        idempotencyKey: key,
        uses: definition.steps[i]!.uses,
        input: { n },
        timeoutMs: 30_000,
        scheduledAt: at(10 + i * 100),
      },
      ts: at(10 + i * 100),
    });
    rows.push({
      stream: wf,
      type: 'StepDispatched',
      data: {
        stepId,
        attempt: 1,
        idempotencyKey: key,
        dispatchedAt: at(12 + i * 100),
        timeoutAt: at(30_012 + i * 100),
      },
      ts: at(12 + i * 100),
    });
    rows.push({
      stream: wf,
      type: 'StepSucceeded',
      data: { stepId, attempt: 1, output: { v: n, rows: [{ a: 1, b: 'x' }] }, at: at(60 + i * 100) },
      ts: at(60 + i * 100),
    });
  }
  rows.push({
    stream: wf,
    type: 'WorkflowCompleted',
    data: { outputs: { analyze: { v: n } }, completedAt: at(200) },
    ts: at(200),
  });
  const ok = n % 10 !== 7;
  const base = { task_id: `bench-${n}` };
  rows.push({
    stream: task,
    type: 'TaskSubmitted',
    data: {
      ...base,
      task_type: 'analyze',
      context: { n },
      priority: 'normal',
      agent,
      max_attempts: 2,
      timeout_ms: 30_000,
      submitted_at: at(100),
    },
    ts: at(100),
  });
  rows.push({
    stream: task,
    type: 'TaskAssigned',
    data: {
      ...base,
      agent,
      instance: `${agent}-1`,
      assignment: 1,
      attempt: 1,
      assigned_at: at(101),
      deadline: at(30_101),
    },
    ts: at(101),
  });
  rows.push({
    stream: task,
    type: 'TaskStarted',
    data: { ...base, assignment: 1, instance: `${agent}-1`, started_at: at(102) },
    ts: at(102),
  });
  rows.push(
    ok
      ? {
          stream: task,
          type: 'TaskCompleted',
          data: {
            ...base,
            task_type: 'analyze',
            agent,
            instance: `${agent}-1`,
            assignment: 1,
            result: { v: n },
            duration_ms: 50 + (n % 90),
            completed_at: at(150),
          },
          ts: at(150),
        }
      : {
          stream: task,
          type: 'TaskFailed',
          data: {
            ...base,
            task_type: 'analyze',
            agent,
            instance: `${agent}-1`,
            assignment: 1,
            attempts: 2,
            error: { code: 'x', message: 'no' },
            duration_ms: 40,
            failed_at: at(150),
          },
          ts: at(150),
        },
  );
  const call = { server, tool: 'query', call_id: `call-bench-${n}` };
  const mcp = `mcpserver-${server}`;
  rows.push({
    stream: mcp,
    type: 'McpToolCalled',
    data: { ...call, arguments: { value: { q: 'select 1' }, size: 18, truncated: false }, at: at(12) },
    ts: at(12),
  });
  rows.push(
    n % 20 === 3
      ? {
          stream: mcp,
          type: 'McpToolFailed',
          data: {
            ...call,
            duration_ms: 30,
            outcome: 'error',
            error_code: 'unavailable',
            error_message: 'boom',
            attempts: 1,
            at: at(42),
          },
          ts: at(42),
        }
      : {
          stream: mcp,
          type: 'McpToolSucceeded',
          data: {
            ...call,
            duration_ms: 5 + (n % 200),
            outcome: 'success',
            attempts: 1,
            result: { value: { v: n }, size: 9, truncated: false },
            at: at(17 + (n % 200)),
          },
          ts: at(17 + (n % 200)),
        },
  );
  rows.push({
    stream: mcp,
    type: 'McpToolCalled',
    data: { ...call, call_id: `call-bench-${n}b`, arguments: { value: {}, size: 2, truncated: false }, at: at(300) },
    ts: at(300),
  });
  rows.push({
    stream: mcp,
    type: 'McpToolSucceeded',
    data: {
      ...call,
      call_id: `call-bench-${n}b`,
      duration_ms: 8,
      outcome: 'success',
      attempts: 1,
      result: { value: 1, size: 1, truncated: false },
      at: at(308),
    },
    ts: at(308),
  });
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
    const pos: number[] = [],
      streams: string[] = [],
      revs: number[] = [],
      types: string[] = [],
      datas: string[] = [],
      metas: string[] = [];
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

/** The read-models role's projections, as the launcher's migrate() lists them. */
const readModels = (): Projection[] => [
  workflowExecutionsProjection,
  ...delegationProjections(),
  ...statusProjections(),
];

interface Phase {
  wall: number;
  rows: { name: string; handled: number; seconds: number }[];
  counts?: Record<string, string>;
  load: { before: number[]; after: number[] };
}

/** Event counts by type up to `to` (the baseline covers only part of the log). */
async function baseTypes(pool: pg.Pool, to: number): Promise<Map<string, number>> {
  const r = await pool.query<{ type: string; n: string }>(
    'select type, count(*) n from eventstore.events where position <= $1 group by type',
    [to],
  );
  return new Map(r.rows.map((x) => [x.type, Number(x.n)]));
}

/**
 * One rebuild: every projection reset (empty tables, checkpoint -1) and replayed, all at once,
 * until it has reached `to`.
 */
async function rebuildPhase(
  store: PostgresEventStore,
  pool: pg.Pool,
  projections: Projection[],
  to: number,
  allTypes: Map<string, number>,
  types?: Promise<Map<string, number>>,
): Promise<Phase> {
  const perType = (await types) ?? allTypes;
  const load = { before: os.loadavg(), after: [] as number[] };
  // One runner per projection (each has its own lane, subscription and transactions either
  // way), so each stops when it reaches `to` instead of taking CPU from the others past it.
  const runners = projections.map(
    (p) => new ProjectionRunner({ store, db: { pool }, projections: [p], logger, ...(batchSize ? { batchSize } : {}) }),
  );
  for (const r of runners) await r.migrate();
  for (const r of runners) await r.start();
  // A rebuild is reset() + checkpoint -1 + replay: the reset is done first so the replay starts from -1 on empty tables.
  await Promise.all(projections.map((p, i) => runners[i]!.rebuild(p.name)));
  const t0 = performance.now();
  const done = new Map<string, number>();
  await Promise.all(
    projections.map(async (p, i) => {
      await runners[i]!.waitFor(to, p.name, 30 * 60_000);
      done.set(p.name, (performance.now() - t0) / 1000);
      await runners[i]!.stop();
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  load.after = os.loadavg();
  const counts = await pool
    .query<Record<string, string>>(
      `select (select count(*) from read_models.workflow_executions) executions, (select count(*) from read_models.workflow_step_attempts) attempts,
              (select count(*) from delegation.tasks) tasks, (select count(*) from delegation.task_latency) latencies,
              (select sum(calls_total) from status.mcp_servers) mcp_calls, (select count(*) from status.mcp_minutes) mcp_minutes`,
    )
    .then((r) => r.rows[0])
    .catch(() => undefined);
  return {
    wall,
    rows: projections.map((p) => ({
      name: p.name,
      handled: p.handles.reduce((a, t) => a + (perType.get(t) ?? 0), 0),
      seconds: done.get(p.name)!,
    })),
    ...(counts && { counts }),
    load,
  };
}

function printPhase(title: string, phase: Phase, events: number): void {
  const fmt = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  console.log(
    `\n${title} (runner batch size ${batchSize ?? 'default'}; loadavg before ${fmt(phase.load.before)}, after ${fmt(phase.load.after)}):`,
  );
  console.log('projection                     handled events  seconds  log events/s  handled events/s');
  for (const r of phase.rows) {
    console.log(
      `${r.name.padEnd(30)} ${String(r.handled).padStart(14)}  ${r.seconds.toFixed(1).padStart(7)}  ${Math.round(
        events / r.seconds,
      )
        .toString()
        .padStart(12)}  ${Math.round(r.handled / r.seconds)
        .toString()
        .padStart(16)}`,
    );
  }
  const handled = phase.rows.reduce((a, r) => a + r.handled, 0);
  console.log(
    `${'all (wall)'.padEnd(30)} ${String(handled).padStart(14)}  ${phase.wall.toFixed(1).padStart(7)}  ${Math.round(
      events / phase.wall,
    )
      .toString()
      .padStart(12)}  ${Math.round(handled / phase.wall)
      .toString()
      .padStart(16)}`,
  );
  if (phase.counts) console.log(`rows: ${JSON.stringify(phase.counts)}`);
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
  console.log(
    `loadavg before: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), Node ${process.version}`,
  );
  console.log(
    `# PostgreSQL ${pgh ? `(${pgh.kind}, started for the bench)` : '(DATABASE_URL)'}; fresh database; ${total.toLocaleString('en')} events`,
  );
  try {
    const tf = performance.now();
    const perType = await fill(pool, total);
    await pool.query('vacuum analyze eventstore.events');
    const fillS = (performance.now() - tf) / 1000;
    const head = await store.headPosition();
    console.log(`fill (bulk insert + vacuum analyze): ${fillS.toFixed(1)} s, head position ${head}`);
    console.log(`event types: ${[...perType].map(([t, c]) => `${t} ${c}`).join(', ')}`);

    // Baseline, measured in this run: the per-event path (`apply`, one to three statements per
    // event, as the tasks, performance and MCP status projections ran before they had an
    // `applyBatch`; the workflow read model keeps its own) over the first BENCH_BASELINE_EVENTS.
    const baseHead = Math.min(head, baselineEvents - 1);
    let baseline: Phase | undefined;
    if (baselineEvents > 0) {
      const before = (p: Projection): Projection =>
        p.name === workflowExecutionsProjection.name ? p : { ...p, applyBatch: undefined };
      baseline = await rebuildPhase(
        store,
        pool,
        readModels().map(before),
        baseHead,
        perType,
        baseHead === head ? undefined : baseTypes(pool, baseHead),
      );
      printPhase(
        `baseline: per-event apply (the code before batching), first ${baseHead + 1} events`,
        baseline,
        baseHead + 1,
      );
    }
    if (process.env.BENCH_READ_ONLY === '1') {
      // Diagnostic: the replay's reading alone (subscriptions, checkpoints), with batches that write nothing.
      const noop = (p: Projection): Projection => ({ ...p, applyBatch: async () => undefined });
      const read = await rebuildPhase(store, pool, readModels().map(noop), head, perType);
      printPhase(`read only: the same replay with batches that write nothing, all ${head + 1} events`, read, head + 1);
    }
    const batched = await rebuildPhase(store, pool, readModels(), head, perType);
    printPhase(`batched: applyBatch on every projection, all ${head + 1} events`, batched, head + 1);
    const events = head + 1;
    const wall = batched.wall;
    console.log(
      `\ntotal: ${events} events into ${batched.rows.length} read models in ${wall.toFixed(1)} s wall = ${Math.round(events / wall)} log events/s, ${Math.round((events * batched.rows.length) / wall)} projection-events/s`,
    );
    if (baseline) {
      const baseRate = (baseHead + 1) / baseline.wall;
      console.log(
        `baseline rate ${Math.round(baseRate)} log events/s -> batched ${Math.round(events / wall)} log events/s: x${(events / wall / baseRate).toFixed(1)}`,
      );
      console.log(
        `target as a ratio to the baseline: 1,000,000 events in 60 s = ${Math.round(1_000_000 / TARGET_S)} events/s = x${(1_000_000 / TARGET_S / baseRate).toFixed(1)} the baseline rate`,
      );
    }
    console.log(
      `target (${(1_000_000).toLocaleString('en')} events into every read model in < ${TARGET_S} s): ${events >= 1_000_000 ? (wall < TARGET_S ? 'MET' : 'NOT met') : `n/a (only ${events} events; scaled: ${((wall * 1_000_000) / events).toFixed(1)} s per million)`}`,
    );
    console.log(
      `loadavg after: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await store.close();
    await pool.end();
    await pgh?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

await main();

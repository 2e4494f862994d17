/**
 * MCP service layer benchmark: `node bench/mcp/dist/main.js`
 *
 * Measures a cheap tool call four ways:
 *   gateway-everything  HTTP POST /api/v1/integration/mcp/call -> gateway -> NATS -> connector
 *                       -> the official server-everything over stdio (tool `echo`)
 *   gateway-database    HTTP POST /api/v1/integration/mcp/database/query (`select 1 as one`) -> gateway
 *                       -> NATS -> connector -> our database server over Streamable HTTP
 *   sdk-everything      the SDK Client over StdioClientTransport to its own server-everything child
 *   sdk-database        the SDK Client over StreamableHTTPClientTransport to the same database server
 * The sdk-* rows are the baseline: the difference is what our path (HTTP edge, validation,
 * NATS hop, resilience policies, events) costs. With sdk-database, two pg rows follow from this
 * thread in the same run: the floor (a bare `select 1`, one round trip) and the seven round trips
 * the query tool used to make per call; the target is sdk-database's p50 under 1 ms, i.e. close
 * to that floor (the query tool now makes one round trip).
 *
 * Process layout, like the launcher's all-in-one mode: gateway, connectors and the database
 * MCP server share this process's main thread; server-everything runs as a stdio child;
 * PostgreSQL and nats-server are their own processes. The load (HTTP client and SDK client)
 * runs in a worker thread (client.ts), so it is not charged to the main thread.
 *
 * Uses DATABASE_URL / NATS_URL when set, otherwise starts an embedded PostgreSQL and a
 * nats-server on free ports with their data under .tmp/ (removed afterwards).
 * Knobs: BENCH_WARMUP (sequential warm-up calls, default 200), BENCH_LATENCY_CALLS (default 2000),
 * BENCH_INFLIGHT (default 64), BENCH_THROUGHPUT_CALLS (default 20000), BENCH_THROUGHPUT_SECONDS
 * (cap per run, default 10), BENCH_BULKHEAD (connector max_concurrent per server; default: the
 * registry default), BENCH_PATHS (comma list of the paths above, default all four, e.g. to
 * profile one with `node --cpu-prof`), BENCH_STORE_EVENTS=1 (append every connector event to the
 * event store, queued per stream by the launcher's EventSink; default: only
 * counted), LOG_LEVEL (default warn).
 * Figures only: a timing is never a pass/fail, nothing here asserts.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { parseServerConfig, resolvePackageBin, startConnectors, type McpServerConfig } from '@switchyard/connectors';
import { mcpEventMetadata, mcpServerStreamId, type McpEvent } from '@switchyard/contracts';
import { EventSink, PostgresEventStore } from '@switchyard/event-store';
import { createGateway, McpFeatureModule } from '@switchyard/gateway';
import { runMcpServer } from '@switchyard/mcp-servers';
import { closeNats, connectNats } from '@switchyard/messaging';
import { createLogger, ensureDatabase, freePort, startEmbeddedPostgres, startNatsServer } from '@switchyard/platform';
import type { ClientConfig, LatencyResult, Reply, Target, Task, ThroughputResult } from './client.js';

const logger = createLogger('bench-mcp', process.env.LOG_LEVEL ?? 'warn');
const num = (name: string, d: number) => {
  const v = Number(process.env[name] ?? d);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a non-negative number, got ${process.env[name]}`);
  return v;
};
const warmup = num('BENCH_WARMUP', 200);
const latencyCalls = num('BENCH_LATENCY_CALLS', 2000);
const inflight = Math.max(1, num('BENCH_INFLIGHT', 64));
const throughputCalls = num('BENCH_THROUGHPUT_CALLS', 20_000);
const throughputMs = num('BENCH_THROUGHPUT_SECONDS', 10) * 1000;
const bulkhead = process.env.BENCH_BULKHEAD ? num('BENCH_BULKHEAD', 8) : undefined;
const storeEvents = ['1', 'true', 'yes'].includes(process.env.BENCH_STORE_EVENTS ?? '');

// Counted, not printed: see client.ts. The main thread's ones come from the connector's
// Streamable HTTP session (the same SDK transport) and are reported per run.
let listenerWarnings = 0;
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') listenerWarnings++;
  else console.error(w);
});

const pct = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const ms = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(2));
const pad = (s: string | number, n: number) => String(s).padStart(n);
const signed = (v: number) => `${v >= 0 ? '+' : ''}${ms(v)}`;

const labels: Record<Target, string> = {
  'gateway-everything': 'gateway -> NATS -> connector -> everything (stdio)',
  'gateway-database': 'gateway -> NATS -> connector -> database (HTTP)',
  'sdk-everything': 'SDK Client -> everything (stdio)',
  'sdk-database': 'SDK Client -> database (HTTP)',
};
const allTargets: Target[] = ['gateway-everything', 'sdk-everything', 'gateway-database', 'sdk-database'];
const order: Target[] = process.env.BENCH_PATHS
  ? process.env.BENCH_PATHS.split(',').map((t) => {
      if (!allTargets.includes(t as Target))
        throw new Error(`BENCH_PATHS: unknown path ${t}; valid: ${allTargets.join(',')}`);
      return t as Target;
    })
  : allTargets;

/** Cleanups run last-in first-out, each on its own: one failing must not leave the others running. */
const cleanups: { name: string; run: () => unknown /* a value or a promise of one */ }[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c.run();
      } catch (err) {
        logger.warn({ err, what: c.name }, 'cleanup step failed');
      }
    }
  })();
  return cleaning;
}

/** Runs one task in the worker and waits for its reply (tasks go one at a time). */
function workerRunner(worker: Worker, childPids: Set<number>) {
  let pending: { resolve: (v: unknown) => void; reject: (e: Error) => void } | undefined;
  worker.on('message', (m: Reply) => {
    if (m.kind === 'child') return void childPids.add(m.pid);
    const p = pending;
    pending = undefined;
    if (m.kind === 'ok') p?.resolve(m.result);
    else p?.reject(new Error(`client worker: ${m.message}`));
  });
  const fail = (err: Error) => {
    pending?.reject(err);
    pending = undefined;
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`client worker exited (${code})`)));
  return <T>(task: Task): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      pending = { resolve: resolve as (v: unknown) => void, reject };
      worker.postMessage(task);
    });
}

async function waitForServersUp(gatewayUrl: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 300; i++) {
    const res = await fetch(`${gatewayUrl}/api/v1/integration/mcp/health`);
    const body = (await res.json()) as { servers?: { server: string; state: string }[] };
    last = JSON.stringify(body.servers?.map((s) => `${s.server}:${s.state}`));
    if (body.servers?.length && body.servers.every((s) => s.state === 'up')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`MCP servers not all up after 30 s: ${last}`);
}

/** Polls pg_stat_activity until no other session is connected to `dbName` (or `timeoutMs` passed). */
async function waitForNoConnections(serverUrl: string, dbName: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const r = await client.query<{ n: number }>(
        'select count(*)::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [dbName],
      );
      if (r.rows[0]!.n === 0) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    logger.warn({ dbName }, 'connections to the bench database still open; stopping PostgreSQL anyway');
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const tmp = path.resolve('.tmp', `bench-mcp-${process.pid}`);
  let serverUrl = process.env.DATABASE_URL;
  let natsUrl = process.env.NATS_URL;
  let pgKind = 'DATABASE_URL';
  let natsKind = 'NATS_URL';
  let pgStarted = false;
  if (!serverUrl || !natsUrl) {
    mkdirSync(tmp, { recursive: true });
    cleanups.push({ name: 'tmp dir', run: () => rmSync(tmp, { recursive: true, force: true }) });
  }

  // 1. Infrastructure: PostgreSQL (the event store behind the gateway, and the database the
  //    database MCP server queries) and nats-server with JetStream.
  if (!serverUrl) {
    const pgHandle = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort(), logger });
    cleanups.push({ name: 'postgres', run: () => pgHandle.stop() });
    serverUrl = pgHandle.url;
    pgKind = `${pgHandle.kind}, started for the bench`;
    pgStarted = pgHandle.kind !== 'adopted';
  }
  if (!natsUrl) {
    const natsHandle = await startNatsServer({ port: await freePort(), storeDir: path.join(tmp, 'nats'), logger });
    cleanups.push({ name: 'nats-server', run: () => natsHandle.stop() });
    natsUrl = natsHandle.url;
    natsKind = `${natsHandle.kind}, started for the bench`;
  }
  const dbName = `bench_mcp_${randomBytes(4).toString('hex')}`;
  const dbUrl = await ensureDatabase(serverUrl, dbName);
  if (pgStarted) {
    // pg's pool.end() resolves before its sockets are closed; stopping PostgreSQL then makes it
    // terminate them, and a pool without an 'error' listener (the database MCP server's) crashes
    // the process. So wait, bounded, until nothing is connected to the bench database any more.
    const admin = serverUrl;
    cleanups.push({ name: 'wait for connections to close', run: () => waitForNoConnections(admin, dbName, 5_000) });
  }
  const pool = new pg.Pool({ connectionString: dbUrl, max: 5 });
  pool.on('error', (err) => logger.warn({ err }, 'idle bench pool connection failed'));
  cleanups.push({ name: 'pool', run: () => pool.end() });
  const store = new PostgresEventStore({ pool, logger });
  await store.init();
  cleanups.push({ name: 'event store', run: () => store.close() });
  const nc = await connectNats({ url: natsUrl, name: 'bench-mcp', logger });
  cleanups.push({ name: 'nats connection', run: () => closeNats(nc) });

  // 2. The database MCP server in this process, over Streamable HTTP.
  const database = await runMcpServer('database', {
    port: await freePort(),
    logger,
    env: { DATABASE_URL: dbUrl, LOG_LEVEL: 'silent', MCP_AUTH_DISABLED: 'true' },
  });
  cleanups.push({ name: 'database MCP server', run: () => database.close() });

  // 3. Connectors (registry defaults, as in production, unless BENCH_BULKHEAD) and the gateway.
  const everythingBin = resolvePackageBin('@modelcontextprotocol/server-everything');
  const common = bulkhead ? { bulkhead: { max_concurrent: bulkhead, max_queue: Math.max(64, inflight) } } : {};
  const registry: McpServerConfig[] = [
    parseServerConfig({
      name: 'everything',
      role: 'other',
      transport: { kind: 'stdio', command: process.execPath, args: [everythingBin] },
      ...common,
    }),
    parseServerConfig({
      name: 'database',
      role: 'database',
      transport: { kind: 'http', url: database.url },
      ...common,
    }),
  ];
  let events = 0;
  // The launcher's sink: appends queued per stream (each stream keeps its order; what is
  // reported while one runs goes in the next), and the connector never waits on the store.
  const sink = new EventSink(store, logger, { actor: 'bench' });
  const appendEvent = (e: McpEvent): void => {
    const m = mcpEventMetadata(e);
    sink.append(mcpServerStreamId(e.data.server), e, m.correlationId, m.actor);
  };
  const flushEvents = () => sink.flush();
  const connectors = await startConnectors({
    nats: nc,
    registry,
    logger,
    onEvent: (e) => (events++, storeEvents ? appendEvent(e) : undefined),
  });
  cleanups.push({ name: 'event appends', run: flushEvents });
  cleanups.push({ name: 'connectors', run: () => connectors.stop() });
  const gateway = await createGateway(
    { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
    { modules: [McpFeatureModule] },
  );
  cleanups.push({ name: 'gateway', run: () => gateway.close() });
  const gatewayUrl = (await gateway.listen(0, '127.0.0.1')).url;
  await waitForServersUp(gatewayUrl);

  // 4. The load side in a worker thread; stdio children it spawns are killed by pid if it dies.
  const childPids = new Set<number>();
  const clientConfig: ClientConfig = { gatewayUrl, databaseMcpUrl: database.url!, everythingBin, maxSockets: inflight };
  const worker = new Worker(new URL('./client.js', import.meta.url), { workerData: clientConfig });
  const run = workerRunner(worker, childPids);
  cleanups.push({
    name: 'client worker',
    run: async () => {
      await Promise.race([run({ op: 'close' }), new Promise((r) => setTimeout(r, 5_000))]).catch(() => undefined);
      await worker.terminate();
      for (const pid of childPids) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone: the SDK closed it
        }
      }
    },
  });

  const cpus = os.cpus();
  const b = registry[0]!.bulkhead;
  console.log(
    `# machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${os.platform()} ${os.arch()}`,
  );
  console.log(`# PostgreSQL (${pgKind}); nats-server (${natsKind})`);
  console.log(
    `# load average at start (1/5/15 min): ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}`,
  );
  console.log(
    `# one process: gateway + connectors + database MCP server; server-everything as stdio child; load from a worker thread`,
  );
  console.log(
    `# connector per server: bulkhead ${b.max_concurrent} concurrent + ${b.max_queue} queued, retry ${registry[0]!.retry.max_attempts} attempts; gateway auth and rate limits off; LOG_LEVEL ${process.env.LOG_LEVEL ?? 'warn'}`,
  );
  console.log(
    storeEvents
      ? `# connector events appended to the event store (BENCH_STORE_EVENTS), one ordered chain per server stream, as the launcher does`
      : `# connector events are counted, not stored (the launcher appends them to the event store; BENCH_STORE_EVENTS=1 does too)`,
  );

  // 5. Latency: sequential calls, one at a time.
  const lat = new Map<Target, LatencyResult>();
  console.log(`\nlatency, sequential calls (${latencyCalls} per path after ${warmup} warm-up calls), ms`);
  console.log(
    `${'path'.padEnd(52)}${pad('p50', 8)}${pad('p90', 8)}${pad('p99', 8)}${pad('max', 8)}${pad('errors', 8)}`,
  );
  let workerWarnings = 0;
  const warningsNote = (mainBefore: number, workerNow: number) => {
    const m = listenerWarnings - mainBefore;
    const w = workerNow - workerWarnings;
    workerWarnings = workerNow;
    if (m || w)
      console.log(
        `  MaxListenersExceededWarning (abort listeners) during this run: ${m} in the main thread, ${w} in the worker`,
      );
  };
  for (const target of order) {
    const mainBefore = listenerWarnings;
    const r = await run<LatencyResult>({ op: 'latency', target, warmup, count: latencyCalls });
    lat.set(target, r);
    const l = r.latencies;
    console.log(
      `${labels[target].padEnd(52)}${pad(ms(pct(l, 50)), 8)}${pad(ms(pct(l, 90)), 8)}${pad(ms(pct(l, 99)), 8)}${pad(ms(l[l.length - 1] ?? NaN), 8)}${pad(r.errors, 8)}`,
    );
    if (r.natsRoundTrips.length) {
      const n = r.natsRoundTrips;
      console.log(
        `${'  of which NATS request -> reply (gateway duration_ms)'.padEnd(52)}${pad(ms(pct(n, 50)), 8)}${pad(ms(pct(n, 90)), 8)}${pad(ms(pct(n, 99)), 8)}${pad(ms(n[n.length - 1] ?? NaN), 8)}`,
      );
    }
    if (r.firstError) console.log(`  first error: ${r.firstError.split('\n')[0]}`);
    warningsNote(mainBefore, r.listenerWarnings);
  }
  for (const server of ['everything', 'database'] as const) {
    const g = lat.get(`gateway-${server}`)?.latencies;
    const s = lat.get(`sdk-${server}`)?.latencies;
    if (!g || !s) continue;
    console.log(
      `overhead of our path, ${server}: p50 ${signed(pct(g, 50) - pct(s, 50))} ms, p99 ${signed(pct(g, 99) - pct(s, 99))} ms`,
    );
  }

  // 5b. The database access alone, from this thread, in this run: the floor (a bare `select 1`, one
  //     round trip) and what the query tool used to send per call (BEGIN READ ONLY, SET LOCAL
  //     statement_timeout, a pg-cursor: describe, read, close; ROLLBACK, DISCARD ALL: seven round
  //     trips). The query tool now sends one (see docs/mcp-speed.md), so sdk-database sits on the floor.
  if (order.includes('sdk-database')) {
    const direct = new pg.Pool({ connectionString: dbUrl, max: 1 });
    direct.on('error', () => undefined);
    const seq = async (fn: () => Promise<unknown>) => {
      const out: number[] = [];
      for (let i = 0; i < warmup + latencyCalls; i++) {
        const t0 = performance.now();
        await fn();
        if (i >= warmup) out.push(performance.now() - t0);
      }
      return out.sort((a, b) => a - b);
    };
    const floor = await seq(() => direct.query('select 1 as one'));
    const before = await seq(async () => {
      const c = await direct.connect();
      try {
        await c.query('BEGIN READ ONLY');
        await c.query(`SELECT set_config('statement_timeout', $1, true)`, ['10000']);
        const cursor = c.query(new Cursor('select 1 as one', []));
        await cursor.read(1001);
        await cursor.close();
        await c.query('ROLLBACK');
        await c.query('DISCARD ALL');
      } finally {
        c.release();
      }
    });
    await direct.end();
    for (const [label, l] of [
      ['pg select 1 (floor: one round trip)', floor],
      ["pg, the query tool's old seven round trips", before],
    ] as const) {
      console.log(
        `${label.padEnd(52)}${pad(ms(pct(l, 50)), 8)}${pad(ms(pct(l, 90)), 8)}${pad(ms(pct(l, 99)), 8)}${pad(ms(l[l.length - 1] ?? NaN), 8)}${pad(0, 8)}`,
      );
    }
    const d = lat.get('sdk-database')?.latencies;
    if (d)
      console.log(
        `sdk-database p50 minus the pg floor: ${signed(pct(d, 50) - pct(floor, 50))} ms (the MCP request itself; target for sdk-database: p50 under 1 ms)`,
      );
  }

  // 6. Throughput: `inflight` calls in flight, fixed count or time cap.
  const thr = new Map<Target, ThroughputResult>();
  console.log(
    `\nthroughput, ${inflight} calls in flight (${throughputCalls} calls or ${throughputMs / 1000} s per path, after ${Math.max(warmup, inflight * 4)} warm-up calls)`,
  );
  console.log(
    `${'path'.padEnd(52)}${pad('calls', 8)}${pad('s', 8)}${pad('calls/s', 9)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}${pad('main ELU', 10)}`,
  );
  for (const target of order) {
    // Main-thread event-loop utilisation over the run (warm-up included): near 100 % means the
    // process under test (gateway + connectors + database server) is the bottleneck.
    const mainBefore = listenerWarnings;
    const elu0 = performance.eventLoopUtilization();
    const r = await run<ThroughputResult>({
      op: 'throughput',
      target,
      inflight,
      count: throughputCalls,
      maxMs: throughputMs,
      warmup: Math.max(warmup, inflight * 4),
    });
    const elu = performance.eventLoopUtilization(elu0).utilization;
    thr.set(target, r);
    const l = r.latencies;
    console.log(
      `${labels[target].padEnd(52)}${pad(r.calls, 8)}${pad(r.seconds.toFixed(2), 8)}${pad(Math.round(r.calls / r.seconds), 9)}${pad(ms(pct(l, 50)), 9)}${pad(ms(pct(l, 99)), 9)}${pad(r.errors, 8)}${pad(`${(elu * 100).toFixed(0)} %`, 10)}`,
    );
    if (r.firstError) console.log(`  first error: ${r.firstError.split('\n')[0]}`);
    warningsNote(mainBefore, r.listenerWarnings);
  }
  for (const server of ['everything', 'database'] as const) {
    const g = thr.get(`gateway-${server}`);
    const s = thr.get(`sdk-${server}`);
    if (!g || !s) continue;
    console.log(
      `our path / SDK direct, ${server}: ${((g.calls / g.seconds / (s.calls / s.seconds)) * 100).toFixed(0)} % of the direct calls/s`,
    );
  }
  if (storeEvents) {
    await flushEvents();
    console.log(
      `\n# connector events reported during the run: ${events}; appended to the event store: ${sink.counts().events} in ${sink.counts().appends} appends, dropped: ${sink.counts().dropped}`,
    );
  } else {
    console.log(`\n# connector events reported during the run: ${events}`);
  }
  console.log(
    `# main ELU: event-loop utilisation of the main thread (gateway, connectors, database server) during the run`,
  );
  console.log(
    `# load average at end (1/5/15 min): ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}`,
  );
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping what the bench started`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (err) {
  console.error('bench failed:', err);
  process.exitCode = 1;
} finally {
  await cleanup();
}

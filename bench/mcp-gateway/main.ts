/**
 * MCP gateway benchmark: `node bench/mcp-gateway/dist/main.js`
 *
 * One cheap tool call (server-everything's `echo`) from the official SDK Client over Streamable
 * HTTP, three ways, in one run:
 *   direct      SDK -> server-everything (its own Streamable HTTP mode)
 *   switchyard  SDK -> the gateway's /mcp (API key, session) -> NATS -> connector ->
 *               server-everything over stdio, as supergateway reaches it (BENCH_UPSTREAM=http: the
 *               connector uses the Streamable HTTP server-everything of `direct` instead), with the
 *               McpTool* events of both hops stored
 *   rest        (reference) the gateway's REST route POST /api/v1/integration/mcp/call for the same
 *               call: the difference to `switchyard` is what the MCP endpoint adds (MCP session,
 *               JSON-RPC, the McpToolCalled/Succeeded events of the call)
 *   proxy       SDK -> supergateway (stdio -> Streamable HTTP, stateful) -> server-everything (stdio)
 * For each: p50/p99 of sequential calls, then calls/s with BENCH_INFLIGHT calls in flight on one
 * session, and `cpu ms/c`: this process's CPU per call (the load worker always; the gateway and
 * connectors too for switchyard and rest; server-everything and supergateway are other processes,
 * not counted), steadier than wall time on a busy machine. Then the targets as ratios of the same
 * run: `added p50` of switchyard and of proxy (each minus direct), their difference (target: at
 * most 0.5 ms), and switchyard's calls/s as a share of direct's (target: at least 50 %).
 * The load runs in a worker thread; the gateway and connectors share the main thread
 * (the launcher's all-in-one layout); the servers and PostgreSQL / nats-server are processes.
 * Last, one event-store append alone (p50/p99 of sequential single-event commits): the part of
 * switchyard's added p50 that is the audit record's commit.
 * Both hops' events are stored, as in production: the gateway's McpToolCalled + outcome (one
 * append for a quick call) and the connector's, appended as the launcher does.
 * The paths take turns: BENCH_ROUNDS (5) rounds, each with a 1/rounds share of every path's
 * calls and time, so a change of the machine's load during the run hits every path alike.
 * BENCH_STORE_BATCHES (2): the event store's maxBatchesInFlight, to compare 1 with the default.
 * Knobs: BENCH_WARMUP (50), BENCH_LATENCY_CALLS (500), BENCH_INFLIGHT (64),
 * BENCH_UPSTREAM (stdio | http), BENCH_THROUGHPUT_CALLS (5000), BENCH_THROUGHPUT_SECONDS (10), BENCH_SESSIONS (1: the in-flight calls
 * share one session; N: spread over N sessions), BENCH_METHOD (tools/call | ping: MCP framing
 * and session alone, no tool), BENCH_PATHS (comma list of direct,
 * switchyard, rest, proxy; default all), DATABASE_URL / NATS_URL (else
 * embedded ones on free ports), LOG_LEVEL (error). Figures only: nothing here asserts.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { parseServerConfig, resolvePackageBin, startConnectors } from '@switchyard/connectors';
import { mcpEventMetadata, mcpServerStreamId } from '@switchyard/contracts';
import { EventSink, PostgresEventStore } from '@switchyard/event-store';
import { createGateway, McpServerFeatureModule } from '@switchyard/gateway';
import { closeNats, connectNats } from '@switchyard/messaging';
import {
  createLogger,
  ensureDatabase,
  freePort,
  newId,
  startEmbeddedPostgres,
  startNatsServer,
} from '@switchyard/platform';
import type { LoadResult, LoadTask } from './load.js';

const logger = createLogger('bench-mcp-gateway', process.env.LOG_LEVEL ?? 'error');
const num = (name: string, d: number) => {
  const v = Number(process.env[name] ?? d);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a non-negative number, got ${process.env[name]}`);
  return v;
};
const settings = {
  warmup: num('BENCH_WARMUP', 50),
  latencyCalls: num('BENCH_LATENCY_CALLS', 500),
  inflight: Math.max(1, num('BENCH_INFLIGHT', 64)),
  throughputCalls: num('BENCH_THROUGHPUT_CALLS', 5_000),
  maxMs: num('BENCH_THROUGHPUT_SECONDS', 10) * 1000,
  sessions: Math.max(1, num('BENCH_SESSIONS', 1)),
  rounds: Math.max(1, Math.floor(num('BENCH_ROUNDS', 5))),
  /** The event store's group-commit statements in flight (the store's default: 2). */
  batchesInFlight: Math.max(1, Math.floor(num('BENCH_STORE_BATCHES', 2))),
};
const upstream = process.env.BENCH_UPSTREAM ?? 'stdio';
const methodSetting = process.env.BENCH_METHOD ?? 'tools/call';
if (methodSetting !== 'tools/call' && methodSetting !== 'ping')
  throw new Error(`BENCH_METHOD must be tools/call or ping, got ${methodSetting}`);
const method: 'tools/call' | 'ping' = methodSetting;
if (upstream !== 'stdio' && upstream !== 'http')
  throw new Error(`BENCH_UPSTREAM must be stdio or http, got ${upstream}`);
// The SDK's client transports add an abort listener per request to a long-lived signal; Node
// warns past 1500 of them. Counted, not printed (figures only).
let listenerWarnings = 0;
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') listenerWarnings++;
  else console.error(w);
});
const root = path.resolve(import.meta.dirname, '..', '..', '..');
const cleanups: { name: string; run: () => unknown }[] = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c.run();
    } catch (err) {
      console.error(`cleanup ${c.name} failed: ${String(err)}`);
    }
  }
}

const pct = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const ms = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(2));

/** Spawn a process and resolve once its output says it listens. */
function startProcess(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp | null,
): Promise<ChildProcess> {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push({ name, run: () => void proc.kill('SIGKILL') });
  proc.stdout.resume();
  proc.stderr.resume();
  if (!ready) return Promise.resolve(proc);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out.slice(-500)}`)), 30_000);
    const onData = (d: Buffer) => {
      out = (out + d.toString()).slice(-5_000);
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(proc);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${out.slice(-500)}`)));
  });
}

function load(task: LoadTask): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./load.js', import.meta.url), { workerData: task });
    w.once('message', (m: { ok: boolean; result?: LoadResult; message?: string }) =>
      m.ok ? resolve(m.result!) : reject(new Error(m.message)),
    );
    w.once('error', reject);
  });
}

async function main(): Promise<void> {
  const tmp = path.join(root, '.tmp', `bench-mcp-gateway-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  cleanups.push({ name: 'tmp dir', run: () => rmSync(tmp, { recursive: true, force: true }) });
  // 1. PostgreSQL and nats-server.
  let serverUrl = process.env.DATABASE_URL;
  let natsUrl = process.env.NATS_URL;
  if (!serverUrl) {
    const h = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort(), logger });
    cleanups.push({ name: 'postgres', run: () => h.stop() });
    serverUrl = h.url;
  }
  if (!natsUrl) {
    const h = await startNatsServer({ port: await freePort(), storeDir: path.join(tmp, 'nats'), logger });
    cleanups.push({ name: 'nats-server', run: () => h.stop() });
    natsUrl = h.url;
  }
  const dbUrl = await ensureDatabase(serverUrl, `bench_mcpgw_${randomBytes(4).toString('hex')}`);
  const pool = new pg.Pool({ connectionString: dbUrl, max: 8 });
  pool.on('error', () => undefined);
  cleanups.push({ name: 'pool', run: () => pool.end() });
  const store = new PostgresEventStore({ pool, logger, maxBatchesInFlight: settings.batchesInFlight });
  await store.init();
  cleanups.push({ name: 'event store', run: () => store.close() });
  const nc = await connectNats({ url: natsUrl, name: 'bench-mcp-gateway', logger });
  cleanups.push({ name: 'nats', run: () => closeNats(nc) });

  // 2. The upstream: server-everything over Streamable HTTP (direct and through the gateway),
  //    and supergateway wrapping a stdio server-everything (the plain-proxy baseline).
  const everythingBin = resolvePackageBin('@modelcontextprotocol/server-everything');
  const everythingPort = await freePort();
  await startProcess(
    'server-everything (HTTP)',
    process.execPath,
    [everythingBin, 'streamableHttp'],
    { PORT: String(everythingPort) },
    /listening on port/,
  );
  const proxyPort = await freePort();
  const supergatewayBin = path.join(root, 'node_modules', 'supergateway', 'dist', 'index.js');
  await startProcess(
    'supergateway',
    process.execPath,
    [
      supergatewayBin,
      '--stdio',
      `${process.execPath} ${everythingBin}`,
      '--outputTransport',
      'streamableHttp',
      '--stateful',
      '--port',
      String(proxyPort),
      '--logLevel',
      'none',
    ],
    {},
    null,
  );
  await waitHttp(`http://127.0.0.1:${proxyPort}/mcp`);

  // 3. Connectors and the gateway with auth, its /mcp and an operator key (as a client would).
  let connectorEvents = 0;
  const sink = new EventSink(store, logger, { actor: 'bench' });
  cleanups.push({ name: 'event sink', run: () => sink.flush() });
  const connectors = await startConnectors({
    nats: nc,
    // stdio (default): the connector reaches server-everything the way supergateway does, so
    // switchyard and proxy differ only in what sits between the client and that stdio server.
    registry: [
      parseServerConfig({
        name: 'everything',
        role: 'other',
        transport:
          upstream === 'http'
            ? { kind: 'http', url: `http://127.0.0.1:${everythingPort}/mcp` }
            : { kind: 'stdio', command: process.execPath, args: [everythingBin] },
      }),
    ],
    logger,
    onEvent: (e) => {
      connectorEvents++;
      // Stored through the launcher's sink, so both hops' events cost what they cost in production.
      const m = mcpEventMetadata(e);
      sink.append(mcpServerStreamId(e.data.server), e, m.correlationId, m.actor);
    },
  });
  cleanups.push({ name: 'connectors', run: () => connectors.stop() });
  const adminKey = `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
  const gateway = await createGateway(
    { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
    {
      modules: [McpServerFeatureModule.withOptions({ catalogRefreshMs: 600_000 })],
      auth: { enabled: true, adminKey, printAdminKey: () => undefined },
      // One key drives every call here: its share of calls in flight must hold the bench's.
      heldCalls: { perCaller: 4 * settings.inflight, total: 8 * settings.inflight },
    },
  );
  cleanups.push({ name: 'gateway', run: () => gateway.close() });
  const gatewayUrl = (await gateway.listen(0, '127.0.0.1')).url;
  for (let i = 0; i < 100; i++) {
    const h = await fetch(`${gatewayUrl}/api/v1/integration/mcp/health`, {
      headers: { authorization: `Bearer ${adminKey}` },
    }).then((r) => r.json() as Promise<{ servers?: { state: string }[] }>);
    if (h.servers?.every((s) => s.state === 'up')) break;
    await new Promise((r) => setTimeout(r, 100));
  }

  // 4. The three paths, one after the other.
  const args = { message: 'bench' };
  const auth = { authorization: `Bearer ${adminKey}` };
  const paths: { label: string; mode: 'mcp' | 'rest'; url: string; tool: string; headers: Record<string, string> }[] = [
    {
      label: 'direct      SDK -> server-everything (HTTP)',
      mode: 'mcp',
      url: `http://127.0.0.1:${everythingPort}/mcp`,
      tool: 'echo',
      headers: {},
    },
    {
      label: `switchyard  SDK -> /mcp -> NATS -> connector -> s-e (${upstream})`,
      mode: 'mcp',
      url: `${gatewayUrl}/mcp`,
      tool: 'everything__echo',
      headers: auth,
    },
    {
      label: 'rest        POST /api/v1/integration/mcp/call -> NATS -> connector -> s-e',
      mode: 'rest',
      url: `${gatewayUrl}/api/v1/integration/mcp/call`,
      tool: 'everything__echo',
      headers: auth,
    },
    {
      label: 'proxy       SDK -> supergateway -> server-everything (stdio)',
      mode: 'mcp',
      url: `http://127.0.0.1:${proxyPort}/mcp`,
      tool: 'echo',
      headers: {},
    },
  ];
  console.log(
    `# MCP gateway bench, in ${settings.rounds} rounds (paths take turns): ${settings.latencyCalls} sequential calls (after ${settings.warmup} warm-up), then ${settings.inflight} in flight on ${settings.sessions} session(s) for up to ${settings.throughputCalls} calls / ${settings.maxMs / 1000} s`,
  );
  if (method === 'ping') console.log('# BENCH_METHOD=ping: MCP ping requests (no tool runs; rest: the same tool call)');
  console.log(`# event store: ${settings.batchesInFlight} group-commit statement(s) in flight (BENCH_STORE_BATCHES)`);
  console.log(`# connector -> server-everything over ${upstream} (BENCH_UPSTREAM); ${os.cpus()[0]?.model ?? 'cpu'}`);
  console.log(
    `# ${os.cpus().length} cores, load average at start ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}, node ${process.version}`,
  );
  console.log(
    `${'path'.padEnd(68)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'calls/s'.padStart(9)} ${'p50@load'.padStart(9)} ${'p99@load'.padStart(9)} ${'errors'.padStart(7)} ${'cpu ms/c'.padStart(8)}`,
  );
  const only = (process.env.BENCH_PATHS ?? '').split(',').filter(Boolean);
  const figures = new Map<string, { p50: number; rate: number; cpuMsPerCall: number }>();
  // The paths take turns, BENCH_ROUNDS times, each round a share of the calls and of the time:
  // on a shared machine the load moves during a run, and turns spread that over every path
  // alike instead of charging it to whichever path ran while it was high.
  const chosen = paths.filter((x) => only.length === 0 || only.includes(x.label.split(' ')[0]!));
  const rounds = settings.rounds;
  const acc = new Map<
    string,
    {
      lat: number[];
      tl: number[];
      calls: number;
      seconds: number;
      errors: number;
      cpuUs: number;
      issued: number;
      firstError?: string;
    }
  >();
  for (let round = 0; round < rounds; round++) {
    for (const p of chosen) {
      const share = {
        ...settings,
        warmup: Math.ceil(settings.warmup / rounds),
        latencyCalls: Math.ceil(settings.latencyCalls / rounds),
        throughputCalls: Math.ceil(settings.throughputCalls / rounds),
        maxMs: settings.maxMs / rounds,
      };
      // This process's CPU (gateway, connectors, the load worker) per call: less noisy than wall time on a busy machine.
      const cpu0 = process.cpuUsage();
      const r = await load({ mode: p.mode, url: p.url, headers: p.headers, tool: p.tool, method, args, ...share });
      const cpu = process.cpuUsage(cpu0);
      const a = acc.get(p.label) ?? { lat: [], tl: [], calls: 0, seconds: 0, errors: 0, cpuUs: 0, issued: 0 };
      a.lat.push(...r.latencies);
      a.tl.push(...r.throughput.latencies);
      a.calls += r.throughput.calls;
      a.seconds += r.throughput.seconds;
      a.errors += r.errors;
      a.cpuUs += cpu.user + cpu.system;
      a.issued += r.latencies.length + r.throughput.calls + share.warmup;
      a.firstError ??= r.firstError;
      acc.set(p.label, a);
    }
  }
  for (const p of chosen) {
    const a = acc.get(p.label)!;
    a.lat.sort((x, y) => x - y);
    a.tl.sort((x, y) => x - y);
    const rate = a.calls / Math.max(1e-9, a.seconds);
    const cpuMsPerCall = a.cpuUs / 1000 / Math.max(1, a.issued);
    figures.set(p.label.split(' ')[0]!, { p50: pct(a.lat, 50), rate, cpuMsPerCall });
    console.log(
      `${p.label.padEnd(68)} ${ms(pct(a.lat, 50)).padStart(8)} ${ms(pct(a.lat, 99)).padStart(8)} ${rate.toFixed(0).padStart(9)} ${ms(pct(a.tl, 50)).padStart(9)} ${ms(pct(a.tl, 99)).padStart(9)} ${String(a.errors).padStart(7)} ${cpuMsPerCall.toFixed(2).padStart(8)}`,
    );
    if (a.firstError) console.log(`#   first error: ${a.firstError.slice(0, 300)}`);
  }
  // One event-store commit, alone, in this run: what the answer of a /mcp call waits for after the
  // upstream answered (its McpToolCalled + outcome append), and the proxy never pays.
  const commits: number[] = [];
  for (let i = 0; i < Math.min(200, settings.latencyCalls); i++) {
    const t0 = performance.now();
    await store.append(
      `benchcommit-${newId()}`,
      [
        {
          type: 'BenchCommit',
          data: { i },
          metadata: { correlationId: newId(), actor: 'bench', timestamp: new Date().toISOString() },
        },
      ],
      { expectedRevision: 'no_stream' },
    );
    commits.push(performance.now() - t0);
  }
  commits.sort((a, b) => a - b);
  console.log(
    `# one event-store append (commit) alone, sequential: p50 ${ms(pct(commits, 50))} ms, p99 ${ms(pct(commits, 99))} ms`,
  );
  // The targets, as ratios within this run: our added p50 against the plain proxy's, and /mcp's calls/s against direct.
  const direct = figures.get('direct');
  const sy = figures.get('switchyard');
  const proxy = figures.get('proxy');
  if (direct && sy) console.log(`# added p50 switchyard (switchyard - direct): ${ms(sy.p50 - direct.p50)} ms`);
  if (direct && proxy) console.log(`# added p50 proxy (proxy - direct): ${ms(proxy.p50 - direct.p50)} ms`);
  if (direct && sy && proxy)
    console.log(`# added p50 difference (switchyard - proxy): ${ms(sy.p50 - proxy.p50)} ms (target: at most 0.50)`);
  if (direct && sy)
    console.log(
      `# throughput switchyard / direct at ${settings.inflight} in flight: ${((100 * sy.rate) / direct.rate).toFixed(0)} % (target: at least 50 %)`,
    );
  const calls = await store.readAll({
    types: ['McpToolSucceeded'],
    streamPrefixes: ['mcpgw_call-'],
    maxCount: 1_000_000,
  });
  console.log(
    `# gateway call events stored: ${calls.length} McpToolSucceeded (mcpgw_call-*); connector events: ${connectorEvents}`,
  );
  if (listenerWarnings)
    console.log(`# MaxListenersExceededWarnings in the main thread (the connector's SDK client): ${listenerWarnings}`);
  console.log(
    `# load average at end (1/5/15 min): ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}`,
  );
}

async function waitHttp(url: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    try {
      await fetch(url, { method: 'GET' });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${url} did not answer`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)));
}
try {
  await main();
} catch (err) {
  console.error('bench failed:', err);
  process.exitCode = 1;
} finally {
  await cleanup();
}

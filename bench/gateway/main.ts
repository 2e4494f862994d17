/**
 * Gateway HTTP throughput with autocannon: requests/s and latency p50/p99 at 64 connections.
 *
 * Self-contained (default): a child process starts an embedded PostgreSQL, a nats-server and
 * the gateway with auth ON (every request checks its API key; the key cache is warm) and
 * rate limits OFF (they would be what is measured), seeds 5 000 events; this process runs
 * autocannon against it. Two processes, so the load generator does not share the
 * gateway's event loop (on a 2-core machine they still share the CPU: figures are a floor).
 * The same child also serves a plain `node:http` server answering /livez's JSON: the baseline
 * each target's req/s is divided by, measured in the same run (absolute figures on a shared
 * machine say little; the ratio says what the gateway costs over Node itself).
 *
 *   node bench/gateway/dist/main.js                         # 10 s per target
 *   BENCH_SECONDS=30 BENCH_CONNECTIONS=64 node bench/gateway/dist/main.js
 *
 * Against a running system (e.g. the launcher with agents and the dispatcher), any routes:
 *   node bench/gateway/dist/main.js --url http://127.0.0.1:10000 --key sy_... \
 *     --target GET:/livez --target 'POST:/api/v1/integration/agents/delegate:{"task_type":"...","context":{}}'
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

interface Target {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly body?: string;
}

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64);
const SEED_EVENTS = 5_000;
// Toggles to see what each layer costs: BENCH_AUTH=false (no key checks), BENCH_RATE_LIMIT=true (limiter on, limits never reached).
const auth = process.env.BENCH_AUTH !== 'false';
const rateLimited = process.env.BENCH_RATE_LIMIT === 'true';
// With the limiter on: where its counters live (postgres: shared by gateways; memory: this process).
const rateLimitStore = process.env.BENCH_RATE_LIMIT_STORE === 'memory' ? 'memory' : 'postgres';

// ---- the server side (child process) ---------------------------------------------------
async function serve(): Promise<void> {
  const { createLogger, freePort, startEmbeddedPostgres, startNatsServer } = await import('@switchyard/platform');
  const { PostgresEventStore } = await import('@switchyard/event-store');
  const { createGateway, StatusFeatureModule } = await import('@switchyard/gateway');
  const { connect } = await import('@nats-io/transport-node');
  const pg = (await import('pg')).default;

  // Under the repo's .tmp like the test runner: the Postgres binaries may run as another user, who cannot read a private /tmp dir.
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../.tmp', `bench-gateway-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const logger = createLogger('bench-gateway', 'warn');
  const pgh = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort(), logger });
  const natsh = await startNatsServer({ port: await freePort(), storeDir: path.join(dir, 'nats'), logger });
  const pool = new pg.Pool({ connectionString: pgh.url, max: 10 });
  const store = new PostgresEventStore({ pool });
  await store.init();
  for (let i = 0; i < SEED_EVENTS; i += 500) {
    await store.append(
      `bench-${i / 500}`,
      Array.from({ length: 500 }, (_, j) => ({
        type: 'BenchEventRecorded',
        data: { n: i + j, payload: 'x'.repeat(200) },
        metadata: { correlationId: `bench-${i}`, actor: 'system:bench', timestamp: new Date().toISOString() },
      })),
    );
  }
  const nats = await connect({ servers: natsh.url });
  let adminKey = '';
  const gateway = await createGateway(
    { eventStore: store, pgPool: pool, nats, logger: createLogger('gateway', 'silent'), config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
    {
      auth: { enabled: auth, printAdminKey: (k) => (adminKey = k) },
      rateLimit: rateLimited ? { perIp: { points: 1e9, durationSec: 60 }, perKey: { points: 1e9, durationSec: 60 }, store: rateLimitStore } : false,
      modules: [StatusFeatureModule],
    },
  );
  const { url } = await gateway.listen(0, '127.0.0.1');
  // The baseline: Node's HTTP server answering the same JSON as /livez, nothing else.
  const plain = createServer((_req, res) => {
    const body = JSON.stringify({ status: 'live', uptimeSeconds: Math.round(process.uptime()) });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  const baselineUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
  process.send?.({ url, key: adminKey || undefined, baselineUrl });
  process.once('message', () => {
    void (async () => {
      plain.close();
      await gateway.close();
      await nats.close();
      await store.close();
      await pool.end();
      await natsh.stop();
      await pgh.stop();
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    })();
  });
}

// ---- the load side -------------------------------------------------------------------
function parseTarget(s: string): Target {
  const m = /^(GET|POST|PUT|PATCH|DELETE):([^:]+)(?::(.*))?$/s.exec(s);
  if (!m) throw new Error(`bad --target ${s}: use METHOD:/path[:json body]`);
  return { method: m[1] as Target['method'], path: m[2]!, ...(m[3] ? { body: m[3] } : {}) };
}

interface Measured {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly statuses: Record<string, number>;
}

const load1 = () => os.loadavg()[0]!.toFixed(2);

async function load(url: string, key: string | undefined, t: Target, baseline?: number, label?: string): Promise<Measured> {
  const result = await autocannon({
    url: url + t.path,
    method: t.method,
    connections,
    duration: seconds,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(t.body ? { 'content-type': 'application/json' } : {}) },
    ...(t.body ? { body: t.body } : {}),
  });
  const statuses = { '2xx': result['2xx'], '4xx': result['4xx'], '5xx': result['5xx'], errors: result.errors, timeouts: result.timeouts };
  const ratio = baseline ? `${((100 * result.requests.average) / baseline).toFixed(1).padStart(5)} %` : '  base ';
  console.log(
    `${(label ?? `${t.method} ${t.path}`).padEnd(42)} ${result.requests.average.toFixed(0).padStart(7)} req/s  ${ratio}   ` +
      `p50 ${String(result.latency.p50).padStart(4)} ms   p99 ${String(result.latency.p99).padStart(4)} ms   ` +
      `load ${load1()}   (${result.requests.total} requests, ${JSON.stringify(statuses)})`,
  );
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, statuses };
}

/** The targets of the task, as ratios of the plain node:http baseline (a report, never a pass/fail). */
const GOALS: Record<string, number> = { '/livez': 0.5, '/api/v1/integration/status': 0.35 };
const P99_GOAL_MS = 20;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { url: { type: 'string' }, key: { type: 'string' }, target: { type: 'string', multiple: true } } });
  let child: ChildProcess | undefined;
  let url = values.url;
  let key = values.key;
  let baselineUrl: string | undefined;
  if (!url) {
    child = fork(fileURLToPath(import.meta.url), ['serve'], { stdio: 'inherit' });
    const ready = await new Promise<{ url: string; key?: string; baselineUrl: string }>((resolve, reject) => {
      child!.once('message', (m) => resolve(m as { url: string; key?: string; baselineUrl: string }));
      child!.once('exit', (code) => reject(new Error(`the gateway process exited (${code}) before it was ready`)));
    });
    ({ url, key, baselineUrl } = ready);
  }
  const targets = values.target?.length
    ? values.target.map(parseTarget)
    : [
        { method: 'GET', path: '/livez' } as const,
        { method: 'GET', path: '/api/v1/integration/status' } as const,
        { method: 'GET', path: '/api/v1/events?limit=10' } as const,
      ];
  console.log(
    `# gateway bench: ${connections} connections, ${seconds} s per target, node ${process.version}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'}), ` +
      `load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${url}${child ? `, auth ${auth ? 'on' : 'off'}, rate limits ${rateLimited ? `on (${rateLimitStore})` : 'off'}, ${SEED_EVENTS} events seeded` : ''}`,
  );
  try {
    // Warm-up: JIT, key cache, pool connections; not measured.
    for (const t of targets) await autocannon({ url: url + t.path, connections: 8, duration: 1, headers: key ? { authorization: `Bearer ${key}` } : {} });
    let baseline: number | undefined;
    if (baselineUrl) {
      await autocannon({ url: baselineUrl + '/livez', connections: 8, duration: 1 });
      baseline = (await load(baselineUrl, undefined, { method: 'GET', path: '/livez' }, undefined, 'baseline: plain node:http, same JSON')).rps;
    }
    const results: [Target, Measured][] = [];
    for (const t of targets) results.push([t, await load(url, key, t, baseline)]);
    if (baseline) {
      console.log('# targets (ratio to the baseline of this run, p99):');
      for (const [t, m] of results) {
        const goal = GOALS[t.path];
        if (goal === undefined) continue;
        const ratio = m.rps / baseline;
        console.log(
          `  ${t.path.padEnd(40)} ${(100 * ratio).toFixed(1)} % (goal >= ${100 * goal} %: ${ratio >= goal ? 'met' : 'not met'}), ` +
            `p99 ${m.p99} ms (goal < ${P99_GOAL_MS} ms: ${m.p99 < P99_GOAL_MS ? 'met' : 'not met'})`,
        );
      }
      console.log(`# load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${os.loadavg()[0]! > 3 ? ' (above 3: repeat the run on a quieter machine)' : ''}`);
    }
  } finally {
    if (child) {
      child.send('stop');
      await new Promise((r) => child.once('exit', r));
    }
  }
}

if (process.argv[2] === 'serve') await serve();
else await main();

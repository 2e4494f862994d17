/**
 * Gateway HTTP throughput with autocannon: requests/s and latency p50/p99 at 64 connections.
 *
 * Self-contained (default): a child process starts an embedded PostgreSQL, a nats-server and
 * the gateway with auth ON (every request checks its API key; the key cache is warm) and
 * rate limits OFF (they would be what is measured), seeds 5 000 events; this process runs
 * autocannon against it. Two processes, so the load generator does not share the
 * gateway's event loop (on a 2-core machine they still share the CPU: figures are a floor).
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
  const { createGateway } = await import('@switchyard/gateway');
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
    },
  );
  const { url } = await gateway.listen(0, '127.0.0.1');
  process.send?.({ url, key: adminKey || undefined });
  process.once('message', () => {
    void (async () => {
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

async function load(url: string, key: string | undefined, t: Target): Promise<void> {
  const result = await autocannon({
    url: url + t.path,
    method: t.method,
    connections,
    duration: seconds,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(t.body ? { 'content-type': 'application/json' } : {}) },
    ...(t.body ? { body: t.body } : {}),
  });
  const statuses = { '2xx': result['2xx'], '4xx': result['4xx'], '5xx': result['5xx'], errors: result.errors, timeouts: result.timeouts };
  console.log(
    `${`${t.method} ${t.path}`.padEnd(42)} ${result.requests.average.toFixed(0).padStart(7)} req/s   ` +
      `p50 ${String(result.latency.p50).padStart(4)} ms   p99 ${String(result.latency.p99).padStart(4)} ms   ` +
      `(${result.requests.total} requests, ${JSON.stringify(statuses)})`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { url: { type: 'string' }, key: { type: 'string' }, target: { type: 'string', multiple: true } } });
  let child: ChildProcess | undefined;
  let url = values.url;
  let key = values.key;
  if (!url) {
    child = fork(fileURLToPath(import.meta.url), ['serve'], { stdio: 'inherit' });
    const ready = await new Promise<{ url: string; key?: string }>((resolve, reject) => {
      child!.once('message', (m) => resolve(m as { url: string; key?: string }));
      child!.once('exit', (code) => reject(new Error(`the gateway process exited (${code}) before it was ready`)));
    });
    ({ url, key } = ready);
  }
  const targets = values.target?.length
    ? values.target.map(parseTarget)
    : [
        { method: 'GET', path: '/livez' } as const,
        { method: 'GET', path: '/api/v1/events?limit=10' } as const,
      ];
  console.log(`# gateway bench: ${connections} connections, ${seconds} s per target, node ${process.version}, ${url}${child ? `, auth ${auth ? 'on' : 'off'}, rate limits ${rateLimited ? `on (${rateLimitStore})` : 'off'}, ${SEED_EVENTS} events seeded` : ''}`);
  try {
    // Warm-up: JIT, key cache, pool connections; not measured.
    await autocannon({ url: url + targets[0]!.path, connections: 8, duration: 2, headers: key ? { authorization: `Bearer ${key}` } : {} });
    for (const t of targets) await load(url, key, t);
  } finally {
    if (child) {
      child.send('stop');
      await new Promise((r) => child!.once('exit', r));
    }
  }
}

if (process.argv[2] === 'serve') await serve();
else await main();

/**
 * Gateway HTTP throughput with autocannon: requests/s and latency p50/p99 at 64 connections.
 *
 * Self-contained (default): a child process starts an embedded PostgreSQL, a nats-server and
 * the gateway with auth ON (every request checks its API key; the key cache is warm) and
 * rate limits OFF (they would be what is measured), seeds 5 000 events; this process runs
 * autocannon against it. Two processes, so the load generator does not share the
 * gateway's event loop (on a 2-core machine they still share the CPU: figures are a floor).
 * The same child also serves a plain `node:http` server answering /livez's JSON: the baseline
 * each target's req/s is divided by, measured in slices alternating with the target's (absolute
 * figures on a shared machine say little; the ratio says what the gateway costs over Node itself).
 *
 *   node bench/gateway/dist/main.js                         # 10 s per target (and 10 s of baseline)
 *   BENCH_SECONDS=30 BENCH_CONNECTIONS=64 BENCH_ROUNDS=6 node bench/gateway/dist/main.js
 *   node bench/gateway/dist/main.js --target GET:/livez      # one target
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
// Each target and the baseline alternate in this many slices (seconds / rounds each).
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
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
  const dir = path.resolve(
    path.dirname(fileURLToPath(import.meta.url)),
    '../../../.tmp',
    `bench-gateway-${process.pid}`,
  );
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
    {
      eventStore: store,
      pgPool: pool,
      nats,
      logger: createLogger('gateway', 'silent'),
      config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' },
    },
    {
      auth: { enabled: auth, printAdminKey: (k) => (adminKey = k) },
      rateLimit: rateLimited
        ? { perIp: { points: 1e9, durationSec: 60 }, perKey: { points: 1e9, durationSec: 60 }, store: rateLimitStore }
        : false,
      modules: [StatusFeatureModule],
    },
  );
  const { url } = await gateway.listen(0, '127.0.0.1');
  // The baseline: Node's HTTP server answering the same JSON as /livez, nothing else.
  const plain = createServer((_req, res) => {
    const body = JSON.stringify({ status: 'live', uptimeSeconds: Math.round(process.uptime()) });
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  const baselineUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
  process.send?.({ url, key: adminKey || undefined, baselineUrl });
  // 'cpu': this process's CPU time so far (both servers run here), for the cost per request.
  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send?.({ cpuMicros: u.user + u.system });
      return;
    }
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

let serverProcess: ChildProcess | undefined;

/** CPU time (µs) the server process has used so far; undefined against a --url. */
async function serverCpu(): Promise<number | undefined> {
  const child = serverProcess;
  if (!child) return undefined;
  return new Promise((resolve) => {
    child.once('message', (m) => resolve((m as { cpuMicros: number }).cpuMicros));
    child.send('cpu');
  });
}

interface Slice {
  readonly result: autocannon.Result;
  /** The server process's CPU time during the slice (µs). */
  readonly cpuMicros?: number;
}

async function run(url: string, key: string | undefined, t: Target, duration: number): Promise<Slice> {
  const before = await serverCpu();
  const result = await runLoad(url, key, t, duration);
  const after = await serverCpu();
  return { result, ...(before !== undefined && after !== undefined ? { cpuMicros: after - before } : {}) };
}

function runLoad(url: string, key: string | undefined, t: Target, duration: number): Promise<autocannon.Result> {
  return autocannon({
    url: url + t.path,
    method: t.method,
    connections,
    duration,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(t.body ? { 'content-type': 'application/json' } : {}),
    },
    ...(t.body ? { body: t.body } : {}),
  });
}

type Summary = Measured & { readonly total: number; readonly cpuPerRequest?: number };

function summary(slices: readonly Slice[]): Summary {
  const results = slices.map((s) => s.result);
  const total = results.reduce((n, r) => n + r.requests.total, 0);
  const secondsRun = results.reduce((n, r) => n + r.duration, 0);
  const sum = (f: (r: autocannon.Result) => number) => results.reduce((n, r) => n + f(r), 0);
  // Latency percentiles of the slices: the worst slice's p99, the median slice's p50.
  const p50s = results.map((r) => r.latency.p50).sort((a, b) => a - b);
  const cpu = slices.every((s) => s.cpuMicros !== undefined) ? slices.reduce((n, s) => n + s.cpuMicros!, 0) : undefined;
  return {
    rps: total / secondsRun,
    p50: p50s[Math.floor(p50s.length / 2)] ?? 0,
    p99: Math.max(...results.map((r) => r.latency.p99)),
    statuses: {
      '2xx': sum((r) => r['2xx']),
      '4xx': sum((r) => r['4xx']),
      '5xx': sum((r) => r['5xx']),
      errors: sum((r) => r.errors),
      timeouts: sum((r) => r.timeouts),
    },
    total,
    ...(cpu !== undefined && total > 0 ? { cpuPerRequest: cpu / total } : {}),
  };
}

function print(label: string, m: Summary, baseline?: number): void {
  const ratio = baseline ? `${((100 * m.rps) / baseline).toFixed(1).padStart(5)} %` : '  base ';
  console.log(
    `${label.padEnd(42)} ${m.rps.toFixed(0).padStart(7)} req/s  ${ratio}   ` +
      `p50 ${String(m.p50).padStart(4)} ms   p99 ${String(m.p99).padStart(4)} ms   ` +
      (m.cpuPerRequest !== undefined ? `server CPU ${m.cpuPerRequest.toFixed(0).padStart(4)} µs/req   ` : '') +
      `load ${load1()}   (${m.total} requests, ${JSON.stringify(m.statuses)})`,
  );
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/**
 * A target against its baseline, interleaved: `rounds` slices of each, alternating, so both see
 * the same machine (on a shared machine the load moves within seconds, and a baseline measured
 * once, before all targets, made the ratios swing by a factor of two). The ratio is the median
 * of the slices' ratios (target over the baseline slice just before it). Beside it, the server
 * process's CPU time per request of each (both servers share that process): steadier than
 * req/s when other work on the machine takes the cores; the baseline's over the target's says
 * the same thing as the req/s ratio, as if the cores were the server's alone.
 */
async function paired(
  url: string,
  key: string | undefined,
  t: Target,
  baselineUrl: string | undefined,
): Promise<{ target: Measured; baseline?: number; cpuRatio?: number }> {
  const slice = Math.max(0.5, seconds / rounds);
  const mine: Slice[] = [];
  const base: Slice[] = [];
  for (let i = 0; i < rounds; i++) {
    if (baselineUrl) base.push(await run(baselineUrl, undefined, { method: 'GET', path: '/livez' }, slice));
    mine.push(await run(url, key, t, slice));
  }
  const target = summary(mine);
  if (!baselineUrl) {
    print(`${t.method} ${t.path}`, target);
    return { target };
  }
  const b = summary(base);
  const rate = (r: autocannon.Result) => r.requests.total / r.duration;
  const ratio = median(mine.map((m, i) => rate(m.result) / rate(base[i]!.result)));
  print(`  baseline: plain node:http, same JSON`, b);
  print(`${t.method} ${t.path}`, target, target.rps / ratio);
  const cpuRatio =
    b.cpuPerRequest !== undefined && target.cpuPerRequest ? b.cpuPerRequest / target.cpuPerRequest : undefined;
  return { target, baseline: target.rps / ratio, ...(cpuRatio !== undefined ? { cpuRatio } : {}) };
}

/** The targets of the task, as ratios of the plain node:http baseline (a report, never a pass/fail). */
const GOALS: Record<string, number> = { '/livez': 0.5, '/api/v1/integration/status': 0.35 };
const P99_GOAL_MS = 20;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { url: { type: 'string' }, key: { type: 'string' }, target: { type: 'string', multiple: true } },
  });
  let child: ChildProcess | undefined;
  let url = values.url;
  let key = values.key;
  let baselineUrl: string | undefined;
  if (!url) {
    child = fork(fileURLToPath(import.meta.url), ['serve'], { stdio: 'inherit' });
    serverProcess = child;
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
    `# gateway bench: ${connections} connections, ${seconds} s per target and as much for its baseline, in ${rounds} alternating slices, node ${process.version}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'}), ` +
      `load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(
          ' ',
        )}, ${url}${child ? `, auth ${auth ? 'on' : 'off'}, rate limits ${rateLimited ? `on (${rateLimitStore})` : 'off'}, ${SEED_EVENTS} events seeded` : ''}`,
  );
  try {
    // Warm-up: JIT, key cache, pool connections; not measured.
    for (const t of targets)
      await autocannon({
        url: url + t.path,
        connections: 8,
        duration: 1,
        headers: key ? { authorization: `Bearer ${key}` } : {},
      });
    if (baselineUrl) await autocannon({ url: baselineUrl + '/livez', connections: 8, duration: 1 });
    const results: [Target, Measured, number | undefined, number | undefined][] = [];
    for (const t of targets) {
      const { target, baseline, cpuRatio } = await paired(url, key, t, baselineUrl);
      results.push([t, target, baseline, cpuRatio]);
    }
    if (baselineUrl) {
      console.log(
        "# targets (req/s ratio to the baseline: median of the paired slices; CPU: baseline µs/req over the target's; p99):",
      );
      for (const [t, m, baseline, cpuRatio] of results) {
        const goal = GOALS[t.path];
        if (goal === undefined || !baseline) continue;
        const ratio = m.rps / baseline;
        console.log(
          `  ${t.path.padEnd(40)} ${(100 * ratio).toFixed(1)} % (goal >= ${100 * goal} %: ${ratio >= goal ? 'met' : 'not met'}), ` +
            (cpuRatio !== undefined ? `CPU ${(100 * cpuRatio).toFixed(1)} %, ` : '') +
            `p99 ${m.p99} ms (goal < ${P99_GOAL_MS} ms: ${m.p99 < P99_GOAL_MS ? 'met' : 'not met'})`,
        );
      }
      console.log(
        `# load average at the end: ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}${os.loadavg()[0]! > 3 ? ' (above 3: repeat the run on a quieter machine)' : ''}`,
      );
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

/**
 * The whole system as `npm start` runs it: one launcher process with every role (gateway,
 * connectors, MCP servers, agents, dispatcher, workflow engine, read models, monitor, relay), its
 * embedded PostgreSQL and nats-server, on free ports and a data dir of its own. The other benches
 * measure one path with the rest left out; this one shows what a unit of work costs with
 * everything that follows it (audit records, relay, projections, call metrics) running too.
 *
 * For each kind of work, the specification's own example requests:
 *   mcp        POST /api/v1/integration/mcp/database/query (customers of a region)
 *   delegate   POST /api/v1/integration/agents/delegate?wait=true (revenue_analysis)
 *   workflow   POST /api/v1/workflows/start/revenue_analysis?wait=true
 * it prints p50/p99 of BENCH_SEQUENTIAL requests one at a time, units/s with BENCH_INFLIGHT in
 * flight (BENCH_CONCURRENT requests), and per unit: database transactions (pg_stat_database) and
 * CPU ms of the launcher's processes (node: the launcher and its stdio MCP servers), of
 * PostgreSQL and of nats-server (from /proc, over both phases). Rate limits are off (they would
 * answer 429 first). Figures only: nothing here asserts.
 *
 *   node bench/system/dist/main.js
 *   BENCH_KINDS=mcp BENCH_SEQUENTIAL=300 BENCH_CONCURRENT=2000 node bench/system/dist/main.js
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import pg from 'pg';
import { freePort } from '@switchyard/platform';
import {
  scratchDataDir,
  embeddedDatabaseUrl,
  newAdminKey,
  Proc,
  systemEnv,
  waitMcpServerUp,
  waitReady,
} from '@switchyard/testing';

const kinds = (process.env.BENCH_KINDS ?? 'mcp,delegate,workflow').split(',');
const sequential = Number(process.env.BENCH_SEQUENTIAL ?? 200);
const concurrent = Number(process.env.BENCH_CONCURRENT ?? 600);
const inFlight = Number(process.env.BENCH_INFLIGHT ?? 16);
const warmup = Number(process.env.BENCH_WARMUP ?? 30);

const work: Record<string, { path: string; body: unknown }> = {
  mcp: {
    path: '/api/v1/integration/mcp/database/query',
    body: { query: 'select count(*) from business.customers where region = :r', params: { r: 'EU' } },
  },
  delegate: {
    path: '/api/v1/integration/agents/delegate?wait=true',
    body: { task_type: 'revenue_analysis', context: { timeframe: '12m' }, priority: 'high' },
  },
  workflow: {
    path: '/api/v1/workflows/start/revenue_analysis?wait=true',
    body: { timeframe: '30d', include_forecasts: true },
  },
};

const q = (xs: number[], p: number) =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : NaN;

/** CPU ms so far of `pid` and every process under it, by kind (node, postgres, nats-server). */
function treeCpuMs(pid: number): Map<string, number> {
  const parent = new Map<number, number>();
  const stat = new Map<number, { comm: string; ms: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(f[1]));
      stat.set(Number(d), { comm, ms: (Number(f[11]) + Number(f[12])) * 10 });
    } catch {
      // gone meanwhile
    }
  }
  const out = new Map<string, number>([
    ['node', 0],
    ['postgres', 0],
    ['nats-server', 0],
  ]);
  for (const [p, s] of stat) {
    let a: number | undefined = p;
    while (a !== undefined && a !== pid && a > 1) a = parent.get(a);
    if (a !== pid) continue;
    const kind = s.comm === 'postgres' ? 'postgres' : s.comm === 'nats-server' ? 'nats-server' : 'node';
    out.set(kind, out.get(kind)! + s.ms);
  }
  return out;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const dataDir = scratchDataDir('bench-system-');
  const adminKey = newAdminKey();
  const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
  const pgPort = await freePort();
  const gatewayPort = await freePort();
  const base = `http://127.0.0.1:${gatewayPort}`;
  const env = await systemEnv(dataDir, adminKey, {
    RATE_LIMIT_ENABLED: 'false',
    EMBEDDED_PG_PORT: String(pgPort),
    EMBEDDED_NATS_PORT: String(await freePort()),
    GATEWAY_PORT: String(gatewayPort),
  });
  const system = new Proc('all', [], env);
  const admin = new pg.Pool({
    connectionString: embeddedDatabaseUrl(dataDir, pgPort),
    max: 1,
  });
  try {
    system.start();
    await system.waitUp(180_000);
    await waitReady(base, system);
    await waitMcpServerUp(base, headers, 'database');
    console.log(
      `# whole system (every role, one process) up in ${Date.now() - t0} ms; load ${loadavg()[0]!.toFixed(1)}`,
    );
    console.log(
      `# per kind: ${warmup} warm-up, ${sequential} one at a time, then ${concurrent} with ${inFlight} in flight; node ${process.version}`,
    );
    console.log(
      '| work | p50 ms | p99 ms | units/s at ' +
        inFlight +
        ' | answers | transactions per unit | CPU ms per unit: node / postgres / nats-server | load (1 min) |',
    );
    console.log('|---|---:|---:|---:|---|---:|---:|---:|');
    for (const kind of kinds) {
      const w = work[kind];
      if (!w) throw new Error(`unknown kind ${kind}: ${Object.keys(work).join(', ')}`);
      const statuses = new Map<string, number>();
      const one = async (): Promise<number> => {
        const started = performance.now();
        const res = await fetch(`${base}${w.path}`, {
          method: 'POST',
          headers,
          body: JSON.stringify(w.body),
          signal: AbortSignal.timeout(120_000),
        });
        const body = (await res.json().catch(() => ({}))) as { status?: string };
        const key = `${res.status}${body.status ? ` ${body.status}` : ''}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        return performance.now() - started;
      };
      for (let i = 0; i < warmup; i++) await one();
      statuses.clear();
      const xacts = async () =>
        Number(
          (
            await admin.query<{ n: string }>(
              `select xact_commit + xact_rollback as n from pg_stat_database where datname = 'switchyard'`,
            )
          ).rows[0]!.n,
        );
      const x0 = await xacts();
      const c0 = treeCpuMs(system.proc.pid!);
      const latencies: number[] = [];
      for (let i = 0; i < sequential; i++) latencies.push(await one());
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next++ < concurrent) await one();
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const c1 = treeCpuMs(system.proc.pid!);
      // The admin's own two statements are not the system's.
      const x1 = (await xacts()) - 1;
      const units = sequential + concurrent;
      const cpu = (k: string) => ((c1.get(k)! - c0.get(k)!) / units).toFixed(2);
      console.log(
        `| ${kind} | ${q(latencies, 0.5).toFixed(2)} | ${q(latencies, 0.99).toFixed(2)} | ${(concurrent / seconds).toFixed(0)} | ${[
          ...statuses,
        ]
          .map(([k, n]) => `${k}: ${n}`)
          .join(
            ', ',
          )} | ${((x1 - x0) / units).toFixed(1)} | ${cpu('node')} / ${cpu('postgres')} / ${cpu('nats-server')} | ${loadavg()[0]!.toFixed(1)} |`,
      );
    }
  } finally {
    await admin.end();
    await system.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

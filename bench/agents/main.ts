/**
 * Delegation overhead: what the delegation path costs on top of the agent's own work, measured
 * with the benchmark-only `noop` task type (sleep_ms 0: the agent does nothing). Three layers:
 *   1. agent direct     NATS request to one agent instance's execute subject
 *   2. tasks.execute    NATS request to the dispatcher (submit+assign, start+complete: 2 appends, no stream read)
 *   3. gateway          HTTP POST /api/v1/integration/agents/delegate?wait=true -> dispatcher -> agent
 *                       (auth on: an operator API key, as a client in production sends it)
 * Sequential requests give latency p50/p99; then BENCH_CONCURRENCY requests in flight give tasks/s.
 * Per task it also counts the PostgreSQL statements of the whole process (dispatcher, projections,
 * event store, leases), the transactions they commit, and those on the shared slot table, and
 * the CPU time per task of this process (gateway, dispatcher, agents, projections and the load
 * generator), of the PostgreSQL server and of nats-server.
 * Uses TEST_DATABASE_URL / TEST_NATS_URL when set, else starts its own PostgreSQL and nats-server.
 *
 *   node bench/agents/dist/main.js
 *   BENCH_TASKS=500 BENCH_CONCURRENCY=32 node bench/agents/dist/main.js
 *   BENCH_PROJECTIONS=0 node bench/agents/dist/main.js    (the delegation read models stopped once set up)
 */
import os from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { z } from 'zod';
import { closeNats, connectNats, request } from '@switchyard/messaging';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore, type EventStore } from '@switchyard/event-store';
import {
  cpuMsBetween,
  freshDatabase,
  overriding,
  postgresCpuMs,
  processCpuMs,
  stopOwnInfra,
  testNatsUrl,
} from '@switchyard/testing';
import { startAgents } from '@switchyard/agents';
import { agentSubject, tasksSubject } from '@switchyard/contracts';
import { startDispatcher } from '@switchyard/dispatcher';
import { AgentsFeatureModule, createGateway } from '@switchyard/gateway';

const TASKS = Number(process.env.BENCH_TASKS ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const CONCURRENT_TASKS = Number(process.env.BENCH_CONCURRENT_TASKS ?? TASKS * 2);
const WARMUP = 30;
const logger = createLogger('bench-agents', process.env.LOG_LEVEL ?? 'warn');

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

async function sequential(name: string, once: () => Promise<unknown>) {
  for (let i = 0; i < WARMUP; i++) await once();
  const ms: number[] = [];
  for (let i = 0; i < TASKS; i++) {
    const t = performance.now();
    await once();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { name, n: TASKS, p50: pct(ms, 50), p99: pct(ms, 99), max: ms[ms.length - 1]! };
}

async function concurrent(once: () => Promise<unknown>, inFlight: number) {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < CONCURRENT_TASKS) await once();
    }),
  );
  return CONCURRENT_TASKS / ((performance.now() - t) / 1000);
}

// Every statement any pool of this process sends, by what it touches; transactions = commits of
// explicit ones + statements outside them (each its own implicit commit).
const sql = { statements: 0, transactions: 0, appends: 0, slots: 0, leases: 0 };
const inTx = new WeakSet<object>();
// eslint-disable-next-line @typescript-eslint/unbound-method -- wrapped below and called with .apply(this, ...)
const clientQuery = pg.Client.prototype.query as (...a: unknown[]) => unknown;
pg.Client.prototype.query = function (this: object, ...args: unknown[]) {
  const first = args[0];
  const text = (typeof first === 'string' ? first : ((first as { text?: string } | undefined)?.text ?? ''))
    .trim()
    .toLowerCase();
  sql.statements++;
  if (text.startsWith('begin')) inTx.add(this);
  else if (text.startsWith('commit') || text.startsWith('rollback')) {
    inTx.delete(this);
    sql.transactions++;
  } else if (!inTx.has(this)) sql.transactions++;
  if (text.includes('append_batch')) sql.appends++;
  if (text.includes('.assignments') || text.includes('slot')) sql.slots++;
  if (text.includes('dispatcher_leases')) sql.leases++;
  return clientQuery.apply(this, args);
} as never;

/**
 * CPU time (ms) of this process, of the PostgreSQL server's processes (as pg_stat_activity lists
 * them) and of nats-server processes, from /proc (Linux; zeros elsewhere): where a task's time
 * goes, steadier than wall time on a shared machine.
 */
async function cpuSnapshot(): Promise<{ node: number; postgres: Map<number, number>; nats: Map<number, number> }> {
  const nats = new Map<number, number>();
  let procs: string[] = [];
  try {
    procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    // not Linux
  }
  for (const pid of procs) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'nats-server') continue;
    } catch {
      continue;
    }
    const ms = processCpuMs(pid);
    if (ms !== undefined) nats.set(Number(pid), ms);
  }
  const own = process.cpuUsage();
  return { node: (own.user + own.system) / 1000, postgres: await postgresCpuMs(pool), nats };
}
type CpuSnapshot = Awaited<ReturnType<typeof cpuSnapshot>>;
/** CPU ms per task between two snapshots: node / postgres / nats-server. */
const cpuCell = (a: CpuSnapshot, b: CpuSnapshot, n: number) =>
  `${((b.node - a.node) / n).toFixed(2)} / ${(cpuMsBetween(a.postgres, b.postgres) / n).toFixed(2)} / ${(cpuMsBetween(a.nats, b.nats) / n).toFixed(2)}`;

const pool = new pg.Pool({ connectionString: await freshDatabase('bench_agents'), max: 16 });
// Idle connections see the server stop at the very end; that is not an error of the bench.
pool.on('error', () => undefined);
const store = new PostgresEventStore({ pool });
await store.init();
const nc = await connectNats({ url: await testNatsUrl(), name: 'bench-agents', logger });
// Every agent serves noop (capacity 30 across the six), HTTP contract off.
const agents = await startAgents({
  nats: nc,
  pool,
  logger,
  http: false,
  noop: true,
  instancePrefix: `bench-${newId().slice(0, 4)}`,
});
// The dispatcher (and its projections) see the store through a counter of task-stream appends and
// reads, so the table can show what one delegated task costs in store round trips.
const io = { appends: 0, events: 0, reads: 0 };
const counted = overriding<EventStore>(store, {
  append: (streamId, events, options) => {
    if (streamId.startsWith('task-')) {
      io.appends++;
      io.events += events.length;
    }
    return store.append(streamId, events, options);
  },
  readStream: (streamId, options) => {
    if (streamId.startsWith('task-')) io.reads++;
    return store.readStream(streamId, options);
  },
});
const dispatcher = await startDispatcher({ store: counted, nats: nc, pool, logger, discoveryWaitMs: 200 });
// BENCH_PROJECTIONS=0: the delegation read models stop once set up (what they cost the task's path).
if (process.env.BENCH_PROJECTIONS === '0') await dispatcher.projections?.stop();
let printAdmin: (key: string) => void = () => undefined;
const adminKeyPrinted = new Promise<string>((resolve) => (printAdmin = resolve));
const gw = await createGateway(
  { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
  { modules: [AgentsFeatureModule], auth: { enabled: true, printAdminKey: (k: string) => printAdmin(k) } },
);
const { url } = await gw.listen(0, '127.0.0.1');
// The gateway's delegate route as a client calls it: auth on, an operator key.
const adminKey = await adminKeyPrinted;
const created = await fetch(`${url}/api/v1/admin/api-keys`, {
  method: 'POST',
  headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'bench-operator', role: 'operator' }),
});
if (created.status !== 201)
  throw new Error(`creating an operator key answered ${created.status}: ${await created.text()}`);
const operatorKey = ((await created.json()) as { key: string }).key;

const reply = z.object({ result: z.unknown() }).loose();
const direct = () =>
  request(
    nc,
    agentSubject('data_analyst', 'execute'),
    { task_id: newId(), task_type: 'noop', context: {} },
    { schema: reply, timeoutMs: 10_000 },
  );
const viaTasks = () =>
  request(
    nc,
    tasksSubject('execute'),
    { task_type: 'noop', context: {}, idempotency_key: newId() },
    { schema: reply, timeoutMs: 30_000 },
  );
const viaGateway = async () => {
  const res = await fetch(`${url}/api/v1/integration/agents/delegate?wait=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${operatorKey}` },
    body: JSON.stringify({ task_type: 'noop', context: {}, priority: 'normal' }),
  });
  if (res.status !== 200) throw new Error(`delegate answered ${res.status}: ${await res.text()}`);
  await res.json();
};

try {
  const rows = [];
  // One agent instance refuses beyond its max concurrency (4 for data_analyst): the direct
  // baseline keeps at most that many in flight; the dispatcher spreads noop over all six agents.
  for (const [name, fn, inFlight] of [
    ['agent direct (NATS, 1 instance)', direct, Math.min(CONCURRENCY, 4)],
    ['tasks.execute (NATS)', viaTasks, CONCURRENCY],
    ['gateway delegate?wait=true (HTTP)', viaGateway, CONCURRENCY],
  ] as const) {
    // Costs per task one at a time (no group commit can share them) and with `inFlight` at once.
    const before = { ...io };
    const sqlBefore = { ...sql };
    const cpu0 = await cpuSnapshot();
    const lat = await sequential(name, fn);
    const mid = { ...io };
    const sqlMid = { ...sql };
    const cpu1 = await cpuSnapshot();
    const tps = await concurrent(fn, inFlight);
    const cpu2 = await cpuSnapshot();
    const load = os.loadavg()[0]!;
    const per = (k: keyof typeof io, a: typeof io, b: typeof io, n: number) => ((b[k] - a[k]) / n).toFixed(2);
    const perSql = (k: keyof typeof sql, a: typeof sql, b: typeof sql, n: number) => ((b[k] - a[k]) / n).toFixed(1);
    const direct = name.startsWith('agent direct');
    const ioCell = (a: typeof io, b: typeof io, n: number) =>
      `${per('appends', a, b, n)} / ${per('events', a, b, n)} / ${per('reads', a, b, n)}`;
    const sqlCell = (a: typeof sql, b: typeof sql, n: number) =>
      `${perSql('statements', a, b, n)} / ${perSql('transactions', a, b, n)} / ${perSql('appends', a, b, n)} / ${perSql('slots', a, b, n)}`;
    rows.push({
      ...lat,
      inFlight,
      tps,
      load,
      store: direct ? '-' : `${ioCell(before, mid, WARMUP + TASKS)} ; ${ioCell(mid, io, CONCURRENT_TASKS)}`,
      sql: direct ? '-' : `${sqlCell(sqlBefore, sqlMid, WARMUP + TASKS)} ; ${sqlCell(sqlMid, sql, CONCURRENT_TASKS)}`,
      cpu: `${cpuCell(cpu0, cpu1, WARMUP + TASKS)} ; ${cpuCell(cpu1, cpu2, CONCURRENT_TASKS)}`,
    });
  }
  console.log(
    `# delegation overhead, noop task (sleep_ms 0); ${TASKS} sequential, then ${CONCURRENT_TASKS} with ${CONCURRENCY} in flight`,
  );
  console.log(
    `# ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}`,
  );
  console.log('# per task, one at a time ; with the in-flight count at once');
  console.log(
    '| path | p50 ms | p99 ms | max ms | in flight | tasks/s | load (1 min) | appends / events / stream reads per task | SQL statements / transactions / append_batch / slot statements per task | CPU ms per task: node / postgres / nats-server |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${r.inFlight} | ${r.tps.toFixed(0)} | ${r.load.toFixed(2)} | ${r.store} | ${r.sql} | ${r.cpu} |`,
    );
  // Targets as ratios to the baseline of this run (the agent direct over NATS): absolute figures move with the machine.
  const [base, tasks, gateway] = rows as [(typeof rows)[number], (typeof rows)[number], (typeof rows)[number]];
  console.log('');
  console.log('| measure | this run | baseline (agent direct) | ratio to baseline | target (quiet machine) |');
  console.log('|---|---:|---:|---:|---:|');
  console.log(
    `| gateway delegate?wait=true p50 | ${gateway.p50.toFixed(2)} ms | ${base.p50.toFixed(2)} ms | ${(gateway.p50 / base.p50).toFixed(1)}x | 2 ms |`,
  );
  console.log(
    `| tasks.execute p50 | ${tasks.p50.toFixed(2)} ms | ${base.p50.toFixed(2)} ms | ${(tasks.p50 / base.p50).toFixed(1)}x | - |`,
  );
  console.log(
    `| tasks.execute tasks/s at ${tasks.inFlight} in flight | ${tasks.tps.toFixed(0)} | ${base.tps.toFixed(0)} | ${(tasks.tps / base.tps).toFixed(2)}x | 1500 |`,
  );
  // One call as a client sees it, for the documentation.
  const sample = await fetch(`${url}/api/v1/integration/agents/delegate?wait=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${operatorKey}` },
    body: JSON.stringify({ task_type: 'noop', context: { echo: 'hello' }, priority: 'normal' }),
  });
  console.log(
    `\n# POST /api/v1/integration/agents/delegate?wait=true {"task_type":"noop","context":{"echo":"hello"},"priority":"normal"} -> ${sample.status}\n# ${await sample.text()}`,
  );
  if (Math.max(...rows.map((r) => r.load)) > 3)
    console.log('# load average above 3 during the run: figures are noisy; run again on a quieter machine');
} finally {
  await gw.close();
  await dispatcher.stop();
  await agents.stop();
  await closeNats(nc);
  await store.close();
  await pool.end();
  await stopOwnInfra();
}

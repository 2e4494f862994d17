/**
 * Delegation overhead: what the delegation path costs on top of the agent's own work, measured
 * with the benchmark-only `noop` task type (sleep_ms 0: the agent does nothing). Three layers:
 *   1. agent direct     NATS request to one agent instance's execute subject
 *   2. tasks.execute    NATS request to the dispatcher (submit+assign, start, complete: 3 appends, no stream read)
 *   3. gateway          HTTP POST /api/v1/integration/agents/delegate?wait=true -> dispatcher -> agent
 * Sequential requests give latency p50/p99; then BENCH_CONCURRENCY requests in flight give tasks/s.
 * Uses TEST_DATABASE_URL / TEST_NATS_URL when set, else starts its own PostgreSQL and nats-server.
 *
 *   node bench/agents/dist/main.js
 *   BENCH_TASKS=500 BENCH_CONCURRENCY=32 node bench/agents/dist/main.js
 */
import pg from 'pg';
import { z } from 'zod';
import { closeNats, connectNats, request } from '@switchyard/messaging';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, stopOwnInfra, testNatsUrl } from '@switchyard/testing';
import { agentSubject, startAgents } from '@switchyard/agents';
import { startDispatcher, tasksSubject } from '@switchyard/orchestrator';
import { AgentsFeatureModule, createGateway } from '@switchyard/gateway';

const TASKS = Number(process.env.BENCH_TASKS ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const CONCURRENT_TASKS = Number(process.env.BENCH_CONCURRENT_TASKS ?? TASKS * 2);
const WARMUP = 30;
const logger = createLogger('bench-agents', process.env.LOG_LEVEL ?? 'warn');

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

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

const pool = new pg.Pool({ connectionString: await freshDatabase('bench_agents'), max: 16 });
// Idle connections see the server stop at the very end; that is not an error of the bench.
pool.on('error', () => undefined);
const store = new PostgresEventStore({ pool });
await store.init();
const nc = await connectNats({ url: await testNatsUrl(), name: 'bench-agents', logger });
// Every agent serves noop (capacity 30 across the six), HTTP contract off.
const agents = await startAgents({ nats: nc, pool, logger, http: false, noop: true, instancePrefix: `bench-${newId().slice(0, 4)}` });
// The dispatcher (and its projections) see the store through a counter of task-stream appends and
// reads, so the table can show what one delegated task costs in store round trips.
const io = { appends: 0, events: 0, reads: 0 };
const counted: typeof store = new Proxy(store, {
  get(target, prop, receiver) {
    if (prop === 'append')
      return (streamId: string, events: readonly unknown[], options?: unknown) => {
        if (streamId.startsWith('task-')) (io.appends++, (io.events += events.length));
        return target.append(streamId, events as never, options as never);
      };
    if (prop === 'readStream')
      return (streamId: string, options?: unknown) => {
        if (streamId.startsWith('task-')) io.reads++;
        return target.readStream(streamId, options as never);
      };
    const v = Reflect.get(target, prop, receiver) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  },
});
const dispatcher = await startDispatcher({ store: counted, nats: nc, pool, logger, discoveryWaitMs: 200 });
const gw = await createGateway(
  { eventStore: store, pgPool: pool, nats: nc as never, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
  { modules: [AgentsFeatureModule] },
);
const { url } = await gw.listen(0, '127.0.0.1');

const reply = z.object({ result: z.unknown() }).loose();
const direct = () =>
  request(nc, agentSubject('data_analyst', 'execute'), { task_id: newId(), task_type: 'noop', context: {} }, { schema: reply, timeoutMs: 10_000 });
const viaTasks = () =>
  request(nc, tasksSubject('execute'), { task_type: 'noop', context: {}, idempotency_key: newId() }, { schema: reply, timeoutMs: 30_000 });
const viaGateway = async () => {
  const res = await fetch(`${url}/api/v1/integration/agents/delegate?wait=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
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
    const before = { ...io };
    const lat = await sequential(name, fn);
    const tps = await concurrent(fn, inFlight);
    const n = WARMUP + TASKS + CONCURRENT_TASKS;
    const per = (k: keyof typeof io) => ((io[k] - before[k]) / n).toFixed(2);
    rows.push({ ...lat, inFlight, tps, store: name.startsWith('agent direct') ? '-' : `${per('appends')} / ${per('events')} / ${per('reads')}` });
  }
  console.log(`# delegation overhead, noop task (sleep_ms 0); ${TASKS} sequential, then ${CONCURRENT_TASKS} with ${CONCURRENCY} in flight`);
  console.log('| path | p50 ms | p99 ms | max ms | in flight | tasks/s | appends / events / stream reads per task |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${r.inFlight} | ${r.tps.toFixed(0)} | ${r.store} |`);
} finally {
  await gw.close();
  await dispatcher.stop();
  await agents.stop();
  await closeNats(nc);
  await store.close();
  await pool.end();
  await stopOwnInfra();
}

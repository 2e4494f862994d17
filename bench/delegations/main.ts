/**
 * A burst of delegations from concurrent clients, as in the load test that found the lying 504:
 * BENCH_CLIENTS (200) clients each POST one delegation at once (a noop task of BENCH_TASK_MS,
 * 100 ms, on the six agents), with an Idempotency-Key unless BENCH_KEYS=false, and retry a
 * 5xx answer up to 3 times as told (`retryable`). Prints the answers by status, their latency,
 * how many answers took longer than the submit timeout (settled on the task stream by the
 * gateway), the tasks created and run, and tasks run more than once per client.
 * Its own PostgreSQL and nats-server (unless TEST_DATABASE_URL / TEST_NATS_URL are set).
 *
 *   node bench/delegations/dist/main.js
 *   BENCH_PLACEMENT_WAIT_MS=600000 node bench/delegations/dist/main.js   # the reply waits for queue passes (as before)
 *   DELEGATE_SUBMIT_TIMEOUT_MS=1000 node bench/delegations/dist/main.js  # a shorter submit timeout
 */
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { connectNats, closeNats } from '@switchyard/messaging';
import { freshDatabase, stopOwnInfra, testNatsUrl, until } from '@switchyard/testing';
import { startAgents } from '@switchyard/agents';
import { startDispatcher } from '@switchyard/dispatcher';
import { createGateway, AgentsFeatureModule } from '@switchyard/gateway';

const clients = Number(process.env.BENCH_CLIENTS ?? 200);
const taskMs = Number(process.env.BENCH_TASK_MS ?? 100);
const keyed = process.env.BENCH_KEYS !== 'false';
const placementWaitMs = Number(process.env.BENCH_PLACEMENT_WAIT_MS ?? 250);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : 0;
};

async function main(): Promise<void> {
  const logger = createLogger('bench-delegations', process.env.LOG_LEVEL ?? 'warn');
  const pool = new pg.Pool({ connectionString: await freshDatabase('bench_delegations'), max: 20 });
  // The server stops at the end while idle clients remain: not a failure of the run.
  pool.on('error', (err) => logger.debug({ err }, 'idle PostgreSQL connection closed'));
  const store = new PostgresEventStore({ pool });
  await store.init();
  const nc = await connectNats({ url: await testNatsUrl(), name: 'bench-delegations', logger });
  const agents = await startAgents({ nats: nc, pool, logger, http: false, noop: true, instancePrefix: 'bench' });
  const dispatcher = await startDispatcher({ store, nats: nc, pool, logger, submitPlacementWaitMs: placementWaitMs });
  const gw = await createGateway(
    { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
    { modules: [AgentsFeatureModule] },
  );
  const base = (await gw.listen(0, '127.0.0.1')).url;
  await until(
    'agents discovered',
    async () =>
      (
        (await (await fetch(`${base}/api/v1/integration/agents/capabilities`)).json()) as { task_types: string[] }
      ).task_types.includes('noop'),
    20_000,
  );
  const submitTimeoutMs = Number(process.env.DELEGATE_SUBMIT_TIMEOUT_MS ?? 5_000);

  const statuses = new Map<number, number>();
  const latencies: number[] = [];
  let retries = 0;
  let slowAnswers = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      for (let attempt = 0; attempt < 4; attempt++) {
        const started = Date.now();
        const res = await fetch(`${base}/api/v1/integration/agents/delegate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(keyed ? { 'idempotency-key': `burst-${t0}-${i}` } : {}) },
          body: JSON.stringify({ task_type: 'noop', context: { sleep_ms: taskMs, echo: i }, priority: 'normal' }),
        });
        await res.text();
        const ms = Date.now() - started;
        latencies.push(ms);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 202 && ms > submitTimeoutMs) slowAnswers++;
        if (res.status < 500) return;
        retries++;
      }
    }),
  );
  const burstMs = Date.now() - t0;
  const submitted = (await store.readAll({ types: ['TaskSubmitted'] })).length;
  await until(
    'every task ended',
    async () => {
      const r = await pool.query<{ n: number }>(
        `select count(*)::int as n from delegation.tasks where status in ('submitted','queued','assigned','working')`,
      );
      return r.rows[0]!.n === 0;
    },
    300_000,
  );
  const completed = await store.readAll({ types: ['TaskCompleted'] });
  const runsPerClient = new Map<number, number>();
  for (const e of completed) {
    const echo = Number((e.data as { result?: { echo?: unknown } }).result?.echo);
    runsPerClient.set(echo, (runsPerClient.get(echo) ?? 0) + 1);
  }
  const twice = [...runsPerClient.values()].filter((n) => n > 1).length;

  console.log(
    JSON.stringify(
      {
        clients,
        keyed,
        taskMs,
        placementWaitMs,
        submitTimeoutMs,
        burstMs,
        answers: Object.fromEntries([...statuses].sort()),
        retries,
        latencyMs: { p50: pct(latencies, 50), p95: pct(latencies, 95), max: Math.max(...latencies) },
        answersSettledOnTheStream: slowAnswers,
        tasksSubmitted: submitted,
        tasksCompleted: completed.length,
        clientsWhoseWorkRanTwice: twice,
      },
      null,
      2,
    ),
  );
  await gw.close();
  await dispatcher.stop();
  await agents.stop();
  await closeNats(nc);
  await store.close();
  await pool.end();
  await stopOwnInfra();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

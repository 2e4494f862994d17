import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, request, serviceClient, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, isAppError, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskExecuteReply, taskStreamId, taskSubmitReply, taskView, type TaskView } from '@switchyard/domain';
import { startAgent, type AgentHandle } from '@switchyard/agents';
import { DISPATCHER_LEADER_APPLICATION_NAME, startDispatcher, tasksSubject, type DispatcherHandle } from './index.js';

/**
 * Two dispatcher processes (each with its own NATS connection and lock session) on one real
 * PostgreSQL and one nats-server of their own: one is active, the other stands by and takes
 * over when the active one's lock session is killed or the active one stops.
 */
const logger = createLogger('dispatcher-leader-int', process.env.LOG_LEVEL ?? 'silent');
const fast = { pollIntervalMs: 100, healthIntervalMs: 200, discoveryIntervalMs: 300, discoveryWaitMs: 150, probeTimeoutMs: 500 };
// The first process retries slowly after losing the lock, so the takeover by the second is not a coin toss.
const SLOW_POLL_MS = 2_000;
const FAST_POLL_MS = 100;

/** `p`, or a failure naming `what` when it has not settled within `ms`. */
async function within<T>(what: string, p: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const isUnavailable = (e: unknown) => isAppError(e) && e.code === 'unavailable';

describe('dispatcher leadership: one active, hot standbys (real PostgreSQL and NATS)', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let ncA: NatsConnection;
  let ncB: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let a: DispatcherHandle;
  let b: DispatcherHandle;
  const agents: AgentHandle[] = [];

  const submit = (input: Record<string, unknown>) => request(nc, tasksSubject('submit'), input, { schema: taskSubmitReply });
  const execute = (input: Record<string, unknown>) => request(nc, tasksSubject('execute'), input, { schema: taskExecuteReply, timeoutMs: 30_000 });
  const get = (task_id: string): Promise<TaskView> => request(nc, tasksSubject('get'), { task_id }, { schema: taskView });
  const ended = (id: string) =>
    until(`task ${id} to end`, async () => {
      const v = await get(id);
      return ['completed', 'failed', 'canceled', 'timed_out'].includes(v.status) ? v : undefined;
    });
  const eventTypes = async (taskId: string) => (await store.readStream(taskStreamId(taskId))).map((e) => e.type);
  const count = (types: string[], type: string) => types.filter((t) => t === type).length;
  const seen = (d: DispatcherHandle, instance: string) =>
    until(`the active dispatcher to see ${instance}`, () => d.dispatcher.health().some((h) => h.instances.some((i) => i.instance === instance && i.healthy)) || undefined);
  const agent = async (name: string, instanceId: string) => {
    const h = await startAgent({ nats: nc, pool, agent: name, instanceId, logger, noop: true });
    agents.push(h);
    return h;
  };
  /** Ids of the `tasks` service instances answering a ping (none while a new one's subscription is still on its way). */
  const tasksServices = async () => {
    const ids: string[] = [];
    try {
      for await (const p of await serviceClient(nc, { timeoutMs: 500 }).ping('tasks')) ids.push(p.id);
    } catch (err) {
      if ((err as Error).name !== 'NoResponders' && !/no responders/i.test((err as Error).message)) throw err;
    }
    return ids.sort();
  };
  /** Wait until exactly `id` serves `tasks` (a standby never registers the service, so no other id can show up for good). */
  const onlyServer = (id: string) =>
    until(`only ${id} to serve tasks`, async () => {
      const ids = await tasksServices();
      return ids.length === 1 && ids[0] === id ? true : undefined;
    });
  /** Backend pids of sessions holding the dispatcher leader lock in this database. */
  const lockHolders = async () =>
    (
      await pool.query<{ pid: number }>(
        `select l.pid from pg_locks l join pg_stat_activity s on s.pid = l.pid
          where l.locktype = 'advisory' and l.granted and s.application_name = $1 and s.datname = current_database()`,
        [DISPATCHER_LEADER_APPLICATION_NAME],
      )
    ).rows.map((r) => r.pid);
  const sessionAlive = async (pid: number) => (await pool.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 1;

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'leader-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'leader-test', logger });
    ncA = await connectNats({ url: natsServer.url, name: 'leader-test-a', logger });
    ncB = await connectNats({ url: natsServer.url, name: 'leader-test-b', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('dispatcher_leader'), max: 8 });
    store = new PostgresEventStore({ pool });
    await store.init();
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await Promise.all(agents.map((h) => h.stop()));
    for (const c of [nc, ncA, ncB]) if (c) await closeNats(c);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('two dispatchers on one database: one active, one standby; tasks are assigned once, by the active one only', async () => {
    a = await startDispatcher({ store, nats: ncA, pool, logger, ...fast, standbyPollMs: SLOW_POLL_MS });
    b = await startDispatcher({ store, nats: ncB, pool, logger, ...fast, standbyPollMs: FAST_POLL_MS });
    assert.equal(a.role, 'active');
    assert.equal(b.role, 'standby');
    await a.whenActive();
    assert.throws(() => b.dispatcher, isUnavailable);
    assert.throws(() => b.service, isUnavailable);
    assert.ok(b.projections, 'the standby runs the projections too');
    // Only the active process serves `tasks`.
    await onlyServer(a.service.info().id);
    assert.equal((await lockHolders()).length, 1);

    await agent('data_analyst', 'da-1');
    await seen(a, 'da-1');
    const done = await Promise.all(
      ['one', 'two', 'three'].map((echo) => execute({ task_type: 'noop', context: { echo }, agent: 'data_analyst', idempotency_key: `lead-${echo}` })),
    );
    for (const r of done) {
      assert.equal(r.status, 'completed');
      const types = await eventTypes(r.task_id);
      assert.equal(count(types, 'TaskAssigned'), 1, `one assignment for ${r.task_id}: ${types.join(',')}`);
      assert.equal(count(types, 'TaskCompleted'), 1);
    }
    assert.equal(b.role, 'standby');

    // A standby stopped before its turn: whenActive rejects instead of hanging.
    const c = await startDispatcher({ store, nats: ncB, pool, logger, ...fast, standbyPollMs: FAST_POLL_MS });
    assert.equal(c.role, 'standby');
    const waiting = c.whenActive();
    await c.stop();
    await assert.rejects(waiting, isUnavailable);
  });

  it('when the active lock session is terminated, that process stands by and the other takes over', async () => {
    const holders = await lockHolders();
    assert.equal(holders.length, 1);
    await pool.query('select pg_terminate_backend($1)', [holders[0]]);

    await within('the standby to take over', b.whenActive());
    assert.equal(b.role, 'active');
    await until('the old active to stand by', () => (a.role === 'standby' ? true : undefined));
    assert.throws(() => a.dispatcher, isUnavailable);
    // The old active's `tasks` service is gone; only the new one answers.
    await onlyServer(b.service.info().id);
    assert.equal((await lockHolders()).length, 1);

    await seen(b, 'da-1');
    const r = await execute({ task_type: 'noop', context: { echo: 'after-takeover' }, agent: 'data_analyst', idempotency_key: 'lead-after-kill' });
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.result, { echo: 'after-takeover', slept_ms: 0 });
    assert.equal(count(await eventTypes(r.task_id), 'TaskAssigned'), 1);
    assert.equal(a.role, 'standby', 'the old active stays standby while the other holds the lock');
  });

  it('stop() of the active releases the lock at once; the standby takes over and runs what was queued and in flight', async () => {
    // 1. A task no instance can take (no operations_manager runs), and one in flight on da-1.
    const queued = await submit({ task_type: 'noop', context: { echo: 'q' }, agent: 'operations_manager' });
    assert.equal(queued.status, 'queued');
    const inflight = await submit({ task_type: 'noop', context: { sleep_ms: 3_000, echo: 'f' }, agent: 'data_analyst' });
    assert.equal(inflight.instance, 'da-1');
    await until('the task to be working on da-1', async () => ((await get(inflight.task_id)).status === 'working' ? true : undefined));

    // 2. The active stops: its lock session is gone when stop() returns.
    const [bSession] = await lockHolders();
    assert.ok(bSession);
    await b.stop();
    assert.equal(b.role, 'standby');
    assert.throws(() => b.dispatcher, isUnavailable);
    assert.equal(await sessionAlive(bSession), false, 'the stopped active has ended its lock session');

    // 3. The standby takes over and recovers both tasks from the read model.
    await within('the standby to take over', a.whenActive());
    assert.equal(a.role, 'active');
    await agent('operations_manager', 'om-1');
    const [q, f] = [await ended(queued.task_id), await ended(inflight.task_id)];
    assert.equal(q.status, 'completed');
    assert.deepEqual(q.result, { echo: 'q', slept_ms: 0 });
    assert.equal(q.instance, 'om-1');
    const qTypes = await eventTypes(queued.task_id);
    assert.equal(count(qTypes, 'TaskAssigned'), 1);
    assert.equal(count(qTypes, 'TaskCompleted'), 1);
    assert.equal(f.status, 'completed');
    assert.deepEqual(f.result, { echo: 'f', slept_ms: 3_000 });
    const fTypes = await eventTypes(inflight.task_id);
    // The abandoned attempt is retried once by the new active (no attempt used: da-1 is alive).
    assert.equal(count(fTypes, 'TaskRetryScheduled'), 1);
    assert.equal(count(fTypes, 'TaskAssigned'), 2);
    assert.equal(count(fTypes, 'TaskCompleted'), 1);
    assert.equal(f.attempts, 0);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, isAppError, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { FencedError, PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import {
  taskExecuteReply,
  taskIdForIdempotencyKey,
  taskSubmitReply,
  taskView,
  type TaskView,
  tasksSubject,
} from '@switchyard/contracts';
import { startAgent, type AgentHandle } from '@switchyard/agents';
import { partitionFenceName, startDispatcher, taskPartition, type DispatcherHandle } from './index.js';

/**
 * Dispatchers sharing the tasks by partition leases (real PostgreSQL and nats-server): both
 * serve at once, each placing only the tasks of its partitions; a stopped one's partitions are
 * taken over; a dispatcher whose lease was taken over cannot append (fenced).
 */
const logger = createLogger('dispatcher-partitions-int', process.env.LOG_LEVEL ?? 'silent');
const PARTITIONS = 4;
const fast = {
  pollIntervalMs: 100,
  healthIntervalMs: 200,
  discoveryIntervalMs: 300,
  discoveryWaitMs: 150,
  probeTimeoutMs: 500,
  partitions: PARTITIONS,
  leaseTickMs: 200,
  leaseTtlMs: 1_500,
  drainMs: 1_000,
};

describe('dispatcher partitions: every dispatcher serves, leases with fencing (real PostgreSQL and NATS)', () => {
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

  const submit = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('submit'), input, { schema: taskSubmitReply });
  const execute = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('execute'), input, { schema: taskExecuteReply, timeoutMs: 30_000 });
  const get = (task_id: string): Promise<TaskView> =>
    request(nc, tasksSubject('get'), { task_id }, { schema: taskView });
  const ended = (id: string) =>
    until(`task ${id} to end`, async () => {
      const v = await get(id);
      return ['completed', 'failed', 'canceled', 'timed_out'].includes(v.status) ? v : undefined;
    });
  const eventTypes = async (taskId: string) => (await store.readStream(taskStreamId(taskId))).map((e) => e.type);
  const count = (types: string[], type: string) => types.filter((t) => t === type).length;
  const held = (d: DispatcherHandle) => [...d.leases.owned().keys()].sort((x, y) => x - y);
  const seen = (d: DispatcherHandle, instance: string) =>
    until(
      `dispatcher to see ${instance}`,
      () =>
        d.dispatcher.health().some((h) => h.instances.some((i) => i.instance === instance && i.healthy)) || undefined,
    );
  /** An idempotency key whose task falls in `partition`. */
  const keyIn = (partition: number, prefix: string) => {
    for (let i = 0; ; i++)
      if (taskPartition(taskIdForIdempotencyKey(`${prefix}-${i}`), PARTITIONS) === partition) return `${prefix}-${i}`;
  };

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'partitions-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'partitions-test', logger });
    ncA = await connectNats({ url: natsServer.url, name: 'partitions-test-a', logger });
    ncB = await connectNats({ url: natsServer.url, name: 'partitions-test-b', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('dispatcher_partitions'), max: 10 });
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

  it('a lone dispatcher leases every partition; a second one gets its share; both place tasks, each once', async () => {
    a = await startDispatcher({ store, nats: ncA, pool, logger, ...fast, memberId: 'disp-a' });
    assert.deepEqual(held(a), [0, 1, 2, 3], 'alone, it holds every partition after its first tick');
    b = await startDispatcher({ store, nats: ncB, pool, logger, ...fast, memberId: 'disp-b' });
    await until(
      'the partitions to be shared 2 + 2',
      () => (held(a).length === 2 && held(b).length === 2 ? true : undefined),
      20_000,
    );
    assert.deepEqual([...held(a), ...held(b)].sort(), [0, 1, 2, 3]);

    agents.push(await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'da-1', logger, noop: true }));
    await seen(a, 'da-1');
    await seen(b, 'da-1');
    // One task per partition, sent through the queue group (whichever dispatcher answers).
    const done = await Promise.all(
      [0, 1, 2, 3].map((p) =>
        execute({
          task_type: 'noop',
          context: { echo: `p${p}` },
          agent: 'data_analyst',
          idempotency_key: keyIn(p, 'share'),
        }),
      ),
    );
    for (const r of done) {
      assert.equal(r.status, 'completed');
      const types = await eventTypes(r.task_id);
      assert.equal(count(types, 'TaskAssigned'), 1, `one assignment for ${r.task_id}: ${types.join(',')}`);
      assert.equal(count(types, 'TaskCompleted'), 1);
    }
    // A submission reaching the dispatcher that does not hold its partition: recorded there, run by the owner;
    // the non-owner's caller is told of the progress and the end from the log.
    const pa = held(a)[0]!;
    const notices: string[] = [];
    const foreignKey = keyIn(pa, 'foreign');
    const unwatch = b.dispatcher.watchProgress(taskIdForIdempotencyKey(foreignKey), (st) => notices.push(st));
    const sub = await b.dispatcher.submit(
      {
        task_type: 'noop',
        context: { echo: 'via b' },
        priority: 'normal',
        agent: 'data_analyst',
        idempotency_key: foreignKey,
      },
      'corr-foreign',
    );
    assert.equal(sub.status, 'queued', 'the non-owner records the submission only');
    const end = await b.dispatcher.waitForEnd(sub.task_id);
    unwatch();
    assert.equal(end.status, 'completed');
    assert.ok(notices.includes('started'), `progress passed on: ${notices.join(',')}`);
    assert.deepEqual(await eventTypes(sub.task_id), [
      'TaskSubmitted',
      'TaskQueued',
      'TaskAssigned',
      'TaskStarted',
      'TaskCompleted',
    ]);
    // The assignment slots were given back.
    await until('the slots to be given back', async () =>
      (await pool.query('select count(*)::int as n from delegation.assignments')).rows[0].n === 0 ? true : undefined,
    );
  });

  it("an agent's concurrency limit holds across dispatchers (shared slots in PostgreSQL)", async () => {
    // 1. An instance that takes one task at a time; tasks in partitions of both dispatchers.
    agents.push(
      await startAgent({
        nats: nc,
        pool,
        agent: 'financial_advisor',
        instanceId: 'fa-1',
        logger,
        noop: true,
        maxConcurrency: 1,
      }),
    );
    await seen(a, 'fa-1');
    await seen(b, 'fa-1');
    const subs = await Promise.all(
      [0, 1, 2, 3, 0, 1].map((p, i) =>
        submit({
          task_type: 'noop',
          context: { sleep_ms: 300 },
          agent: 'financial_advisor',
          idempotency_key: keyIn(p, `cap${i}`),
        }),
      ),
    );
    // 2. While they run, never more than one slot row for the instance.
    let most = 0;
    const watch = setInterval(() => {
      void pool.query(`select count(*)::int as n from delegation.assignments where agent = 'financial_advisor'`).then(
        (r) => (most = Math.max(most, r.rows[0].n)),
        () => undefined,
      );
    }, 20);
    try {
      for (const s of subs) assert.equal((await ended(s.task_id)).status, 'completed');
    } finally {
      clearInterval(watch);
    }
    assert.equal(most, 1, 'one running attempt at a time for a one-slot instance, whichever dispatcher placed it');
    for (const s of subs) {
      const types = await eventTypes(s.task_id);
      assert.equal(count(types, 'TaskCompleted'), 1);
      assert.equal(count(types, 'TaskRetryScheduled'), 0, `no busy refusal: ${types.join(',')}`);
    }
  });

  it('a dispatcher whose lease was taken over cannot append: the fence refuses it', async () => {
    // 1. A task of one of b's partitions, queued (no instance of operations_manager runs).
    const p = held(b)[0]!;
    const key = keyIn(p, 'fence');
    const sub = await submit({
      task_type: 'noop',
      context: { echo: 'fenced' },
      agent: 'operations_manager',
      idempotency_key: key,
    });
    assert.equal(sub.status, 'queued');
    const epoch = b.leases.fence(p)!.epoch;
    // 2. Another member takes b's lease over (as after b paused past its TTL): epoch + 1, fence raised.
    await pool.query(
      `update delegation.dispatcher_leases set owner = 'intruder', epoch = epoch + 1, expires_at = now() + interval '1 hour' where partition = $1`,
      [p],
    );
    await store.raiseFence(partitionFenceName('delegation', p), epoch + 1);
    // 3. b's write with its old epoch is refused, in the append's own transaction.
    await assert.rejects(
      store.append(
        taskStreamId(sub.task_id),
        [
          {
            type: 'TaskCanceled',
            data: { task_id: sub.task_id },
            metadata: { timestamp: new Date().toISOString(), correlationId: 'x' },
          },
        ],
        {
          fence: { name: partitionFenceName('delegation', p), epoch },
        },
      ),
      (e: unknown) => e instanceof FencedError && e.current === epoch + 1,
    );
    // ... and so is b's own dispatcher: an instance that would take the task appears, b tries to
    // assign it, the fenced append makes b drop the partition (its renewal finds it gone too).
    agents.push(
      await startAgent({ nats: nc, pool, agent: 'operations_manager', instanceId: 'om-1', logger, noop: true }),
    );
    await until('b to drop the partition taken from it', () => (!held(b).includes(p) ? true : undefined));
    assert.deepEqual(
      await eventTypes(sub.task_id),
      ['TaskSubmitted', 'TaskQueued'],
      'nothing written after the takeover',
    );
    // 4. The intruder "dies": its lease expires, a live dispatcher takes the partition (epoch + 2) and places the task.
    await pool.query(
      `update delegation.dispatcher_leases set expires_at = now() - interval '1 second' where partition = $1`,
      [p],
    );
    const v = await ended(sub.task_id);
    assert.equal(v.status, 'completed');
    assert.equal(count(await eventTypes(sub.task_id), 'TaskAssigned'), 1);
    assert.ok(
      (await pool.query<{ epoch: string }>('select epoch from delegation.dispatcher_leases where partition = $1', [p]))
        .rows[0]!.epoch >= String(epoch + 2),
    );
  });

  it('stop() gives the partitions back at once; the other dispatcher takes them and runs what was queued there', async () => {
    const pa = held(a)[0]!;
    const queued = await submit({
      task_type: 'noop',
      context: { echo: 'q' },
      agent: 'customer_success',
      idempotency_key: keyIn(pa, 'stopq'),
    });
    assert.equal(queued.status, 'queued');
    await a.stop();
    const rows = await pool.query(`select count(*)::int as n from delegation.dispatcher_leases where owner = 'disp-a'`);
    assert.equal(rows.rows[0].n, 0, 'a stopped dispatcher holds no lease');
    await until('b to hold every partition', () => (held(b).length === PARTITIONS ? true : undefined), 20_000);
    agents.push(
      await startAgent({ nats: nc, pool, agent: 'customer_success', instanceId: 'cs-1', logger, noop: true }),
    );
    const q = await ended(queued.task_id);
    assert.equal(q.status, 'completed');
    assert.deepEqual(q.result, { echo: 'q', slept_ms: 0 });
    assert.equal(count(await eventTypes(queued.task_id), 'TaskAssigned'), 1);
    assert.ok(
      isAppError(await submit({ task_type: 'nope', context: {} }).catch((e: unknown) => e)),
      'the survivor still validates',
    );
  });
});

/**
 * The dispatcher's queue has a bound: with no agent to run them, submissions queue up to
 * `maxQueued`, and past it a new one is refused `rate_limited` (recorded nowhere) while a repeat
 * of a queued task still gets its task; a freed place takes a new one; past three quarters of
 * it, a key's share is bounded. Real nats-server and PostgreSQL.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, isAppError, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { taskIdForIdempotencyKey, taskSubmitReply, tasksSubject } from '@switchyard/contracts';
import { startDispatcher, type DispatcherHandle } from './index.js';

const logger = createLogger('queue-bound-int', process.env.LOG_LEVEL ?? 'silent');
const MAX_QUEUED = 3;

/** Two 10 KB contexts fit, a third does not (while the count bound, 3, would take it). */
const MAX_QUEUED_BYTES = 25_000;

describe('the dispatcher queue is bounded (maxQueued)', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;

  const submit = (key: string) =>
    request(
      nc,
      tasksSubject('submit'),
      { task_type: 'revenue_analysis', context: { timeframe: '30d' }, idempotency_key: key },
      { schema: taskSubmitReply },
    );

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'queue-bound-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'queue-bound-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('queue_bound'), max: 8 });
    store = new PostgresEventStore({ pool });
    await store.init();
    // No agent runs: every task waits in the queue.
    d = await startDispatcher({
      store,
      nats: nc,
      pool,
      logger,
      maxQueued: MAX_QUEUED,
      maxQueuedBytes: MAX_QUEUED_BYTES,
      pollIntervalMs: 100,
    });
  });

  after(async () => {
    await d?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('an agent named for a task type it does not take is refused: the task could never be placed', async () => {
    await assert.rejects(
      request(
        nc,
        tasksSubject('submit'),
        { task_type: 'revenue_analysis', context: { timeframe: '30d' }, agent: 'customer_success' },
        { schema: taskSubmitReply },
      ),
      (err) => {
        assert.ok(isAppError(err), String(err));
        assert.equal(err.code, 'validation');
        assert.match(err.message, /agent customer_success does not take task type revenue_analysis/);
        const takers = err.details.agents as string[];
        assert.ok(takers.length > 0 && !takers.includes('customer_success'), JSON.stringify(err.details));
        return true;
      },
    );
    assert.equal(d.dispatcher.queuedCount(), 0);
  });

  it("the queued tasks' contexts are bounded in bytes too: past it a new one is refused, recording nothing", async () => {
    const big = (key: string) =>
      request(
        nc,
        tasksSubject('submit'),
        { task_type: 'support_response', context: { query: 'x'.repeat(10_000) }, idempotency_key: key },
        { schema: taskSubmitReply },
      );
    const held = [await big('bytes-0'), await big('bytes-1')];
    assert.deepEqual(
      held.map((t) => t.status),
      ['queued', 'queued'],
    );
    await assert.rejects(big('bytes-over'), (err) => {
      assert.ok(isAppError(err), String(err));
      assert.equal(err.code, 'rate_limited');
      assert.equal(err.details.max_queued_bytes, MAX_QUEUED_BYTES);
      assert.match(err.message, /DISPATCHER_MAX_QUEUED_BYTES/);
      return true;
    });
    assert.deepEqual(await store.readStream(taskStreamId(taskIdForIdempotencyKey('bytes-over'))), []);
    // A small one still fits; and what is canceled leaves room.
    assert.equal((await submit('bytes-small')).status, 'queued');
    for (const t of held) await d.dispatcher.cancel(t.task_id, 'make room', 'test');
    await d.dispatcher.cancel((await submit('bytes-small')).task_id, 'make room', 'test');
    assert.equal(d.dispatcher.queuedCount(), 0);
    assert.equal((await big('bytes-over')).status, 'queued');
    await d.dispatcher.cancel(taskIdForIdempotencyKey('bytes-over'), 'make room', 'test');
  });

  it("past three quarters of the bound, a key holding a quarter or more is refused and the rest stays open to others (a workflow's task counts as its starter's)", async () => {
    const as = (key: string, who: { actor: string; on_behalf_of?: string }) =>
      request(
        nc,
        tasksSubject('submit'),
        { task_type: 'revenue_analysis', context: { timeframe: '30d' }, idempotency_key: key, ...who },
        { schema: taskSubmitReply },
      );
    const hog = { actor: 'apikey:hog' };
    const held = [await as('share-h0', hog), await as('share-h1', hog)];
    const refusedForShare = (err: unknown) => {
      assert.ok(isAppError(err), String(err));
      assert.equal(err.code, 'rate_limited');
      assert.equal(err.details.caller_queued, 2);
      assert.match(err.message, /kept for others/);
      return true;
    };
    await assert.rejects(as('share-h2', hog), refusedForShare);
    await assert.rejects(
      as('share-wf', { actor: 'system:orchestrator', on_behalf_of: 'apikey:hog' }),
      refusedForShare,
      "a workflow step's task is its starter's",
    );
    assert.deepEqual(await store.readStream(taskStreamId(taskIdForIdempotencyKey('share-h2'))), []);
    // Another key still gets the last place.
    const other = await as('share-o0', { actor: 'apikey:other' });
    assert.equal(other.status, 'queued');
    assert.equal(d.dispatcher.queuedCount(), MAX_QUEUED);
    for (const t of [...held, other]) await d.dispatcher.cancel(t.task_id, 'make room', 'test');
    assert.equal(d.dispatcher.queuedCount(), 0);
    // A burst, checked before any of it is queued, does not pass the share together.
    const burst = await Promise.allSettled([0, 1, 2].map((i) => as(`share-burst-${i}`, hog)));
    const queuedNow = burst.filter((r) => r.status === 'fulfilled');
    assert.ok(queuedNow.length <= 2, `${queuedNow.length} of a burst of 3 queued`);
    assert.ok(
      burst.some((r) => r.status === 'rejected' && isAppError(r.reason) && r.reason.code === 'rate_limited'),
      'the rest refused',
    );
    for (const r of queuedNow)
      await d.dispatcher.cancel((r as PromiseFulfilledResult<{ task_id: string }>).value.task_id, 'make room', 'test');
    assert.equal(d.dispatcher.queuedCount(), 0);
  });

  it('queues up to the bound, refuses past it (recording nothing), answers a repeat, and takes a new one once a place is free', async () => {
    const first = [];
    for (let i = 0; i < MAX_QUEUED; i++) first.push(await submit(`bound-${i}`));
    assert.deepEqual(
      first.map((t) => t.status),
      Array.from({ length: MAX_QUEUED }, () => 'queued'),
    );
    assert.equal(d.dispatcher.queuedCount(), MAX_QUEUED);

    await assert.rejects(submit('bound-over'), (err) => {
      assert.ok(isAppError(err), String(err));
      assert.equal(err.code, 'rate_limited');
      assert.equal(err.details.max_queued, MAX_QUEUED);
      assert.equal(typeof err.details.retry_after_ms, 'number');
      assert.match(err.message, /queue is full/);
      return true;
    });
    const refusedId = taskIdForIdempotencyKey('bound-over');
    assert.deepEqual(await store.readStream(taskStreamId(refusedId)), [], 'a refused submission records nothing');

    const repeat = await submit('bound-1');
    assert.equal(repeat.task_id, first[1]!.task_id);
    assert.equal(repeat.duplicate, true);

    await d.dispatcher.cancel(first[0]!.task_id, 'make room', 'test');
    assert.equal(d.dispatcher.queuedCount(), MAX_QUEUED - 1);
    const next = await submit('bound-over');
    assert.equal(next.status, 'queued');
    assert.equal(d.dispatcher.queuedCount(), MAX_QUEUED);
  });

  it('with a bound of 8: one key queues three quarters (6); another, under its quarter (2), still gets in past them, then the queue is full', async () => {
    for (const key of ['bound-1', 'bound-2', 'bound-over'])
      await d.dispatcher.cancel(taskIdForIdempotencyKey(key), 'make room', 'test');
    await d.stop();
    d = await startDispatcher({ store, nats: nc, pool, logger, maxQueued: 8, pollIntervalMs: 100 });
    assert.equal(d.dispatcher.queuedCount(), 0);
    const as = (key: string, actor: string) =>
      request(
        nc,
        tasksSubject('submit'),
        { task_type: 'revenue_analysis', context: { timeframe: '30d' }, idempotency_key: key, actor },
        { schema: taskSubmitReply },
      );
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'queued',
        (e: unknown) => (isAppError(e) ? `${e.code}${/kept for others/.test(e.message) ? ':share' : ''}` : String(e)),
      );
    const hog = [];
    for (let i = 0; i < 7; i++) hog.push(await code(as(`eight-h${i}`, 'apikey:hog8')));
    assert.deepEqual(hog, [...Array.from({ length: 6 }, () => 'queued'), 'rate_limited:share']);
    const other = [];
    for (let i = 0; i < 3; i++) other.push(await code(as(`eight-o${i}`, 'apikey:other8')));
    assert.deepEqual(other, ['queued', 'queued', 'rate_limited'], 'its quarter (2), then the bound');
    assert.equal(d.dispatcher.queuedCount(), 8);
  });
});

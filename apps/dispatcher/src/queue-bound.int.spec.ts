/**
 * The dispatcher's queue has a bound: with no agent to run them, submissions queue up to
 * `maxQueued`, and past it a new one is refused `rate_limited` (recorded nowhere) while a repeat
 * of a queued task still gets its task; a freed place takes a new one. Real nats-server and
 * PostgreSQL.
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
    d = await startDispatcher({ store, nats: nc, pool, logger, maxQueued: MAX_QUEUED, pollIntervalMs: 100 });
  });

  after(async () => {
    await d?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
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
});

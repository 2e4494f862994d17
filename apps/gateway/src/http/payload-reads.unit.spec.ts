import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { AppError } from '@switchyard/platform';
import { runInRequestContext } from './context.js';
import type { EdgeRequest } from './edge.js';
import { PayloadReads } from './payload-reads.js';

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const busy503 = (err: unknown) => err instanceof AppError && err.status === 503;
const busy = (err: unknown) =>
  err instanceof AppError &&
  err.status === 503 &&
  err.retryable &&
  (err.details as { retry_after_ms?: number }).retry_after_ms === 1_000;

describe('PayloadReads: reads of whole payloads take turns', () => {
  it('runs `concurrency` at once, queues `queue` more in order, and refuses the next with a retryable 503', async () => {
    const gate = new PayloadReads(1, 1, 10_000);
    const first = deferred();
    const order: string[] = [];
    const a = gate.run(async () => {
      order.push('a');
      await first.promise;
      return 'a';
    });
    const b = gate.run(async () => {
      order.push('b');
      return 'b';
    });
    await assert.rejects(
      gate.run(async () => 'c'),
      busy,
    );
    assert.deepEqual(order, ['a'], 'the queued read waits for the running one');
    first.resolve();
    assert.deepEqual(await Promise.all([a, b]), ['a', 'b']);
    assert.deepEqual(order, ['a', 'b']);
    await sleep(0);
    assert.deepEqual(gate.load, { running: 0, waiting: 0 });
  });

  it('a waiter that gave up (half the request timeout) leaves the queue: it never runs, and the turn goes to the next live one', async () => {
    const gate = new PayloadReads(1, 4, 100); // waits at most 50 ms
    const hold = deferred();
    const running = gate.run(() => hold.promise);
    let lateStarted = false;
    const late = gate.run(async () => {
      lateStarted = true;
    });
    await assert.rejects(late, busy);
    assert.deepEqual(gate.load, { running: 1, waiting: 0 }, 'the one that gave up left the queue');
    const next = gate.run(async () => 'next');
    hold.resolve();
    await running;
    assert.equal(await next, 'next', 'the turn was not lost on the one that gave up');
    assert.equal(lateStarted, false);
  });

  it('a failing read passes its error on and frees its turn', async () => {
    const gate = new PayloadReads(1, 0, 1_000);
    await assert.rejects(
      gate.run(async () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(await gate.run(async () => 42), 42);
  });

  it('in a request, the turn is held until the answer went out (the serialisation is most of the cost)', async () => {
    const gate = new PayloadReads(1, 4, 10_000);
    const response = Object.assign(new EventEmitter(), { writableFinished: false, destroyed: false });
    const req = { correlationId: 'c1' } as unknown as EdgeRequest;
    const first = await new Promise<string>((resolve, reject) =>
      runInRequestContext(req, () => void gate.run(async () => 'first').then(resolve, reject), response),
    );
    assert.equal(first, 'first');
    let secondStarted = false;
    const second = gate.run(async () => {
      secondStarted = true;
    });
    await sleep(20);
    assert.equal(secondStarted, false, 'the first answer has not gone out yet');
    response.emit('close');
    await second;
    assert.equal(secondStarted, true);
  });

  it('a waiter whose client hung up leaves the queue at once, and its read is never run', async () => {
    const gate = new PayloadReads(1, 1, 10_000);
    const hold = deferred();
    const running = gate.run(() => hold.promise);
    const response = Object.assign(new EventEmitter(), { writableFinished: false, destroyed: false });
    const req = { correlationId: 'c2' } as unknown as EdgeRequest;
    let goneStarted = false;
    const gone = new Promise<unknown>((resolve) =>
      runInRequestContext(
        req,
        () =>
          void gate
            .run(async () => {
              goneStarted = true;
            })
            .then(resolve, resolve),
        response,
      ),
    );
    assert.deepEqual(gate.load, { running: 1, waiting: 1 });
    response.destroyed = true;
    response.emit('close');
    assert.ok(busy503(await gone), 'the one that hung up is told so');
    assert.deepEqual(gate.load, { running: 1, waiting: 0 }, 'its place is free at once');
    const next = gate.run(async () => 'next');
    hold.resolve();
    await running;
    assert.equal(await next, 'next');
    assert.equal(goneStarted, false);
  });
});

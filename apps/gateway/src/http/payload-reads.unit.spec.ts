import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@switchyard/platform';
import { PayloadReads } from './payload-reads.js';

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

describe('PayloadReads: reads of whole payloads take turns', () => {
  it('runs `concurrency` at once, queues `queue` more in order, and refuses the next with a retryable 503', async () => {
    const gate = new PayloadReads(1, 1, 5_000);
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
      (err: unknown) =>
        err instanceof AppError &&
        err.status === 503 &&
        err.retryable &&
        (err.details as { retry_after_ms?: number }).retry_after_ms === 1_000,
    );
    assert.deepEqual(order, ['a'], 'the queued read waits for the running one');
    first.resolve();
    assert.deepEqual(await Promise.all([a, b]), ['a', 'b']);
    assert.deepEqual(order, ['a', 'b']);
  });

  it('a read that waited past the request timeout is never started (its client already has its 504)', async () => {
    const gate = new PayloadReads(1, 4, 50);
    const hold = deferred();
    const running = gate.run(() => hold.promise);
    let started = false;
    const late = gate.run(async () => {
      started = true;
    });
    await new Promise((r) => setTimeout(r, 120));
    hold.resolve();
    await running;
    await assert.rejects(late, (err: unknown) => err instanceof AppError && err.status === 504);
    assert.equal(started, false);
  });

  it('a failing read passes its error on and frees its turn', async () => {
    const gate = new PayloadReads(1, 0, 1_000);
    await assert.rejects(
      gate.run(async () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(await gate.run(async () => 42), 42);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs } from './backoff.js';

describe('backoffMs', () => {
  it('doubles from the initial wait and stops at the cap, for any attempt count', () => {
    assert.deepEqual(
      [0, 1, 2, 5, 6, 7, 1_000].map((a) => backoffMs(a)),
      [100, 200, 400, 3_200, 5_000, 5_000, 5_000],
    );
    assert.equal(backoffMs(3, { initialMs: 250, maxMs: 10_000 }), 2_000);
    assert.equal(backoffMs(-1), 100);
    assert.equal(backoffMs(Number.MAX_SAFE_INTEGER, { maxMs: 60_000 }), 60_000);
  });

  it('with equal jitter: between half the wait and the wait', () => {
    for (let i = 0; i < 200; i++) {
      const ms = backoffMs(4, { jitter: 'equal' });
      assert.ok(ms >= 800 && ms <= 1_600, String(ms));
    }
  });
});

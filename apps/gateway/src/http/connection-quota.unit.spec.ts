import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isAppError } from '@switchyard/platform';
import { ConnectionQuota } from './connection-quota.js';

const quota = () =>
  new ConnectionQuota('things', { perCaller: 2, total: 3, perCallerSetting: 'PER', totalSetting: 'ALL' });
const refusal = (fn: () => unknown): { code: string; message: string } => {
  try {
    fn();
  } catch (err) {
    assert.ok(isAppError(err));
    return { code: err.code, message: err.message };
  }
  assert.fail('expected a refusal');
};

describe('ConnectionQuota', () => {
  it('refuses a caller past its share (rate_limited) and everyone past the total (unavailable), naming the setting', () => {
    const q = quota();
    q.take('a');
    q.take('a');
    const mine = refusal(() => q.take('a'));
    assert.equal(mine.code, 'rate_limited');
    assert.match(mine.message, /at most 2 \(PER\)/);
    q.take('b');
    const all = refusal(() => q.take('c'));
    assert.equal(all.code, 'unavailable');
    assert.match(all.message, /at most 3 \(ALL\)/);
    assert.equal(q.open, 3);
  });

  it('a release frees its slot once, however often it is called', () => {
    const q = quota();
    const first = q.take('a');
    q.take('a');
    first();
    first();
    assert.equal(q.openBy('a'), 1);
    assert.equal(q.open, 1);
    q.take('a');
    assert.equal(refusal(() => q.take('a')).code, 'rate_limited');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WallClockWatch } from './clock-step.js';

describe('WallClockWatch', () => {
  it('says nothing on the first reading, then how far the wall clock moved against the monotonic one', () => {
    const watch = new WallClockWatch();
    assert.equal(watch.step(1_000_000, 10), undefined);
    assert.equal(watch.step(1_001_000, 1_010), 0, 'both moved a second: no step');
    assert.equal(watch.step(1_001_000 + 3_600_000 + 1_000, 2_010), 3_600_000, 'an hour forward');
    assert.equal(watch.step(1_003_000, 3_010), -3_600_000, 'an hour back');
  });
});

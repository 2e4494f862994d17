import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CachedState } from './engine-types.js';
import { StateCache } from './state-cache.js';

const entry = (revision: number): CachedState =>
  ({ state: { status: 'not_started' }, revision, timersInTable: false }) as unknown as CachedState;

describe('StateCache', () => {
  it('drops the states not used for its idle time, and keeps those used since', () => {
    const cache = new StateCache(100, 1_000, () => 0.1);
    cache.remember('waiting', entry(1), 0);
    cache.remember('busy', entry(1), 0);
    cache.remember('busy', entry(2), 900);
    assert.deepEqual(cache.sweep(1_500), { dropped: 1, why: 'idle' });
    assert.deepEqual([...cache.keys()], ['busy']);
    assert.equal(cache.get('busy')?.revision, 2);
    assert.deepEqual(cache.sweep(1_800), { dropped: 0, why: 'idle' });
    assert.deepEqual(cache.sweep(1_900), { dropped: 1, why: 'idle' });
    assert.equal(cache.size, 0);
  });

  it('once the memory is past half the process ceiling, drops all but the states used in the last ten seconds', () => {
    let share = 0.2;
    const cache = new StateCache(100, 60_000, () => share);
    for (let i = 0; i < 10; i++) cache.remember(`e${i}`, entry(i), 0);
    cache.remember('just-now', entry(1), 25_000);
    assert.deepEqual(cache.sweep(30_000), { dropped: 0, why: 'idle' });
    share = 0.7;
    assert.deepEqual(cache.sweep(30_000), { dropped: 10, why: 'memory' });
    assert.deepEqual([...cache.keys()], ['just-now'], "a command's state whose events may not have come back yet");
  });

  it('a state deleted or cleared is not swept later, and the count bound still starts over', () => {
    const cache = new StateCache(2, 1_000, () => 0.1);
    cache.remember('a', entry(1), 0);
    cache.delete('a');
    cache.remember('a', entry(2), 5_000);
    assert.deepEqual(cache.sweep(5_500), { dropped: 0, why: 'idle' }, 'the first use was forgotten with the delete');
    cache.remember('b', entry(1), 5_000);
    cache.remember('c', entry(1), 5_000);
    cache.remember('d', entry(1), 5_000); // past the bound of 2: starts over
    assert.deepEqual([...cache.keys()], ['d']);
    assert.deepEqual(cache.sweep(5_500), { dropped: 0, why: 'idle' });
  });
});

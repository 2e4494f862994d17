import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryEventStore } from './in-memory/in-memory-event-store.js';
import { handleCommand, type DeciderLike } from './command-handler.js';

type Cmd = { type: 'Add'; amount: number };
type Ev = { type: 'Added'; data: { amount: number }; metadata: { correlationId: string; timestamp: string } };
type State = { total: number; limit: number };

const counter: DeciderLike<Cmd, Ev, State> = {
  initialState: { total: 0, limit: 10 },
  decide: (c, s) => {
    if (c.amount === 0) return [];
    if (s.total + c.amount > s.limit) throw new Error('over the limit');
    return [{ type: 'Added', data: { amount: c.amount }, metadata: { correlationId: 'c', timestamp: '2026-01-01T00:00:00Z' } }];
  },
  evolve: (s, e) => ({ ...s, total: s.total + e.data.amount }),
};

describe('handleCommand', () => {
  it('appends what the decider decides and returns the new state', async () => {
    const store = new InMemoryEventStore();
    const r1 = await handleCommand(store, 'counter-1', counter, { type: 'Add', amount: 3 });
    const r2 = await handleCommand(store, 'counter-1', counter, { type: 'Add', amount: 4 });
    assert.equal(r1.revision, 0);
    assert.equal(r2.revision, 1);
    assert.equal(r2.state.total, 7);
    assert.deepEqual((await store.readStream('counter-1')).map((e) => e.data), [{ amount: 3 }, { amount: 4 }]);
  });

  it('appends nothing when nothing is decided', async () => {
    const store = new InMemoryEventStore();
    const r = await handleCommand(store, 'counter-2', counter, { type: 'Add', amount: 0 });
    assert.equal(r.revision, -1);
    assert.equal((await store.readStream('counter-2')).length, 0);
  });

  it('re-decides on a revision conflict, so concurrent commands both respect the invariant', async () => {
    const store = new InMemoryEventStore();
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => handleCommand(store, 'counter-3', counter, { type: 'Add', amount: 3 })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    assert.equal(ok, 3, 'three adds of 3 fit under 10; the others see the new total and are refused');
    const total = (await store.readStream('counter-3')).reduce((t, e) => t + (e.data as { amount: number }).amount, 0);
    assert.equal(total, 9);
  });
});

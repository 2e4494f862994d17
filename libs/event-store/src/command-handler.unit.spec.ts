import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryEventStore } from './in-memory/in-memory-event-store.js';
import type { Decider } from '@switchyard/domain';
import { handleCommand } from './command-handler.js';

type Cmd = { type: 'Add'; amount: number };
type Ev = { type: 'Added'; data: { amount: number }; metadata: { correlationId: string; timestamp: string } };
type State = { total: number; limit: number };

const counter: Decider<Cmd, Ev, State> = {
  initialState: { total: 0, limit: 10 },
  decide: (c, s) => {
    if (c.amount === 0) return [];
    if (s.total + c.amount > s.limit) throw new Error('over the limit');
    return [
      {
        type: 'Added',
        data: { amount: c.amount },
        metadata: { correlationId: 'c', timestamp: '2026-01-01T00:00:00Z' },
      },
    ];
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
    assert.deepEqual(
      (await store.readStream('counter-1')).map((e) => e.data),
      [{ amount: 3 }, { amount: 4 }],
    );
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

  it('after a conflict reads only the events appended since its read, and decides on them folded on', async () => {
    const store = new InMemoryEventStore();
    await handleCommand(store, 'counter-busy', counter, { type: 'Add', amount: 2 });
    const reads: (number | undefined)[] = [];
    let competed = false;
    const busy = Object.assign(Object.create(store) as InMemoryEventStore, {
      readStream: (id: string, o?: { fromRevision?: number }) => {
        reads.push(o?.fromRevision);
        return store.readStream(id, o);
      },
      // Another writer comes first once: its append lands between this read and this append.
      append: async (...a: Parameters<InMemoryEventStore['append']>) => {
        if (!competed) {
          competed = true;
          await store.append('counter-busy', [
            {
              type: 'Added',
              data: { amount: 5 },
              metadata: { correlationId: 'other', timestamp: '2026-01-01T00:00:00Z' },
            },
          ]);
        }
        return store.append(...a);
      },
    });
    const r = await handleCommand(busy, 'counter-busy', counter, { type: 'Add', amount: 3 });
    assert.deepEqual(reads, [undefined, 1], 'a whole read (revision 0), then the events from revision 1 on');
    assert.equal(r.state.total, 10, 'decided on 2 + 5, then its own 3');
    assert.equal(r.revision, 2);
    // A command after it decides on every event, the other's included: the limit is reached.
    await assert.rejects(handleCommand(busy, 'counter-busy', counter, { type: 'Add', amount: 1 }), /over the limit/);
  });

  it('with a known state, appends with its revision without reading, and says so', async () => {
    const store = new InMemoryEventStore();
    const r1 = await handleCommand(
      store,
      'counter-4',
      counter,
      { type: 'Add', amount: 3 },
      { known: { state: counter.initialState, revision: -1 } },
    );
    assert.equal(r1.decidedOn, 'known');
    const r2 = await handleCommand(store, 'counter-4', counter, { type: 'Add', amount: 4 }, { known: r1 });
    assert.deepEqual([r2.decidedOn, r2.revision, r2.state.total], ['known', 1, 7]);
  });

  it('with a stale known state, falls back to read-decide-append on the conflict', async () => {
    const store = new InMemoryEventStore();
    const stale = await handleCommand(store, 'counter-5', counter, { type: 'Add', amount: 3 });
    await handleCommand(store, 'counter-5', counter, { type: 'Add', amount: 4 });
    let fellBack = 0;
    const r = await handleCommand(
      store,
      'counter-5',
      counter,
      { type: 'Add', amount: 2 },
      { known: stale, onFallback: () => fellBack++ },
    );
    assert.deepEqual([r.decidedOn, r.revision, r.state.total, fellBack], ['read', 2, 9, 1]);
  });

  it('re-checks a refusal or an empty decision of the known state on a read, unless trusted', async () => {
    const store = new InMemoryEventStore();
    await handleCommand(store, 'counter-6', counter, { type: 'Add', amount: 3 });
    // A known state that wrongly believes the counter full: the refusal is re-decided on the stream.
    const wrong = { state: { total: 10, limit: 10 }, revision: 0 };
    const r = await handleCommand(store, 'counter-6', counter, { type: 'Add', amount: 1 }, { known: wrong });
    assert.deepEqual([r.decidedOn, r.state.total], ['read', 4]);
    await assert.rejects(
      handleCommand(
        store,
        'counter-6',
        counter,
        { type: 'Add', amount: 1 },
        { known: { ...wrong, revision: 1 }, trust: { refusal: true } },
      ),
      /over the limit/,
    );
    const empty = await handleCommand(
      store,
      'counter-6',
      counter,
      { type: 'Add', amount: 0 },
      { known: { state: { total: 0, limit: 10 }, revision: 1 }, trust: { empty: true } },
    );
    assert.deepEqual([empty.decidedOn, empty.state.total], ['known', 0]);
    const checked = await handleCommand(
      store,
      'counter-6',
      counter,
      { type: 'Add', amount: 0 },
      { known: { state: { total: 0, limit: 10 }, revision: 1 } },
    );
    assert.deepEqual([checked.decidedOn, checked.state.total], ['read', 4]);
  });

  it('decides with decideKnown on the known state only', async () => {
    const store = new InMemoryEventStore();
    const twice = (c: Cmd, s: State): Ev[] => [
      ...counter.decide(c, s),
      ...counter.decide(c, { ...s, total: s.total + c.amount }),
    ];
    const r = await handleCommand(
      store,
      'counter-7',
      counter,
      { type: 'Add', amount: 2 },
      { known: { state: counter.initialState, revision: -1 }, decideKnown: twice },
    );
    assert.deepEqual([r.decidedOn, r.events.length, r.state.total], ['known', 2, 4]);
    const again = await handleCommand(
      store,
      'counter-7',
      counter,
      { type: 'Add', amount: 2 },
      { known: { state: counter.initialState, revision: -1 }, decideKnown: twice },
    );
    assert.deepEqual([again.decidedOn, again.events.length, again.state.total], ['read', 1, 6]);
  });

  it('takes the state a decideKnown folded already, without folding its events again', async () => {
    const store = new InMemoryEventStore();
    let evolved = 0;
    const counting = { ...counter, evolve: (st: State, e: Ev) => (evolved++, counter.evolve(st, e)) };
    const decideKnown = (c: Cmd, st: State) => {
      const events = counter.decide(c, st);
      return { events, state: events.reduce(counter.evolve, st) };
    };
    const r = await handleCommand(
      store,
      'counter-8',
      counting,
      { type: 'Add', amount: 2 },
      { known: { state: counter.initialState, revision: -1 }, decideKnown },
    );
    assert.deepEqual([r.decidedOn, r.state.total, evolved], ['known', 2, 0]);
  });

  it('folds the state from the events as stored: text PostgreSQL cannot keep (U+0000, a lone surrogate) is U+FFFD in both', async () => {
    type NoteEv = { type: 'Noted'; data: { text: string }; metadata: { correlationId: string; timestamp: string } };
    const notes: Decider<{ text: string }, NoteEv, { texts: string[] }> = {
      initialState: { texts: [] },
      decide: (c) => [{ type: 'Noted', data: { text: c.text }, metadata: { correlationId: 'c', timestamp: 't' } }],
      evolve: (st, e) => ({ texts: [...st.texts, e.data.text] }),
    };
    const store = new InMemoryEventStore();
    const raw = 'a\u0000b\ud83d';
    // Read way, then the known-state way (with a decideKnown that folded the raw events itself).
    const read = await handleCommand(store, 'notes-1', notes, { text: raw });
    const known = await handleCommand(
      store,
      'notes-1',
      notes,
      { text: raw },
      {
        known: { state: read.state, revision: read.revision },
        decideKnown: (c, st) => {
          const events = notes.decide(c, st);
          return { events, state: events.reduce(notes.evolve, st) };
        },
      },
    );
    const stored = (await store.readStream('notes-1')).map((e) => (e.data as { text: string }).text);
    assert.deepEqual(stored, ['a\ufffdb\ufffd', 'a\ufffdb\ufffd']);
    assert.deepEqual(known.state.texts, stored, 'the state the caller holds is the state a replay rebuilds');
    assert.deepEqual(
      known.events.map((e) => e.data.text),
      stored.slice(1),
    );
  });
});

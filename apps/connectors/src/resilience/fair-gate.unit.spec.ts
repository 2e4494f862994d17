import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import { FairGate } from './fair-gate.js';

/** What became of a waiter: served (its slot given back at once) or refused as a full queue refuses. */
const outcome = (p: Promise<() => void>): Promise<string> =>
  p.then(
    (release) => {
      release();
      return 'served';
    },
    (err: unknown) => (err instanceof BulkheadRejectedError ? 'refused' : String(err)),
  );

describe('FairGate', () => {
  it('a slot given back twice frees one slot; an abort after the slot was granted changes nothing', async () => {
    const gate = new FairGate(1, 2);
    const giveUp = new AbortController();
    const first = gate.tryAcquire()!;
    const second = gate.acquire('b', giveUp.signal);
    const third = gate.acquire('c');
    assert.equal(gate.depth, 2);
    first();
    first();
    const releaseSecond = await second;
    assert.equal(gate.inFlight, 1, 'the second released-twice did not let the third in as well');
    assert.equal(gate.depth, 1);
    giveUp.abort();
    assert.equal(gate.depth, 1, 'the third still waits');
    releaseSecond();
    (await third)();
    assert.equal(gate.inFlight, 0);
  });

  it("turns go round the keys, and within a key's turn round its `within`s: a person's small workflow does not wait behind their large one", async () => {
    const gate = new FairGate(1, 10);
    const order: string[] = [];
    const hold = gate.tryAcquire()!;
    const waiting = [
      ['alice', 'large', 'l1'],
      ['alice', 'large', 'l2'],
      ['alice', 'large', 'l3'],
      ['alice', 'small', 's'],
      ['bob', '', 'b'],
    ].map(async ([key, within, name]) => {
      const release = await gate.acquire(key!, undefined, within);
      order.push(name!);
      release();
    });
    hold();
    await Promise.all(waiting);
    assert.deepEqual(order, ['l1', 'b', 's', 'l2', 'l3']);
  });

  it('refuses past max_queue, and an aborted signal before the call, with the errors the policies know', async () => {
    const gate = new FairGate(1, 1);
    const hold = gate.tryAcquire()!;
    const waiting = gate.acquire('a');
    await assert.rejects(gate.acquire('b'), BulkheadRejectedError);
    await assert.rejects(gate.acquire('c', AbortSignal.abort()), TaskCancelledError);
    assert.equal(gate.tryAcquire(), undefined, 'no slot while one waits');
    hold();
    (await waiting)();
    assert.ok(gate.tryAcquire(), 'free again');
  });

  it('a full queue makes room for a key that holds less of it: the newest waiter of the key that holds the most is refused', async () => {
    const gate = new FairGate(1, 4);
    const hold = gate.tryAcquire()!;
    const hog = [1, 2, 3, 4].map(() => outcome(gate.acquire('hog', undefined, 'w')));
    const other = outcome(gate.acquire('other'));
    assert.equal(gate.depth, 4, 'the newcomer took the place of one of the hog');
    assert.equal(await hog[3], 'refused', "the hog's newest waiter was refused");
    // The hog itself gets no more room: the queue is full of its own and one other.
    assert.equal(await outcome(gate.acquire('hog', undefined, 'w')), 'refused');
    const third = outcome(gate.acquire('third'));
    assert.equal(await hog[2], 'refused');
    const fourth = outcome(gate.acquire('fourth'));
    assert.equal(await hog[1], 'refused', 'the hog still held two, the newcomer none');
    // Every key holds one: nobody holds two more than a newcomer would, and a full queue refuses as before.
    assert.equal(await outcome(gate.acquire('fifth')), 'refused');
    hold();
    assert.deepEqual(await Promise.all([hog[0], other, third, fourth]), ['served', 'served', 'served', 'served']);
  });

  it("the waiter refused to make room is the hog's newest, whichever workflow it belongs to; the newcomer is told it waits", async () => {
    const gate = new FairGate(1, 3);
    const hold = gate.tryAcquire()!;
    // One call per workflow, as the engine's steps come: three withins of one key.
    const h1 = outcome(gate.acquire('hog', undefined, 'wf-1'));
    const h2 = outcome(gate.acquire('hog', undefined, 'wf-2'));
    const h3 = outcome(gate.acquire('hog', undefined, 'wf-3'));
    assert.equal(gate.wouldQueue('light'), true, 'a full queue still takes the light key');
    assert.equal(gate.wouldQueue('hog'), false);
    const light = outcome(gate.acquire('light'));
    assert.equal(await h3, 'refused');
    hold();
    assert.deepEqual(await Promise.all([h1, h2, light]), ['served', 'served', 'served']);
  });
});

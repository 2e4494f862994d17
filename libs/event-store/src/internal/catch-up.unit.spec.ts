import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { RecordedEvent } from '../port.js';
import { CatchUpSubscription, type Page } from './catch-up.js';

/** A log in memory and a page reader over it that counts its reads. */
function log() {
  const events: RecordedEvent[] = [];
  let reads = 0;
  const add = (type: string, streamId = 's-1'): RecordedEvent => {
    const e: RecordedEvent = {
      id: `e${events.length}`,
      streamId,
      type,
      data: {},
      metadata: { correlationId: 'c', timestamp: 't' },
      revision: 0,
      position: events.length,
      recordedAt: new Date(0),
    };
    events.push(e);
    return e;
  };
  const readPage = async (after: number, limit: number): Promise<Page> => {
    reads++;
    const page = events.filter((e) => e.position > after).slice(0, limit);
    return { events: page, scannedTo: page.length < limit ? events.length - 1 : page[page.length - 1]!.position };
  };
  return { events, add, readPage, reads: () => reads };
}

/** Pull `n` events from the subscription. */
async function pull(it: AsyncIterator<RecordedEvent>, n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) out.push((await it.next()).value.position);
  return out;
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('CatchUpSubscription: offers and head-aware wake-ups', () => {
  it('takes an offer that follows what it has and delivers it without a read; refuses one that would leave a gap', async () => {
    const l = log();
    l.add('A');
    const sub = new CatchUpSubscription(l.readPage, -1, { safetyIntervalMs: 60_000 });
    const it = sub[Symbol.asyncIterator]();
    assert.deepEqual(await pull(it, 1), [0]);
    await settle();
    const readsBefore = l.reads();
    const one = l.add('B');
    assert.equal(sub.offer([one]), true);
    assert.deepEqual(await pull(it, 1), [1]);
    assert.equal(l.reads(), readsBefore, 'no read for an offered event');
    // Position 2 is committed elsewhere and not offered: offering 3 would skip it.
    l.add('C');
    const three = l.add('D');
    assert.equal(sub.offer([three]), false);
    sub.wake(3);
    assert.deepEqual(await pull(it, 2), [2, 3], 'read in order, nothing skipped');
    await sub.close();
  });

  it('filters offered events but still moves past them; a wake-up for a head it already has reads nothing', async () => {
    const l = log();
    const sub = new CatchUpSubscription(l.readPage, -1, { safetyIntervalMs: 60_000, filter: { types: ['Wanted'] } });
    const it = sub[Symbol.asyncIterator]();
    await settle();
    const a = l.add('Other');
    const b = l.add('Wanted');
    assert.equal(sub.offer([a, b]), true);
    assert.deepEqual(await pull(it, 1), [1]);
    await settle();
    const readsBefore = l.reads();
    sub.wake(1);
    await settle();
    assert.equal(l.reads(), readsBefore, 'the NOTIFY of its own append costs no read');
    const c = l.add('Other');
    assert.equal(sub.offer([c]), true, 'contiguous with the filtered-out position it moved past');
    await sub.close();
  });

  it('refuses offers once a page of them waits undelivered (a slow consumer reads at its own pace)', async () => {
    const l = log();
    const sub = new CatchUpSubscription(l.readPage, -1, { safetyIntervalMs: 60_000, pageSize: 3 });
    const it = sub[Symbol.asyncIterator]();
    const first = it.next(); // starts the loop; nothing to read yet
    await settle();
    const taken = [0, 1, 2, 3, 4].map(() => sub.offer([l.add('X')]));
    assert.deepEqual(taken, [true, true, true, false, false]);
    sub.wake(4);
    assert.equal((await first).value.position, 0);
    assert.deepEqual(await pull(it, 4), [1, 2, 3, 4], 'the refused ones come by reading');
    await sub.close();
  });
});

describe('CatchUpSubscription: close', () => {
  it('ends the iteration at once even while a read never answers (a pool that ended with the read queued)', async () => {
    let reading = false;
    const sub = new CatchUpSubscription(async () => {
      reading = true;
      return new Promise<Page>(() => undefined);
    }, -1);
    const next = sub[Symbol.asyncIterator]().next();
    await settle();
    assert.equal(reading, true);
    await sub.close();
    const result = await Promise.race([next, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 1_000))]);
    assert.notEqual(result, 'pending', 'the iteration still waits on the read');
    assert.equal((result as IteratorResult<RecordedEvent>).done, true);
  });
});

describe('CatchUpSubscription: holds no page it has delivered', () => {
  it('a page read and delivered can be collected while the subscription stays open', async () => {
    // The collector, for this check only (the test runner starts without --expose-gc).
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const pages: WeakRef<Page>[] = [];
    let n = 0;
    const readPage = async (after: number): Promise<Page> => {
      // 60 full pages of 10 events, each holding 10 KB, then caught up.
      if (n >= 60) return { events: [], scannedTo: after, caughtUp: true };
      const events = Array.from({ length: 10 }, (_, i) => ({
        id: `e${after + 1 + i}`,
        streamId: 's-1',
        type: 'Big',
        data: { blob: 'x'.repeat(10_000) + String(n) },
        metadata: { correlationId: 'c', timestamp: 't' },
        revision: 0,
        position: after + 1 + i,
        recordedAt: new Date(0),
      }));
      n++;
      const page: Page = { events, scannedTo: after + 10, caughtUp: false };
      pages.push(new WeakRef(page));
      return page;
    };
    const sub = new CatchUpSubscription(readPage, -1, { safetyIntervalMs: 60_000 });
    const it = sub[Symbol.asyncIterator]();
    assert.equal((await pull(it, 600)).length, 600);
    await settle();
    gc();
    await settle();
    gc();
    // The last page or two may still be referenced by the loop; the 50 before them must be gone.
    const alive = pages.slice(0, 50).filter((p) => p.deref() !== undefined).length;
    assert.equal(alive, 0, `${alive} of the first 50 pages are still held`);
    assert.equal(sub.isClosed, false);
    await sub.close();
  });
});

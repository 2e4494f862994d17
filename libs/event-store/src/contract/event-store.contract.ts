import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isAppError } from '@switchyard/platform';
import {
  FencedError,
  UnstorableEventError,
  WrongExpectedVersionError,
  type AllSubscription,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from '../port.js';

/**
 * The one contract every EventStore adapter passes. Each adapter's spec calls
 * `eventStoreContract(name, factory)`. Tests never assume an empty store: each works
 * in streams with a fresh random prefix, so the suite also runs against a shared
 * EventStoreDB. Not exported from the package index, so node:test stays out of runtime code.
 */
export interface ContractOptions {
  /** When set, every test is skipped and this reason printed. */
  readonly skip?: string;
  /** Run the 8-writer concurrency test (default true). */
  readonly concurrency?: boolean;
  /** Appends per writer in the concurrency test (default 1000). */
  readonly appendsPerWriter?: number;
}

export type StoreFactory = () => Promise<EventStore>;

let counter = 0;
const prefix = (): string => `c${Date.now().toString(36)}${(counter++).toString(36)}${randomUUID().slice(0, 6)}-`;

export function ev(type: string, data: unknown = {}, meta: Record<string, unknown> = {}): NewEvent {
  return { type, data, metadata: { correlationId: 'corr-1', timestamp: '2026-01-01T00:00:00.000Z', ...meta } };
}

/** Read `n` events from a subscription (then close it); a hang guard closes it after `guardMs`. */
export async function take(
  sub: AllSubscription,
  n: number,
  guardMs = 20_000,
  onEach?: (e: RecordedEvent, i: number) => void | Promise<void>,
): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  const guard = setTimeout(() => void sub.close(), guardMs);
  try {
    for await (const e of sub) {
      out.push(e);
      await onEach?.(e, out.length - 1);
      if (out.length >= n) break;
    }
  } finally {
    clearTimeout(guard);
    await sub.close();
  }
  return out;
}

async function expectConflict(p: Promise<unknown>, actual: number | 'no_stream'): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof WrongExpectedVersionError, `expected WrongExpectedVersionError, got ${String(err)}`);
    assert.equal(err.code, 'conflict');
    assert.equal(err.actual, actual);
    return true;
  });
}

export function eventStoreContract(name: string, factory: StoreFactory, options: ContractOptions = {}): void {
  const skip = options.skip ?? false;
  describe(`EventStore contract: ${name}`, () => {
    let store: EventStore;
    before(async () => {
      if (skip) return;
      store = await factory();
      await store.init();
    });
    after(async () => {
      if (!skip) await store.close();
    });

    describe('append and readStream', () => {
      it(
        'appends to a new stream and reads it forwards with dense revisions and rising positions',
        { skip },
        async () => {
          const s = `${prefix()}a`;
          const r1 = await store.append(s, [ev('A', { n: 1 }), ev('B', { n: 2 })]);
          const r2 = await store.append(s, [ev('C', { n: 3 })]);
          assert.equal(r1.nextExpectedRevision, 1);
          assert.equal(r2.nextExpectedRevision, 2);
          assert.ok(r2.position > r1.position);
          const read = await store.readStream(s);
          assert.deepEqual(
            read.map((e) => [e.type, e.data, e.revision, e.streamId]),
            [
              ['A', { n: 1 }, 0, s],
              ['B', { n: 2 }, 1, s],
              ['C', { n: 3 }, 2, s],
            ],
          );
          assert.ok(read[0]!.position < read[1]!.position && read[1]!.position < read[2]!.position);
          assert.equal(read[2]!.position, r2.position);
          assert.equal(read[1]!.position, r1.position);
          assert.equal(new Set(read.map((e) => e.id)).size, 3);
        },
      );

      it('reads backwards, from a revision, with maxCount', { skip }, async () => {
        const s = `${prefix()}b`;
        await store.append(
          s,
          [0, 1, 2, 3, 4].map((n) => ev('N', { n })),
        );
        const revs = (es: RecordedEvent[]) => es.map((e) => e.revision);
        assert.deepEqual(revs(await store.readStream(s, { direction: 'backwards' })), [4, 3, 2, 1, 0]);
        assert.deepEqual(revs(await store.readStream(s, { direction: 'backwards', maxCount: 2 })), [4, 3]);
        assert.deepEqual(revs(await store.readStream(s, { direction: 'backwards', fromRevision: 2 })), [2, 1, 0]);
        assert.deepEqual(revs(await store.readStream(s, { fromRevision: 2 })), [2, 3, 4]);
        assert.deepEqual(revs(await store.readStream(s, { fromRevision: 1, maxCount: 2 })), [1, 2]);
        assert.deepEqual(revs(await store.readStream(s, { fromRevision: 9 })), []);
      });

      it(
        "tells the size of a stream's event data without reading it, where the adapter can (0 when absent; the data's JSON however well it compresses)",
        { skip },
        async (t) => {
          if (!store.storedBytes) return t.skip(`${store.kind} cannot tell a stream's size without reading it`);
          const p = prefix();
          const id = `${p}sized`;
          assert.equal(await store.storedBytes(id), 0);
          await store.append(id, [ev('Small', { n: 1 })]);
          const small = await store.storedBytes(id);
          assert.ok(small > 0, `${small}`);
          // Random text (it hardly compresses): the stored size follows it.
          const text = Array.from({ length: 3_000 }, () => randomUUID()).join('');
          await store.append(id, [ev('Large', { text })]);
          const large = await store.storedBytes(id);
          assert.ok(large - small >= 50_000, `${small} -> ${large}`);
          // Rows of a query result, the same shape again and again: stored compressed many times
          // over, and as large as ever once read.
          const rows = Array.from({ length: 5_000 }, (_, i) => ({
            name: 'customer',
            amount: 100,
            status: 'active',
            i,
          }));
          await store.append(id, [ev('Rows', { rows })]);
          const rowsBytes = (await store.storedBytes(id)) - large;
          assert.ok(
            rowsBytes >= JSON.stringify({ rows }).length * 0.9,
            `${rowsBytes} for ${JSON.stringify({ rows }).length}`,
          );
          assert.equal(await store.storedBytes(`${p}other`), 0);
        },
      );

      it('reads an absent stream as []', { skip }, async () => {
        assert.deepEqual(await store.readStream(`${prefix()}absent`), []);
        assert.deepEqual(await store.readStream(`${prefix()}absent`, { direction: 'backwards' }), []);
      });

      it('round-trips metadata, a client-chosen id and sets recordedAt', { skip }, async () => {
        const s = `${prefix()}meta`;
        const id = randomUUID();
        const metadata = {
          correlationId: 'wf-42',
          causationId: 'cmd-7',
          actor: 'key-9',
          timestamp: '2026-03-04T05:06:07.089Z',
          extra: { nested: [1, 'two'] },
        };
        const before = Date.now();
        await store.append(s, [
          { id, type: 'Meta', data: { text: 'héllo "quoted"', n: null, list: [1, 2] }, metadata },
        ]);
        const [e] = await store.readStream(s);
        assert.equal(e!.id, id);
        assert.deepEqual(e!.metadata, metadata);
        assert.deepEqual(e!.data, { text: 'héllo "quoted"', n: null, list: [1, 2] });
        assert.ok(e!.recordedAt instanceof Date);
        // Clocks of a remote server may differ a little: only a sanity window.
        assert.ok(Math.abs(e!.recordedAt.getTime() - before) < 5 * 60_000);
        const [viaAll] = await store.readAll({ streamPrefixes: [s] });
        assert.deepEqual(viaAll!.metadata, metadata);
        assert.equal(viaAll!.id, id);
      });

      it('rejects an empty append and a bad stream id with a validation error', { skip }, async () => {
        const isValidation = (err: unknown) => isAppError(err) && err.code === 'validation';
        await assert.rejects(store.append(`${prefix()}x`, []), isValidation);
        await assert.rejects(store.append('', [ev('A')]), isValidation);
        await assert.rejects(store.append(`${prefix()}x`, [ev('')]), isValidation);
        // The metadata every event needs, and a type of at most 200 characters.
        const bad = (e: Record<string, unknown>) => store.append(`${prefix()}x`, [{ ...ev('A'), ...e }]);
        await assert.rejects(bad({ type: 'x'.repeat(201) }), isValidation);
        await assert.rejects(bad({ metadata: { timestamp: new Date().toISOString() } }), isValidation);
        await assert.rejects(bad({ metadata: { correlationId: 'c' } }), isValidation);
        await assert.rejects(bad({ metadata: { correlationId: 'c', timestamp: 't', actor: 7 } }), isValidation);
        await assert.rejects(bad({ metadata: [] }), isValidation);
        await assert.rejects(bad({ id: 'not-a-uuid' }), isValidation);
        await store.append(`${prefix()}x`, [
          {
            ...ev('A'),
            type: 'x'.repeat(200),
            metadata: { correlationId: 'c', timestamp: 't', extra: { kept: true } },
          },
        ]);
      });
    });

    describe('text a database cannot hold', () => {
      // U+0000, lone surrogates (high alone, high at the end, low alone, low before high), a valid
      // pair (kept), and text that only looks like an escape (a backslash, then `u0000`: kept).
      const odd = 'a\u0000b\ud800c\udc00d\ud83d\ude00e\\u0000f\\\u0000g\udc00\ud800h\ud800\ud83d\ude00i\ud83d';
      const fixed = 'a\ufffdb\ufffdc\ufffdd\ud83d\ude00e\\u0000f\\\ufffdg\ufffd\ufffdh\ufffd\ud83d\ude00i\ufffd';

      it(
        'stores U+0000 and lone surrogates in data, metadata and keys as U+FFFD, for every reader',
        { skip },
        async () => {
          const s = `${prefix()}odd`;
          const data = { text: odd, [odd]: [odd, { [odd]: odd }], plain: 'ok', n: 1 };
          const want = { text: fixed, [fixed]: [fixed, { [fixed]: fixed }], plain: 'ok', n: 1 };
          // The live subscriber gets the event as the append hands it over (PostgreSQL: without a read).
          const sub = store.subscribeToAll({ streamPrefixes: [s] });
          const live = take(sub, 2, 20_000, async (_e, i) => {
            if (i === 0) await store.append(s, [ev('Odd', data, { note: odd, [odd]: 1 }), ev('After', { i: 2 })]);
          });
          await store.append(s, [ev('Before', { i: 0 })]);
          const delivered = await live;
          const read = await store.readStream(s);
          const [viaAll] = await store.readAll({ streamPrefixes: [s], types: ['Odd'] });
          for (const e of [read[1], delivered[1], viaAll]) {
            assert.ok(e);
            assert.equal(e.type, 'Odd');
            assert.deepEqual(e.data, want);
            assert.deepEqual(e.metadata, { ...ev('Odd').metadata, note: fixed, [fixed]: 1 });
          }
          assert.deepEqual(
            read.map((e) => e.type),
            ['Before', 'Odd', 'After'],
          );
          // The caller's objects are left as they were.
          assert.equal(data.text, odd);
        },
      );

      it(
        'refuses such text in a stream id or a type (validation) rather than rewrite what names the event',
        {
          skip,
        },
        async () => {
          const isValidation = (err: unknown) => isAppError(err) && err.code === 'validation';
          const isUnstorable = (index: number) => (err: unknown) =>
            err instanceof UnstorableEventError && err.code === 'validation' && err.eventIndex === index;
          await assert.rejects(store.append(`${prefix()}x\u0000`, [ev('A')]), isValidation);
          await assert.rejects(store.append(`${prefix()}x\ud800`, [ev('A')]), isValidation);
          await assert.rejects(store.append(`${prefix()}x`, [ev('A\u0000')]), isUnstorable(0));
          await assert.rejects(store.append(`${prefix()}x`, [ev('A'), ev('B\udfff')]), isUnstorable(1));
          const s = `${prefix()}x\ud83d\ude00`;
          await store.append(s, [ev('T\ud83d\ude00')]);
          assert.deepEqual(
            (await store.readStream(s)).map((e) => [e.streamId, e.type]),
            [[s, 'T\ud83d\ude00']],
          );
        },
      );
    });

    describe('fences', () => {
      it(
        'an append carrying a fence commits only at the current epoch; a raised fence refuses the old one, also in a group commit',
        { skip },
        async () => {
          if (!store.supportsFences || !store.raiseFence) {
            console.log(
              `# ${name}: fences not supported by this adapter (callers check supportsFences); nothing to check`,
            );
            return;
          }
          const f = `${prefix()}fence`;
          const s = `${prefix()}fenced`;
          await store.raiseFence(f, 1);
          await store.append(s, [ev('A')], { expectedRevision: 'no_stream', fence: { name: f, epoch: 1 } });
          // A takeover raises the fence: the old holder's append is refused, the stream untouched.
          await store.raiseFence(f, 2);
          await assert.rejects(
            store.append(s, [ev('B')], { expectedRevision: 0, fence: { name: f, epoch: 1 } }),
            (e: unknown) => e instanceof FencedError && e.current === 2,
          );
          // Never lowered; in one batch each append is judged on its own.
          await store.raiseFence(f, 1);
          const results = await Promise.allSettled([
            store.append(s, [ev('C')], { expectedRevision: 0, fence: { name: f, epoch: 2 } }),
            store.append(`${s}x`, [ev('D')], { fence: { name: f, epoch: 1 } }),
            store.append(`${s}y`, [ev('E')], { fence: { name: `${f}-none`, epoch: 1 } }),
          ]);
          assert.equal(results[0].status, 'fulfilled');
          assert.ok(results[1].status === 'rejected' && results[1].reason instanceof FencedError);
          assert.ok(
            results[2].status === 'rejected' &&
              results[2].reason instanceof FencedError &&
              results[2].reason.current === null,
          );
          assert.deepEqual(
            (await store.readStream(s)).map((e) => e.type),
            ['A', 'C'],
          );
          assert.deepEqual(await store.readStream(`${s}x`), []);
        },
      );
    });

    describe('expected revision', () => {
      it("'any' appends to new and existing streams", { skip }, async () => {
        const s = `${prefix()}any`;
        assert.equal((await store.append(s, [ev('A')], { expectedRevision: 'any' })).nextExpectedRevision, 0);
        assert.equal((await store.append(s, [ev('A')], { expectedRevision: 'any' })).nextExpectedRevision, 1);
      });

      it("'no_stream' succeeds only when the stream does not exist", { skip }, async () => {
        const s = `${prefix()}ns`;
        assert.equal(
          (await store.append(s, [ev('A'), ev('B')], { expectedRevision: 'no_stream' })).nextExpectedRevision,
          1,
        );
        await expectConflict(store.append(s, [ev('C')], { expectedRevision: 'no_stream' }), 1);
        assert.equal((await store.readStream(s)).length, 2);
      });

      it("'stream_exists' succeeds only when the stream exists", { skip }, async () => {
        const s = `${prefix()}se`;
        await expectConflict(store.append(s, [ev('A')], { expectedRevision: 'stream_exists' }), 'no_stream');
        assert.deepEqual(await store.readStream(s), []);
        await store.append(s, [ev('A')]);
        assert.equal((await store.append(s, [ev('B')], { expectedRevision: 'stream_exists' })).nextExpectedRevision, 1);
      });

      it('an exact revision succeeds only when it is the last revision', { skip }, async () => {
        const s = `${prefix()}ex`;
        await expectConflict(store.append(s, [ev('A')], { expectedRevision: 0 }), 'no_stream');
        await store.append(s, [ev('A'), ev('B')]);
        await expectConflict(store.append(s, [ev('C')], { expectedRevision: 0 }), 1);
        await expectConflict(store.append(s, [ev('C')], { expectedRevision: 5 }), 1);
        assert.equal((await store.append(s, [ev('C')], { expectedRevision: 1 })).nextExpectedRevision, 2);
        await expectConflict(store.append(s, [ev('D')], { expectedRevision: 1 }), 2);
        assert.deepEqual(
          (await store.readStream(s)).map((e) => e.type),
          ['A', 'B', 'C'],
        );
      });

      it('of two concurrent appends with the same expected revision exactly one wins', { skip }, async () => {
        const s = `${prefix()}race`;
        await store.append(s, [ev('A')]);
        const results = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) => store.append(s, [ev('R', { i })], { expectedRevision: 0 })),
        );
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof WrongExpectedVersionError);
        assert.equal((await store.readStream(s)).length, 2);
        const creators = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) =>
            store.append(`${s}-new`, [ev('R', { i })], { expectedRevision: 'no_stream' }),
          ),
        );
        assert.equal(creators.filter((r) => r.status === 'fulfilled').length, 1);
      });
    });

    describe('readAll', () => {
      it(
        'pages forwards and backwards, exclusive of `after`, with type and stream-prefix filters',
        { skip },
        async () => {
          const p = prefix();
          const appended: RecordedEvent[] = [];
          for (let i = 0; i < 10; i++) {
            await store.append(`${p}${i % 2 === 0 ? 'even' : 'odd'}-${i % 3}`, [
              ev(i % 3 === 0 ? 'Fizz' : 'Plain', { i }),
            ]);
          }
          const all = await store.readAll({ streamPrefixes: [p] });
          appended.push(...all);
          assert.deepEqual(
            all.map((e) => (e.data as { i: number }).i),
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
          );
          for (let i = 1; i < all.length; i++) assert.ok(all[i]!.position > all[i - 1]!.position);

          const paged: RecordedEvent[] = [];
          let after: number | undefined;
          for (;;) {
            const page = await store.readAll({
              streamPrefixes: [p],
              maxCount: 3,
              ...(after === undefined ? {} : { after }),
            });
            assert.ok(page.length <= 3);
            if (page.length === 0) break;
            paged.push(...page);
            after = page[page.length - 1]!.position;
          }
          assert.deepEqual(
            paged.map((e) => e.id),
            appended.map((e) => e.id),
          );

          const back = await store.readAll({ streamPrefixes: [p], direction: 'backwards', maxCount: 4 });
          assert.deepEqual(
            back.map((e) => (e.data as { i: number }).i),
            [9, 8, 7, 6],
          );
          const backAfter = await store.readAll({
            streamPrefixes: [p],
            direction: 'backwards',
            after: all[5]!.position,
            maxCount: 2,
          });
          assert.deepEqual(
            backAfter.map((e) => (e.data as { i: number }).i),
            [4, 3],
          );
          const fwdAfter = await store.readAll({ streamPrefixes: [p], after: all[5]!.position, maxCount: 2 });
          assert.deepEqual(
            fwdAfter.map((e) => (e.data as { i: number }).i),
            [6, 7],
          );

          const fizz = await store.readAll({ streamPrefixes: [p], types: ['Fizz'] });
          assert.deepEqual(
            fizz.map((e) => (e.data as { i: number }).i),
            [0, 3, 6, 9],
          );
          const odd = await store.readAll({ streamPrefixes: [`${p}odd`] });
          assert.deepEqual(
            odd.map((e) => (e.data as { i: number }).i),
            [1, 3, 5, 7, 9],
          );
          const two = await store.readAll({ streamPrefixes: [`${p}odd-1`, `${p}even-2`] });
          assert.deepEqual(
            two.map((e) => (e.data as { i: number }).i),
            [1, 2, 7, 8],
          );
          assert.deepEqual(await store.readAll({ streamPrefixes: [p], types: ['Nope'] }), []);

          // `until` closes the window inclusively, in the read's direction, filters and all.
          const window = await store.readAll({ streamPrefixes: [p], after: all[1]!.position, until: all[6]!.position });
          assert.deepEqual(
            window.map((e) => (e.data as { i: number }).i),
            [2, 3, 4, 5, 6],
          );
          const fizzWindow = await store.readAll({ streamPrefixes: [p], types: ['Fizz'], until: all[8]!.position });
          assert.deepEqual(
            fizzWindow.map((e) => (e.data as { i: number }).i),
            [0, 3, 6],
          );
          const backWindow = await store.readAll({
            streamPrefixes: [p],
            direction: 'backwards',
            after: all[7]!.position,
            until: all[4]!.position,
          });
          assert.deepEqual(
            backWindow.map((e) => (e.data as { i: number }).i),
            [6, 5, 4],
          );
          const emptyWindow = await store.readAll({
            streamPrefixes: [p],
            types: ['Nope'],
            after: all[0]!.position,
            until: all[9]!.position,
          });
          assert.deepEqual(emptyWindow, []);
        },
      );

      it('headPosition is the position of the newest event', { skip }, async () => {
        const r = await store.append(`${prefix()}head`, [ev('A'), ev('B')]);
        assert.equal(await store.headPosition(), r.position);
        const [newest] = await store.readAll({ direction: 'backwards', maxCount: 1 });
        assert.equal(newest!.position, r.position);
      });

      it(
        'positionAtTime finds the first event recorded at or after a time, where positions are dense',
        { skip },
        async (t) => {
          if (!store.positionAtTime) return t.skip(`${store.kind} has no dense positions to search`);
          const s = `${prefix()}timed`;
          const first = await store.append(s, [ev('Early')]);
          await new Promise((r) => setTimeout(r, 30));
          const between = new Date();
          await new Promise((r) => setTimeout(r, 30));
          const second = await store.append(s, [ev('Late1'), ev('Late2')]);
          const [late] = await store.readAll({ after: first.position, maxCount: 1 });
          assert.equal(late!.type, 'Late1');
          assert.equal(await store.positionAtTime(between), late!.position);
          assert.ok((await store.positionAtTime(new Date(0))) <= first.position);
          assert.equal(await store.positionAtTime(new Date(Date.now() + 60_000)), second.position + 1);
        },
      );

      it('ping answers', { skip }, async () => {
        await store.ping();
      });
    });

    describe('subscribeToAll', () => {
      it('delivers past then live events with no gap and no duplicate at the seam', { skip }, async () => {
        const p = prefix();
        for (let i = 0; i < 5; i++) await store.append(`${p}s-${i % 2}`, [ev('Past', { i })]);
        const sub = store.subscribeToAll({ streamPrefixes: [p] });
        // Appends racing the catch-up, then more once the subscriber is live.
        const racing = (async () => {
          for (let i = 5; i < 10; i++) await store.append(`${p}s-${i % 2}`, [ev('Racing', { i })]);
        })();
        let live: Promise<void> | undefined;
        const got = await take(sub, 15, 20_000, (_e, idx) => {
          if (idx === 9) {
            live = (async () => {
              for (let i = 10; i < 15; i++) await store.append(`${p}s-${i % 2}`, [ev('Live', { i })]);
            })();
          }
        });
        await racing;
        await live;
        assert.deepEqual(
          got.map((e) => (e.data as { i: number }).i),
          Array.from({ length: 15 }, (_, i) => i),
        );
        for (let i = 1; i < got.length; i++) assert.ok(got[i]!.position > got[i - 1]!.position);
      });

      it('starts after an exclusive checkpoint and filters by type', { skip }, async () => {
        const p = prefix();
        await store.append(`${p}one`, [ev('Keep', { i: 0 }), ev('Drop', { i: 1 }), ev('Keep', { i: 2 })]);
        await store.append(`${p}two`, [ev('Keep', { i: 3 }), ev('Drop', { i: 4 })]);
        const [first] = await store.readStream(`${p}one`);
        const sub = store.subscribeToAll({ from: first!.position, types: ['Keep'], streamPrefixes: [p] });
        const pending = take(sub, 3);
        await store.append(`${p}three`, [ev('Drop', { i: 5 }), ev('Keep', { i: 6 })]);
        const got = await pending;
        assert.deepEqual(
          got.map((e) => (e.data as { i: number }).i),
          [2, 3, 6],
        );
        assert.ok(got.every((e) => e.type === 'Keep'));
      });

      it(
        'onProgress: a filtered subscription is told it passed the events it never sees, never ahead of one it has not been handed',
        { skip },
        async () => {
          const p = prefix();
          const q = prefix();
          // Past: matching events among others of the same stream and of another prefix, ending with others.
          await store.append(`${p}a`, [ev('Keep', { i: 0 }), ev('Drop', { i: 1 })]);
          await store.append(`${q}b`, [ev('Keep', { i: 2 })]);
          await store.append(`${p}a`, [ev('Keep', { i: 3 })]);
          const past = await store.append(
            `${q}b`,
            Array.from({ length: 40 }, (_, i) => ev('Keep', { i: 100 + i })),
          );
          const [start] = await store.readStream(`${p}a`);
          const delivered: RecordedEvent[] = [];
          const told: { position: number; deliveredCount: number }[] = [];
          let onTold: (() => void) | undefined;
          const sub = store.subscribeToAll({
            from: start!.position - 1,
            types: ['Keep'],
            streamPrefixes: [p],
            onProgress: (position) => {
              told.push({ position, deliveredCount: delivered.length });
              onTold?.();
            },
          });
          const toldAtLeast = async (position: number) => {
            const guard = Date.now() + 20_000;
            while (!told.some((t) => t.position >= position) && Date.now() < guard)
              await new Promise<void>((r) => {
                onTold = r;
                setTimeout(r, 50);
              });
            assert.ok(
              told.some((t) => t.position >= position),
              `progress reached ${told.at(-1)?.position ?? 'nothing'}, not ${position}`,
            );
          };
          const consumed = (async () => {
            for await (const e of sub) delivered.push(e);
          })();
          try {
            await toldAtLeast(past.position);
            // Live: only events it does not take, then one it does.
            const live = await store.append(
              `${q}c`,
              Array.from({ length: 40 }, (_, i) => ev('Other', { i: 200 + i })),
            );
            await toldAtLeast(live.position);
            const last = await store.append(`${p}d`, [ev('Drop', { i: 4 }), ev('Keep', { i: 5 })]);
            await toldAtLeast(last.position);
          } finally {
            await sub.close();
            await consumed;
          }
          assert.deepEqual(
            delivered.map((e) => (e.data as { i: number }).i),
            [0, 3, 5],
          );
          for (let i = 1; i < told.length; i++)
            assert.ok(told[i]!.position > told[i - 1]!.position, 'progress only rises');
          // Each report came after every matching event at or below it had been handed over.
          for (const t of told) {
            const due = delivered.filter((e) => e.position <= t.position).length;
            assert.ok(
              t.deliveredCount >= due,
              `progress ${t.position} told with ${t.deliveredCount} of the ${due} events at or below it handed over`,
            );
          }
        },
      );

      it('close() ends the iteration of a waiting subscriber', { skip }, async () => {
        const sub = store.subscribeToAll({ streamPrefixes: [prefix()] });
        const consumed = (async () => {
          let n = 0;
          for await (const _ of sub) n++;
          return n;
        })();
        await new Promise((r) => setTimeout(r, 50));
        await sub.close();
        assert.equal(await consumed, 0);
      });
    });

    describe('close', () => {
      it('close() ends live subscriptions and later calls fail', { skip }, async () => {
        const own = await factory();
        await own.init();
        await own.append(`${prefix()}c`, [ev('A')]);
        const sub = own.subscribeToAll({ streamPrefixes: [prefix()] });
        const consumed = (async () => {
          for await (const _ of sub) void _;
          return 'ended';
        })();
        await new Promise((r) => setTimeout(r, 50));
        await own.close();
        assert.equal(await consumed, 'ended');
        await assert.rejects(own.readAll({ maxCount: 1 }));
      });
    });

    describe('concurrency', () => {
      const skipConcurrency =
        skip || (options.concurrency === false ? 'this adapter does not run the concurrency test' : false);
      const perWriter = options.appendsPerWriter ?? 1000;
      const writers = 8;

      it(
        `${writers} writers x ${perWriter} appends to one stream and to many streams: no loss, no duplicate, a live subscriber sees each once in order`,
        { skip: skipConcurrency },
        async () => {
          const p = prefix();
          const total = writers * perWriter * 2;
          const sub = store.subscribeToAll({ streamPrefixes: [p] });
          // Bounded from the end of the writes below, not from here: on a loaded machine the writes
          // alone can take minutes, and the subscriber's catching up is what is checked.
          const seen = take(sub, total, 900_000);
          const written = new Set<string>();
          let conflicts = 0;

          // 1. One hot stream: each writer appends with the revision it believes is last and,
          //    on a conflict, retries with the actual revision the error reports.
          const hot = `${p}hot`;
          const t0 = Date.now();
          await Promise.all(
            Array.from({ length: writers }, async (_, w) => {
              let expected: number | 'no_stream' = 'no_stream';
              for (let i = 0; i < perWriter; i++) {
                const id = randomUUID();
                for (;;) {
                  try {
                    const r = await store.append(hot, [{ ...ev('Hot', { w, i }), id }], { expectedRevision: expected });
                    expected = r.nextExpectedRevision;
                    written.add(id);
                    break;
                  } catch (err) {
                    if (!(err instanceof WrongExpectedVersionError)) throw err;
                    conflicts++;
                    expected = err.actual;
                    // A little jitter, as a real command handler would: the writers stop retrying in lockstep.
                    if (conflicts % 2 === 0) await new Promise((r) => setTimeout(r, Math.random() * 3));
                  }
                }
              }
            }),
          );
          const t1 = Date.now();
          // 2. Many streams: each writer owns ten streams and tracks their revisions.
          await Promise.all(
            Array.from({ length: writers }, async (_, w) => {
              const revs = new Map<string, number>();
              for (let i = 0; i < perWriter; i++) {
                const s = `${p}w${w}-${i % 10}`;
                const id = randomUUID();
                const expectedRevision = revs.get(s) ?? 'no_stream';
                const r = await store.append(s, [{ ...ev('Many', { w, i }), id }], { expectedRevision });
                revs.set(s, r.nextExpectedRevision);
                written.add(id);
              }
            }),
          );
          const t2 = Date.now();
          let catchUp: NodeJS.Timeout | undefined;
          const got = await Promise.race([
            seen,
            new Promise<RecordedEvent[]>(
              (r) => (catchUp = setTimeout(() => void sub.close().then(() => r(seen)), 60_000)),
            ),
          ]);
          clearTimeout(catchUp);
          const t3 = Date.now();
          assert.equal(written.size, total);
          assert.equal(got.length, total, `subscriber saw ${got.length} of ${total}`);
          const ids = new Set(got.map((e) => e.id));
          assert.equal(ids.size, total, 'duplicate deliveries');
          for (const id of written) assert.ok(ids.has(id), `lost event ${id}`);
          for (let i = 1; i < got.length; i++)
            assert.ok(got[i]!.position > got[i - 1]!.position, `position order broken at ${i}`);
          const hotEvents = await store.readStream(hot);
          assert.deepEqual(
            hotEvents.map((e) => e.revision),
            Array.from({ length: writers * perWriter }, (_, i) => i),
          );
          // Every writer's own events appear in the order it wrote them.
          for (let w = 0; w < writers; w++) {
            const mine = hotEvents
              .filter((e) => (e.data as { w: number }).w === w)
              .map((e) => (e.data as { i: number }).i);
            assert.deepEqual(
              mine,
              Array.from({ length: perWriter }, (_, i) => i),
            );
          }
          const fromAll = await store.readAll({ streamPrefixes: [p] });
          assert.deepEqual(
            fromAll.map((e) => e.id),
            got.map((e) => e.id),
          );
          console.log(
            `# ${name}: ${total} appends, ${conflicts} conflicts retried; one stream ${t1 - t0} ms, many streams ${t2 - t1} ms, subscriber done ${t3 - t2} ms later`,
          );
        },
      );
    });
  });
}

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonChunks, jsonStream, JsonText } from './json-stream.js';

const joined = async (v: unknown, opts?: Parameters<typeof jsonChunks>[1]): Promise<string> => {
  let s = '';
  for await (const c of jsonChunks(v, opts)) s += c;
  return s;
};

// Any JSON value, some of its parts held as JsonText (what the read model hands over unparsed).
const withTexts = (v: unknown, pick: () => boolean): unknown => {
  if (pick()) return new JsonText(JSON.stringify(v));
  if (Array.isArray(v)) return v.map((x) => withTexts(x, pick));
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withTexts(x, pick)]));
  return v;
};

describe('jsonChunks', () => {
  it('writes what JSON.stringify writes, JsonText verbatim, whatever the chunk size', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.integer({ min: 1, max: 64 }), fc.integer(), async (v, chunkChars, seed) => {
        let n = seed;
        const pick = () => ((n = (n * 1103515245 + 12345) & 0x7fffffff) & 3) === 0;
        const mixed = withTexts(v, pick);
        assert.equal(await joined(mixed, { chunkChars }), JSON.stringify(mixed));
        assert.equal(await joined(v, { chunkChars }), JSON.stringify(v));
      }),
      { numRuns: 300 },
    );
  });

  it('leaves out what JSON.stringify leaves out, and calls toJSON (a Date)', async () => {
    const v = {
      a: undefined,
      f: () => 1,
      d: new Date(0),
      list: [undefined, () => 1, Symbol('s'), Number.NaN, -0],
      nested: { s: Symbol('x'), ok: 1 },
      // A toJSON that gives undefined leaves the member out (in an array: null).
      gone: { toJSON: () => undefined },
      list2: [{ toJSON: () => undefined }, { toJSON: (k: string) => `at ${k}` }],
      keyed: { toJSON: (k: string) => ({ key: k }) },
    };
    assert.equal(await joined(v), JSON.stringify(v));
    assert.equal(await joined(undefined), '');
  });

  it('cuts a long JsonText between, never inside, a surrogate pair: the bytes are the same', async () => {
    const text = JSON.stringify({ s: '😀a😀😀b'.repeat(50) });
    for (let chunkChars = 1; chunkChars < 12; chunkChars++) {
      const parts: Buffer[] = [];
      for await (const c of jsonStream({ x: new JsonText(text) }, { chunkChars })) parts.push(c as Buffer);
      assert.equal(Buffer.concat(parts).toString('utf8'), `{"x":${text}}`);
    }
  });

  it('gives the event loop turns while it writes a large value', async () => {
    const big = Array.from({ length: 200 }, (_, i) => ({ i, s: 'x'.repeat(50_000) }));
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    let s = '';
    for await (const c of jsonChunks(big, { sliceMs: 1 })) s += c;
    clearInterval(timer);
    assert.equal(s, JSON.stringify(big));
    assert.ok(turns > 0, `the timer ran ${turns} times while 10 MB were written`);
  });
});

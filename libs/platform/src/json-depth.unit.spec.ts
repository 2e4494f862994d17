import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isAppError } from './errors.js';
import { jsonNestsDeeperThan, parsePeerJson, readTextCapped, valueNestsDeeperThan } from './json-depth.js';

describe('jsonNestsDeeperThan / parsePeerJson', () => {
  it('counts arrays and objects, not brackets inside strings (escaped quotes included)', () => {
    assert.equal(jsonNestsDeeperThan('{"a":[{"b":[1]}]}', 4), false);
    assert.equal(jsonNestsDeeperThan('{"a":[{"b":[1]}]}', 3), true);
    assert.equal(jsonNestsDeeperThan(JSON.stringify({ s: '[[[[[[{{{{ \\" [[[[' }), 1), false);
    assert.equal(jsonNestsDeeperThan(`${'['.repeat(65)}${']'.repeat(65)}`, 64), true);
    assert.equal(jsonNestsDeeperThan(`${'['.repeat(64)}${']'.repeat(64)}`, 64), false);
  });

  it('counts a parsed value the way the text is counted, without recursion (5,000 levels)', () => {
    for (const text of ['{"a":[{"b":[1]}]}', '[]', '1', `${'['.repeat(64)}${']'.repeat(64)}`])
      for (const max of [1, 3, 4, 64])
        assert.equal(valueNestsDeeperThan(JSON.parse(text), max), jsonNestsDeeperThan(text, max), `${text} ${max}`);
    let deep: unknown = {};
    for (let i = 0; i < 5_000; i++) deep = { d: deep };
    assert.equal(valueNestsDeeperThan(deep, 64), true);
    assert.equal(valueNestsDeeperThan({ a: 'x', b: null, c: [1, 2] }, 2), false);
  });

  it('refuses a deep answer as validation before parsing it; not-JSON is undefined', () => {
    const deep = `{"result":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    assert.throws(
      () => parsePeerJson(deep, 'the agent answer'),
      (e: unknown) => isAppError(e) && e.code === 'validation' && /nests deeper than 64/.test(e.message),
    );
    assert.deepEqual(parsePeerJson('{"result":{"ok":true}}', 'x'), { result: { ok: true } });
    assert.equal(parsePeerJson('<html>', 'x'), undefined);
  });

  it('reads a body up to its bound, and refuses the rest unread', async () => {
    assert.equal(await readTextCapped(new Response('héllo'), 6), 'héllo');
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++;
        c.enqueue(new Uint8Array(1024));
      },
    });
    await assert.rejects(
      readTextCapped(new Response(endless), 10 * 1024),
      (e: unknown) => isAppError(e) && e.code === 'payload_too_large',
    );
    assert.ok(pulled <= 12, `${pulled} chunks pulled`);
  });
});

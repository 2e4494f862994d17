import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { callKeyOf, IDEMPOTENCY_KEY_META, type ToolExtra } from './tools.js';

const withMeta = (value: unknown): ToolExtra => ({ _meta: { [IDEMPOTENCY_KEY_META]: value } }) as unknown as ToolExtra;

describe('callKeyOf: the call key the connectors send in _meta', () => {
  it('takes a key of 1 to 200 printable ASCII characters as given', () => {
    assert.equal(callKeyOf(withMeta('3f0c:notify[2]:1')), '3f0c:notify[2]:1');
    assert.equal(callKeyOf(withMeta('mcp|k1|a b')), 'mcp|k1|a b');
    assert.equal(callKeyOf(withMeta('x'.repeat(200))), 'x'.repeat(200));
  });
  it('ignores anything else (the call is then unkeyed): it becomes an HTTP header value', () => {
    for (const bad of ['', 'x'.repeat(201), 'a\nb', 'clé', 42, null, { k: 1 }])
      assert.equal(callKeyOf(withMeta(bad)), undefined, JSON.stringify(bad));
    assert.equal(callKeyOf(undefined), undefined);
    assert.equal(callKeyOf({} as ToolExtra), undefined);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  backendKey,
  canonicalJson,
  canonicalUrl,
  executionIdForKey,
  IDEMPOTENCY_KEY_MAX,
  IDEMPOTENCY_KEY_PATTERN,
  mcpScopedKey,
  parseIdempotencyKey,
  requestFingerprint,
  toolCallKey,
} from './keys.js';

describe('Idempotency-Key parsing and request fingerprints', () => {
  it('accepts plain keys up to the maximum and refuses the rest with a reason', () => {
    assert.deepEqual(parseIdempotencyKey({}), { kind: 'none' });
    for (const ok of [
      'a',
      '3fa85f64-5717-4562-b3fc-2c963f66afa6',
      'order-42:retry.1',
      'x'.repeat(IDEMPOTENCY_KEY_MAX),
    ]) {
      assert.deepEqual(parseIdempotencyKey({ 'idempotency-key': ok }), { kind: 'key', key: ok });
    }
    for (const bad of ['', 'has space', 'quote"', 'back\\slash', 'x'.repeat(IDEMPOTENCY_KEY_MAX + 1), 'é']) {
      assert.equal(parseIdempotencyKey({ 'idempotency-key': bad }).kind, 'bad', JSON.stringify(bad));
    }
    assert.equal(parseIdempotencyKey({ 'idempotency-key': ['a', 'b'] }).kind, 'bad');
  });

  it('a body in another key order is the same request; another value, route or method is not', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 1 }], c: null } }),
      '{"a":{"c":null,"d":[1,{"e":1,"f":2}]},"b":1}',
    );
    const f = requestFingerprint('POST', '/x?wait=true', { a: 1, b: 2 });
    assert.equal(requestFingerprint('post', '/x?wait=true', { b: 2, a: 1 }), f);
    assert.notEqual(requestFingerprint('POST', '/x?wait=true', { a: 1, b: 3 }), f);
    assert.notEqual(requestFingerprint('POST', '/x', { a: 1, b: 2 }), f);
    assert.notEqual(requestFingerprint('PUT', '/x?wait=true', { a: 1, b: 2 }), f);
    assert.equal(requestFingerprint('DELETE', '/x', undefined), requestFingerprint('DELETE', '/x', undefined));
    assert.equal(
      requestFingerprint('POST', '/x?wait=true&wait_ms=5', {}),
      requestFingerprint('POST', '/x?wait_ms=5&wait=true', {}),
    );
    assert.equal(canonicalUrl('/x?b=2&a=1'), '/x?a=1&b=2');
    assert.equal(canonicalUrl('/x?'), '/x');
  });

  it('derives back-end keys and execution ids deterministically, UUID-shaped', () => {
    assert.equal(backendKey('k1'), 'http:k1');
    const id = executionIdForKey('k1');
    assert.equal(executionIdForKey('k1'), id);
    assert.notEqual(executionIdForKey('k2'), id);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Scoped to the API key that sent it: the same value from another key names other work.
    assert.equal(backendKey('k1', 'aaaa0000aaaa0000'), 'http:aaaa0000aaaa0000:k1');
    assert.notEqual(executionIdForKey('k1', 'aaaa0000aaaa0000'), executionIdForKey('k1', 'bbbb0000bbbb0000'));
    assert.equal(executionIdForKey('k1', 'aaaa0000aaaa0000'), executionIdForKey('k1', 'aaaa0000aaaa0000'));
  });

  it('a key of any allowed length fits the back ends (200 characters): a long one as a hash under its own prefix', () => {
    assert.equal(backendKey('order-42'), 'http:order-42');
    const long = 'x'.repeat(IDEMPOTENCY_KEY_MAX);
    const sent = backendKey(long);
    assert.ok(sent.length <= 200);
    assert.match(sent, /^http#[0-9a-f]{64}$/);
    assert.equal(backendKey(long), sent, 'stable');
    assert.notEqual(backendKey(`${long.slice(1)}y`), sent);
    assert.notEqual(executionIdForKey(long), executionIdForKey(long.slice(1)));
  });

  it('an /mcp key is scoped to its API key, in a form no Idempotency-Key header can take', () => {
    const a = mcpScopedKey('sy_aaaaaaaaaaaaaaaa', 'k1');
    assert.notEqual(a, mcpScopedKey('sy_bbbbbbbbbbbbbbbb', 'k1'));
    assert.equal(a, mcpScopedKey('sy_aaaaaaaaaaaaaaaa', 'k1'));
    assert.ok(!IDEMPOTENCY_KEY_PATTERN.test(a), 'a REST caller cannot send it');
    assert.notEqual(executionIdForKey(a), executionIdForKey('k1'));
    assert.notEqual(backendKey(a), backendKey('mcp:sy_aaaaaaaaaaaaaaaa:k1'));
  });

  it('binds a tool call key to the caller and the call: the same call again gets the same key, any other call another', () => {
    const k = toolCallKey('http:key1:k', 'everything', 'echo', { message: 'a', n: 1 });
    assert.match(k, /^call#[0-9a-f]{64}$/);
    assert.ok(k.length <= 200, 'within the connectors contract');
    assert.equal(toolCallKey('http:key1:k', 'everything', 'echo', { n: 1, message: 'a' }), k, 'key order aside');
    for (const other of [
      toolCallKey('http:key2:k', 'everything', 'echo', { message: 'a', n: 1 }),
      toolCallKey('http:key1:k', 'everything2', 'echo', { message: 'a', n: 1 }),
      toolCallKey('http:key1:k', 'everything', 'echo2', { message: 'a', n: 1 }),
      toolCallKey('http:key1:k', 'everything', 'echo', { message: 'b', n: 1 }),
    ])
      assert.notEqual(other, k);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DeciderSpecification } from '@switchyard/testing';
import { ConfigError } from '@switchyard/platform';
import { apiKeyDecider, type ApiKeyCommand, type ApiKeyEvent } from './api-key.decider.js';
import { generateKey, parseKey, presentedKey, secretMatches } from './keys.js';
import { securityOptionsFromEnv, resolveSecurityOptions } from './options.js';
import { accessFor, roleSatisfies } from './roles.js';

describe('roles', () => {
  it('orders viewer < operator < admin', () => {
    assert.equal(roleSatisfies('admin', 'viewer'), true);
    assert.equal(roleSatisfies('operator', 'operator'), true);
    assert.equal(roleSatisfies('operator', 'admin'), false);
    assert.equal(roleSatisfies('viewer', 'operator'), false);
  });

  it('a route with no role needs admin, except the public probes and docs', () => {
    assert.deepEqual(accessFor(undefined, '/api/v1/whatever'), { kind: 'role', role: 'admin' });
    assert.deepEqual(accessFor(null, '/livez'), { kind: 'public' });
    assert.deepEqual(accessFor(undefined, '/readyz'), { kind: 'public' });
    assert.deepEqual(accessFor(undefined, '/docs/openapi.json'), { kind: 'public' });
    assert.deepEqual(accessFor('public', '/api/v1/x'), { kind: 'public' });
  });

  it('a declared role is used; an unknown one falls back to admin; auditor reads like a viewer', () => {
    assert.deepEqual(accessFor('operator', '/livez'), { kind: 'role', role: 'operator' });
    assert.deepEqual(accessFor('auditor', '/api/v1/events'), { kind: 'role', role: 'viewer' });
    assert.deepEqual(accessFor('superuser', '/api/v1/x'), { kind: 'role', role: 'admin' });
  });
});

describe('keys', () => {
  it('a generated key parses back to its id; only the SHA-256 of the secret is kept', () => {
    const k = generateKey();
    const parsed = parseKey(k.key);
    assert.ok(parsed);
    assert.equal(parsed.id, k.id);
    assert.equal(k.hash, createHash('sha256').update(parsed.secret).digest('hex'));
    assert.ok(!k.prefix.includes(parsed.secret) && k.key.startsWith(k.prefix));
    assert.equal(secretMatches(parsed.secret, k.hash), true);
    assert.equal(secretMatches(parsed.secret + 'x', k.hash), false);
  });

  it('rejects keys that do not have the shape', () => {
    for (const bad of [
      '',
      'sy_',
      'sy_0123_abc',
      'sy_0123456789abcdeg_' + 'a'.repeat(43),
      'xx_0123456789abcdef_' + 'a'.repeat(43),
    ]) {
      assert.equal(parseKey(bad), undefined, bad);
    }
  });

  it('reads Bearer, a bare Authorization value, or x-api-key', () => {
    assert.equal(presentedKey({ authorization: 'Bearer abc' }), 'abc');
    assert.equal(presentedKey({ authorization: 'bearer   abc ' }), 'abc');
    assert.equal(presentedKey({ authorization: 'Basic Zm9v' }), 'Basic Zm9v');
    assert.equal(presentedKey({ 'x-api-key': 'k' }), 'k');
    assert.equal(presentedKey({}), undefined);
  });
});

describe('options', () => {
  it('library defaults: auth and rate limits off, 30 s timeout', () => {
    const o = resolveSecurityOptions({});
    assert.equal(o.auth.enabled, false);
    assert.equal(o.rateLimit.enabled, false);
    assert.equal(o.requestTimeoutMs, 30_000);
  });

  it('launcher defaults from the environment: auth and rate limits on', () => {
    const o = securityOptionsFromEnv({});
    assert.equal(o.auth.enabled, true);
    assert.ok(o.rateLimit);
    const off = securityOptionsFromEnv({ AUTH_ENABLED: 'false', RATE_LIMIT_ENABLED: 'no', RATE_LIMIT_PER_KEY: '5' });
    assert.equal(off.auth.enabled, false);
    assert.equal(off.rateLimit, false);
    assert.throws(
      () => securityOptionsFromEnv({ AUTH_ENABLED: 'maybe' }),
      (e: unknown) => e instanceof ConfigError && e.message.includes('AUTH_ENABLED'),
    );
  });

  it('GATEWAY_BODY_LIMIT_BYTES sets the body limit (default 1 MiB); a bad value names the variable', () => {
    assert.equal(securityOptionsFromEnv({}).bodyLimit, 1024 * 1024);
    assert.equal(securityOptionsFromEnv({ GATEWAY_BODY_LIMIT_BYTES: '65536' }).bodyLimit, 65536);
    assert.throws(
      () => securityOptionsFromEnv({ GATEWAY_BODY_LIMIT_BYTES: '10' }),
      (e: unknown) => e instanceof ConfigError && e.message.includes('GATEWAY_BODY_LIMIT_BYTES'),
    );
  });
});

const meta = { correlationId: 'c-1', actor: 'apikey:00000000000000aa', timestamp: '2026-01-01T00:00:00.000Z' };
const data = {
  id: '0123456789abcdef',
  name: 'ops',
  role: 'operator' as const,
  hash: 'a'.repeat(64),
  prefix: 'sy_0123456789abcdef_abcd',
};
const create: ApiKeyCommand = { type: 'CreateApiKey', data, metadata: meta };
const revoke: ApiKeyCommand = {
  type: 'RevokeApiKey',
  data: { id: data.id },
  metadata: { ...meta, timestamp: '2026-01-02T00:00:00.000Z' },
};
const created: ApiKeyEvent = { type: 'ApiKeyCreated', data, metadata: meta };
const revoked: ApiKeyEvent = { type: 'ApiKeyRevoked', data: { id: data.id }, metadata: revoke.metadata };
const spec = DeciderSpecification.for(apiKeyDecider);
const code = (c: string) => (e: { code?: string }) => e.code === c;

describe('api key decider', () => {
  describe('absent', () => {
    it('creates', () => {
      spec.given([]).when(create).then([created]);
    });
    it('cannot revoke what does not exist', () => {
      spec.given([]).when(revoke).thenThrows(code('not_found'));
    });
  });
  describe('active', () => {
    it('revokes, with the actor of the command', () => {
      spec.given([created]).when(revoke).then([revoked]);
    });
    it('cannot be created twice', () => {
      spec.given([created]).when(create).thenThrows(code('illegal_state'));
    });
  });
  describe('revoked', () => {
    it('cannot be revoked again', () => {
      spec.given([created, revoked]).when(revoke).thenThrows(code('illegal_state'));
    });
    it('remembers when', () =>
      assert.deepEqual(spec.given([created, revoked]).state, {
        status: 'revoked',
        key: { id: data.id, name: 'ops', role: 'operator' },
        revokedAt: revoke.metadata.timestamp,
      }));
  });
});

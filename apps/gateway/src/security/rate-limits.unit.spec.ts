import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@switchyard/platform';
import { minPositionOf } from '../http/read-routing.js';
import { resolveSecurityOptions, securityOptionsFromEnv } from './options.js';
import { RateLimits } from './rate-limits.js';

describe('rate limit options and the in-memory limiter', () => {
  it('the store defaults to postgres (shared); RATE_LIMIT_STORE=memory and the timeout are read; a bad value names the variable', () => {
    const d = securityOptionsFromEnv({});
    assert.ok(d.rateLimit);
    assert.equal(d.rateLimit.store, 'postgres');
    assert.equal(d.rateLimit.storeTimeoutMs, 500);
    const m = securityOptionsFromEnv({ RATE_LIMIT_STORE: 'memory', RATE_LIMIT_STORE_TIMEOUT_MS: '250' });
    assert.ok(m.rateLimit);
    assert.equal(m.rateLimit.store, 'memory');
    assert.equal(m.rateLimit.storeTimeoutMs, 250);
    assert.throws(() => securityOptionsFromEnv({ RATE_LIMIT_STORE: 'redis' }), /RATE_LIMIT_STORE/);
    assert.equal(resolveSecurityOptions({ rateLimit: {} }).rateLimit.store, 'postgres');
  });

  it('memory: counts down, then refuses with the time to the next window', async () => {
    const o = resolveSecurityOptions({
      rateLimit: { perKey: { points: 2, durationSec: 60 }, store: 'memory' },
    }).rateLimit;
    const limits = RateLimits.create(o, undefined, createLogger('rl-unit', 'silent'));
    assert.equal(limits.store, 'memory');
    const seen = [await limits.key('k'), await limits.key('k'), await limits.key('k')];
    assert.deepEqual(
      seen.map((s) => [s.allowed, s.remaining, s.limit]),
      [
        [true, 1, 2],
        [true, 0, 2],
        [false, 0, 2],
      ],
    );
    assert.ok(seen[2]!.msBeforeNext > 0 && seen[2]!.msBeforeNext <= 60_000);
  });

  it('X-Switchyard-Min-Position: an integer, the query parameter wins, anything else a validation error naming the header', () => {
    assert.equal(minPositionOf('42'), 42);
    assert.equal(minPositionOf('42', 7), 7);
    assert.equal(minPositionOf(undefined), undefined);
    assert.throws(
      () => minPositionOf('soon'),
      (e: { code?: string; message: string }) => e.code === 'validation' && /x-switchyard-min-position/.test(e.message),
    );
  });
});

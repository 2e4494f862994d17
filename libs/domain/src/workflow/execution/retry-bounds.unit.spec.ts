/**
 * Retry delays are bounded where a definition is checked and again where a delay is computed: a
 * backoff of 1e15 ms wrote a retry time in the year 33715 (PostgreSQL refused it, and the
 * executions read model retried that batch for good), and 9e15 ms made the decider throw
 * (RangeError), leaving its step running for good.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_RETRY_DELAY_MS, validateDefinition, type BackoffPolicy } from '../definition/index.js';
import { backoffDelay, storableInstant } from './timing.js';

const withBackoff = (backoff: Record<string, unknown>) => ({
  id: 'retries',
  version: 1,
  name: 'retries',
  steps: [{ id: 'a', uses: 'agent:echo', retry: { attempts: 3, backoff } }],
});

describe('retry delays are bounded', () => {
  it('a definition whose backoff is longer than 30 days is refused, naming the field', () => {
    for (const field of ['initialMs', 'maxMs']) {
      const v = validateDefinition(withBackoff({ [field]: 1e15 }));
      assert.equal(v.ok, false, field);
      assert.ok(
        !v.ok && v.problems.some((p) => p.path.includes(`backoff.${field}`)),
        JSON.stringify(!v.ok && v.problems),
      );
    }
    const factor = validateDefinition(withBackoff({ factor: 1e300 }));
    assert.equal(factor.ok, false);
    assert.equal(
      validateDefinition(withBackoff({ initialMs: MAX_RETRY_DELAY_MS, maxMs: MAX_RETRY_DELAY_MS })).ok,
      true,
    );
  });

  it('a stored policy past the bound (checked before the bound existed) still gives a delay within it', () => {
    const huge: BackoffPolicy = { initialMs: 9e15, factor: 2, maxMs: 9e15, jitter: 0 };
    for (const attempt of [2, 3, 50]) {
      const d = backoffDelay(huge, attempt, 7, 'a');
      assert.equal(d, MAX_RETRY_DELAY_MS, `attempt ${attempt}`);
      // The decider adds it to a command's time: that must stay a time.
      assert.ok(!Number.isNaN(new Date(Date.parse('2026-12-06T00:00:00.000Z') + d).getTime()));
    }
    const usual: BackoffPolicy = { initialMs: 1_000, factor: 2, maxMs: 60_000, jitter: 0 };
    assert.deepEqual(
      [2, 3, 4, 10].map((n) => backoffDelay(usual, n, 7, 'a')),
      [1_000, 2_000, 4_000, 60_000],
    );
  });

  it('storableInstant keeps what PostgreSQL takes, and makes a later time the last one it takes', () => {
    assert.equal(storableInstant('2026-12-06T10:00:00.000Z'), '2026-12-06T10:00:00.000Z');
    assert.equal(storableInstant('+033715-09-02T14:34:20.334Z'), '9999-12-31T23:59:59.999Z');
    assert.equal(storableInstant('9999-12-31T23:59:59.999Z'), '9999-12-31T23:59:59.999Z');
    assert.equal(storableInstant('not a time'), null);
    assert.equal(storableInstant(undefined), null);
  });
});

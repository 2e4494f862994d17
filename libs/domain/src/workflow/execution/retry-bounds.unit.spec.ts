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
import { at, cmd, fold, history, types } from './spec-helpers.js';

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

describe('a call its worker timed out is retried by the step policy only', () => {
  const write = (retry?: { attempts: number }) => ({
    id: 'write_once',
    version: 1,
    name: 'write once',
    steps: [{ id: 'insert', uses: 'mcp:database_writer/query', timeout_ms: 1_000, ...(retry ? { retry } : {}) }],
  });
  // What the connector answers at the step's deadline: it may have run, and it says retryable.
  const timedOut = { code: 'timeout', message: 'no answer within 1000 ms', retryable: true };
  const unavailable = { code: 'unavailable', message: 'server restarting', retryable: true };

  it('with no retry policy, a worker timeout fails the step and the workflow; an unavailable server is retried', () => {
    const failed = history(
      cmd.start(write()),
      cmd.dispatched({ stepId: 'insert' }),
      cmd.failed({ stepId: 'insert' }, timedOut),
    );
    assert.deepEqual(types(failed).slice(-2), ['StepFailed:insert', 'WorkflowFailed']);
    assert.equal(fold(failed).status, 'failed');
    const busy = history(
      cmd.start(write()),
      cmd.dispatched({ stepId: 'insert' }),
      cmd.failed({ stepId: 'insert' }, unavailable),
    );
    assert.equal(
      busy.at(-1)!.type,
      'StepRetryScheduled',
      'a transient error the worker reports still waits and retries',
    );
  });

  it('with a policy of 2 attempts, a worker timeout runs once more, then fails', () => {
    const events = history(
      cmd.start(write({ attempts: 2 })),
      cmd.dispatched({ stepId: 'insert' }),
      cmd.failed({ stepId: 'insert' }, timedOut),
      cmd.retry({ stepId: 'insert' }, 2, at(1_100)),
      cmd.dispatched({ stepId: 'insert' }, 2, at(1_200)),
      cmd.failed({ stepId: 'insert' }, timedOut, 2, at(2_200)),
    );
    assert.equal(events.filter((e) => e.type === 'StepRetryScheduled').length, 1);
    assert.equal(fold(events).status, 'failed');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/nats-core';
import { AppError } from '@switchyard/platform';
import { asAppError, headerSafe, requestFailure } from './errors.js';

describe('error codec', () => {
  it('keeps AppErrors and errors with a known code, hides the rest', () => {
    const app = new AppError('illegal_state', 'already done');
    assert.equal(asAppError(app), app);
    class Conflict extends Error {
      readonly code = 'conflict';
    }
    const c = asAppError(new Conflict('wrong expected version'));
    assert.equal(c.code, 'conflict');
    assert.equal(c.retryable, true);
    const hidden = asAppError(new Error('db password wrong'));
    assert.equal(hidden.code, 'internal');
    assert.doesNotMatch(hidden.message, /password/);
    assert.equal(asAppError('a string').code, 'internal');
    // A failed database connection is worth another attempt: unavailable, retryable.
    for (const e of [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      Object.assign(new Error('the database system is shutting down'), { code: '57P03' }),
      new Error('Connection terminated unexpectedly'),
      // Out of disk (the statement was fine; it works once there is room again).
      Object.assign(new Error('could not extend file: No space left on device'), { code: '53100' }),
    ]) {
      const m = asAppError(e);
      assert.equal(m.code, 'unavailable', e.message);
      assert.equal(m.retryable, true);
    }
  });

  it('strips line breaks from header values', () => {
    assert.equal(headerSafe('a\r\nb\nc'), 'a b c');
  });

  it('classifies request failures', () => {
    assert.equal(
      requestFailure(new RequestError('x', { cause: new NoRespondersError('s') }), 's', 1).code,
      'unavailable',
    );
    assert.equal(requestFailure(new TimeoutError(), 's', 1).code, 'timeout');
    assert.equal(requestFailure(new RequestError('connection disconnected'), 's', 1).code, 'unavailable');
    assert.equal(requestFailure(new Error('weird'), 's', 1).code, 'internal');
  });
});

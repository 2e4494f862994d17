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
  });

  it('strips line breaks from header values', () => {
    assert.equal(headerSafe('a\r\nb\nc'), 'a b c');
  });

  it('classifies request failures', () => {
    assert.equal(requestFailure(new RequestError('x', { cause: new NoRespondersError('s') }), 's', 1).code, 'unavailable');
    assert.equal(requestFailure(new TimeoutError(), 's', 1).code, 'timeout');
    assert.equal(requestFailure(new RequestError('connection disconnected'), 's', 1).code, 'unavailable');
    assert.equal(requestFailure(new Error('weird'), 's', 1).code, 'internal');
  });
});

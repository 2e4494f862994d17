import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import { AppError } from '@switchyard/platform';
import { countsAsFailure, isConnectionLoss, isRetryable, toAppError } from './errors.js';

describe('MCP error classification', () => {
  it('treats a closed connection and refused sockets as transient connection loss', () => {
    const closed = new McpError(ErrorCode.ConnectionClosed, 'Connection closed');
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    for (const e of [closed, refused, new Error('Not connected')]) {
      assert.equal(isConnectionLoss(e), true);
      assert.equal(toAppError(e, 's', 'op').code, 'unavailable');
      assert.equal(isRetryable(e), true);
      assert.equal(countsAsFailure(e), true);
    }
  });

  it('never retries a JSON-RPC error the server returned, nor counts it against the breaker', () => {
    const invalid = new McpError(ErrorCode.InvalidParams, 'bad args');
    assert.equal(toAppError(invalid, 's', 'op').code, 'validation');
    assert.equal(isRetryable(invalid), false);
    assert.equal(countsAsFailure(invalid), false);
    const missing = new McpError(ErrorCode.MethodNotFound, 'no such method');
    assert.equal(toAppError(missing, 's', 'op').code, 'not_found');
    assert.equal(isRetryable(new McpError(ErrorCode.InternalError, 'boom')), false);
  });

  it('maps timeouts to a retryable timeout that counts as a failure', () => {
    for (const e of [new TaskCancelledError(), new McpError(ErrorCode.RequestTimeout, 'Request timed out')]) {
      const a = toAppError(e, 's', 'op');
      assert.equal(a.code, 'timeout');
      assert.equal(isRetryable(e), true);
      assert.equal(countsAsFailure(e), true);
    }
  });

  it('answers an open circuit with a fail-fast unavailable that is not retried', () => {
    const a = toAppError(new BrokenCircuitError(), 'db', 'call_tool');
    assert.equal(a.code, 'unavailable');
    assert.equal(a.details.breaker, 'open');
    assert.equal(a.details.server, 'db');
    assert.equal(isRetryable(new BrokenCircuitError()), false);
  });

  it('does not retry a known-down server (fail fast) nor a full bulkhead', () => {
    const down = new AppError('unavailable', 'down', { fail_fast: true });
    assert.equal(isRetryable(down), false);
    assert.equal(countsAsFailure(down), true);
    assert.equal(toAppError(new BulkheadRejectedError(1, 1), 's', 'op').code, 'rate_limited');
    assert.equal(isRetryable(new BulkheadRejectedError(1, 1)), false);
  });

  it('maps HTTP statuses: 401 unauthorized, 404 session lost (transient), 500 transient', () => {
    assert.equal(toAppError(new StreamableHTTPError(401, 'no'), 's', 'op').code, 'unauthorized');
    assert.equal(isRetryable(new StreamableHTTPError(401, 'no')), false);
    assert.equal(isConnectionLoss(new StreamableHTTPError(404, 'gone')), true);
    assert.equal(toAppError(new StreamableHTTPError(503, 'x'), 's', 'op').code, 'unavailable');
  });
});

import { McpError, ErrorCode as RpcCode } from '@modelcontextprotocol/sdk/types.js';
import { RESPONSE_TOO_LARGE, ResponseTooLargeError } from './session/capped-fetch.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { BrokenCircuitError, BulkheadRejectedError, IsolatedCircuitError, TaskCancelledError } from 'cockatiel';
import { AppError } from '@switchyard/platform';

/**
 * Classification of everything an MCP call can throw. The one question that matters
 * for resilience: did the server (or the path to it) fail, so that trying again or
 * elsewhere can help (`transient`), or did the server answer "no" (`permanent`)?
 * A tool result with `isError: true` is not an exception at all and never reaches here.
 */

/** Node / undici error codes of a connection that failed or broke. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_STREAM_DESTROYED',
]);

/** The first error code along `err`'s causes (undici's `fetch failed` carries the socket's: EMFILE, ECONNREFUSED, ...). */
export function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && typeof e === 'object' && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/**
 * True when the error says the connection to the server is gone or unusable, so the
 * session must reconnect (process died, socket refused, HTTP session forgotten).
 */
export function isConnectionLoss(err: unknown): boolean {
  if (err instanceof McpError) return err.code === RpcCode.ConnectionClosed;
  if (err instanceof StreamableHTTPError) {
    // 404: the server forgot our session (restart); 400: some servers answer that for an unknown session id.
    return err.code === 404 || err.code === 400 || (err.code !== undefined && err.code >= 500) || err.code === -1;
  }
  if (err instanceof AppError) return false;
  const code = causeCode(err);
  if (code && CONNECTION_CODES.has(code)) return true;
  const msg = err instanceof Error ? err.message : String(err);
  return /not connected|fetch failed|socket hang up|connection closed|terminated|other side closed/i.test(msg);
}

/**
 * The HTTP server answered but no longer knows our MCP session (it restarted, or expired
 * the session): the server is alive, so a fresh session right away is the fix.
 */
export const isSessionExpired = (err: unknown): boolean =>
  err instanceof StreamableHTTPError && (err.code === 404 || err.code === 400);

/**
 * Map any error from an MCP operation on `server` to an AppError with a code:
 * - connection loss -> unavailable (retryable), timeouts -> timeout (retryable);
 * - JSON-RPC errors the server returned -> validation / not_found / internal (not retryable);
 * - open circuit -> unavailable with details.breaker = 'open'; full bulkhead -> rate_limited.
 */
export function toAppError(err: unknown, server: string, op: string): AppError {
  if (err instanceof AppError) return err;
  const tooLarge = responseTooLarge(err);
  if (tooLarge)
    return new AppError('result_too_large', `MCP server ${server}: ${tooLarge.message}`, { server, op }, false);
  if (err instanceof BrokenCircuitError || err instanceof IsolatedCircuitError) {
    return new AppError('unavailable', `MCP server ${server} is failing: circuit open, not calling it`, {
      server,
      op,
      breaker: 'open',
      fail_fast: true,
    });
  }
  if (err instanceof BulkheadRejectedError) {
    return new AppError(
      'rate_limited',
      `MCP server ${server}: too many concurrent calls`,
      { server, op, bulkhead: 'full' },
      true,
    );
  }
  if (err instanceof TaskCancelledError || (err instanceof Error && err.name === 'AbortError')) {
    return new AppError('timeout', `MCP server ${server} did not answer ${op} in time`, { server, op });
  }
  if (err instanceof McpError && (err.data as { reason?: unknown } | undefined)?.reason === RESPONSE_TOO_LARGE)
    return new AppError('result_too_large', `MCP server ${server}: ${err.message}`, { server, op }, false);
  if (err instanceof McpError) {
    switch (err.code) {
      case RpcCode.ConnectionClosed:
        return new AppError('unavailable', `MCP server ${server}: connection closed during ${op}`, { server, op });
      case RpcCode.RequestTimeout:
        return new AppError('timeout', `MCP server ${server} did not answer ${op} in time`, { server, op });
      case RpcCode.InvalidParams:
      case RpcCode.InvalidRequest:
      case RpcCode.ParseError:
        return new AppError('validation', err.message, { server, op, rpc_code: err.code });
      case RpcCode.MethodNotFound:
        return new AppError('not_found', err.message, { server, op, rpc_code: err.code });
      default:
        return new AppError('internal', err.message, { server, op, rpc_code: err.code }, false);
    }
  }
  if (err instanceof UnauthorizedError) {
    return new AppError(
      'unauthorized',
      `MCP server ${server} refused our credentials (check its auth_token / MCP_AUTH_TOKEN)`,
      { server, op },
    );
  }
  if (err instanceof StreamableHTTPError) {
    if (err.code === 401)
      return new AppError(
        'unauthorized',
        `MCP server ${server} refused our credentials (check its auth_token / MCP_AUTH_TOKEN)`,
        { server, op, http_status: 401 },
      );
    if (err.code === 403)
      return new AppError('forbidden', `MCP server ${server} forbids ${op}`, { server, op, http_status: 403 });
    if (err.code === 429)
      return new AppError(
        'rate_limited',
        `MCP server ${server} is rate limiting`,
        { server, op, http_status: 429 },
        true,
      );
    if (isConnectionLoss(err))
      return new AppError('unavailable', `MCP server ${server} is unreachable: ${err.message}`, {
        server,
        op,
        http_status: err.code,
      });
    return new AppError(
      'internal',
      `MCP server ${server}: ${err.message}`,
      { server, op, http_status: err.code },
      false,
    );
  }
  if (isConnectionLoss(err)) {
    return new AppError('unavailable', `MCP server ${server} is unreachable: ${errorText(err)}`, { server, op });
  }
  return new AppError('internal', `MCP server ${server}: ${op} failed: ${errorText(err)}`, { server, op }, false);
}

/**
 * Whether the retry policy may try again: transient (retryable) errors only, and not
 * the fail-fast ones (open circuit, server known down / unconfigured) where waiting a
 * few hundred ms cannot help and the caller wants a quick 503.
 */
export function isRetryable(err: unknown, server = '?'): boolean {
  const e = toAppError(err, server, 'call');
  return e.retryable && e.details.fail_fast !== true && e.code !== 'rate_limited';
}

/** Does this error count against the circuit breaker? Only failures of the server or the path to it. */
export function countsAsFailure(err: unknown, server = '?'): boolean {
  const e = toAppError(err, server, 'call');
  // A timeout the caller chose well below the server's own (under half of it) is the caller's
  // budget, not the server failing: counted, one key's 50 ms calls to a slow query opened the
  // circuit for all. A deadline near the server's still counts, so a hung server still opens it.
  if (e.code === 'timeout' && e.details[CALLERS_DEADLINE] === true) return false;
  // Not sent at all (another process holds the call): says nothing of the server.
  if (e.details[CLAIM_LOST] === true) return false;
  return (
    e.code === 'unavailable' || e.code === 'timeout' || (e.code === 'internal' && e.details.http_status !== undefined)
  );
}

/** Detail of a `timeout` that ran out on a deadline its caller set below the server's (see countsAsFailure). */
export const CALLERS_DEADLINE = 'callers_deadline';

/** Detail of an `unavailable` call not sent because this process no longer held its shared claim (see SharedCallLease). */
export const CLAIM_LOST = 'claim_lost';

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The ResponseTooLargeError behind `err` (thrown as it is, or as the cause of the fetch's own error). */
function responseTooLarge(err: unknown): ResponseTooLargeError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++)
    if (e instanceof ResponseTooLargeError) return e;
  return undefined;
}

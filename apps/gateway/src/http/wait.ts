import { currentRequestContext } from './context.js';
import { exchangeStartOf } from './exchange.js';

/**
 * The wait of a `?wait=true` request, bounded so its answer (202 with the state so far) leaves
 * before the gateway's request timeout would answer 504 instead: a wait is a convenience, and
 * running out of it is not an error. The request's clock started when it arrived, not when its
 * handler ran: under load the time before (the body, the queue for the event loop) is part of it.
 */
export function waitWithin(requestedMs: number, requestTimeoutMs: number): number {
  if (requestTimeoutMs <= 0) return requestedMs;
  const margin = Math.min(5_000, Math.max(500, Math.round(requestTimeoutMs * 0.2)));
  const started = exchangeStartOf(currentRequestContext()?.response);
  const elapsed = started === undefined ? 0 : performance.now() - started;
  return Math.max(1, Math.min(requestedMs, Math.floor(requestTimeoutMs - margin - elapsed)));
}

/** What is left of a wait of `waitMs` that began at `since` (`performance.now()`), at least 1 ms. */
export const waitLeft = (waitMs: number, since: number): number =>
  Math.max(1, Math.floor(waitMs - (performance.now() - since)));

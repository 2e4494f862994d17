/**
 * The wait of a `?wait=true` request, bounded so its answer (202 with the state so far) leaves
 * before the gateway's request timeout would answer 504 instead: a wait is a convenience, and
 * running out of it is not an error.
 */
export function waitWithin(requestedMs: number, requestTimeoutMs: number): number {
  if (requestTimeoutMs <= 0) return requestedMs;
  const margin = Math.min(5_000, Math.max(500, Math.round(requestTimeoutMs * 0.2)));
  return Math.max(1, Math.min(requestedMs, requestTimeoutMs - margin));
}

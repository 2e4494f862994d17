/** How long to wait before a retry (see backoffMs). */
export interface BackoffOptions {
  /** The wait after the first failure (attempt 0); doubled each attempt after. Default 100 ms. */
  readonly initialMs?: number;
  /** The longest wait. Default 5 s. */
  readonly maxMs?: number;
  /**
   * "equal": half the wait fixed, half random, so many processes that failed together (a
   * database restart) do not all retry in the same instant. Default none.
   */
  readonly jitter?: 'none' | 'equal';
}

/**
 * The wait before retry number `attempt` (0 for the first) of a loop that retries until it
 * succeeds or stops: `initialMs * 2^attempt`, capped at `maxMs`. The loops that use it keep
 * their own attempt count and stop checks; a call with a bounded number of attempts uses a
 * cockatiel retry policy instead.
 */
export function backoffMs(attempt: number, options: BackoffOptions = {}): number {
  const { initialMs = 100, maxMs = 5_000, jitter = 'none' } = options;
  // The exponent is capped so a long outage never overflows to Infinity or NaN.
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return jitter === 'equal' ? Math.round(cap / 2 + Math.random() * (cap / 2)) : cap;
}

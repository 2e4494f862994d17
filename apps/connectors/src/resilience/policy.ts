import {
  bulkhead,
  circuitBreaker,
  ConsecutiveBreaker,
  CircuitState,
  decorrelatedJitterGenerator,
  ExponentialBackoff,
  handleWhen,
  retry,
  timeout,
  TimeoutStrategy,
  wrap,
  type CircuitBreakerPolicy,
  type IPolicy,
} from 'cockatiel';
import type { McpServerConfig } from '../registry/schema.js';
import type { McpBreakerState } from '../events.js';
import { countsAsFailure, errorText, isRetryable, toAppError } from '../errors.js';

export interface BreakerListener {
  opened(lastError: string): void;
  halfOpened(): void;
  closed(): void;
}

/**
 * The cockatiel policies of one server, outermost first:
 *   bulkhead (max concurrent + queue) -> circuit breaker -> retry -> timeout (per attempt).
 * The breaker sits outside the retry so one logical call counts once, and so an open
 * circuit answers at once without any retry delay. Only server/path failures count
 * (unavailable, timeout); a JSON-RPC error or an isError result is the server working.
 */
export class ServerPolicy {
  readonly breaker: CircuitBreakerPolicy;
  /** Retries every transient error, timeouts included: for read-only / idempotent calls. */
  private readonly safe: IPolicy;
  /** Retries transient errors except timeouts: a call that timed out may have run, so do not run it twice. */
  private readonly unsafe: IPolicy;

  constructor(
    private readonly config: McpServerConfig,
    listener: BreakerListener,
  ) {
    const name = config.name;
    const backoff = new ExponentialBackoff({
      initialDelay: config.retry.initial_delay_ms,
      maxDelay: config.retry.max_delay_ms,
      generator: decorrelatedJitterGenerator,
    });
    const retries = config.retry.max_attempts - 1;
    const retrySafe = retry(handleWhen((e) => isRetryable(e, name)), { maxAttempts: retries, backoff });
    const retryUnsafe = retry(
      handleWhen((e) => isRetryable(e, name) && toAppError(e, name, 'call').code !== 'timeout'),
      { maxAttempts: retries, backoff },
    );
    this.breaker = circuitBreaker(handleWhen((e) => countsAsFailure(e, name)), {
      halfOpenAfter: config.breaker.half_open_after_ms,
      breaker: new ConsecutiveBreaker(config.breaker.consecutive_failures),
    });
    this.breaker.onBreak((reason) => listener.opened('error' in reason ? errorText(reason.error) : 'failure result'));
    this.breaker.onHalfOpen(() => listener.halfOpened());
    this.breaker.onReset(() => listener.closed());
    const bh = bulkhead(config.bulkhead.max_concurrent, config.bulkhead.max_queue);
    const perAttempt = timeout(config.timeouts.call_ms, TimeoutStrategy.Aggressive);
    this.safe = wrap(bh, this.breaker, retrySafe, perAttempt);
    this.unsafe = wrap(bh, this.breaker, retryUnsafe, perAttempt);
  }

  /**
   * Run `fn` under the policies; `attempts` counts invocations of `fn`. `retryTimeouts`
   * says whether a timed-out attempt may be repeated (safe to run twice).
   */
  async execute<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    opts: { retryTimeouts: boolean; signal?: AbortSignal },
  ): Promise<{ value: T; attempts: number }> {
    let attempts = 0;
    const policy = opts.retryTimeouts ? this.safe : this.unsafe;
    try {
      const value = await policy.execute(({ signal }) => {
        attempts++;
        return fn(signal);
        // A fresh parent signal per call: cockatiel's shared default signal would collect one
        // listener per in-flight call and trip Node's MaxListeners warning under load.
      }, opts.signal ?? new AbortController().signal);
      return { value, attempts };
    } catch (err) {
      throw Object.assign(toAppError(err, this.config.name, 'call'), { attempts });
    }
  }

  get breakerState(): McpBreakerState {
    switch (this.breaker.state) {
      case CircuitState.Closed:
        return 'closed';
      case CircuitState.Open:
        return 'open';
      case CircuitState.HalfOpen:
        return 'half_open';
      default:
        return 'isolated';
    }
  }
}

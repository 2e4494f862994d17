import {
  BulkheadRejectedError,
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
import type { McpBreakerState } from '@switchyard/contracts';
import { AppError } from '@switchyard/platform';
import { countsAsFailure, errorText, isRetryable, toAppError } from '../errors.js';
import { FairGate, type Release } from './fair-gate.js';

/** The bulkhead's queue as metrics see it: calls waiting for a slot and how long they waited. */
export interface McpQueueStats {
  readonly max_concurrent: number;
  readonly max_queue: number;
  /** Calls running now (holding a slot). */
  readonly in_flight: number;
  /** Calls waiting for a slot now. */
  readonly depth: number;
  /** Wait for a slot over the last minute (calls that got one), ms. */
  readonly wait_ms: { readonly count: number; readonly p50: number; readonly p99: number; readonly max: number };
  /** Since start: calls that had to wait, calls refused because the queue was full. */
  readonly queued_total: number;
  readonly rejected_total: number;
}

const WAIT_WINDOW_MS = 60_000;
const WAIT_SAMPLES = 1_024;

export interface BreakerListener {
  opened(lastError: string): void;
  halfOpened(): void;
  closed(): void;
}

/**
 * The policies of one server, outermost first:
 *   bulkhead (max concurrent + a queue that takes turns by caller, FairGate) -> circuit breaker
 *   -> retry -> timeout (per attempt); all but the bulkhead are cockatiel's.
 * The breaker sits outside the retry so one logical call counts once, and so an open
 * circuit answers at once without any retry delay. Only server/path failures count
 * (unavailable, timeout); a JSON-RPC error or an isError result is the server working.
 */
export class ServerPolicy {
  readonly breaker: CircuitBreakerPolicy;
  private readonly gate: FairGate;
  /** Recent waits for a slot: [end time, wait ms], a ring of WAIT_SAMPLES. */
  private readonly waits: [number, number][] = [];
  private waitNext = 0;
  private queuedTotal = 0;
  private rejectedTotal = 0;
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
    const retrySafe = retry(
      handleWhen((e) => isRetryable(e, name)),
      { maxAttempts: retries, backoff },
    );
    const retryUnsafe = retry(
      handleWhen((e) => isRetryable(e, name) && toAppError(e, name, 'call').code !== 'timeout'),
      { maxAttempts: retries, backoff },
    );
    this.breaker = circuitBreaker(
      handleWhen((e) => countsAsFailure(e, name)),
      {
        halfOpenAfter: config.breaker.half_open_after_ms,
        breaker: new ConsecutiveBreaker(config.breaker.consecutive_failures),
      },
    );
    this.breaker.onBreak((reason) => listener.opened('error' in reason ? errorText(reason.error) : 'failure result'));
    this.breaker.onHalfOpen(() => listener.halfOpened());
    this.breaker.onReset(() => listener.closed());
    // A full server makes calls wait (at most max_queue, taking turns by caller) rather than fail.
    this.gate = new FairGate(config.bulkhead.max_concurrent, config.bulkhead.max_queue);
    // The attempt's signal aborts on a timeout or the caller's cancel, not when the attempt returns
    // (cockatiel's default): the MCP SDK client never drops its abort listener from a request's
    // signal, so an abort after the answer sent the server a notifications/cancelled for every
    // call that had already succeeded (over Streamable HTTP one more POST per call).
    const perAttempt = timeout(config.timeouts.call_ms, {
      strategy: TimeoutStrategy.Aggressive,
      abortOnReturn: false,
    });
    this.safe = wrap(this.breaker, retrySafe, perAttempt);
    this.unsafe = wrap(this.breaker, retryUnsafe, perAttempt);
  }

  /**
   * Run `fn` under the policies; `attempts` counts invocations of `fn`. `retryTimeouts`
   * says whether a timed-out attempt may be repeated (safe to run twice). A call that has to wait
   * for a slot calls `onQueued` as it joins the queue and `onStarted` as it leaves it; waiting calls
   * of different `caller`s take turns (McpConnector names the person who asked, and the workflow).
   */
  async execute<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    opts: {
      retryTimeouts: boolean;
      /** Whose turn the call takes while it waits for a slot, and within that whose (see FairGate). */
      caller?: { readonly who: string; readonly within?: string } | undefined;
      /** Aborts only the wait for a slot (a call canceled before it ran leaves the queue at once). */
      leaveQueueOn?: AbortSignal;
      signal?: AbortSignal;
      onQueued?: () => void;
      onStarted?: () => void;
    },
  ): Promise<{ value: T; attempts: number }> {
    let attempts = 0;
    const policy = opts.retryTimeouts ? this.safe : this.unsafe;
    const t0 = performance.now();
    let release: Release | undefined;
    try {
      // A free slot is taken in this tick (the call starts without a turn of the event loop).
      release = this.gate.tryAcquire();
      const waited = !release;
      if (!release) {
        const leave = queueSignal(opts);
        if (!leave?.aborted && this.gate.wouldQueue(opts.caller?.who ?? '')) {
          this.queuedTotal++;
          opts.onQueued?.();
        }
        release = await this.gate.acquire(opts.caller?.who ?? '', leave, opts.caller?.within);
      }
      const value = await policy.execute(({ signal }) => {
        // Started when its first attempt runs (an open breaker refuses it before that).
        if (attempts++ === 0 && waited) {
          this.recordWait(performance.now() - t0);
          opts.onStarted?.();
        }
        return fn(signal);
        // A fresh parent signal per call: cockatiel's shared default signal would collect one
        // listener per in-flight call and trip Node's MaxListeners warning under load.
      }, opts.signal ?? new AbortController().signal);
      return { value, attempts };
    } catch (err) {
      if (err instanceof BulkheadRejectedError) {
        this.rejectedTotal++;
        // Tell the caller when a slot is likely: about the time the queue takes to drain now.
        const e = toAppError(err, this.config.name, 'call');
        const q = this.queueStats();
        const retryAfter = Math.min(10_000, Math.max(250, Math.round(q.wait_ms.p50 || 250)));
        throw Object.assign(
          new AppError(
            e.code,
            `${e.message} (${q.in_flight} running, ${q.depth} queued)`,
            { ...e.details, retry_after_ms: retryAfter, depth: q.depth },
            true,
          ),
          { attempts },
        );
      }
      throw Object.assign(toAppError(err, this.config.name, 'call'), { attempts });
    } finally {
      release?.();
    }
  }

  private recordWait(ms: number): void {
    const sample: [number, number] = [Date.now(), ms];
    if (this.waits.length < WAIT_SAMPLES) this.waits.push(sample);
    else this.waits[this.waitNext] = sample;
    this.waitNext = (this.waitNext + 1) % WAIT_SAMPLES;
  }

  /** Queue depth, slots in use and recent waits, without I/O. */
  queueStats(): McpQueueStats {
    const since = Date.now() - WAIT_WINDOW_MS;
    const recent = this.waits
      .filter(([t]) => t >= since)
      .map(([, w]) => w)
      .sort((a, b) => a - b);
    const pick = (q: number) =>
      recent.length === 0 ? 0 : Math.round(recent[Math.min(recent.length - 1, Math.floor(q * recent.length))]!);
    return {
      max_concurrent: this.config.bulkhead.max_concurrent,
      max_queue: this.config.bulkhead.max_queue,
      in_flight: this.gate.inFlight,
      depth: this.gate.depth,
      wait_ms: {
        count: recent.length,
        p50: pick(0.5),
        p99: pick(0.99),
        max: recent.length === 0 ? 0 : Math.round(recent.at(-1)!),
      },
      queued_total: this.queuedTotal,
      rejected_total: this.rejectedTotal,
    };
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

/** What ends a call's wait for a slot: its caller's signal, or a cancel of the call. */
function queueSignal(opts: { signal?: AbortSignal; leaveQueueOn?: AbortSignal }): AbortSignal | undefined {
  if (opts.signal && opts.leaveQueueOn) return AbortSignal.any([opts.signal, opts.leaveQueueOn]);
  return opts.signal ?? opts.leaveQueueOn;
}

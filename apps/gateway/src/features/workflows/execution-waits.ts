import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { AllSubscription, EventStore } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';
import type { WorkflowExecutionState } from '@switchyard/domain';
import { EVENT_STORE, LOGGER } from '../../tokens.js';
import { loadExecution } from './deps.js';

const STREAM_PREFIX = 'workflow_execution-';
/** The events that end an execution: the only ones a wait needs to hear of. */
export const EXECUTION_END_EVENTS = ['WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled'] as const;
/** Pause before a failed subscription is opened again (from where it stopped). */
const RESUBSCRIBE_MS = 1_000;

const ended = (s: WorkflowExecutionState) =>
  s.status === 'completed' || s.status === 'failed' || s.status === 'canceled';

/**
 * `?wait=true` of workflow starts: waits for an execution's end on a live subscription to the
 * event store, not by reading its stream again and again. One subscription per gateway process,
 * filtered to the end events of executions (the store filters where it reads), fans out to the
 * waiting requests by execution id; it opens at the first wait and closes at shutdown.
 */
@Injectable()
export class ExecutionWaits implements BeforeApplicationShutdown {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly log: Logger;
  private sub: AllSubscription | undefined;
  private opening: Promise<void> | undefined;
  /** Every event up to here was considered by the subscription (a resubscription resumes after it). */
  private seen = -1;
  private closed = false;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ component: 'execution-waits' });
  }

  /** Requests waiting now (for tests and metrics). */
  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  /**
   * The execution's state once it ended, or as it is when `timeoutMs` runs out (running: not an
   * error, the caller answers 202). 404 for an unknown execution.
   * 1. Register first, so an end committed from now on wakes this wait.
   * 2. Make sure the subscription is open (from the head at its opening: no end after it is missed).
   * 3. Read the state: an end committed before step 1 is seen here.
   * 4. Wait for the wake-up or the timeout, and read the state once more.
   */
  async waitForEnd(executionId: string, timeoutMs: number): Promise<WorkflowExecutionState> {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const set = this.waiters.get(executionId) ?? new Set();
    set.add(wake);
    this.waiters.set(executionId, set);
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.open();
      const { state } = await loadExecution(this.store, executionId);
      if (state.status === 'not_started')
        throw new AppError('not_found', `workflow execution ${executionId} not found`, { executionId });
      if (ended(state)) return state;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      if ((await Promise.race([woken, timedOut])) === 'timeout') return state;
      return (await loadExecution(this.store, executionId)).state;
    } finally {
      clearTimeout(timer);
      set.delete(wake);
      if (set.size === 0 && this.waiters.get(executionId) === set) this.waiters.delete(executionId);
    }
  }

  private open(): Promise<void> {
    if (this.sub || this.closed) return Promise.resolve();
    this.opening ??= (async () => {
      try {
        const from = this.seen >= 0 ? this.seen : await this.store.headPosition();
        this.seen = Math.max(this.seen, from);
        this.sub = this.store.subscribeToAll({
          from,
          types: EXECUTION_END_EVENTS,
          streamPrefixes: [STREAM_PREFIX],
          onProgress: (position) => void (this.seen = Math.max(this.seen, position)),
        });
        void this.deliver(this.sub);
      } finally {
        this.opening = undefined;
      }
    })();
    return this.opening;
  }

  private async deliver(sub: AllSubscription): Promise<void> {
    try {
      for await (const e of sub) {
        this.seen = Math.max(this.seen, e.position);
        const id = e.streamId.slice(STREAM_PREFIX.length);
        for (const wake of this.waiters.get(id) ?? []) wake();
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err, seen: this.seen }, 'the wait subscription failed; opening it again');
    } finally {
      if (this.sub === sub) this.sub = undefined;
    }
    // Ended without a close (a failure, a lost connection): resume after what was seen, while someone waits.
    if (!this.closed) {
      setTimeout(() => {
        if (!this.closed && this.waiters.size > 0)
          void this.open().catch((err: unknown) => this.log.warn({ err }, 'reopening the wait subscription failed'));
      }, RESUBSCRIBE_MS).unref();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closed = true;
    await this.sub?.close().catch(() => undefined);
    this.sub = undefined;
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }
}

import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { EventStore } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';
import {
  WORKFLOW_EXECUTION_STREAM_PREFIX,
  workflowExecutionStream,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { EVENT_STORE, LOGGER } from '../../tokens.js';
import { StreamFanout, type NextEventWatch } from '../../events/stream-fanout.js';
import { ExecutionFolds } from './execution-folds.js';

/** The events that end an execution: the only ones a wait needs to hear of. */
export const EXECUTION_END_EVENTS = ['WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled'] as const;

const END_TYPES: ReadonlySet<string> = new Set(EXECUTION_END_EVENTS);

/**
 * `?wait=true` of workflow starts: waits for an execution's end on a live subscription to the
 * event store, not by reading its stream again and again: one StreamFanout per gateway
 * process, of the end events only, opened at the first wait and closed at shutdown.
 */
@Injectable()
export class ExecutionWaits implements BeforeApplicationShutdown {
  private readonly ends: StreamFanout;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(LOGGER) logger: Logger,
    @Inject(ExecutionFolds) private readonly folds: ExecutionFolds,
  ) {
    this.ends = new StreamFanout(
      store,
      logger.child({ component: 'execution-waits' }),
      WORKFLOW_EXECUTION_STREAM_PREFIX,
      EXECUTION_END_EVENTS,
    );
  }

  /** Requests waiting now (for tests and metrics). */
  get waiting(): number {
    return this.ends.listening;
  }

  /**
   * The execution's state once it ended, or as it is when `timeoutMs` runs out (running: not an
   * error, the caller answers 202). 404 for an unknown execution.
   * 1. Listen first (the subscription opens from the head at its opening), so an end committed
   *    from now on wakes this wait.
   * 2. Read the stream's last event: an end committed before step 1 is seen here.
   * 3. Wait for the wake-up (an end, or the gateway stopping) or the timeout.
   * 4. Fold the stream once, as a large execution's folds are (ExecutionFolds: in a turn).
   */
  async waitForEnd(executionId: string, timeoutMs: number): Promise<WorkflowExecutionState> {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const stop = await this.ends.listen(executionId, () => wake());
    let timer: NodeJS.Timeout | undefined;
    try {
      const [last] = await this.store.readStream(workflowExecutionStream(executionId), {
        direction: 'backwards',
        maxCount: 1,
      });
      if (!last) throw new AppError('not_found', `workflow execution ${executionId} not found`, { executionId });
      if (!END_TYPES.has(last.type)) {
        const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
        await Promise.race([woken, timedOut]);
      }
    } finally {
      clearTimeout(timer);
      stop();
    }
    return this.folds.stateOf(executionId);
  }

  /**
   * Listen for the execution's end without reading its state: `next(ms)` is true once it ended
   * (at once when its stream ends with an end event already), false after `ms`. For followers
   * that read the execution from the read model (which may lag the log), so they wait on the
   * shared subscription instead of asking the read model again and again.
   */
  watchEnd(executionId: string): Promise<NextEventWatch> {
    return this.ends.watchNextUnlessEnded(executionId, END_TYPES);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.ends.close();
  }
}

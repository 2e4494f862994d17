import type { EventStore } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';
import { workflowEventTypes, workflowExecutionStream } from '@switchyard/domain';
import { EXECUTION_END_EVENTS } from '../workflows/execution-waits.js';
import { ExecutionFanout } from '../workflows/execution-fanout.js';

const ENDS: ReadonlySet<string> = new Set(EXECUTION_END_EVENTS);
/** The event types that move an execution (a step settles or starts, the workflow ends). */
const MOVES = workflowEventTypes.filter(
  (type) => type.startsWith('Step') || type.startsWith('Workflow') || type.startsWith('Compensation'),
);

/**
 * Tells MCP resource subscribers when their workflow execution moves, from one ExecutionFanout
 * (one subscription to the log for the whole gateway), whatever the number of subscribers: each
 * polling its execution's stream would cost the database a read every few hundred milliseconds
 * per subscription, and a client may hold thousands of them.
 */
export class ExecutionWatch {
  private readonly moves: ExecutionFanout;

  constructor(
    private readonly store: EventStore,
    log: Logger,
  ) {
    this.moves = new ExecutionFanout(store, log, MOVES);
  }

  /** Executions watched now (for tests and status). */
  get watched(): number {
    return this.moves.executions;
  }

  /**
   * Call `notify` each time the execution moves, until it ends or the returned stop is called.
   * Throws not_found for an execution without events. An execution that has ended already is
   * not watched (nothing will move it).
   */
  async watch(executionId: string, notify: () => void): Promise<() => void> {
    // The end can come before listen() returns (while it makes sure of the subscription).
    const end: { seen: boolean; stop?: () => void } = { seen: false };
    const stop = await this.moves.listen(executionId, (e) => {
      if (!e) return;
      notify();
      if (ENDS.has(e.type)) {
        end.seen = true;
        end.stop?.();
      }
    });
    end.stop = stop;
    if (end.seen) stop();
    try {
      // Listening before this read: whatever comes after it reaches the watcher.
      const [last] = await this.store.readStream(workflowExecutionStream(executionId), {
        direction: 'backwards',
        maxCount: 1,
      });
      if (!last) throw new AppError('not_found', `no workflow execution ${executionId}`, { execution_id: executionId });
      if (ENDS.has(last.type)) stop();
    } catch (err) {
      stop();
      throw err;
    }
    return stop;
  }

  close(): Promise<void> {
    return this.moves.close();
  }
}

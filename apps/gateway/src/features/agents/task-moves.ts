import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { EventStore } from '@switchyard/event-store';
import type { Logger } from '@switchyard/platform';
import { TASK_STREAM_PREFIX } from '@switchyard/domain';
import { StreamFanout, type NextEventWatch } from '../../events/stream-fanout.js';
import { EVENT_STORE, LOGGER } from '../../tokens.js';

/** The events that end a task. */
const TASK_END_EVENTS = ['TaskCompleted', 'TaskFailed', 'TaskCanceled', 'TaskTimedOut'] as const;
const ENDS: ReadonlySet<string> = new Set(TASK_END_EVENTS);
/** The events that move a task as its followers see it: picked up by an agent, or ended. */
const TASK_MOVE_EVENTS = ['TaskAssigned', ...TASK_END_EVENTS] as const;

/**
 * Tells followers of delegated tasks (the A2A peer's running tasks) when their task moves,
 * from one StreamFanout (one subscription to the event log for the gateway), whatever the
 * number of followers: each asking the dispatcher for its task's status every second would cost
 * a NATS request and a dispatcher read per follower per second, and a client may have
 * thousands of tasks queued.
 */
@Injectable()
export class TaskMoves implements BeforeApplicationShutdown {
  private readonly moves: StreamFanout;

  constructor(@Inject(EVENT_STORE) store: EventStore, @Inject(LOGGER) logger: Logger) {
    this.moves = new StreamFanout(
      store,
      logger.child({ component: 'task-moves' }),
      TASK_STREAM_PREFIX,
      TASK_MOVE_EVENTS,
    );
  }

  /** Tasks followed now (for tests and metrics). */
  get followed(): number {
    return this.moves.streams;
  }

  /**
   * Listen for the task's next move: `next(ms)` is true once it was assigned or ended (at once
   * when its stream ends with an end event already), false after `ms`.
   */
  watch(taskId: string): Promise<NextEventWatch> {
    return this.moves.watchNextUnlessEnded(taskId, ENDS);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.moves.close();
  }
}

import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { EventStore, RecordedEvent } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';
import { WORKFLOW_EXECUTION_STREAM_PREFIX, workflowEventTypes, workflowExecutionStream } from '@switchyard/domain';
import { EVENT_STORE, LOGGER } from '../../tokens.js';
import { EXECUTION_END_EVENTS } from '../workflows/execution-waits.js';
import { StreamFanout } from '../../events/stream-fanout.js';

const ENDS: ReadonlySet<string> = new Set(EXECUTION_END_EVENTS);
/** The event types that move an execution (a step settles or starts, the workflow ends). */
const MOVES = workflowEventTypes.filter(
  (type) => type.startsWith('Step') || type.startsWith('Workflow') || type.startsWith('Compensation'),
);

/** An execution's events as `follow` hands them, and the stop that ends them early. */
export interface FollowedExecution {
  readonly events: AsyncIterable<RecordedEvent>;
  /** Ends `events` (at once if it waits for the next one). */
  readonly stop: () => void;
}

/**
 * Tells MCP resource subscribers when their workflow execution moves, and hands the workflow
 * tools the events of the execution they wait for, from one StreamFanout (one subscription
 * to the log for the whole gateway), whatever the number of watchers: each polling its
 * execution's stream, or holding a subscription of its own, would cost the database a read
 * per watcher, and a client may hold thousands of subscriptions or waiting calls.
 */
@Injectable()
export class ExecutionWatch implements OnModuleDestroy {
  private readonly moves: StreamFanout;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(LOGGER) log: Logger,
  ) {
    this.moves = new StreamFanout(
      store,
      log.child({ component: 'execution-watch' }),
      WORKFLOW_EXECUTION_STREAM_PREFIX,
      MOVES,
    );
  }

  /** Executions followed or watched now, over both uses (for tests and status). */
  get watched(): number {
    return this.moves.streams;
  }

  /**
   * Every event of the execution, from its first, in order and once each: its stream as it
   * stands, then those that move it as they are appended (from the shared subscription, which
   * takes only the event types that move an execution). `events` ends after the execution's end
   * event, at `stop()`, or when the watch closes (the gateway stops).
   */
  follow(executionId: string): FollowedExecution {
    const queue: (RecordedEvent | null)[] = [];
    let wake: (() => void) | undefined;
    let stopped = false;
    const { moves, store } = this;
    async function* events(): AsyncGenerator<RecordedEvent> {
      // Listening before the read: whatever is appended after it reaches the queue.
      const unlisten = await moves.listen(executionId, (e) => {
        queue.push(e);
        wake?.();
      });
      try {
        let last = -1;
        for (const e of await store.readStream(workflowExecutionStream(executionId))) {
          if (stopped) return;
          last = e.position;
          yield e;
          if (ENDS.has(e.type)) return;
        }
        while (!stopped) {
          const e = queue.shift();
          if (e === undefined) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          if (e === null) return;
          // Already read with the stream.
          if (e.position <= last) continue;
          last = e.position;
          yield e;
          if (ENDS.has(e.type)) return;
        }
      } finally {
        unlisten();
      }
    }
    return {
      events: events(),
      stop: () => {
        stopped = true;
        wake?.();
      },
    };
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

  onModuleDestroy(): Promise<void> {
    return this.close();
  }
}

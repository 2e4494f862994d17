import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';
import type {
  AllSubscription,
  AppendOptions,
  AppendResult,
  EventStore,
  NewEvent,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeOptions,
} from '@switchyard/event-store';
import { AppError, isAppError } from '@switchyard/platform';
import {
  WORKFLOW_EXECUTION_STREAM_PREFIX,
  workflowExecutionStream,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { executionStoredPayloadBytes, loadExecution } from './deps.js';
import { PayloadReads } from '../../http/payload-reads.js';
import { EVENT_STORE, PG_POOL } from '../../tokens.js';

/**
 * Stored (compressed) payload bytes past which a read or fold of an execution is a read of whole
 * payloads. JSON compresses 3 to 10 times, a run of one character some 90 times: 64 KiB stored is
 * 0.2 to 6 MB to parse and serialise again.
 */
export const WHOLE_READ_BYTES = 64 * 1024;

/**
 * Bytes of an execution's event data before compression (kept with each event at its append)
 * past which a fold is a read of whole payloads: 1 MiB is a few ms to parse. Events appended
 * before those sizes were kept count their stored size (compressed), so such an execution's fold
 * takes a turn only from a larger size.
 */
export const WHOLE_FOLD_BYTES = 1024 * 1024;

/**
 * Folds of an execution's stream in the gateway: a command's decision (cancel, signal, retry,
 * fork), the check before re-running a definition, a wait's result. Each reads every event with
 * its payloads: on a 98 MB execution one read took 1.1-1.5 s, and 16 commands at once held 1.3 GB
 * more and stalled every other request for up to 2 s (retries answered 504).
 *
 * So they read through `store`, where a whole read of a large execution stream (isLarge) runs in
 * a turn of PayloadReads (the gate of whole-payload reads),
 * held while it reads; and the callers that ask for the same stream while such a read waits for
 * its turn share it. Only a read not started yet is shared: it starts after each of them asked,
 * so each sees every event committed before it asked (a refusal decided on it is not stale). A
 * small stream is read at once, as before.
 */
@Injectable()
export class ExecutionFolds {
  /** The event store for folds of executions (see above); other reads and appends pass through. */
  readonly store: EventStore;
  /** Whole reads of large streams waiting for their turn, by stream: the ones a caller may join. */
  private readonly waiting = new Map<string, Promise<RecordedEvent[]>>();

  constructor(
    @Inject(EVENT_STORE) private readonly events: EventStore,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(PayloadReads) private readonly reads: PayloadReads,
  ) {
    this.store = new FoldingStore(events, (streamId) => this.readWhole(streamId));
  }

  /**
   * Whether a fold of the execution reads whole payloads (and takes a turn): its stream's events
   * past WHOLE_FOLD_BYTES (eventsLarge), or where the event store cannot tell (EventStoreDB) the
   * read model's payloads past WHOLE_READ_BYTES as stored.
   */
  async isLarge(executionId: string): Promise<boolean> {
    return (
      (await this.eventsLarge(executionId)) ??
      (await executionStoredPayloadBytes(this.pool, executionId)) > WHOLE_READ_BYTES
    );
  }

  /** Whether the execution's events pass WHOLE_FOLD_BYTES; undefined where the event store cannot tell without reading them. */
  async eventsLarge(executionId: string): Promise<boolean | undefined> {
    if (!this.events.storedBytes) return undefined;
    return (await this.events.storedBytes(workflowExecutionStream(executionId))) > WHOLE_FOLD_BYTES;
  }

  /**
   * The execution's state, folded through `store`, for a caller that started it and waited (a
   * `?wait=true` start, an MCP run): refused a turn, the error says the execution went on all the
   * same, and where its result is.
   */
  async stateOf(executionId: string): Promise<WorkflowExecutionState> {
    try {
      return (await loadExecution(this.store, executionId)).state;
    } catch (err) {
      if (isAppError(err) && err.code === 'unavailable')
        throw new AppError(
          'unavailable',
          `workflow execution ${executionId} was started; its state is large and no turn to read it came: ` +
            `read it later at /api/v1/workflows/executions/${executionId}`,
          { ...err.details, execution_id: executionId },
        );
      throw err;
    }
  }

  private async readWhole(streamId: string): Promise<RecordedEvent[]> {
    const executionId = streamId.slice(WORKFLOW_EXECUTION_STREAM_PREFIX.length);
    if (!(await this.isLarge(executionId))) return this.events.readStream(streamId);
    const queued = this.waiting.get(streamId);
    if (queued) return queued;
    const read: Promise<RecordedEvent[]> = this.reads
      .whileRunning(() => {
        // Started: who asks from now on may miss what it reads, and waits for a read of its own.
        if (this.waiting.get(streamId) === read) this.waiting.delete(streamId);
        return this.events.readStream(streamId);
      })
      .finally(() => {
        if (this.waiting.get(streamId) === read) this.waiting.delete(streamId);
      });
    this.waiting.set(streamId, read);
    return read;
  }
}

/** An event store whose whole reads of execution streams go through `readWhole`; the rest is the store's. */
class FoldingStore implements EventStore {
  readonly kind: string;
  readonly supportsFences?: boolean;
  readonly densePositions?: boolean;
  readonly storedBytes?: (streamId: string) => Promise<number>;
  readonly raiseFence?: (name: string, epoch: number) => Promise<void>;

  constructor(
    private readonly store: EventStore,
    private readonly readWhole: (streamId: string) => Promise<RecordedEvent[]>,
  ) {
    this.kind = store.kind;
    if (store.supportsFences !== undefined) this.supportsFences = store.supportsFences;
    if (store.densePositions !== undefined) this.densePositions = store.densePositions;
    // What the store can do, this can: the optional capabilities only where it has them.
    if (store.storedBytes) this.storedBytes = (streamId) => store.storedBytes!(streamId);
    if (store.raiseFence) this.raiseFence = (name, epoch) => store.raiseFence!(name, epoch);
  }

  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    const whole =
      options?.fromRevision === undefined &&
      options?.maxCount === undefined &&
      (options?.direction ?? 'forwards') === 'forwards';
    return whole && streamId.startsWith(WORKFLOW_EXECUTION_STREAM_PREFIX)
      ? this.readWhole(streamId)
      : this.store.readStream(streamId, options);
  }
  append(streamId: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult> {
    return this.store.append(streamId, events, options);
  }
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.store.readAll(options);
  }
  headPosition(): Promise<number> {
    return this.store.headPosition();
  }
  subscribeToAll(options?: SubscribeOptions): AllSubscription {
    return this.store.subscribeToAll(options);
  }
  init(): Promise<void> {
    return this.store.init();
  }
  ping(): Promise<void> {
    return this.store.ping();
  }
  /** The store's owner closes it, not a user of this view of it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

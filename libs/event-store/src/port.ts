/**
 * The event store port. Every adapter (postgres/, eventstoredb/, in-memory/)
 * implements it and passes the one contract suite in contract/.
 *
 * Positions and revisions are plain numbers (safe up to 2^53) so they survive JSON.
 * - revision: 0-based index of an event inside its stream.
 * - position: the event's place in the global order ($all). Strictly increasing in
 *   the order readers see events; a reader never sees an event appear later with a
 *   lower position than one it already saw (no gaps visible to subscribers).
 *   Positions need not be dense.
 */
import { AppError } from '@switchyard/platform';

/** What the writer believes about the stream before appending. */
export type ExpectedRevision =
  | 'any' // no check
  | 'no_stream' // the stream must not exist
  | 'stream_exists' // the stream must exist
  | number; // the stream's last revision must be exactly this

export interface EventMetadata {
  /** The workflow execution, task or request this event belongs to. */
  readonly correlationId: string;
  /** The id of the event or command that caused this one. */
  readonly causationId?: string;
  /** Who asked for it: an API key id, `system`, a saga name. */
  readonly actor?: string;
  /** ISO-8601 time the command was decided (the decider's clock comes in the command). */
  readonly timestamp: string;
  readonly [key: string]: unknown;
}

export interface NewEvent<T extends string = string, D = unknown> {
  /** Optional client-chosen id (UUID); the store generates one when absent. */
  readonly id?: string;
  readonly type: T;
  readonly data: D;
  readonly metadata: EventMetadata;
}

export interface RecordedEvent<T extends string = string, D = unknown> {
  readonly id: string;
  readonly streamId: string;
  readonly type: T;
  readonly data: D;
  readonly metadata: EventMetadata;
  readonly revision: number;
  readonly position: number;
  /** When the store committed it. */
  readonly recordedAt: Date;
}

export interface AppendResult {
  /** The stream's revision after the append (revision of the last event written). */
  readonly nextExpectedRevision: number;
  /** Global position of the last event written. */
  readonly position: number;
}

export interface ReadStreamOptions {
  readonly direction?: 'forwards' | 'backwards';
  /** Inclusive start revision (forwards: lowest, backwards: highest). */
  readonly fromRevision?: number;
  readonly maxCount?: number;
}

export interface ReadAllOptions {
  readonly direction?: 'forwards' | 'backwards';
  /** Exclusive: events strictly after (forwards) or before (backwards) this position. */
  readonly after?: number;
  readonly maxCount?: number;
  /** Only these event types. */
  readonly types?: readonly string[];
  /** Only streams whose id starts with one of these prefixes (e.g. `workflow-`). */
  readonly streamPrefixes?: readonly string[];
  /**
   * Inclusive: no event past this position in the read's direction (forwards: position <= until;
   * backwards: position >= until). A filtered read of a rare type examines only the positions
   * between `after` and `until`, so its cost is bounded by the window, not by the log.
   */
  readonly until?: number;
}

export interface SubscribeOptions {
  /** Exclusive checkpoint: deliver events with position > from. Omit (or -1) for the start of $all. */
  readonly from?: number;
  /** Only these event types (the store filters where it reads, so skipped events cost little). */
  readonly types?: readonly string[];
  /** Only streams whose id starts with one of these prefixes. */
  readonly streamPrefixes?: readonly string[];
  /**
   * Told, now and then, that every event up to `position` has been considered: the ones that
   * pass the filter already handed to the iterating consumer, the others filtered out. A
   * filtered consumer moves its checkpoint past events it never sees with it, and an idle one
   * learns it is at the head. Positions only rise (each call is higher than the one before)
   * and never pass an event not yet handed over. Called synchronously by the subscription;
   * it must not throw.
   */
  readonly onProgress?: (position: number) => void;
}

/**
 * A catch-up subscription to $all: past events first, then live ones, with no gap
 * and no duplicate at the seam. Iterate it; `close()` ends the iteration.
 */
export interface AllSubscription extends AsyncIterable<RecordedEvent> {
  close(): Promise<void>;
}

/**
 * A fencing token: an append carrying one is written only while `epoch` is the fence's
 * current epoch (checked in the append's own transaction). Whoever takes over a lease raises
 * the fence to its new epoch before acting, so a paused-then-resumed old owner is refused.
 */
export interface Fence {
  readonly name: string;
  readonly epoch: number;
}

export interface AppendOptions {
  readonly expectedRevision?: ExpectedRevision;
  /** Refuse the append (FencedError) unless the fence's epoch is still this one. */
  readonly fence?: Fence;
}

export interface EventStore {
  /** Adapter name, for logs, health and the contract suite. */
  readonly kind: string;
  /** The adapter checks `fence` on append and implements raiseFence (PostgreSQL, in-memory; not EventStoreDB). */
  readonly supportsFences?: boolean;
  /**
   * Positions number the events one by one (gaps only where an append rolled back), so a window
   * of N positions (ReadAllOptions.until) holds at most N events and any position is a valid
   * cursor: PostgreSQL, in-memory; not EventStoreDB, whose positions are byte offsets in its log.
   */
  readonly densePositions?: boolean;
  /**
   * Raise the fence `name` to `epoch` (never lowers it). Serialised with appends: once it
   * returns, no append with a lower epoch commits.
   */
  raiseFence?(name: string, epoch: number): Promise<void>;
  /** Create tables or connect; idempotent. */
  init(): Promise<void>;
  /** Append atomically. Throws WrongExpectedVersionError when the expectation fails. */
  append(streamId: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult>;
  /** Read one stream; an absent stream reads as []. */
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /** Read the global log. */
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /** Position of the newest event visible to readers (-1 when empty); used for lag. */
  headPosition(): Promise<number>;
  /**
   * The first position whose event was recorded at or after `time` (the head + 1 when none), by a
   * binary search over positions: a read of "what happened since 09:00" starts there instead of
   * at position 0. Recorded times rise with positions give or take the length of an append
   * (positions follow commit order, times the transaction's start), so callers seek with a margin
   * and still filter by time. Absent where positions are not dense (EventStoreDB).
   */
  positionAtTime?(time: Date): Promise<number>;
  /**
   * Bytes of the stream's event data before compression (0 for an absent stream), from sizes kept
   * at append, nothing read: what a read of the whole stream will cost, to bound such reads before
   * they start (events stored before those sizes were kept count their stored, compressed, size).
   * Absent where the store cannot tell without reading (EventStoreDB).
   */
  storedBytes?(streamId: string): Promise<number>;
  subscribeToAll(options?: SubscribeOptions): AllSubscription;
  /** Cheap liveness probe for /readyz. */
  ping(): Promise<void>;
  /**
   * Why appends were refused lately though the store answers (PostgreSQL out of disk or memory:
   * a read still works), for /readyz to say degraded; undefined when none was in the last 30 s.
   */
  recentRefusal?(): string | undefined;
  close(): Promise<void>;
}

/** The optimistic concurrency check failed: somebody else wrote to the stream first. */
export class WrongExpectedVersionError extends Error {
  readonly code = 'conflict' as const;
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    readonly actual: number | 'no_stream',
  ) {
    super(`wrong expected version on ${streamId}: expected ${String(expected)}, actual ${String(actual)}`);
    this.name = 'WrongExpectedVersionError';
  }
}

/** The append carried a fence whose epoch is no longer current: the writer lost its lease. Never retried. */
export class FencedError extends Error {
  readonly code = 'conflict' as const;
  constructor(
    readonly streamId: string,
    readonly fence: Fence,
    readonly current: number | null,
  ) {
    super(
      `append to ${streamId} fenced: ${fence.name} is at epoch ${String(current)}, the writer holds ${fence.epoch}`,
    );
    this.name = 'FencedError';
  }
}

/**
 * An event of the append cannot be stored as given (it breaks the port's rules, or its data cannot
 * be written as JSON or is refused by the database): the whole append is refused, and trying it
 * again cannot help. `eventIndex`: which event, when known.
 */
export class UnstorableEventError extends AppError {
  constructor(
    readonly streamId: string,
    message: string,
    readonly eventIndex?: number,
    details: Record<string, unknown> = {},
  ) {
    super('validation', message, { streamId, ...(eventIndex !== undefined && { eventIndex }), ...details }, false);
    this.name = 'UnstorableEventError';
  }
}

/** The stream category is the part of the id before the first `-` (`workflow-123` -> `workflow`). */
export const streamCategory = (streamId: string): string => {
  const i = streamId.indexOf('-');
  return i === -1 ? streamId : streamId.slice(0, i);
};

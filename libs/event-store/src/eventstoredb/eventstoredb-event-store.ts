import {
  EventStoreDBClient,
  jsonEvent,
  excludeSystemEvents,
  eventTypeFilter,
  streamNameFilter,
  ANY,
  NO_STREAM,
  STREAM_EXISTS,
  START,
  END,
  FORWARDS,
  BACKWARDS,
  ErrorType,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type AllStreamSubscription,
  type Filter,
  type Position,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { AppError, type Logger } from '@switchyard/platform';
import {
  WrongExpectedVersionError,
  type AllSubscription,
  type AppendResult,
  type EventMetadata,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../port.js';
import { matchesFilter } from '../internal/filter.js';
import { validateAppend } from '../internal/validate.js';
import { storableValue } from '../internal/storable-text.js';

export interface EventStoreDbOptions {
  /** `esdb://host:2113?tls=false` */
  readonly connectionString: string;
  readonly logger?: Logger;
}

type EsdbRecorded = NonNullable<AllStreamResolvedEvent['event']> | NonNullable<ResolvedEvent['event']>;

/**
 * The port on EventStoreDB (gRPC client).
 * Positions: the port's number is the event's PREPARE position. Events of one append share
 * the write's commit position, so the commit position cannot number them one by one; the
 * prepare position is unique and rises in $all order (gRPC appends are implicit transactions,
 * laid out contiguously in the log). To resume after a number, `resolve()` looks up the
 * event's full {commit, prepare} by reading one step backwards from it.
 * System events (`$`-prefixed types or streams) are never returned.
 * Filters on reads are applied client side ($all reads have no server-side filter).
 * Subscriptions filter on the server: by event type when types are given (else by stream
 * prefix, else only system events out), the other criterion client side; the server's
 * checkpoints feed `onProgress`.
 */
export class EventStoreDbEventStore implements EventStore {
  readonly kind = 'eventstoredb';
  private readonly client: EventStoreDBClient;
  private readonly log: Logger | undefined;
  private readonly subscriptions = new Set<AllSubscription>();
  private closed = false;

  constructor(options: EventStoreDbOptions | string) {
    const o = typeof options === 'string' ? { connectionString: options } : options;
    this.client = EventStoreDBClient.connectionString(o.connectionString);
    this.log = o.logger?.child({ component: 'eventstoredb-event-store' });
  }

  /** Nothing to create; fails fast (unavailable) when the server does not answer. */
  async init(): Promise<void> {
    await this.ping();
  }

  async append(
    streamId: string,
    events: readonly NewEvent[],
    options: { expectedRevision?: ExpectedRevision; fence?: unknown } = {},
  ): Promise<AppendResult> {
    this.assertOpen();
    // EventStoreDB cannot check a row of ours in its append: callers look at supportsFences first.
    if (options.fence)
      throw new AppError('internal', 'the EventStoreDB adapter does not support fenced appends', {}, false);
    const expected = options.expectedRevision ?? 'any';
    validateAppend(streamId, events, expected);
    const expectedRevision: AppendExpectedRevision =
      expected === 'any'
        ? ANY
        : expected === 'no_stream'
          ? NO_STREAM
          : expected === 'stream_exists'
            ? STREAM_EXISTS
            : BigInt(expected);
    try {
      const res = await this.client.appendToStream(
        streamId,
        events.map((e) =>
          jsonEvent({
            ...(e.id ? { id: e.id } : {}),
            type: e.type,
            // Text as the PostgreSQL store keeps it (storable-text.ts): the contract asks the same of every adapter.
            data: storableValue(e.data ?? null) as never,
            metadata: storableValue(e.metadata) as never,
          }),
        ),
        { expectedRevision },
      );
      return { nextExpectedRevision: Number(res.nextExpectedRevision), position: Number(res.position?.prepare ?? -1) };
    } catch (err) {
      if (isType(err, ErrorType.WRONG_EXPECTED_VERSION)) {
        const actual = (err as { actualVersion?: bigint | string }).actualVersion;
        throw new WrongExpectedVersionError(
          streamId,
          expected,
          typeof actual === 'bigint' ? Number(actual) : 'no_stream',
        );
      }
      throw mapError(err);
    }
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    const backwards = options.direction === 'backwards';
    const out: RecordedEvent[] = [];
    try {
      const read = this.client.readStream(streamId, {
        direction: backwards ? BACKWARDS : FORWARDS,
        fromRevision: options.fromRevision === undefined ? (backwards ? END : START) : BigInt(options.fromRevision),
        ...(options.maxCount !== undefined ? { maxCount: BigInt(options.maxCount) } : {}),
      });
      for await (const r of read) if (r.event) out.push(toRecorded(r.event));
    } catch (err) {
      if (isType(err, ErrorType.STREAM_NOT_FOUND)) return [];
      throw mapError(err);
    }
    return out;
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    const backwards = options.direction === 'backwards';
    const max = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    const out: RecordedEvent[] = [];
    try {
      const fromPosition = options.after === undefined ? (backwards ? END : START) : await this.resolve(options.after);
      // Client-side filtering: read until enough events pass (or the log ends).
      const read = this.client.readAll({ direction: backwards ? BACKWARDS : FORWARDS, fromPosition });
      for await (const r of read) {
        const e = r.event;
        if (!e || isSystem(e)) continue;
        const rec = toRecorded(e);
        if (options.after !== undefined && (backwards ? rec.position >= options.after : rec.position <= options.after))
          continue;
        // Past the window: the read stops here (positions only move one way in a read).
        if (options.until !== undefined && (backwards ? rec.position < options.until : rec.position > options.until))
          break;
        if (!matchesFilter(rec, options)) continue;
        out.push(rec);
        if (out.length >= max) break;
      }
    } catch (err) {
      throw mapError(err);
    }
    return out;
  }

  async headPosition(): Promise<number> {
    const [newest] = await this.readAll({ direction: 'backwards', maxCount: 1 });
    return newest?.position ?? -1;
  }

  subscribeToAll(options: SubscribeOptions = {}): AllSubscription {
    this.assertOpen();
    const from = options.from ?? -1;
    let closed = false;
    let esdbSub: ReturnType<EventStoreDBClient['subscribeToAll']> | undefined;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- used inside the client's non-arrow callbacks below
    const self = this;
    // Progress: a server checkpoint at P follows every event before P in the stream; it is told
    // once the events read before it have all been handed over (the read buffer drained while
    // the iteration waits for the next one). The client awaits this callback before reading on.
    let reported = from;
    let handing = false;
    const onProgress = options.onProgress;
    const checkpointReached = onProgress
      ? async (s: AllStreamSubscription, p: Position): Promise<void> => {
          const position = Number(p.prepare);
          while (!closed && (handing || s.readableLength > 0)) await new Promise((r) => setTimeout(r, 5));
          if (closed || position <= reported) return;
          reported = position;
          onProgress(position);
        }
      : undefined;
    const filter = serverFilter(options, checkpointReached);
    const sub: AllSubscription = {
      async close() {
        if (closed) return;
        closed = true;
        self.subscriptions.delete(sub);
        await esdbSub?.unsubscribe().catch(() => undefined);
      },
      async *[Symbol.asyncIterator]() {
        try {
          const fromPosition = from < 0 ? START : await self.resolve(from);
          if (closed) return;
          // The server streams the catch-up and then live events on one call: no seam of ours.
          esdbSub = self.client.subscribeToAll({ fromPosition, filter });
          for await (const r of esdbSub) {
            if (closed) return;
            const e = r.event;
            if (!e || isSystem(e)) continue;
            const rec = toRecorded(e);
            if (rec.position <= from) continue;
            if (!matchesFilter(rec, options)) continue;
            handing = true;
            try {
              yield rec;
            } finally {
              handing = false;
            }
            if (rec.position > reported) reported = rec.position;
          }
        } catch (err) {
          if (!closed) {
            self.log?.warn({ err, from }, 'EventStoreDB subscription failed');
            throw mapError(err);
          }
        } finally {
          await sub.close();
        }
      },
    };
    this.subscriptions.add(sub);
    return sub;
  }

  async ping(): Promise<void> {
    try {
      for await (const _ of this.client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 })) void _;
    } catch (err) {
      throw mapError(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.client.dispose();
  }

  /**
   * The full $all position of the event numbered `prepare`: a backwards read from
   * (prepare, prepare) meets that event first when it is not the first of its write.
   */
  private async resolve(prepare: number): Promise<Position> {
    const guess: Position = { commit: BigInt(prepare), prepare: BigInt(prepare) };
    for await (const r of this.client.readAll({ direction: BACKWARDS, fromPosition: guess, maxCount: 2 })) {
      const p = r.event?.position;
      if (p && p.prepare === guess.prepare) return p;
    }
    return guess;
  }

  private assertOpen(): void {
    if (this.closed) throw new AppError('unavailable', 'the event store is closed', {}, false);
  }
}

/** The server-side part of a subscription's filter (see the class comment). */
function serverFilter(
  options: SubscribeOptions,
  checkpointReached: ((s: AllStreamSubscription, p: Position) => Promise<void>) | undefined,
): Filter {
  const progress = checkpointReached ? { checkpointReached, checkpointInterval: 1, maxSearchWindow: 32 } : {};
  if (options.types && options.types.length > 0) {
    const alternatives = options.types.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
    return eventTypeFilter({ regex: `^(?:${alternatives})$`, ...progress });
  }
  if (options.streamPrefixes && options.streamPrefixes.length > 0)
    return streamNameFilter({ prefixes: [...options.streamPrefixes], ...progress });
  return excludeSystemEvents(progress);
}

const isSystem = (e: EsdbRecorded): boolean => e.type.startsWith('$') || e.streamId.startsWith('$');

function toRecorded(e: EsdbRecorded): RecordedEvent {
  const data = e.isJson ? e.data : Buffer.from(e.data).toString('utf8');
  return {
    id: e.id,
    streamId: e.streamId,
    type: e.type,
    data,
    metadata: (e.metadata ?? {}) as EventMetadata,
    revision: Number(e.revision),
    position: Number(e.position?.prepare ?? -1),
    recordedAt: e.created,
  };
}

const isType = (err: unknown, type: ErrorType): boolean => (err as { type?: unknown })?.type === type;

function mapError(err: unknown): unknown {
  if (
    isType(err, ErrorType.UNAVAILABLE) ||
    isType(err, ErrorType.DEADLINE_EXCEEDED) ||
    isType(err, ErrorType.TIMEOUT) ||
    isType(err, ErrorType.NOT_LEADER)
  ) {
    return new AppError('unavailable', `EventStoreDB unavailable: ${(err as Error).message}`);
  }
  return err;
}

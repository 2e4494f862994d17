import { randomUUID } from 'node:crypto';
import { AppError } from '@switchyard/platform';
import {
  FencedError,
  WrongExpectedVersionError,
  type AllSubscription,
  type AppendOptions,
  type AppendResult,
  type EventStore,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../port.js';
import { CatchUpSubscription, type Page } from '../internal/catch-up.js';
import { matchesFilter } from '../internal/filter.js';
import { validateAppend } from '../internal/validate.js';
import { storableValue } from '../internal/storable-text.js';

/**
 * An event store held in process memory, for unit tests and deciders' specs. It follows
 * the port exactly (same validation, same concurrency rules) but keeps nothing on exit.
 * Positions are 0-based and dense.
 */
export class InMemoryEventStore implements EventStore {
  readonly kind = 'in-memory';
  readonly supportsFences = true;
  readonly densePositions = true;
  private readonly fences = new Map<string, number>();
  private readonly log: RecordedEvent[] = [];
  private readonly streams = new Map<string, RecordedEvent[]>();
  private readonly subscriptions = new Set<CatchUpSubscription>();
  private closed = false;

  async init(): Promise<void> {}

  async raiseFence(name: string, epoch: number): Promise<void> {
    this.assertOpen();
    this.fences.set(name, Math.max(this.fences.get(name) ?? epoch, epoch));
  }

  async append(streamId: string, events: readonly NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    this.assertOpen();
    const expected = options.expectedRevision ?? 'any';
    validateAppend(streamId, events, expected);
    if (options.fence && this.fences.get(options.fence.name) !== options.fence.epoch) {
      throw new FencedError(streamId, options.fence, this.fences.get(options.fence.name) ?? null);
    }
    const stream = this.streams.get(streamId);
    const current = stream ? stream.length - 1 : undefined;
    const ok =
      expected === 'any' ||
      (expected === 'no_stream' && current === undefined) ||
      (expected === 'stream_exists' && current !== undefined) ||
      (typeof expected === 'number' && current === expected);
    if (!ok) throw new WrongExpectedVersionError(streamId, expected, current ?? 'no_stream');
    const target = stream ?? [];
    const recordedAt = new Date();
    for (const e of events) {
      // Deep copies: a caller mutating its objects later must not change history. Text as the
      // PostgreSQL store keeps it (storable-text.ts), so a unit test sees what production stores.
      const recorded: RecordedEvent = {
        id: e.id ?? randomUUID(),
        streamId,
        type: e.type,
        data: structuredClone(storableValue(e.data)),
        metadata: structuredClone(storableValue(e.metadata)),
        revision: target.length,
        position: this.log.length,
        recordedAt,
      };
      target.push(recorded);
      this.log.push(recorded);
    }
    this.streams.set(streamId, target);
    for (const s of this.subscriptions) s.wake();
    return { nextExpectedRevision: target.length - 1, position: this.log.length - 1 };
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    const stream = this.streams.get(streamId) ?? [];
    const max = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    if (options.direction === 'backwards') {
      const from = Math.min(options.fromRevision ?? stream.length - 1, stream.length - 1);
      return stream
        .slice(Math.max(0, from - max + 1), from + 1)
        .reverse()
        .map(copy);
    }
    const from = options.fromRevision ?? 0;
    return stream.slice(from, from + max).map(copy);
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    return this.readAllNow(options);
  }

  /** Synchronous, so a page and the head it reports cannot have an append between them. */
  private readAllNow(options: ReadAllOptions): RecordedEvent[] {
    const max = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    const out: RecordedEvent[] = [];
    if (options.direction === 'backwards') {
      const start = Math.min(options.after ?? this.log.length, this.log.length) - 1;
      const end = Math.max(0, options.until ?? 0);
      for (let i = start; i >= end && out.length < max; i--)
        if (matchesFilter(this.log[i]!, options)) out.push(copy(this.log[i]!));
    } else {
      const end = Math.min(this.log.length - 1, options.until ?? Number.MAX_SAFE_INTEGER);
      for (let i = Math.max(0, (options.after ?? -1) + 1); i <= end && out.length < max; i++) {
        if (matchesFilter(this.log[i]!, options)) out.push(copy(this.log[i]!));
      }
    }
    return out;
  }

  async headPosition(): Promise<number> {
    return this.log.length - 1;
  }

  async positionAtTime(time: Date): Promise<number> {
    const i = this.log.findIndex((e) => e.recordedAt >= time);
    return i === -1 ? this.log.length : this.log[i]!.position;
  }

  async storedBytes(streamId: string): Promise<number> {
    let bytes = 0;
    for (const e of this.log) if (e.streamId === streamId) bytes += Buffer.byteLength(JSON.stringify(e.data));
    return bytes;
  }

  subscribeToAll(options: SubscribeOptions = {}): AllSubscription {
    this.assertOpen();
    const readPage = async (after: number, limit: number): Promise<Page> => {
      this.assertOpen();
      const events = this.readAllNow({
        after,
        maxCount: limit,
        types: options.types,
        streamPrefixes: options.streamPrefixes,
      });
      return { events, scannedTo: events.length < limit ? this.log.length - 1 : events[events.length - 1]!.position };
    };
    const sub: CatchUpSubscription = new CatchUpSubscription(readPage, options.from ?? -1, {
      pageSize: 256,
      ...(options.onProgress && { onProgress: options.onProgress }),
      onClose: () => this.subscriptions.delete(sub),
    });
    this.subscriptions.add(sub);
    return sub;
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
  }

  private assertOpen(): void {
    if (this.closed) throw new AppError('unavailable', 'the in-memory event store is closed', {}, false);
  }
}

const copy = (e: RecordedEvent): RecordedEvent => ({
  ...e,
  data: structuredClone(e.data),
  metadata: structuredClone(e.metadata),
});

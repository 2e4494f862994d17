import { newId, type Logger } from '@switchyard/platform';
import type { EventStore, NewEvent } from './port.js';

export interface EventSinkOptions {
  /** The actor of an event whose reporter names none (`system:switchyard`). */
  readonly actor: string;
  /** Most events in one append (default 500): one commit stays a bounded statement. */
  readonly maxBatch?: number;
  /**
   * Most events waiting for one stream (default 50,000). Past it, new ones are dropped and
   * counted (a warning per 1,000): a store that is down must not make the process run out of memory.
   */
  readonly maxPending?: number;
}

interface StreamQueue {
  readonly pending: NewEvent[];
  draining: Promise<void> | undefined;
}

/**
 * Appends the events that in-process components report (connectors, monitor, agents over HTTP)
 * to the event store. Reporters call it synchronously and never wait on the store.
 *
 * Per stream, one append runs at a time (the stream keeps the order the events were reported
 * in), and everything reported while it runs goes in the next append, in one commit. Why: a
 * busy MCP server reports two events per call on one stream; one commit per event would cap
 * that stream at one commit's rate, and the backlog would grow without bound under load.
 *
 * A failed append is logged with what it lost, not thrown: these records are reported after
 * the fact, and the reporter has already answered its caller.
 */
export class EventSink {
  private readonly streams = new Map<string, StreamQueue>();
  private readonly maxBatch: number;
  private readonly maxPending: number;
  private dropped = 0;
  private readonly stats = { appends: 0, events: 0 };

  constructor(
    private readonly store: EventStore,
    private readonly logger: Logger,
    private readonly options: EventSinkOptions,
  ) {
    this.maxBatch = Math.max(1, options.maxBatch ?? 500);
    this.maxPending = Math.max(1, options.maxPending ?? 50_000);
  }

  /** `actor`: who caused the event when the reporter knows (a call's `apikey:<id>`), else the sink's. */
  append(streamId: string, event: { type: string; data: unknown }, correlationId?: string, actor?: string): void {
    let q = this.streams.get(streamId);
    if (!q) {
      q = { pending: [], draining: undefined };
      this.streams.set(streamId, q);
    }
    if (q.pending.length >= this.maxPending) {
      this.dropped++;
      if (this.dropped % 1_000 === 1)
        this.logger.warn(
          { streamId, type: event.type, dropped: this.dropped, waiting: q.pending.length },
          'reported events dropped: too many wait for the event store',
        );
      return;
    }
    q.pending.push({
      type: event.type,
      data: event.data,
      metadata: {
        correlationId: correlationId ?? newId(),
        actor: actor ?? this.options.actor,
        timestamp: new Date().toISOString(),
      },
    });
    q.draining ??= this.drain(streamId, q);
  }

  /** Appends and events appended so far (every event reported and not dropped counts once). */
  counts(): { readonly appends: number; readonly events: number; readonly dropped: number } {
    return { ...this.stats, dropped: this.dropped };
  }

  /** Wait for everything reported so far (used at shutdown). */
  async flush(): Promise<void> {
    while (this.streams.size > 0) {
      const running = [...this.streams.values()].flatMap((q) => (q.draining ? [q.draining] : []));
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  private async drain(streamId: string, q: StreamQueue): Promise<void> {
    // Events reported in the same turn of the event loop (a call's start and end, a batch of
    // samples) join the first append.
    await Promise.resolve();
    while (q.pending.length > 0) {
      const batch = q.pending.splice(0, this.maxBatch);
      try {
        await this.store.append(streamId, batch);
        this.stats.appends++;
        this.stats.events += batch.length;
      } catch (err) {
        this.logger.error(
          { err, streamId, lost: batch.length, types: [...new Set(batch.map((e) => e.type))] },
          'could not append reported events',
        );
      }
    }
    // Nothing is pending and no await comes between the check above and here: a report after
    // this point finds no queue and starts a new one.
    q.draining = undefined;
    this.streams.delete(streamId);
  }
}

import {
  backoffMs,
  isAppError,
  isPassingDatabaseFailure,
  newId,
  POOL_ENDED_MESSAGE,
  type Logger,
} from '@switchyard/platform';
import { UnstorableEventError, type EventStore, type NewEvent } from './port.js';

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
  /**
   * Once `flush()` was called (the process stops), how long an append that fails for a reason
   * that passes (the store unreachable) is still tried again before its events are given up
   * (default 5,000 ms): a stop must end even while the database is down.
   */
  readonly closeGraceMs?: number;
  /**
   * How long the first event reported to an idle sink waits for others before the append
   * (default 0: those of the same turn of the event loop). Every stream reported meanwhile goes
   * to the store in the same turn, where group commit makes them one statement: an MCP call's
   * start, its server's audit record and its end, on two streams a few ms apart, cost one commit
   * instead of three. Nobody waits for these records (see the class), so the cost is only that
   * they are stored that much later.
   */
  readonly gatherMs?: number;
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
 * An append that fails for a reason that passes (the database restarting, a connection cut) is
 * tried again with backoff, for as long as the process runs: the records wait in memory (bounded
 * by maxPending) rather than being lost. Such a failure can come after the commit (the answer
 * lost with the connection), so before trying again the sink looks for the batch's last event id
 * at the stream's end, and appends only when it is not there: every event is stored once. An
 * append refused for one event's content (UnstorableEventError) is split so that only that event
 * is lost. Any other failure is logged with what it lost, not thrown: these records are reported
 * after the fact, and the reporter has already answered its caller.
 */
export class EventSink {
  private readonly streams = new Map<string, StreamQueue>();
  private readonly maxBatch: number;
  private readonly maxPending: number;
  private dropped = 0;
  private lost = 0;
  private readonly stats = { appends: 0, events: 0, retries: 0 };
  /** Date.now() of the first flush(): from then on, transient failures are retried only closeGraceMs. */
  private closingSince: number | undefined;
  /** The gather window under way (gatherMs): every stream reported in it starts its append when it ends. */
  private gate: { readonly ended: Promise<void>; readonly end: () => void; readonly timer: NodeJS.Timeout } | undefined;

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
      // Chosen here, so a retry can tell whether an append whose answer was lost committed.
      id: newId(),
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

  /**
   * Appends and events stored so far (every event reported and stored counts once), appends tried
   * again after a failure that passes, events dropped for want of room, events lost to a failure.
   */
  counts(): {
    readonly appends: number;
    readonly events: number;
    readonly retries: number;
    readonly dropped: number;
    readonly lost: number;
  } {
    return { ...this.stats, dropped: this.dropped, lost: this.lost };
  }

  /** Wait for everything reported so far (the process stops: failures that pass are retried closeGraceMs more). */
  async flush(): Promise<void> {
    this.closingSince ??= Date.now();
    // No window opens from now on (see gathered): end the one under way.
    this.endGather();
    while (this.streams.size > 0) {
      const running = [...this.streams.values()].flatMap((q) => (q.draining ? [q.draining] : []));
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  private async drain(streamId: string, q: StreamQueue): Promise<void> {
    // Events reported in the same turn of the event loop (a call's start and end, a batch of
    // samples), or within gatherMs, join the first append.
    await this.gathered();
    while (q.pending.length > 0) await this.store1(streamId, q.pending.splice(0, this.maxBatch));
    // Nothing is pending and no await comes between the check above and here: a report after
    // this point finds no queue and starts a new one.
    q.draining = undefined;
    this.streams.delete(streamId);
  }

  /** Resolves when the gather window ends: at once (a microtask) without gatherMs or while stopping. */
  private gathered(): Promise<void> {
    const ms = this.options.gatherMs ?? 0;
    if (ms <= 0 || this.closingSince !== undefined) return Promise.resolve();
    if (!this.gate) {
      let end!: () => void;
      const ended = new Promise<void>((r) => (end = r));
      this.gate = { ended, end, timer: setTimeout(() => this.endGather(), ms) };
    }
    return this.gate.ended;
  }

  private endGather(): void {
    const gate = this.gate;
    if (!gate) return;
    this.gate = undefined;
    clearTimeout(gate.timer);
    gate.end();
  }

  /** Store one batch once: retried through failures that pass, given up (logged) on any other. */
  private async store1(streamId: string, batch: NewEvent[]): Promise<void> {
    const lastId = batch.at(-1)!.id!;
    // After a failure that passes, the append may have committed before its answer was lost.
    let unsure = false;
    for (let attempt = 1; ; attempt++) {
      try {
        // Other writers may have appended to the stream since: look a little further back.
        const committed =
          unsure &&
          (await this.store.readStream(streamId, { direction: 'backwards', maxCount: batch.length + 1_000 })).some(
            (e) => e.id === lastId,
          );
        if (!committed) await this.store.append(streamId, batch);
        this.stats.appends++;
        this.stats.events += batch.length;
        return;
      } catch (err) {
        const passing = isPassing(err);
        const closing = this.closingSince !== undefined;
        const graceOver = closing && Date.now() - this.closingSince! > (this.options.closeGraceMs ?? 5_000);
        if (!passing || graceOver) {
          if (err instanceof UnstorableEventError && batch.length > 1)
            return await this.storeAround(streamId, batch, err);
          this.lost += batch.length;
          const what =
            batch.length === 1
              ? { id: batch[0]!.id, type: batch[0]!.type }
              : { types: [...new Set(batch.map((e) => e.type))] };
          this.logger.error(
            { err, streamId, lost: batch.length, ...what, attempts: attempt },
            'could not append reported events',
          );
          return;
        }
        unsure = true;
        this.stats.retries++;
        const retryInMs = backoffMs(attempt, { initialMs: 100, maxMs: closing ? 500 : 5_000, jitter: 'equal' });
        // The first retry of an outage at warn, later ones quieter: a restart can take a while.
        this.logger[attempt === 1 ? 'warn' : 'debug'](
          { err, streamId, waiting: batch.length, attempt, retryInMs },
          'appending reported events failed; trying again',
        );
        await new Promise((r) => setTimeout(r, retryInMs));
      }
    }
  }

  /** One event of `batch` was refused for its content: store the others, in their order, and lose only it. */
  private async storeAround(streamId: string, batch: NewEvent[], err: UnstorableEventError): Promise<void> {
    const i = err.eventIndex;
    if (i === undefined || i >= batch.length) {
      // Which one is not known (the database refused the statement): each half in turn, down to it.
      const half = Math.ceil(batch.length / 2);
      await this.store1(streamId, batch.slice(0, half));
      await this.store1(streamId, batch.slice(half));
      return;
    }
    const bad = batch[i]!;
    this.lost++;
    this.logger.error({ err, streamId, lost: 1, id: bad.id, type: bad.type }, 'could not append a reported event');
    await this.store1(streamId, [...batch.slice(0, i), ...batch.slice(i + 1)]);
  }
}

/** The store unreachable or out of disk for now (not a refusal, nor a pool or store closed for good). */
function isPassing(err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message;
  if (typeof message === 'string' && message.includes(POOL_ENDED_MESSAGE)) return false;
  if (isAppError(err)) return err.code === 'unavailable' && err.retryable;
  return isPassingDatabaseFailure(err);
}

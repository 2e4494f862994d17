import { setTimeout as sleep } from 'node:timers/promises';
import { MsgHdrsImpl, type MsgHdrs } from '@nats-io/nats-core';
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import {
  EVENTS_STREAM,
  EVENTS_SUBJECT_PREFIX,
  eventSubject,
  headerNames,
  toEventEnvelope,
  type EventEnvelope,
} from '@switchyard/contracts';
import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import { backoffMs, type Logger } from '@switchyard/platform';
import type { RelayCheckpointStore } from './checkpoint-store.js';

const encoder = new TextEncoder();

/** Header on an oversize event's stub: the size in bytes of the message that could not be published. */
export const OVERSIZE_HEADER = 'Switchyard-Oversize';

/** Gateway path that returns the one event at `position` (`after` is exclusive, so -1 reads position 0). */
export const eventByPositionPath = (position: number): string => `/api/v1/events?after=${position - 1}&limit=1`;

/**
 * What the relay publishes in place of an event larger than the server's max_payload: the
 * envelope without the event's data, in the event's slot (same subject, Nats-Msg-Id, headers
 * and position). `data` says so too, so consumers that parse with `parseEventEnvelope`
 * (which drops unknown top-level keys) still see it; the whole event is in the event store.
 */
export interface OversizeEventStub extends Omit<EventEnvelope, 'data'> {
  readonly oversize: true;
  readonly data: {
    readonly oversize: true;
    /** Bytes of the message the event would have been (body and headers). */
    readonly sizeBytes: number;
    /** The server's max_payload the event exceeded; null when only the publish's rejection told. */
    readonly maxPayload: number | null;
    /** Read the whole event from the gateway (viewer role): see eventByPositionPath. */
    readonly fetch: string;
  };
}

/** Build the stub for an event whose message is `sizeBytes` long. Only the correlation metadata is kept: the rest is unbounded. */
export function oversizeEventStub(
  event: RecordedEvent,
  sizeBytes: number,
  maxPayload: number | null,
): OversizeEventStub {
  const { correlationId, causationId, actor, timestamp } = event.metadata;
  return {
    ...toEventEnvelope(event),
    metadata: {
      correlationId,
      timestamp,
      ...(causationId ? { causationId } : {}),
      ...(actor ? { actor } : {}),
    },
    oversize: true,
    data: { oversize: true, sizeBytes, maxPayload, fetch: eventByPositionPath(event.position) },
  };
}

/** The headers of an event's message (Nats-Msg-Id included, so its measured size is what nats-core checks). */
function eventHeaders(event: RecordedEvent): MsgHdrsImpl {
  // The implementation class (what `headers()` returns) because its encode() gives the size on the wire.
  const h = new MsgHdrsImpl();
  h.set(headerNames.natsMsgId, event.id);
  h.set(headerNames.eventId, event.id);
  h.set(headerNames.eventType, event.type);
  h.set(headerNames.streamId, event.streamId);
  h.set(headerNames.position, String(event.position));
  h.set(headerNames.correlationId, event.metadata.correlationId);
  if (event.metadata.causationId) h.set(headerNames.causationId, event.metadata.causationId);
  return h;
}

/** nats-core refuses a message above the server's max_payload before sending it; no retry can help. */
function isPayloadTooLarge(err: unknown): boolean {
  return err instanceof Error && /max_payload size exceeded/i.test(err.message);
}

/** Optional exclusive lock: PgRelayCheckpointStore implements it. `onLost` fires if the lock goes away while held. */
interface Lockable {
  tryLock(name: string, onLost: () => void): Promise<boolean>;
}

export interface EventRelayOptions {
  readonly store: EventStore;
  readonly js: JetStreamClient;
  readonly checkpoints: RelayCheckpointStore & Partial<Lockable>;
  readonly logger: Logger;
  /** Checkpoint name, also the lock name; default `events`. */
  readonly name?: string;
  /** Subject prefix; default `switchyard.events` (tests use their own). */
  readonly subjectPrefix?: string;
  /**
   * When given, the relay reads the position of the last message in `stream` at start
   * and skips what JetStream already has, so a restart republishes nothing even when the
   * checkpoint is far behind or the crash outlasted the duplicate window.
   */
  readonly jsm?: JetStreamManager;
  /** Stream for the tail lookup; default SWITCHYARD_EVENTS. */
  readonly stream?: string;
  /** Write the checkpoint after this many published events (default 100)... */
  readonly checkpointEvery?: number;
  /** ...or this long after the first unsaved one (default 1000 ms). */
  readonly checkpointIntervalMs?: number;
  /** Per publish ack wait (default 5000 ms). */
  readonly publishTimeoutMs?: number;
  /** Backoff between failed attempts: doubles from min to max (default 100 ms .. 5 s). */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** Take the PostgreSQL advisory lock so only one relay publishes (default true when the store supports it). */
  readonly exclusive?: boolean;
  /** How often a standby retries the lock (default 2 s). */
  readonly lockRetryMs?: number;
  /** How often the lag is logged at info (default 30 s; 0 = never). */
  readonly lagLogIntervalMs?: number;
  /**
   * Where the relay reads the server's max_payload before each publish (larger events are
   * replaced by an OversizeEventStub); default: the JetStream client's own connection.
   */
  readonly connection?: { readonly info?: { readonly max_payload: number } };
}

export type RelayState = 'idle' | 'standby' | 'running' | 'stopping' | 'stopped';

export interface RelayStatus {
  readonly state: RelayState;
  /** Position saved in PostgreSQL (the restart point); -1 before the first event. */
  readonly checkpoint: number;
  /** Position of the last event JetStream acknowledged; -1 before the first event. */
  readonly lastPublishedPosition: number;
  /** When the store recorded the last published event. */
  readonly lastPublishedRecordedAt?: Date;
  /** Events published by this instance (JetStream stored them, duplicates included). */
  readonly published: number;
  /** Publications JetStream dropped as duplicates (Nats-Msg-Id seen within the window). */
  readonly duplicates: number;
  /** Failed publish / read attempts (each retried). */
  readonly failures: number;
  /** Times the exclusive lock was lost while running (the relay then went back to standby). */
  readonly lockLosses: number;
  /** Events larger than the server's max_payload, published as an OversizeEventStub (counted in `published` too). */
  readonly oversize: number;
}

export interface RelayLag {
  readonly headPosition: number;
  readonly lastPublishedPosition: number;
  /** head - lastPublished: positions are not dense, so this is an upper bound on events behind. */
  readonly positionsBehind: number;
  /** Age of the last published event when not caught up, 0 when caught up. */
  readonly secondsBehind: number;
  readonly caughtUp: boolean;
}

/**
 * Publishes every event of the store's $all to JetStream, in order, at least once, with
 * JetStream turning "at least once" into "exactly once" for consumers:
 *  1. Read $all from the checkpoint (catch-up then live, via the port's subscribeToAll).
 *  2. Publish each event to `switchyard.events.<category>.<type>` with `Nats-Msg-Id: <event id>`
 *     and wait for JetStream's ack before the next one (keeps the order on retries).
 *  3. Save the checkpoint every N events or M ms. A crash between 2 and 3 republishes the
 *     tail; JetStream drops it as a duplicate (and with `jsm` we skip it before publishing).
 * Failures (NATS down, store down) are retried with backoff forever: the relay never skips.
 * The one failure no retry can fix, an event larger than the server's max_payload, is
 * published as a small stub in the event's slot (see OversizeEventStub) and counted.
 */
export class EventRelay {
  private readonly name: string;
  private readonly prefix: string;
  private readonly log: Logger;
  private state: RelayState = 'idle';
  private checkpoint = -1;
  private lastPublished = -1;
  private lastRecordedAt: Date | undefined;
  private published = 0;
  private duplicates = 0;
  private failures = 0;
  private lockLosses = 0;
  private oversize = 0;
  private lockLost = false;
  private unsaved = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private flushQueued = false;
  private subscription: AllSubscription | undefined;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly opts: EventRelayOptions) {
    this.name = opts.name ?? 'events';
    this.prefix = opts.subjectPrefix ?? EVENTS_SUBJECT_PREFIX;
    this.log = opts.logger.child({ component: 'event-relay', relay: this.name });
  }

  /** Start in the background; resolves once the loop is launched (it may wait as standby). */
  start(): void {
    if (this.loop) return;
    this.loop = this.run().catch((err) => {
      // run() only ends on stop; anything else is a bug worth a loud log.
      this.log.fatal({ err }, 'event relay loop crashed');
    });
    const every = this.opts.lagLogIntervalMs ?? 30_000;
    if (every > 0) {
      this.lagTimer = setInterval(() => void this.logLag(), every);
      this.lagTimer.unref();
    }
  }

  /** Stop reading, finish the publish in flight, save the checkpoint. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopping';
    this.abort.abort();
    clearInterval(this.lagTimer);
    await this.subscription?.close().catch(() => undefined);
    await this.loop;
    await this.flush();
    this.state = 'stopped';
    this.log.info({ checkpoint: this.checkpoint, published: this.published }, 'event relay stopped');
  }

  status(): RelayStatus {
    return {
      state: this.state,
      checkpoint: this.checkpoint,
      lastPublishedPosition: this.lastPublished,
      lastPublishedRecordedAt: this.lastRecordedAt,
      published: this.published,
      duplicates: this.duplicates,
      failures: this.failures,
      lockLosses: this.lockLosses,
      oversize: this.oversize,
    };
  }

  /** Lag against the store's head (one cheap query). */
  async lag(): Promise<RelayLag> {
    const head = await this.opts.store.headPosition();
    const caughtUp = head <= this.lastPublished;
    const age = this.lastRecordedAt ? (Date.now() - this.lastRecordedAt.getTime()) / 1000 : 0;
    return {
      headPosition: head,
      lastPublishedPosition: this.lastPublished,
      positionsBehind: Math.max(0, head - this.lastPublished),
      secondsBehind: caughtUp ? 0 : Math.max(0, age),
      caughtUp,
    };
  }

  private get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  /** Stop publishing: the relay is stopping or lost its lock (another relay may be active). */
  private get halted(): boolean {
    return this.stopping || this.lockLost;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      // 1. Become the single active relay (or wait as standby).
      this.lockLost = false;
      if (!(await this.acquireLock()) || this.stopping) return;
      this.state = 'running';
      await this.relayUntilHalted();
      if (this.lockLost && !this.stopping) {
        this.state = 'standby';
        this.log.warn({ lastPublished: this.lastPublished }, 'lost the relay lock; back to standby');
        await this.flush();
      }
    }
  }

  private async relayUntilHalted(): Promise<void> {
    // 2. Find where to start: the checkpoint, or further when JetStream already has more.
    //    After a lost lock, what this instance already had acked counts too (never go back).
    const found = await this.retrying('load checkpoint', async () => ({
      saved: (await this.opts.checkpoints.load(this.name)) ?? -1,
      tail: await this.streamTailPosition(),
    }));
    if (found === undefined) return;
    // The stream and the checkpoint say what was published; the store must still hold it. After a
    // restore of an older database (or a data dir copied while it ran) they are ahead of it: the
    // store's next events have positions the stream holds other events at.
    const agreed = await this.retrying('check the stream against the event store', () => this.agreeWithStore(found));
    if (agreed === undefined) return;
    this.checkpoint = Math.max(this.checkpoint, agreed.saved);
    this.lastPublished = Math.max(this.lastPublished, agreed.saved, agreed.tail);
    this.log.info(
      { from: this.lastPublished, checkpoint: agreed.saved, streamTail: agreed.tail },
      'event relay started',
    );
    // An empty stream behind a checkpoint was made again (its store lost, or purged): subscribers
    // lost their durable consumers, and its sequences start again at 1 from the next event.
    if (agreed.tail === -1 && agreed.saved >= 0)
      this.log.warn(
        { checkpoint: agreed.saved, stream: this.opts.stream ?? EVENTS_STREAM },
        `the JetStream stream was made again empty: events up to position ${agreed.saved} are in the event log only (GET /api/v1/events), its sequences start again at 1, and durable consumers must be made again and resume by the Switchyard-Position header, not by a stream sequence`,
      );
    // 3. Subscribe and publish; on a read failure resubscribe after the last published event.
    let attempt = 0;
    while (!this.halted) {
      this.subscription = this.opts.store.subscribeToAll({ from: this.lastPublished });
      try {
        for await (const event of this.subscription) {
          if (this.halted) break;
          if (event.position <= this.lastPublished) continue; // already published (seam safety)
          if (!(await this.publish(event))) break; // halted
          attempt = 0;
        }
      } catch (err) {
        this.failures++;
        this.log.error({ err, lastPublished: this.lastPublished }, 'reading $all failed; resubscribing');
      } finally {
        await this.subscription.close().catch(() => undefined);
      }
      if (!this.halted) await this.backoff(attempt++);
    }
  }

  /**
   * Publish one event until JetStream acks it; false when the relay is halted first.
   * An event above max_payload is published as its stub instead, in the same slot.
   */
  private async publish(event: RecordedEvent): Promise<boolean> {
    const subject = eventSubject(event.streamId, event.type, this.prefix);
    const h = eventHeaders(event);
    const body = encoder.encode(JSON.stringify(toEventEnvelope(event)));
    const size = body.length + h.encode().length;
    const send = (data: Uint8Array, headers: MsgHdrs) =>
      this.opts.js.publish(subject, data, {
        msgID: event.id,
        headers,
        timeout: this.opts.publishTimeoutMs ?? 5_000,
      });
    let stub: { body: Uint8Array; headers: MsgHdrs } | undefined;
    const ack = await this.retrying(`publish ${subject}`, async () => {
      // Checked on every attempt: after a reconnect the server (and its limit) may differ.
      const max = this.maxPayload();
      if (!stub && max !== undefined && size > max) stub = this.stub(event, size, max);
      if (!stub) {
        try {
          return await send(body, h);
        } catch (err) {
          // The limit is below what `connection` reported (or it reported none): the same permanent case.
          if (!isPayloadTooLarge(err)) throw err;
          stub = this.stub(event, size, null);
        }
      }
      return await send(stub.body, stub.headers);
    });
    if (!ack) return false;
    this.published++;
    if (ack.duplicate) {
      this.duplicates++;
      this.log.debug(
        { eventId: event.id, position: event.position, correlationId: event.metadata.correlationId },
        'JetStream dropped a duplicate',
      );
    }
    this.lastPublished = event.position;
    this.lastRecordedAt = event.recordedAt;
    this.unsaved++;
    if (this.unsaved >= (this.opts.checkpointEvery ?? 100)) this.requestFlush();
    else this.flushTimer ??= setTimeout(() => this.requestFlush(), this.opts.checkpointIntervalMs ?? 1_000);
    return true;
  }

  /** The server's max_payload as the connection last heard it; undefined when unknown. */
  private maxPayload(): number | undefined {
    const nc = this.opts.connection ?? (this.opts.js as { nc?: EventRelayOptions['connection'] }).nc;
    return nc?.info?.max_payload;
  }

  /** Count and log an oversize event, and build the message that takes its slot. */
  private stub(
    event: RecordedEvent,
    sizeBytes: number,
    maxPayload: number | null,
  ): { body: Uint8Array; headers: MsgHdrs } {
    this.oversize++;
    this.log.warn(
      {
        eventId: event.id,
        eventType: event.type,
        streamId: event.streamId,
        position: event.position,
        sizeBytes,
        maxPayload,
        correlationId: event.metadata.correlationId,
      },
      'event larger than NATS max_payload; publishing a stub in its place',
    );
    const headers = eventHeaders(event);
    headers.set(OVERSIZE_HEADER, String(sizeBytes));
    return { body: encoder.encode(JSON.stringify(oversizeEventStub(event, sizeBytes, maxPayload))), headers };
  }

  /**
   * Save in the background: publishing does not wait for PostgreSQL, and at most one
   * save is queued (it writes the newest position when it runs).
   */
  private requestFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    void this.flush().finally(() => (this.flushQueued = false));
  }

  /** Save the checkpoint if anything is unsaved. Serialised: one save at a time. */
  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      const position = this.lastPublished;
      if (position <= this.checkpoint) return;
      const count = this.unsaved;
      try {
        await this.opts.checkpoints.save(this.name, position);
        this.checkpoint = position;
        this.unsaved = Math.max(0, this.unsaved - count);
      } catch (err) {
        // Not fatal: the next flush saves a later position; a crash meanwhile only means duplicates JetStream drops.
        this.failures++;
        this.log.warn({ err, position }, 'saving the relay checkpoint failed');
        this.flushTimer ??= setTimeout(() => this.requestFlush(), this.opts.checkpointIntervalMs ?? 1_000);
      }
    });
    return this.flushing;
  }

  /**
   * Where the stream and the checkpoint agree with the store. The stream's last message must be
   * the store's event at its position (same event id); when it is not, the last message that is
   * (a binary search: a restore leaves the stream's beginning as it was) is where publishing starts
   * again, the messages after it are deleted from the stream (they are events the store no longer
   * has), and the checkpoint is set back. A checkpoint past the store's head is set back to the head.
   * Said at error level: subscribers that read the deleted messages saw events that are not in the log.
   */
  private async agreeWithStore(found: { saved: number; tail: number }): Promise<{ saved: number; tail: number }> {
    const head = await this.opts.store.headPosition();
    const jsm = this.opts.jsm;
    let { tail } = found;
    let diverged = false;
    let deleted = 0;
    if (jsm && tail >= 0) {
      const stream = this.opts.stream ?? EVENTS_STREAM;
      const { first_seq: first, last_seq: last } = (await jsm.streams.info(stream)).state;
      if ((await this.positionInStore(jsm, stream, last)) === undefined) {
        // The greatest sequence whose message the store holds (first - 1: none), and its position.
        let lo = first - 1;
        let hi = last;
        let agreedAt = -1;
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          const position = await this.positionInStore(jsm, stream, mid);
          if (position === undefined) hi = mid;
          else [lo, agreedAt] = [mid, position];
        }
        for (let seq = last; seq > lo; seq--) {
          if (this.halted) break;
          // A sequence already gone (deleted before a crash) is no error.
          if (await jsm.streams.deleteMessage(stream, seq, false).catch(() => false)) deleted++;
        }
        tail = agreedAt;
        diverged = true;
      }
    }
    // Neither the stream's agreed end nor the store's head may be passed by the checkpoint.
    const saved = Math.min(found.saved, head, diverged ? tail : found.saved);
    if (diverged || saved < found.saved) {
      this.log.error(
        { streamTail: found.tail, storeHead: head, agreedAt: tail, deletedMessages: deleted, checkpoint: found.saved },
        diverged
          ? 'the JetStream stream holds events the event store does not (its database was restored to an older point, or copied while the system ran): the messages after the last one both hold were deleted, publishing starts again after it'
          : 'the relay checkpoint is past the event store head (its database was restored to an older point): publishing starts again after the head',
      );
      this.lastPublished = Math.min(this.lastPublished, saved);
      this.checkpoint = Math.min(this.checkpoint, saved);
      await this.opts.checkpoints.rewind?.(this.name, saved);
    }
    return { saved, tail };
  }

  /** The position of the message at `seq` when it is the store's event there (the same event id). */
  private async positionInStore(jsm: JetStreamManager, stream: string, seq: number): Promise<number | undefined> {
    const msg = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!msg?.header?.has(headerNames.position)) return undefined;
    const position = Number(msg.header.get(headerNames.position));
    if (!Number.isSafeInteger(position) || position < 0) return undefined;
    const [event] = await this.opts.store.readAll({ after: position - 1, maxCount: 1 });
    return event?.position === position && event.id === msg.header.get(headerNames.eventId) ? position : undefined;
  }

  /** Position of the last event in the JetStream stream, -1 when unknown or empty. */
  private async streamTailPosition(): Promise<number> {
    const jsm = this.opts.jsm;
    if (!jsm) return -1;
    const stream = this.opts.stream ?? EVENTS_STREAM;
    let info;
    try {
      info = await jsm.streams.info(stream);
    } catch (err) {
      // No stream yet: nothing was published; the first publish will say so loudly if it is still missing.
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return -1;
      throw err;
    }
    if (info.state.messages === 0) return -1;
    const last = await jsm.streams.getMessage(stream, { seq: info.state.last_seq });
    const position = Number(last?.header.get(headerNames.position));
    return Number.isFinite(position) && last?.header.has(headerNames.position) ? position : -1;
  }

  private async acquireLock(): Promise<boolean> {
    const tryLock = this.opts.checkpoints.tryLock?.bind(this.opts.checkpoints);
    if (!tryLock || this.opts.exclusive === false) return true;
    const onLost = () => {
      this.lockLost = true;
      this.lockLosses++;
      void this.subscription?.close().catch(() => undefined);
    };
    let announced = false;
    while (!this.stopping) {
      const got = await this.retrying('take the relay lock', () => tryLock(this.name, onLost));
      if (got) return true;
      if (got === undefined) return false;
      if (!announced) {
        this.state = 'standby';
        this.log.info({}, 'another relay is active; waiting as standby');
        announced = true;
      }
      await sleep(this.opts.lockRetryMs ?? 2_000, undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
    return false;
  }

  /** Run `fn` until it succeeds (backoff between attempts); undefined when halted first. */
  private async retrying<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; !this.halted; attempt++) {
      try {
        return await fn();
      } catch (err) {
        this.failures++;
        this.log.error({ err, attempt, lastPublished: this.lastPublished }, `relay could not ${what}; retrying`);
        await this.backoff(attempt);
      }
    }
    return undefined;
  }

  private async backoff(attempt: number): Promise<void> {
    const ms = backoffMs(attempt, { initialMs: this.opts.retryMinMs ?? 100, maxMs: this.opts.retryMaxMs ?? 5_000 });
    await sleep(ms, undefined, { signal: this.abort.signal }).catch(() => undefined);
  }

  private async logLag(): Promise<void> {
    try {
      const lag = await this.lag();
      // Periodic: info only when the relay is behind, so an idle system's log stays quiet.
      const level = lag.positionsBehind > 0 ? 'info' : 'debug';
      this.log[level]({ ...lag, ...this.status(), lastPublishedRecordedAt: undefined }, 'event relay lag');
    } catch (err) {
      this.log.warn({ err }, 'could not measure relay lag');
    }
  }
}

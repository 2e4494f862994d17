import type { MessagePort } from 'node:worker_threads';
import type pg from 'pg';
import { z } from 'zod';
import { createPgClient, pgTarget, type Logger } from '@switchyard/platform';
import type { CatchUpSubscription } from '../internal/catch-up.js';
import type { RecordedEvent } from '../port.js';
import { channelName, quoteIdent } from './schema.js';

/**
 * The live end of one PostgreSQL event log as one process sees it: its subscriptions, one LISTEN
 * connection that wakes them, and the events the process's own stores commit, handed to them
 * without a read.
 *
 * Every PostgresEventStore of a process on the same database and schema shares one feed. The
 * launcher runs a store per component, each on a role of its own; with a feed per store, every
 * append woke each store's subscriptions through each store's own LISTEN connection, and each
 * store read back the page its neighbour had just committed (about 19 page reads per MCP call
 * in the all-in-one process). Shared, an append commits once and every subscription of the
 * process is handed the events. Page reads stay per store, on the store's own pool and role, so
 * one component losing its connections does not stall another's subscriptions.
 */
export class LiveFeed {
  private static readonly shared = new Map<string, LiveFeed>();

  /**
   * The process's feed for this log (`key`: database and schema), made on first use; a store
   * without a key (a connection this cannot identify) gets a feed of its own. `member` (the
   * store) connects with `connection`; it leaves on close.
   */
  static join(key: string | undefined, member: object, connection: pg.ClientConfig, o: LiveFeedOptions): LiveFeed {
    let feed = key === undefined ? undefined : LiveFeed.shared.get(key);
    if (!feed) {
      feed = new LiveFeed(key, o);
      if (key !== undefined) LiveFeed.shared.set(key, feed);
    }
    if (!feed.members.has(member)) feed.members.set(member, connection);
    return feed;
  }

  /**
   * Each member store and how it connects: the LISTEN connection logs in as a member with
   * subscriptions, never as a store that left.
   */
  private readonly members = new Map<object, pg.ClientConfig>();
  /** Every subscription of the process, with the member it belongs to. */
  private readonly subscriptions = new Map<CatchUpSubscription, object>();
  /** Feeds of worker threads this one hands its commits and wake-ups to (see forwardToThread). */
  private readonly forwards = new Set<ThreadForward>();
  /** Set when this feed is a worker thread's, fed by its process's feed instead of a LISTEN of its own (until detached). */
  private fedBy: FedByPort | undefined;
  private listener: pg.Client | undefined;
  /** The member whose login the LISTEN connection uses. */
  private listenerMember: object | undefined;
  private listenerStarting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /**
   * The last append of any member refused for want of a resource (PostgreSQL class 53: out of
   * disk, memory, connections), so every store of the process, the monitor's probe among them,
   * can say the log refuses writes, not only the store whose append met it.
   */
  refusal: { at: number; why: string } | undefined;
  /** Append statements of the members in flight. */
  private appendsInFlight = 0;
  /** The highest head a NOTIFY announced while appends were in flight (-1: none pending). */
  private notifiedHead = -1;
  /** Wakes for `notifiedHead` if no append settles first (see onNotify). */
  private notifiedTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly key: string | undefined,
    private readonly o: LiveFeedOptions,
  ) {
    if (o.fedBy) this.listenTo(o.fedBy);
  }

  /**
   * Hand what this process's feed for `key` sees (its stores' commits, and the wake-ups of the
   * LISTEN connection) to a worker thread's store, whose feed then needs no LISTEN of its own and
   * reads no page for what arrived this way. Why: a read model on its own thread read back every
   * commit the engine beside it had just made, one page read per commit (four per three-step
   * execution), on a core the engine needs. Undefined when the process has no feed for that log
   * (the thread then keeps a feed of its own). Closing either end detaches.
   */
  static forwardToThread(
    key: string | undefined,
    port: MessagePort,
    consumed: SharedArrayBuffer,
    bounds: ForwardBounds = {},
  ): boolean {
    if (consumed.byteLength < FED_BY_COUNTERS * 4)
      throw new Error(`the taken counters need ${FED_BY_COUNTERS * 4} bytes of shared memory`);
    const feed = key === undefined ? undefined : LiveFeed.shared.get(key);
    if (!feed || feed.closed) return false;
    const forward = new ThreadForward(port, new Int32Array(consumed), {
      events: bounds.events ?? FORWARD_BACKLOG_EVENTS,
      chars: bounds.chars ?? FORWARD_BACKLOG_CHARS,
    });
    feed.forwards.add(forward);
    port.once('close', () => feed.forwards.delete(forward));
    void feed.ensureListener();
    return true;
  }

  /**
   * A store of the process is done with the feed (its subscriptions closed); the last one closes
   * the LISTEN connection.
   */
  async leave(member: object): Promise<void> {
    if (!this.members.delete(member)) return;
    if (this.members.size > 0) return this.moveListenerFrom(member);
    this.closed = true;
    for (const f of this.forwards) f.detach();
    this.forwards.clear();
    this.fedBy?.port.close();
    if (this.key !== undefined && LiveFeed.shared.get(this.key) === this) LiveFeed.shared.delete(this.key);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.notifiedTimer);
    await this.dropListener();
  }

  /**
   * The LISTEN connection logged in as `member`, which no longer subscribes (or left): make it
   * again as a member that does. A store that stops subscribing may be one whose role must not
   * stay logged in: the schema owner's, which runs the migrations and their read models'
   * catch-up before the components start on roles of their own.
   */
  private async moveListenerFrom(member: object): Promise<void> {
    if (this.listenerMember !== member || this.closed) return;
    // Dropped even when nobody else subscribes now: a later subscriber makes its own.
    await this.dropListener();
    if (this.listens) void this.ensureListener();
  }

  /** Whether a LISTEN connection is wanted: subscriptions here, or a thread this feed hands over to. */
  private get listens(): boolean {
    return this.subscriptions.size > 0 || this.forwards.size > 0;
  }

  /** End the LISTEN connection (one being made included); the subscriptions catch up when the next one is up. */
  private async dropListener(): Promise<void> {
    await this.listenerStarting?.catch(() => undefined);
    const listener = this.listener;
    this.listener = undefined;
    this.listenerMember = undefined;
    await listener?.end().catch(() => undefined);
  }

  /** Deliver live events to `sub` of `member` (until it closes) and keep the LISTEN connection up for it. */
  add(sub: CatchUpSubscription, member: object): void {
    if (!this.members.has(member)) return;
    this.subscriptions.set(sub, member);
    void this.ensureListener();
  }

  delete(sub: CatchUpSubscription): void {
    const member = this.subscriptions.get(sub);
    if (member === undefined) return;
    this.subscriptions.delete(sub);
    if (!this.subscribes(member)) void this.moveListenerFrom(member);
  }

  /** The subscriptions of `member` still open. */
  subscriptionsOf(member: object): CatchUpSubscription[] {
    return [...this.subscriptions].flatMap(([sub, m]) => (m === member ? [sub] : []));
  }

  private subscribes(member: object): boolean {
    for (const m of this.subscriptions.values()) if (m === member) return true;
    return false;
  }

  /** Whether any store of the process has a subscription (here or on a thread fed by this feed) to hand events to. */
  get hasSubscriptions(): boolean {
    return this.listens;
  }

  /** A member's append statement is on its way. */
  appendStarted(): void {
    this.appendsInFlight++;
  }

  /**
   * A member's append statement has its answer (and its events were offered). A head announced
   * meanwhile may be that append's: those it covers were handed over, the rest read.
   */
  appendSettled(): void {
    this.appendsInFlight--;
    this.wakeNotified();
  }

  /**
   * A NOTIFY: wake the subscriptions behind `head`, unless an append of the process is in flight
   * (its answer hands the events over, see appendSettled). The wait is short either way: an
   * append stuck waiting for a connection must not hold back what other processes append.
   */
  private onNotify(head: number): void {
    if (this.appendsInFlight === 0) return this.wake(head);
    this.notifiedHead = Math.max(this.notifiedHead, head);
    this.notifiedTimer ??= setTimeout(() => this.wakeNotified(), NOTIFY_HOLD_MS);
  }

  private wakeNotified(): void {
    clearTimeout(this.notifiedTimer);
    this.notifiedTimer = undefined;
    if (this.notifiedHead < 0) return;
    const head = this.notifiedHead;
    this.notifiedHead = -1;
    this.wake(head);
  }

  /**
   * Hand one commit's events (each list one append's, in position order) to every subscription
   * of the process; each takes what follows directly what it has. Returns the lists taken.
   */
  offer(committed: readonly (readonly RecordedEvent[])[]): number {
    let taken = 0;
    for (const events of committed) for (const sub of this.subscriptions.keys()) if (sub.offer(events)) taken++;
    return taken;
  }

  /**
   * One group commit of a member: `json` is the appended batch as sent to append_batch, `appends`
   * the appends of it that committed. The process's subscriptions get the events parsed from it
   * (the stored values, copies nobody else holds); a thread gets the text itself, which it parses
   * on its own core (a structured clone of the events cost the engine's loop more than the
   * thread's page reads it saved, at hundreds of executions a second).
   */
  offerCommitted(json: string, appends: readonly CommittedAppend[]): number {
    if (appends.length === 0) return 0;
    for (const f of this.forwards) f.offer(json, appends);
    return this.subscriptions.size > 0 ? this.offer(committedEvents(json, appends)) : 0;
  }

  /** Wake every subscription (those that already account for `head` stay asleep). */
  wake(head?: number): void {
    for (const s of this.subscriptions.keys()) s.wake(head);
    for (const f of this.forwards) f.wake(head);
  }

  /** A thread's feed: take the commits and wake-ups its process's feed hands over, until that one detaches. */
  private listenTo(fedBy: FedByPort): void {
    this.fedBy = fedBy;
    const consumed = new Int32Array(fedBy.consumed);
    fedBy.port.on('message', (raw: unknown) => {
      const m = forwardMessageSchema.safeParse(raw);
      if (!m.success) {
        this.o.logger?.warn({ issues: m.error.issues }, 'unexpected message from the process feed; reading instead');
        return this.wake();
      }
      const msg = m.data;
      if (msg.type === 'offer') {
        let events = 0;
        for (const a of msg.appends) events += a.events;
        Atomics.add(consumed, 0, events);
        Atomics.add(consumed, 1, msg.json.length);
        this.offer(committedEvents(msg.json, msg.appends));
      } else if (msg.type === 'wake') {
        Atomics.add(consumed, 0, 1);
        this.wake(msg.head);
      } else this.detachFromProcess();
    });
    fedBy.port.once('close', () => this.detachFromProcess());
  }

  /** The process's feed is gone: LISTEN on this thread's own connection again, and catch up. */
  private detachFromProcess(): void {
    if (!this.fedBy) return;
    this.fedBy = undefined;
    if (this.closed) return;
    if (this.listens) void this.ensureListener();
    this.wake();
  }

  /** Start (or restart) the LISTEN connection; every (re)connect wakes the subscriptions to catch up. */
  private ensureListener(): Promise<void> {
    // A thread's feed fed by its process's feed hears every wake-up from there.
    if (this.listener || this.closed || this.fedBy) return Promise.resolve();
    this.listenerStarting ??= (async () => {
      // A member that subscribes: the login of a component that follows the log (for a feed that
      // only hands over to threads, any member: the process's stores all follow it).
      const member: object | undefined = this.subscriptions.values().next().value ?? this.members.keys().next().value;
      const connection = member === undefined ? undefined : this.members.get(member);
      if (member === undefined || !connection) return;
      const client = createPgClient(connection, { name: 'event-store-listen' });
      // The payload is the head the append reached: subscriptions already past it need no read.
      client.on('notification', (msg) => {
        const head = Number(msg.payload);
        if (!Number.isSafeInteger(head)) return this.wake();
        // The NOTIFY of an append of this process often beats its answer: let the answer hand the events over first.
        this.onNotify(head);
      });
      client.on('error', (err) => {
        this.o.logger?.warn({ err }, 'LISTEN connection failed; reconnecting');
        if (this.listener === client) {
          this.listener = undefined;
          this.listenerMember = undefined;
        }
        client.end().catch(() => undefined);
        this.scheduleReconnect();
      });
      try {
        await client.connect();
        await client.query(`listen ${quoteIdent(channelName(this.o.schema))}`);
      } catch (err) {
        client.end().catch(() => undefined);
        throw err;
      }
      if (this.closed || !(this.subscribes(member) || (this.forwards.size > 0 && this.members.has(member)))) {
        // Closed, or its member stopped subscribing while it connected: end it, and make the next one.
        await client.end().catch(() => undefined);
        if (!this.closed && this.listens) setImmediate(() => void this.ensureListener());
        return;
      }
      this.listener = client;
      this.listenerMember = member;
      this.wake();
    })()
      .catch((err) => {
        this.o.logger?.warn({ err }, 'cannot LISTEN; subscriptions fall back to the safety re-read until reconnected');
        this.scheduleReconnect();
      })
      .finally(() => {
        this.listenerStarting = undefined;
      });
    return this.listenerStarting;
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.listens) void this.ensureListener();
    }, 1_000);
  }
}

/** How long a NOTIFY waits for an append of the process in flight to hand its events over. */
const NOTIFY_HOLD_MS = 25;

export interface LiveFeedOptions {
  readonly schema: string;
  readonly logger?: Logger;
  /** A worker thread's feed: fed by its process's feed through this port (see LiveFeed.forwardToThread). */
  readonly fedBy?: FedByPort;
}

/** The thread's end of LiveFeed.forwardToThread: the port, and the count of handed-over events it has taken. */
export interface FedByPort {
  readonly port: MessagePort;
  readonly consumed: SharedArrayBuffer;
}

/** Events handed to a thread and not yet taken there, past which commits go as a wake-up instead (the thread reads them). */
const FORWARD_BACKLOG_EVENTS = 5_000;
/** The same bound in characters of the events' JSON: a few events can be megabytes each. */
const FORWARD_BACKLOG_CHARS = 64 * 1024 * 1024;
/** An append of a group commit that committed: its index in the batch, its event count and where it ended. */
export interface CommittedAppend {
  readonly idx: number;
  readonly events: number;
  readonly lastPosition: number;
  readonly revision: number;
  readonly recordedAt: Date;
}

/** The appended batch's JSON as append_batch reads it (only what recorded events need). */
type AppendedBatch = readonly {
  readonly stream: string;
  readonly events: readonly { id: string; type: string; data: unknown; metadata: RecordedEvent['metadata'] }[];
}[];

/**
 * The committed appends' events as recorded, each append's list in position order and the lists
 * in position order: the batch's JSON parsed again, so data and metadata are the stored values
 * (no `undefined`) in copies no caller holds.
 */
export function committedEvents(json: string, appends: readonly CommittedAppend[]): RecordedEvent[][] {
  const batch = JSON.parse(json) as AppendedBatch;
  const committed: RecordedEvent[][] = [];
  for (const a of appends) {
    const item = batch[a.idx];
    if (!item) continue;
    const first = a.lastPosition - item.events.length + 1;
    const firstRevision = a.revision - item.events.length + 1;
    committed.push(
      item.events.map((e, k) => ({
        id: e.id,
        streamId: item.stream,
        type: e.type,
        data: e.data,
        metadata: e.metadata,
        revision: firstRevision + k,
        position: first + k,
        recordedAt: a.recordedAt,
      })),
    );
  }
  committed.sort((x, y) => x[0]!.position - y[0]!.position);
  return committed;
}

/** How much a thread may have been handed and not taken yet (defaults: the constants above). */
export interface ForwardBounds {
  readonly events?: number;
  readonly chars?: number;
}

/** The shared counters a thread keeps of what it took: events (with wake-ups), characters. */
const FED_BY_COUNTERS = 2;

/** What a process's feed sends a thread's (it crosses a thread boundary: checked on arrival). */
const forwardMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('offer'),
    /** The group commit's batch as appended (see LiveFeed.offerCommitted). */
    json: z.string(),
    appends: z.array(
      z.object({
        idx: z.number().int().nonnegative(),
        events: z.number().int().positive(),
        lastPosition: z.number().int(),
        revision: z.number().int(),
        recordedAt: z.date(),
      }),
    ),
  }),
  z.object({ type: z.literal('wake'), head: z.number().int().optional() }),
  z.object({ type: z.literal('detached') }),
]);

/**
 * The process side of a thread's feed. Commits go over while the thread keeps up; past its bounds
 * (events, characters) not yet taken, a commit goes as a wake-up, and the thread reads it from the
 * log at its own pace (a busy thread must not make the port's queue grow without bound).
 */
class ThreadForward {
  /** Events offered plus wake-ups sent (each counts one), and characters offered, as the thread's `taken` counts them. */
  private sent = 0;
  private sentChars = 0;
  constructor(
    readonly port: MessagePort,
    private readonly taken: Int32Array,
    private readonly bounds: Required<ForwardBounds>,
  ) {}

  /** What was sent and not yet taken (differences of 32-bit counters: exact while far below 2^31). */
  private backlog(): number {
    return (this.sent - Atomics.load(this.taken, 0)) | 0;
  }

  private backlogChars(): number {
    return (this.sentChars - Atomics.load(this.taken, 1)) | 0;
  }

  offer(json: string, appends: readonly CommittedAppend[]): void {
    let events = 0;
    let head = -1;
    for (const a of appends) {
      events += a.events;
      head = Math.max(head, a.lastPosition);
    }
    const chars = json.length;
    if (this.backlog() + events > this.bounds.events || this.backlogChars() + chars > this.bounds.chars)
      return this.wake(head);
    this.sent = (this.sent + events) | 0;
    this.sentChars = (this.sentChars + chars) | 0;
    this.port.postMessage({ type: 'offer', json, appends });
  }

  /**
   * Past the bound, a wake-up is not sent either: the thread still has messages to take, and the
   * read the first of them leads to sees every commit made before it, this one included.
   */
  wake(head?: number): void {
    if (this.backlog() >= this.bounds.events || this.backlogChars() >= this.bounds.chars) return;
    this.sent = (this.sent + 1) | 0;
    this.port.postMessage(head === undefined ? { type: 'wake' } : { type: 'wake', head });
  }

  /** The process's feed closes: the thread listens on its own again. */
  detach(): void {
    this.port.postMessage({ type: 'detached' });
    this.port.close();
  }
}

/**
 * Which log a pool's connections reach: host, port, database and schema as pg resolves them (a
 * URL without a database means the user's; `?host=` and `?port=` count), not the role: stores on
 * different roles share the feed. Undefined when pg cannot say (the feed is then the store's own).
 */
export function liveFeedKey(config: pg.ClientConfig, schema: string): string | undefined {
  const target = pgTarget(config);
  return target && JSON.stringify([target.host, target.port, target.database, schema]);
}

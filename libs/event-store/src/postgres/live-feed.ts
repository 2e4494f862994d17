import type pg from 'pg';
import { createPgClient, type Logger } from '@switchyard/platform';
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
   * without a key (a connection this cannot identify) gets a feed of its own. Leave it on close.
   */
  static join(key: string | undefined, o: LiveFeedOptions): LiveFeed {
    let feed = key === undefined ? undefined : LiveFeed.shared.get(key);
    if (!feed) {
      feed = new LiveFeed(key, o);
      if (key !== undefined) LiveFeed.shared.set(key, feed);
    }
    feed.members++;
    return feed;
  }

  private members = 0;
  private readonly subscriptions = new Set<CatchUpSubscription>();
  private listener: pg.Client | undefined;
  private listenerStarting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Append statements of the members in flight. */
  private appendsInFlight = 0;
  /** The highest head a NOTIFY announced while appends were in flight (-1: none pending). */
  private notifiedHead = -1;

  private constructor(
    private readonly key: string | undefined,
    private readonly o: LiveFeedOptions,
  ) {}

  /** A store of the process is done with the feed; the last one closes its LISTEN connection. */
  async leave(): Promise<void> {
    if (--this.members > 0) return;
    this.closed = true;
    if (this.key !== undefined && LiveFeed.shared.get(this.key) === this) LiveFeed.shared.delete(this.key);
    clearTimeout(this.reconnectTimer);
    await this.listenerStarting?.catch(() => undefined);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  /** Deliver live events to `sub` (until it closes) and keep the LISTEN connection up for it. */
  add(sub: CatchUpSubscription): void {
    this.subscriptions.add(sub);
    void this.ensureListener();
  }

  delete(sub: CatchUpSubscription): void {
    this.subscriptions.delete(sub);
  }

  /** Whether any store of the process has a subscription to hand events to. */
  get hasSubscriptions(): boolean {
    return this.subscriptions.size > 0;
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
    if (this.notifiedHead >= 0) {
      const head = this.notifiedHead;
      this.notifiedHead = -1;
      this.wake(head);
    }
  }

  /**
   * Hand one commit's events (each list one append's, in position order) to every subscription
   * of the process; each takes what follows directly what it has. Returns the lists taken.
   */
  offer(committed: readonly (readonly RecordedEvent[])[]): number {
    let taken = 0;
    for (const events of committed) for (const sub of this.subscriptions) if (sub.offer(events)) taken++;
    return taken;
  }

  /** Wake every subscription (those that already account for `head` stay asleep). */
  wake(head?: number): void {
    for (const s of this.subscriptions) s.wake(head);
  }

  /** Start (or restart) the LISTEN connection; every (re)connect wakes the subscriptions to catch up. */
  private ensureListener(): Promise<void> {
    if (this.listener || this.closed) return Promise.resolve();
    this.listenerStarting ??= (async () => {
      const client = createPgClient(this.o.connection, { name: 'event-store-listen' });
      // The payload is the head the append reached: subscriptions already past it need no read.
      client.on('notification', (msg) => {
        const head = Number(msg.payload);
        if (!Number.isSafeInteger(head)) return this.wake();
        // The NOTIFY of an append of this process often beats its answer: let the answer hand the events over first.
        if (this.appendsInFlight > 0) this.notifiedHead = Math.max(this.notifiedHead, head);
        else this.wake(head);
      });
      client.on('error', (err) => {
        this.o.logger?.warn({ err }, 'LISTEN connection failed; reconnecting');
        if (this.listener === client) this.listener = undefined;
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
      if (this.closed) {
        await client.end().catch(() => undefined);
        return;
      }
      this.listener = client;
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
      if (this.subscriptions.size > 0) void this.ensureListener();
    }, 1_000);
  }
}

export interface LiveFeedOptions {
  /** How the LISTEN connection connects (the first member's pool settings: any role may LISTEN). */
  readonly connection: pg.ClientConfig;
  readonly schema: string;
  readonly logger?: Logger;
}

/**
 * Which log a pool's connections reach: host, port, database and schema, not the role (stores on
 * different roles share the feed). Undefined when the settings do not say (the feed is then the store's own).
 */
export function liveFeedKey(config: pg.ClientConfig, schema: string): string | undefined {
  if (config.connectionString) {
    try {
      const url = new URL(config.connectionString);
      const host = url.searchParams.get('host') ?? url.hostname;
      if (!host) return undefined;
      return `${host}:${url.port || '5432'}${url.pathname}#${schema}`;
    } catch {
      return undefined;
    }
  }
  if (typeof config.host !== 'string' || typeof config.database !== 'string') return undefined;
  return `${config.host}:${config.port ?? 5432}/${config.database}#${schema}`;
}

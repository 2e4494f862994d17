import { randomUUID } from 'node:crypto';
import pg from 'pg';
import {
  AppError,
  byteBoundedSql,
  createPgPool,
  cutByBytes,
  guardPgPool,
  isAppError,
  isResourceShortage,
  isSchemaManaged,
  type Logger,
} from '@switchyard/platform';
import {
  FencedError,
  UnstorableEventError,
  WrongExpectedVersionError,
  type AllSubscription,
  type AppendOptions,
  type Fence,
  type AppendResult,
  type EventMetadata,
  type EventStore,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../port.js';
import { CatchUpSubscription, type Page } from '../internal/catch-up.js';
import { validateAppend } from '../internal/validate.js';
import { storableJson } from '../internal/storable-text.js';
import { matchesFilter, type EventFilter } from '../internal/filter.js';
import { quoteIdent, schemaSql } from './schema.js';
import type { MessagePort } from 'node:worker_threads';
import { LiveFeed, liveFeedKey, type CommittedAppend, type FedByPort, type ForwardBounds } from './live-feed.js';

export type PostgresEventStoreOptions = ({ connectionString: string } | { pool: pg.Pool }) & {
  readonly logger?: Logger;
  /** Schema holding the tables (default `eventstore`). */
  readonly schema?: string;
  /** Pool size when the store makes its own pool (default 10). */
  readonly maxConnections?: number;
  /** Re-read interval for subscriptions even without a NOTIFY (default 3 s). */
  readonly safetyIntervalMs?: number;
  /**
   * Bytes of event data (uncompressed, see schema.ts data_bytes) one subscription page holds at
   * most (default 4 MiB; a page holds at least one event whatever its size). 500 events of large
   * step outputs were one page: 100 MB parsed and delivered in one turn of the event loop of
   * whoever subscribed.
   */
  readonly pageBytes?: number;
  /**
   * Group-commit statements in flight at once (default 2). Appends commit one at a time under
   * the store's lock either way; with 1, everything that arrives while a batch commits goes in
   * the next one (fewer, larger commits: a lone append waits for at most one commit before its
   * own); with 2, the next statement already waits at the lock (no round trip between commits).
   */
  readonly maxBatchesInFlight?: number;
  /**
   * `process` (default): share the process's LiveFeed with every store on the same database and
   * schema. `own`: a feed of its own, as a store in another process would have (for tests that
   * play two processes in one). `{ fedBy }`: a store on a worker thread whose process's feed
   * hands it commits and wake-ups (see forwardLiveFeed); it LISTENs on its own only if that ends.
   */
  readonly liveFeed?: 'process' | 'own' | { readonly fedBy: FedByPort };
};

interface PendingAppend {
  readonly stream: string;
  readonly mode: 'any' | 'no_stream' | 'stream_exists' | 'exact';
  readonly expected: number | null;
  /** The events as the JSON array append_batch reads (storableJson applied). */
  readonly eventsJson: string;
  readonly eventCount: number;
  readonly fence?: Fence;
}

interface BatchRow {
  ok: boolean;
  revision: string | null;
  last_position: string | null;
  recorded_at: Date | null;
  /** Set when the append's fence was refused: the fence's current epoch (-1: none). */
  fenced: string | null;
}

interface Queued {
  readonly item: PendingAppend;
  readonly resolve: (row: BatchRow) => void;
  readonly reject: (err: unknown) => void;
}

/** A subscription's page read, waiting to be grouped with the others of the same tick. */
interface PageRequest {
  readonly after: number;
  readonly limit: number;
  readonly filter: EventFilter;
  readonly resolve: (page: Page) => void;
  readonly reject: (err: unknown) => void;
}

interface EventRow {
  position: string;
  stream_id: string;
  revision: string;
  event_id: string;
  type: string;
  data: unknown;
  metadata: EventMetadata;
  recorded_at: Date;
}

const COLUMNS = 'position, stream_id, revision, event_id, type, data, metadata, recorded_at';

/** How long a refused append keeps the store `degraded` in /readyz (see recentRefusal). */
const RECENT_REFUSAL_MS = 30_000;
/** What PostgreSQL ran out of, by SQLSTATE (class 53); /readyz says this, not the server's text (it names files). */
const RESOURCE_OF: Readonly<Record<string, string>> = {
  '53100': 'disk space',
  '53200': 'memory',
  '53300': 'connections',
};

/**
 * The PostgreSQL event store (see schema.ts for how the global order stays gap-free).
 * Live delivery: the process's LiveFeed for this log (one LISTEN connection for every store of
 * the process) wakes every subscription, which then catches up by reading, or takes the events
 * a store of the process just committed; a slow timer re-reads in case a NOTIFY was lost
 * (e.g. while the LISTEN connection was reconnecting).
 */
export class PostgresEventStore implements EventStore {
  readonly kind = 'postgres';
  readonly supportsFences = true;
  readonly densePositions = true;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly schema: string;
  private readonly t: string;
  private readonly log: Logger | undefined;
  /** The process's live end of this log: its subscriptions (this store's among them) and LISTEN connection. */
  private readonly feed: LiveFeed;
  private initialised: Promise<void> | undefined;
  private closed = false;
  private readonly queue: Queued[] = [];
  private inFlight = 0;
  /** Batch statements in flight at once (options.maxBatchesInFlight). */
  private readonly maxInFlight: number;
  private pageRequests: PageRequest[] = [];
  private readonly stats = { pageRequests: 0, pageQueries: 0, offered: 0 };
  private readonly pageBytes: number;

  constructor(private readonly options: PostgresEventStoreOptions) {
    this.maxInFlight = Math.max(1, Math.floor(options.maxBatchesInFlight ?? 2));
    this.pageBytes = Math.max(1, Math.floor(options.pageBytes ?? DEFAULT_PAGE_BYTES));
    this.schema = options.schema ?? 'eventstore';
    this.t = `${quoteIdent(this.schema)}.events`;
    this.log = options.logger?.child({ component: 'postgres-event-store', schema: this.schema });
    if ('pool' in options) {
      // A connection losing its session must not crash the process; the pool replaces it.
      this.pool = guardPgPool(options.pool, { name: 'event-store' });
      this.ownsPool = false;
    } else {
      this.pool = createPgPool(
        { connectionString: options.connectionString, max: options.maxConnections ?? 10 },
        { name: 'event-store', ...(this.log ? { logger: this.log } : {}) },
      );
      this.ownsPool = true;
    }
    const connection: pg.ClientConfig =
      'pool' in options ? options.pool.options : { connectionString: options.connectionString };
    const fedBy = typeof options.liveFeed === 'object' ? options.liveFeed.fedBy : undefined;
    const key = options.liveFeed === 'own' || fedBy ? undefined : liveFeedKey(connection, this.schema);
    this.feed = LiveFeed.join(key, this, connection, {
      schema: this.schema,
      ...(this.log ? { logger: this.log } : {}),
      ...(fedBy ? { fedBy } : {}),
    });
  }

  /** Create the schema, table and append function; safe to call from several processes at once. */
  init(): Promise<void> {
    this.initialised ??= (async () => {
      // A component's role may not run DDL: the owner migrated the store before it started.
      if (isSchemaManaged(this.pool)) return;
      const client = await this.pool.connect();
      try {
        // Concurrent `create ... if not exists` can still collide in the catalogs: take turns.
        await client.query('select pg_advisory_lock(hashtext($1))', [`${this.schema}.init`]);
        try {
          await client.query(schemaSql(this.schema));
        } finally {
          await client.query('select pg_advisory_unlock(hashtext($1))', [`${this.schema}.init`]);
        }
      } finally {
        client.release();
      }
    })().catch((err) => {
      this.initialised = undefined;
      throw err;
    });
    return this.initialised;
  }

  async append(streamId: string, events: readonly NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    this.assertOpen();
    const expected = options.expectedRevision ?? 'any';
    validateAppend(streamId, events, expected);
    const item: PendingAppend = {
      stream: streamId,
      mode: typeof expected === 'number' ? 'exact' : expected,
      expected: typeof expected === 'number' ? expected : null,
      eventsJson: eventsJson(streamId, events),
      eventCount: events.length,
      ...(options.fence ? { fence: { name: options.fence.name, epoch: options.fence.epoch } } : {}),
    };
    const row = await this.enqueue(item);
    if (!row.ok && row.fenced !== null && row.fenced !== undefined) {
      const current = Number(row.fenced);
      throw new FencedError(streamId, options.fence!, current === -1 ? null : current);
    }
    if (!row.ok) {
      throw new WrongExpectedVersionError(
        streamId,
        expected,
        row.revision === null ? 'no_stream' : Number(row.revision),
      );
    }
    return { nextExpectedRevision: Number(row.revision), position: Number(row.last_position) };
  }

  /**
   * Group commit: appends arriving while a batch statement is in flight wait and then go
   * together in the next statement, so N concurrent appends cost one commit (one WAL flush)
   * instead of N. A lone writer is not delayed: with nothing in flight its append goes at once.
   * Each append keeps its own expectation and all-or-nothing effect (append_batch in schema.ts).
   */
  private enqueue(item: PendingAppend): Promise<BatchRow> {
    return new Promise<BatchRow>((resolve, reject) => {
      // Appends made in the same synchronous run (an EventSink's streams at the end of its gather
      // window, a handler appending to two streams) go in one statement: the flush waits for it to end.
      if (this.queue.push({ item, resolve, reject }) === 1) queueMicrotask(() => this.flush());
    });
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) this.startBatch();
  }

  /** Send the appends at the head of the queue as one statement (at most 200 appends, 2,000 events). */
  private startBatch(): void {
    const batch: Queued[] = [];
    let events = 0;
    while (
      this.queue.length > 0 &&
      batch.length < 200 &&
      (batch.length === 0 || events + this.queue[0]!.item.eventCount <= 2_000)
    ) {
      const q = this.queue.shift()!;
      events += q.item.eventCount;
      batch.push(q);
    }
    this.inFlight++;
    this.feed.appendStarted();
    void this.runBatch(batch).finally(() => {
      this.inFlight--;
      this.feed.appendSettled();
      this.flush();
    });
  }

  private async runBatch(batch: readonly Queued[]): Promise<void> {
    try {
      const json = `[${batch.map((q) => batchEntryJson(q.item)).join(',')}]`;
      const res = await this.query<BatchRow & { idx: number }>(
        `select * from ${quoteIdent(this.schema)}.append_batch($1::jsonb)`,
        [json],
        `${this.schema}.append_batch`,
      );
      const byIdx = new Map(res.rows.map((r) => [r.idx, r]));
      batch.forEach((q, i) => {
        const row = byIdx.get(i + 1);
        if (row) q.resolve(row);
        else q.reject(new AppError('internal', 'append_batch returned no row for an append'));
      });
      // Committed: hand the events to this process's subscriptions (every store's, through the
      // feed). In the same synchronous run as the answers above, so before anyone hears of the
      // append (they hear in a later microtask); after them, so the appenders go on first (the
      // engine's next dispatch waits on its append, not on the subscriptions).
      // Never into the catch below (it would append the batch again): a subscription that is not
      // offered the events reads them.
      if (this.feed.hasSubscriptions) {
        try {
          this.offerCommitted(json, batch, byIdx);
        } catch (err) {
          this.log?.warn({ err }, 'handing committed events to subscriptions failed; they read them');
          this.feed.wake();
        }
      }
    } catch (err) {
      // A lost connection leaves the outcome unknown: retrying could append twice, so every
      // append of the batch gets the (retryable) error. A SQL error means the statement rolled
      // back; then one bad append must not fail its neighbours: run each half again, down to the
      // bad one alone (a few statements for one bad append among hundreds, not one per append).
      // A cancelled statement (statement_timeout, 57) or a server short of resources (53) is no
      // append's fault: splitting would only send more statements to a database already behind.
      // The halves go one after the other, so appends keep the order they arrived in.
      const code = String((err as { code?: unknown } | null)?.code ?? '');
      const shortage = isResourceShortage(err);
      if (shortage)
        this.feed.refusal = {
          at: Date.now(),
          why: `appends refused: PostgreSQL is short of ${RESOURCE_OF[code] ?? 'a resource'} (SQLSTATE ${code})`,
        };
      if (isAppError(err) || shortage || code.startsWith('57')) {
        for (const q of batch) q.reject(err);
        return;
      }
      if (batch.length === 1) {
        batch[0]!.reject(refusedContent(batch[0]!.item.stream, err));
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.runBatch(batch.slice(0, half));
      await this.runBatch(batch.slice(half));
    }
  }

  async raiseFence(name: string, epoch: number): Promise<void> {
    this.assertOpen();
    await this.query(`select ${quoteIdent(this.schema)}.raise_fence($1, $2)`, [name, epoch]);
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    const backwards = options.direction === 'backwards';
    const res = await this.query<EventRow>(
      `select ${COLUMNS} from ${this.t}
       where stream_id = $1 and ($2::bigint is null or revision ${backwards ? '<=' : '>='} $2)
       order by revision ${backwards ? 'desc' : 'asc'} limit $3`,
      [streamId, options.fromRevision ?? null, options.maxCount ?? null],
    );
    return res.rows.map(toRecorded);
  }

  async storedBytes(streamId: string): Promise<number> {
    this.assertOpen();
    // The size written at append; for older events the stored (compressed) size, without decompressing the data.
    const res = await this.query<{ bytes: string }>(
      `select coalesce(sum(coalesce(data_bytes, pg_column_size(data))), 0)::bigint as bytes from ${this.t} where stream_id = $1`,
      [streamId],
    );
    return Number(res.rows[0]?.bytes ?? 0);
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    const backwards = options.direction === 'backwards';
    const res = await this.query<EventRow>(
      `select ${COLUMNS} from ${this.t}
       where ($1::bigint is null or position ${backwards ? '<' : '>'} $1) and ${filterSql(2)}
         and ($5::bigint is null or position ${backwards ? '>=' : '<='} $5)
       order by position ${backwards ? 'desc' : 'asc'} limit $4`,
      [
        options.after ?? null,
        nonEmpty(options.types),
        nonEmpty(options.streamPrefixes),
        options.maxCount ?? null,
        options.until ?? null,
      ],
    );
    return res.rows.map(toRecorded);
  }

  async headPosition(): Promise<number> {
    this.assertOpen();
    const res = await this.query<{ head: string }>(`select coalesce(max(position), -1) as head from ${this.t}`);
    return Number(res.rows[0]!.head);
  }

  async positionAtTime(time: Date): Promise<number> {
    this.assertOpen();
    // The event at or after position p (positions may have gaps where an append rolled back): one
    // primary-key probe each, about 22 for four million events.
    const at = async (p: number) =>
      (
        await this.query<{ position: string; recorded_at: Date }>(
          `select position, recorded_at from ${this.t} where position >= $1 order by position limit 1`,
          [p],
        )
      ).rows[0];
    let lo = 0;
    let hi = (await this.headPosition()) + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const e = await at(mid);
      if (!e) hi = mid;
      else if (e.recorded_at >= time) hi = mid;
      else lo = Number(e.position) + 1;
    }
    return lo;
  }

  subscribeToAll(options: SubscribeOptions = {}): AllSubscription {
    this.assertOpen();
    const types = nonEmpty(options.types);
    const prefixes = nonEmpty(options.streamPrefixes);
    const filter: EventFilter = { ...(types && { types }), ...(prefixes && { streamPrefixes: prefixes }) };
    const readPage = (after: number, limit: number): Promise<Page> =>
      new Promise<Page>((resolve, reject) => {
        if (this.pageRequests.push({ after, limit, filter, resolve, reject }) === 1)
          setImmediate(() => this.readPages());
      });
    const sub: CatchUpSubscription = new CatchUpSubscription(readPage, options.from ?? -1, {
      filter,
      ...(options.onProgress && { onProgress: options.onProgress }),
      pageSize: 500,
      safetyIntervalMs: this.options.safetyIntervalMs ?? 3_000,
      logger: this.log,
      onClose: () => this.feed.delete(sub),
    });
    this.feed.add(sub, this);
    return sub;
  }

  /**
   * Live subscriptions of this process get the events it just committed without reading them
   * back (each takes them only when they follow directly what it has, see
   * CatchUpSubscription.offer); the feed hands a thread the appended JSON itself (see
   * LiveFeed.offerCommitted).
   */
  private offerCommitted(json: string, batch: readonly Queued[], rows: ReadonlyMap<number, BatchRow>): void {
    const committed: CommittedAppend[] = [];
    batch.forEach((q, i) => {
      const row = rows.get(i + 1);
      if (!row?.ok || row.last_position === null || row.revision === null || !row.recorded_at) return;
      committed.push({
        idx: i,
        events: q.item.eventCount,
        lastPosition: Number(row.last_position),
        revision: Number(row.revision),
        recordedAt: row.recorded_at,
      });
    });
    this.stats.offered += this.feed.offerCommitted(json, committed);
  }

  /** Subscription reads so far, the queries that served them (shared reads make the second smaller), and appends of this store handed over without a read (to any subscription of the process). */
  readStats(): { pageRequests: number; pageQueries: number; offered: number } {
    return { ...this.stats };
  }

  /**
   * Every append wakes every subscription of this process (engine, projections, ...), and
   * those that were live all ask for the page after the same position in the same tick. One
   * unfiltered read serves such a group, filtered here; a lone reader filters in SQL.
   */
  private readPages(): void {
    const requests = this.pageRequests;
    this.pageRequests = [];
    const groups = new Map<number, PageRequest[]>();
    // One push per request (a copy per add was quadratic in the live subscriptions of a wake).
    for (const r of requests) {
      let group = groups.get(r.after);
      if (!group) groups.set(r.after, (group = []));
      group.push(r);
    }
    this.stats.pageRequests += requests.length;
    for (const [after, group] of groups) {
      this.stats.pageQueries++;
      if (group.length === 1) {
        const r = group[0]!;
        this.readPage(after, r.limit, r.filter).then(r.resolve, r.reject);
        continue;
      }
      // A loop, not Math.max(...spread): a group may hold more requests than a call takes arguments.
      let limit = 0;
      for (const r of group) limit = Math.max(limit, r.limit);
      this.readPage(after, limit, {}).then(
        (page) => {
          const caughtUp = page.caughtUp ?? page.events.length < limit;
          for (const r of group)
            r.resolve({
              events: page.events.filter((e) => matchesFilter(e, r.filter)),
              scannedTo: page.scannedTo,
              caughtUp,
            });
        },
        (err: unknown) => {
          for (const r of group) r.reject(err);
        },
      );
    }
  }

  /**
   * The page and the head come from one statement, hence one snapshot: every event at or
   * below that head has been seen, and any later commit gets a higher position.
   */
  private async readPage(after: number, limit: number, filter: EventFilter): Promise<Page> {
    const types = nonEmpty(filter.types);
    const prefixes = nonEmpty(filter.streamPrefixes);
    // A filtered read examines at most FILTERED_SCAN_WINDOW positions: a rare type far behind the
    // head is found in short statements, one window at a time, instead of one scan of the log
    // that holds a connection for as long as the log is long.
    const until = types || prefixes ? after + FILTERED_SCAN_WINDOW : null;
    // The page is cut where its events' data passes pageBytes (sizes kept at append, without
    // reading the data): `taken` says how many the limit gave before the cut.
    const res = await this.query<EventRow & { head: string; taken: string | null }>(
      `select h.head, e.* from (select coalesce(max(position), -1) as head from ${this.t}) h
       left join lateral (
         ${byteBoundedSql(
           `select ${COLUMNS}, coalesce(data_bytes, pg_column_size(data)) as bytes from ${this.t}
            where position > $1 and ${filterSql(2)} and ($5::bigint is null or position <= $5)
            order by position limit $4`,
           'w.position',
           '$6',
         )}
       ) e on true
       order by e.position`,
      [after, types, prefixes, limit, until, this.pageBytes],
      `${this.schema}.read_page`,
    );
    const head = Number(res.rows[0]?.head ?? -1);
    const rows = res.rows.filter((r) => r.position !== null);
    const events = rows.map(toRecorded);
    if (events.length === limit) return { events, scannedTo: events[events.length - 1]!.position };
    // Cut by bytes: what follows the last event was not looked at.
    if (cutByBytes(rows)) return { events, scannedTo: events[events.length - 1]!.position, caughtUp: false };
    const scannedTo = until === null ? head : Math.min(head, until);
    return { events, scannedTo, caughtUp: scannedTo >= head };
  }

  async ping(): Promise<void> {
    await this.query('select 1');
  }

  /** The last append refused for want of a resource (class 53), this store's or another's of the process on the same log, while it is recent. */
  recentRefusal(now = Date.now()): string | undefined {
    const refusal = this.feed.refusal;
    if (!refusal || now - refusal.at > RECENT_REFUSAL_MS || now < refusal.at) return undefined;
    return `${refusal.why}, ${Math.round((now - refusal.at) / 1000)} s ago`;
  }

  /** Stops subscriptions, lets accepted appends finish, then releases connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.feed.subscriptionsOf(this).map((s) => s.close()));
    // Appends accepted before close() still get their answer.
    while (this.inFlight > 0 || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    await this.feed.leave(this);
    if (this.ownsPool) await this.pool.end();
  }

  /** `name`: a statement run on every append or wake-up, prepared once per connection (no parse and plan each time). */
  private async query<R extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
    name?: string,
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(name ? { name, text: sql, values: params } : { text: sql, values: params });
    } catch (err) {
      throw toAppError(err);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new AppError('unavailable', 'the event store is closed', {}, false);
  }
}

/** Bytes of event data in one subscription page (see PostgresEventStoreOptions.pageBytes). */
const DEFAULT_PAGE_BYTES = 4 * 1024 * 1024;

/** Most positions one filtered subscription read examines (see readPage). */
const FILTERED_SCAN_WINDOW = 10_000;

/** Filters on parameters $n (types text[]) and $n+1 (stream prefixes text[]); null means no filter. */
const filterSql = (n: number): string =>
  `($${n}::text[] is null or type = any($${n}::text[]))
   and ($${n + 1}::text[] is null or stream_id ^@ any($${n + 1}::text[]))`;

const nonEmpty = (xs: readonly string[] | undefined): string[] | null => (xs && xs.length > 0 ? [...xs] : null);

/**
 * The events of one append as the JSON array append_batch reads, text the database can store
 * (storableJson). Written here, in the caller's append, so an event that cannot be written as
 * JSON (a BigInt, a cycle) fails its own append before it joins a batch, and so that a later
 * change to the caller's objects does not change what is stored.
 */
function eventsJson(streamId: string, events: readonly NewEvent[]): string {
  const parts = events.map((e, i) => {
    try {
      return JSON.stringify({ id: e.id ?? randomUUID(), type: e.type, data: e.data ?? null, metadata: e.metadata });
    } catch (err) {
      throw new UnstorableEventError(
        streamId,
        `event ${i} of the append to ${streamId} cannot be written as JSON: ${(err as Error).message}`,
        i,
      );
    }
  });
  return storableJson(`[${parts.join(',')}]`);
}

/** One entry of the append_batch array, around the events' JSON written at append time. */
function batchEntryJson(item: PendingAppend): string {
  const head = JSON.stringify({
    stream: item.stream,
    mode: item.mode,
    expected: item.expected,
    ...(item.fence ? { fence: item.fence } : {}),
  });
  return `${head.slice(0, -1)},"events":${item.eventsJson}}`;
}

/**
 * The error of an append that failed alone. Data exceptions (class 22) and exceeded limits (class
 * 54, e.g. a jsonb value over its size limit) are about what the append carries: trying it again
 * cannot help, and the caller should hear so, not get the driver's error.
 */
function refusedContent(streamId: string, err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !(code.startsWith('22') || code.startsWith('54'))) return err;
  return new UnstorableEventError(
    streamId,
    `the database refused the append to ${streamId}: ${(err as Error).message}`,
    undefined,
    { pgCode: code },
  );
}

function toRecorded(r: EventRow): RecordedEvent {
  return {
    id: r.event_id,
    streamId: r.stream_id,
    type: r.type,
    data: r.data,
    metadata: r.metadata,
    revision: Number(r.revision),
    position: Number(r.position),
    recordedAt: r.recorded_at,
  };
}

/** Connection-level failures become `unavailable` (retryable); anything else passes through. */
function toAppError(err: unknown): unknown {
  const code = (err as { code?: string }).code;
  if (
    typeof code === 'string' &&
    (code.startsWith('08') || code === '57P01' || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT'].includes(code))
  ) {
    return new AppError('unavailable', `event store unavailable: ${(err as Error).message}`, { pgCode: code });
  }
  return err;
}

/**
 * Hand this process's live feed of the log `connection` reaches (commits of its stores, wake-ups
 * of its LISTEN connection) to a worker thread through `port`; the thread's store takes the other
 * end as `liveFeed: { fedBy: { port, consumed } }`. False (nothing attached) when the process has
 * no store on that log: the thread's store then keeps a feed of its own.
 */
export function forwardLiveFeed(
  connection: pg.ClientConfig,
  port: MessagePort,
  consumed: SharedArrayBuffer,
  schema = 'eventstore',
  bounds?: ForwardBounds,
): boolean {
  return LiveFeed.forwardToThread(liveFeedKey(connection, schema), port, consumed, bounds);
}

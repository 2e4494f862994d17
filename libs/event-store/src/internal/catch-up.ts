import { backoffMs, type Logger } from '@switchyard/platform';
import type { AllSubscription, RecordedEvent } from '../port.js';
import { matchesFilter, type EventFilter } from './filter.js';

/** One page of the global log after a position, already filtered. */
export interface Page {
  readonly events: readonly RecordedEvent[];
  /**
   * Every event at or below this position has been considered (delivered or filtered out).
   * With a short page this is the head seen in the same snapshot as the page, so the next
   * read can start after it without re-scanning filtered-out events.
   */
  readonly scannedTo: number;
  /**
   * True when nothing after `scannedTo` existed at the read. Absent: a page shorter than the
   * page size means caught up (true for a reader that filters in SQL; a reader that filters
   * afterwards must say it).
   */
  readonly caughtUp?: boolean;
}

const CLOSED = Symbol('closed');

export type PageReader = (after: number, limit: number) => Promise<Page>;

export interface CatchUpOptions {
  readonly pageSize?: number;
  /** Re-read this often even without a wake-up: a safety net for a lost notification. */
  readonly safetyIntervalMs?: number;
  readonly logger?: Logger;
  readonly onClose?: () => void;
  /** The subscription's filter, for events handed over by `offer` (pages come filtered). */
  readonly filter?: EventFilter;
  /** See SubscribeOptions.onProgress. */
  readonly onProgress?: (position: number) => void;
}

/**
 * A catch-up subscription driven by reading pages: the same loop serves catch-up and live
 * delivery, so there is no seam to get wrong. Live delivery is a read triggered by `wake()`
 * (an append in memory, a NOTIFY in Postgres), or, for what the store's own process appended,
 * the committed events handed over by `offer()`. A wake-up that arrives while a read is in
 * flight is remembered through `version`, so none is lost.
 */
export class CatchUpSubscription implements AllSubscription {
  private closed = false;
  /**
   * Told on close(): a read in flight is not awaited past it (a read can wait on a pool that is
   * ending). One waiter per read, dropped when the read settles: a race against one promise that
   * lives as long as the subscription added a reaction to it per page, and each reaction held its
   * page, so a long-lived subscription kept every event it had ever read (2.6 KB of heap per event).
   */
  private readonly closeWaiters = new Set<() => void>();
  private iterating = false;
  private version = 0;
  /**
   * Every position up to here is accounted for: read (or being delivered from a page) or
   * offered. `offer` accepts only what follows it directly, so offered events never skip one.
   */
  private known: number;
  /** Offered events (already filtered) waiting to be delivered, and the last position offered. */
  private offered: RecordedEvent[] = [];
  private offeredTo = -1;
  private wakeWaiter: (() => void) | undefined;
  private readonly pageSize: number;
  private readonly safetyIntervalMs: number;
  /** The wake-up count when the last page read started: no wake-up since means nothing to read. */
  private lastReadVersion = -1;
  /** The last position told to `onProgress`. */
  private reported: number;

  constructor(
    private readonly readPage: PageReader,
    private readonly from: number,
    private readonly options: CatchUpOptions = {},
  ) {
    this.pageSize = options.pageSize ?? 500;
    this.safetyIntervalMs = options.safetyIntervalMs ?? 3_000;
    this.known = from;
    this.reported = from;
  }

  /**
   * Something may have been appended: read again. With `head` (the last position the append
   * reached), a subscription that already accounts for it does not read.
   */
  wake(head?: number): void {
    if (head !== undefined && head <= this.known) return;
    this.version++;
    this.wakeWaiter?.();
  }

  /**
   * Events this process just committed, handed over without a read. `events` are one append's
   * events, unfiltered, in position order; taken only when they follow directly what this
   * subscription accounts for (positions are dense, so then nothing lies between), otherwise
   * ignored: the subscription reads them like anyone else's. Returns whether they were taken.
   */
  offer(events: readonly RecordedEvent[]): boolean {
    if (this.closed || events.length === 0 || events[0]!.position !== this.known + 1) return false;
    // A consumer that does not keep up reads at its own pace instead of piling events up here.
    if (this.offered.length >= this.pageSize) return false;
    const filter = this.options.filter;
    for (const e of events) if (!filter || matchesFilter(e, filter)) this.offered.push(e);
    this.known = events[events.length - 1]!.position;
    this.offeredTo = this.known;
    this.wakeWaiter?.();
    return true;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const tell of this.closeWaiters) tell();
    this.closeWaiters.clear();
    this.wakeWaiter?.();
    this.options.onClose?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<RecordedEvent> {
    if (this.iterating) throw new Error('a subscription can be iterated only once');
    this.iterating = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<RecordedEvent> {
    let position = this.from;
    let failures = 0;
    let mustRead = true; // catch up from `from` first
    try {
      while (!this.closed) {
        // 1. What this process appended and handed over (see offer): delivered without a read.
        if (this.offered.length > 0 || this.offeredTo > position) {
          const batch = this.offered;
          const to = this.offeredTo;
          this.offered = [];
          for (const event of batch) {
            if (this.closed) return;
            if (event.position <= position) continue; // already delivered from a page
            yield event;
            position = event.position;
          }
          if (to > position) position = to;
          this.progress(position);
        }
        // 2. Idle: no wake-up since the last read started, and that read was caught up.
        if (!mustRead && this.version === this.lastReadVersion) {
          if ((await this.sleep(this.safetyIntervalMs)) === 'timeout') mustRead = true;
          continue;
        }
        // 3. Read a page; a wake-up that arrives meanwhile is remembered through `version`.
        const seen = this.version;
        let page: Page;
        try {
          const read = await this.readUnlessClosed(position);
          if (read === CLOSED) return;
          page = read;
          failures = 0;
        } catch (err) {
          if (this.closed) return;
          // A transient store failure must not end a long-lived subscription: back off and retry.
          failures++;
          const delay = backoffMs(failures);
          this.options.logger?.warn({ err, position, delay }, 'subscription read failed; retrying');
          await this.sleep(delay);
          mustRead = true;
          continue;
        }
        this.lastReadVersion = seen;
        if (page.scannedTo > this.known) this.known = page.scannedTo;
        for (const event of page.events) {
          if (this.closed) return;
          if (event.position <= position) continue; // defensive: never deliver twice or backwards
          yield event;
          position = event.position;
        }
        if (page.scannedTo > position) position = page.scannedTo;
        this.progress(position);
        mustRead = !(page.caughtUp ?? page.events.length < this.pageSize);
      }
    } finally {
      await this.close();
    }
  }

  /** A page from `position`, or CLOSED as soon as the subscription is closed (the read is then left to end on its own). */
  private readUnlessClosed(position: number): Promise<Page | typeof CLOSED> {
    return new Promise<Page | typeof CLOSED>((resolve, reject) => {
      if (this.closed) return resolve(CLOSED);
      const onClose = () => resolve(CLOSED);
      this.closeWaiters.add(onClose);
      this.readPage(position, this.pageSize)
        .then(resolve, reject)
        .finally(() => this.closeWaiters.delete(onClose));
    });
  }

  /** Report `position` as considered (once per new position; the iteration calls it only after handing over every event up to it). */
  private progress(position: number): void {
    if (position <= this.reported || this.closed) return;
    this.reported = position;
    this.options.onProgress?.(position);
  }

  /** Wait until woken (wake, offer, close) or `ms` pass. */
  private sleep(ms: number): Promise<'woken' | 'timeout'> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done('timeout'), ms);
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- used by the hoisted function done() below
      const self = this;
      function done(how: 'woken' | 'timeout') {
        clearTimeout(timer);
        self.wakeWaiter = undefined;
        resolve(how);
      }
      this.wakeWaiter = () => done('woken');
    });
  }
}

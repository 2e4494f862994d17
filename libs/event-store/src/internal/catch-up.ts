import type { Logger } from '@switchyard/platform';
import type { AllSubscription, RecordedEvent } from '../port.js';

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

export type PageReader = (after: number, limit: number) => Promise<Page>;

export interface CatchUpOptions {
  readonly pageSize?: number;
  /** Re-read this often even without a wake-up: a safety net for a lost notification. */
  readonly safetyIntervalMs?: number;
  readonly logger?: Logger;
  readonly onClose?: () => void;
}

/**
 * A catch-up subscription driven by reading pages: the same loop serves catch-up and live
 * delivery, so there is no seam to get wrong. Live delivery is a read triggered by `wake()`
 * (an append in memory, a NOTIFY in Postgres). A wake-up that arrives while a read is in
 * flight is remembered through `version`, so none is lost.
 */
export class CatchUpSubscription implements AllSubscription {
  private closed = false;
  private iterating = false;
  private version = 0;
  private wakeWaiter: (() => void) | undefined;
  private readonly pageSize: number;
  private readonly safetyIntervalMs: number;

  constructor(
    private readonly readPage: PageReader,
    private readonly from: number,
    private readonly options: CatchUpOptions = {},
  ) {
    this.pageSize = options.pageSize ?? 500;
    this.safetyIntervalMs = options.safetyIntervalMs ?? 3_000;
  }

  /** Something may have been appended: read again. */
  wake(): void {
    this.version++;
    this.wakeWaiter?.();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
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
    try {
      while (!this.closed) {
        const seen = this.version;
        let page: Page;
        try {
          page = await this.readPage(position, this.pageSize);
          failures = 0;
        } catch (err) {
          if (this.closed) return;
          // A transient store failure must not end a long-lived subscription: back off and retry.
          failures++;
          const delay = Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
          this.options.logger?.warn({ err, position, delay }, 'subscription read failed; retrying');
          await this.sleep(delay);
          continue;
        }
        for (const event of page.events) {
          if (this.closed) return;
          if (event.position <= position) continue; // defensive: never deliver twice or backwards
          yield event;
          position = event.position;
        }
        if (page.scannedTo > position) position = page.scannedTo;
        const caughtUp = page.caughtUp ?? page.events.length < this.pageSize;
        if (caughtUp && this.version === seen && !this.closed) await this.sleep(this.safetyIntervalMs);
      }
    } finally {
      await this.close();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wakeWaiter = undefined;
        resolve();
      }
      this.wakeWaiter = done;
    });
  }
}

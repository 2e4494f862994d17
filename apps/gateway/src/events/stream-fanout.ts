import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import type { Logger } from '@switchyard/platform';

/** A listen for a stream's next event (StreamFanout.watchNext). */
export interface NextEventWatch {
  /** True once an event came (at once if one came since the listen), false after `timeoutMs` without one. */
  readonly next: (timeoutMs: number) => Promise<boolean>;
  readonly stop: () => void;
}

/** Pause before a failed subscription is opened again (from where it stopped). */
const RESUBSCRIBE_MS = 1_000;

/** Told of each event of its stream; `null` once when the fan-out closes (the gateway stops). */
export type StreamListener = (event: RecordedEvent | null) => void;

/**
 * Events of the streams of one kind (workflow executions, tasks: one stream prefix) handed to
 * listeners by the id after the prefix, from ONE live subscription to the event store per
 * fan-out, whatever the number of listeners: each listener reading its stream again and again
 * would cost the database a read per listener per look. The subscription takes only `types`
 * (the store filters where it reads); it opens at the first listener (from the head then),
 * resumes after a failure from where it had got while anyone listens, and closes with close().
 */
export class StreamFanout {
  private readonly listeners = new Map<string, Set<StreamListener>>();
  private sub: AllSubscription | undefined;
  private opening: Promise<void> | undefined;
  /** Every event up to here was considered by the subscription (a resubscription resumes after it). */
  private seen = -1;
  private closed = false;

  constructor(
    private readonly store: EventStore,
    private readonly log: Logger,
    private readonly streamPrefix: string,
    private readonly types: readonly string[],
  ) {}

  /** Listeners now, over every stream. */
  get listening(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** Streams listened to now. */
  get streams(): number {
    return this.listeners.size;
  }

  /**
   * Hand `listener` every event of the stream `<prefix><id>` committed from now on; returns the
   * stop. The listener is registered before the subscription is made sure of: a caller that
   * reads the stream after this resolves misses nothing between its read and the events it is told of.
   */
  async listen(id: string, listener: StreamListener): Promise<() => void> {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    // A function of its own per listen, so the same listener twice stays two.
    const own: StreamListener = (e) => listener(e);
    set.add(own);
    const stop = () => {
      set.delete(own);
      if (set.size === 0 && this.listeners.get(id) === set) this.listeners.delete(id);
    };
    try {
      await this.open();
    } catch (err) {
      stop();
      throw err;
    }
    return stop;
  }

  /**
   * Listen to the stream `<prefix><id>` for its next event of the fan-out's types, from now on:
   * `next(ms)` resolves true once one came (at once if one came since the listen), false after
   * `ms` without one, at `stop()` or when the fan-out closes. Whoever reads the stream's state after this
   * resolves and then waits on `next` misses no event in between.
   */
  async watchNext(id: string): Promise<NextEventWatch> {
    let heard = false;
    let wake: ((moved: boolean) => void) | undefined;
    const stop = await this.listen(id, (e) => {
      if (e) heard = true;
      wake?.(e !== null);
    });
    return {
      next: (timeoutMs) =>
        heard
          ? Promise.resolve(true)
          : new Promise<boolean>((resolve) => {
              const timer = setTimeout(() => {
                wake = undefined;
                resolve(false);
              }, timeoutMs);
              wake = (moved) => {
                clearTimeout(timer);
                wake = undefined;
                resolve(moved);
              };
            }),
      stop: () => {
        stop();
        wake?.(false);
      },
    };
  }

  /**
   * watchNext, and `next` true at once when the stream's last event is one of `ends` already
   * (ended before the listen, so no event will come; read after listening, so none is missed).
   */
  async watchNextUnlessEnded(id: string, ends: ReadonlySet<string>): Promise<NextEventWatch> {
    const watch = await this.watchNext(id);
    try {
      const [last] = await this.store.readStream(`${this.streamPrefix}${id}`, { direction: 'backwards', maxCount: 1 });
      return last && ends.has(last.type) ? { next: () => Promise.resolve(true), stop: watch.stop } : watch;
    } catch (err) {
      watch.stop();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.sub?.close().catch(() => undefined);
    this.sub = undefined;
    for (const set of [...this.listeners.values()]) for (const listener of [...set]) listener(null);
  }

  private open(): Promise<void> {
    if (this.sub || this.closed) return Promise.resolve();
    this.opening ??= (async () => {
      try {
        const from = this.seen >= 0 ? this.seen : await this.store.headPosition();
        this.seen = Math.max(this.seen, from);
        this.sub = this.store.subscribeToAll({
          from,
          types: this.types,
          streamPrefixes: [this.streamPrefix],
          onProgress: (position) => void (this.seen = Math.max(this.seen, position)),
        });
        void this.deliver(this.sub);
      } finally {
        this.opening = undefined;
      }
    })();
    return this.opening;
  }

  private async deliver(sub: AllSubscription): Promise<void> {
    try {
      for await (const e of sub) {
        this.seen = Math.max(this.seen, e.position);
        const set = this.listeners.get(e.streamId.slice(this.streamPrefix.length));
        if (set) for (const listener of [...set]) listener(e);
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err, seen: this.seen }, 'the fan-out subscription failed; opening it again');
    } finally {
      if (this.sub === sub) this.sub = undefined;
    }
    // Ended without a close (a failure, a lost connection): resume after what was seen, while someone listens.
    if (!this.closed) {
      setTimeout(() => {
        if (this.closed) return;
        if (this.listeners.size > 0)
          void this.open().catch((err: unknown) => this.log.warn({ err }, 'reopening the fan-out subscription failed'));
        // Nobody to deliver to: the next listener opens from the head (it reads its state after
        // listening, so nothing is missed), not from here, which could be days of log behind.
        else if (!this.sub) this.seen = -1;
      }, RESUBSCRIBE_MS).unref();
    }
  }
}

import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import type { Logger } from '@switchyard/platform';

const STREAM_PREFIX = 'workflow_execution-';
/** Pause before a failed subscription is opened again (from where it stopped). */
const RESUBSCRIBE_MS = 1_000;

/** Told of each event of its execution; `null` once when the fan-out closes (the gateway stops). */
export type ExecutionListener = (event: RecordedEvent | null) => void;

/**
 * Events of workflow executions handed to listeners by execution id, from ONE live subscription
 * to the event store per fan-out, whatever the number of listeners: each listener reading its
 * execution's stream again and again would cost the database a read per listener per look.
 * The subscription takes only `types` (the store filters where it reads); it opens at the first
 * listener (from the head then), resumes after a failure from where it had got while anyone
 * listens, and closes with close().
 */
export class ExecutionFanout {
  private readonly listeners = new Map<string, Set<ExecutionListener>>();
  private sub: AllSubscription | undefined;
  private opening: Promise<void> | undefined;
  /** Every event up to here was considered by the subscription (a resubscription resumes after it). */
  private seen = -1;
  private closed = false;

  constructor(
    private readonly store: EventStore,
    private readonly log: Logger,
    private readonly types: readonly string[],
  ) {}

  /** Listeners now, over every execution. */
  get listening(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** Executions listened to now. */
  get executions(): number {
    return this.listeners.size;
  }

  /**
   * Hand `listener` every event of the execution committed from now on; returns the stop. The
   * listener is registered before the subscription is made sure of: a caller that reads the
   * execution after this resolves misses nothing between its read and the events it is told of.
   */
  async listen(executionId: string, listener: ExecutionListener): Promise<() => void> {
    let set = this.listeners.get(executionId);
    if (!set) this.listeners.set(executionId, (set = new Set()));
    // A function of its own per listen, so the same listener twice stays two.
    const own: ExecutionListener = (e) => listener(e);
    set.add(own);
    const stop = () => {
      set.delete(own);
      if (set.size === 0 && this.listeners.get(executionId) === set) this.listeners.delete(executionId);
    };
    try {
      await this.open();
    } catch (err) {
      stop();
      throw err;
    }
    return stop;
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
          streamPrefixes: [STREAM_PREFIX],
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
        const set = this.listeners.get(e.streamId.slice(STREAM_PREFIX.length));
        if (set) for (const listener of [...set]) listener(e);
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err, seen: this.seen }, 'the execution subscription failed; opening it again');
    } finally {
      if (this.sub === sub) this.sub = undefined;
    }
    // Ended without a close (a failure, a lost connection): resume after what was seen, while someone listens.
    if (!this.closed) {
      setTimeout(() => {
        if (!this.closed && this.listeners.size > 0)
          void this.open().catch((err: unknown) =>
            this.log.warn({ err }, 'reopening the execution subscription failed'),
          );
      }, RESUBSCRIBE_MS).unref();
    }
  }
}

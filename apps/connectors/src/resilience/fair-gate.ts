import { BulkheadRejectedError, TaskCancelledError } from 'cockatiel';

/** Gives a slot back; calling it again does nothing. */
export type Release = () => void;

interface Waiter {
  /** Arrival order: the newest of a key is the one a full queue refuses to make room. */
  readonly seq: number;
  readonly key: string;
  readonly within: string;
  readonly grant: (release: Release) => void;
  readonly refuse: (err: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * A bulkhead whose queue takes turns: at most `maxConcurrent` holders, at most `maxQueue` waiting,
 * and a free slot goes to the waiting keys in turn (round robin), and within a key's turn to its
 * waiting `within`s in turn, first come within those. One workflow's for-each of a hundred slow
 * calls then delays another's single call by one call's time, not by the hundred (cockatiel's
 * bulkhead, which this replaces, is one FIFO); with the key the person and `within` the workflow,
 * a person starting many workflows still has one turn, and their own small workflow does not wait
 * behind their large one. A waiter whose signal aborts leaves the queue at once.
 *
 * A full queue makes room for a key that holds less of it: the newest waiter of the key that
 * holds the most is refused (as a full queue refuses), and the newcomer takes its place. Without
 * that, one person's thousands of queued calls filled the queue and every other caller was
 * refused until they drained, whatever the turns.
 */
export class FairGate {
  private running = 0;
  private waiting = 0;
  /** Waiters per key and `within`; each map's order is its turn order (one served goes to the back). */
  private readonly queues = new Map<string, Map<string, Waiter[]>>();
  /** Waiters per key. */
  private readonly perKey = new Map<string, number>();
  private arrivals = 0;

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueue: number,
  ) {}

  /** Holders now. */
  get inFlight(): number {
    return this.running;
  }

  /** Waiters now. */
  get depth(): number {
    return this.waiting;
  }

  /** Whether a caller arriving now would have to wait (no free slot, or others already waiting). */
  get full(): boolean {
    return this.running >= this.maxConcurrent || this.waiting > 0;
  }

  /** A slot now, when one is free and nobody waits (a caller then starts in the same tick). */
  tryAcquire(): Release | undefined {
    if (this.full) return undefined;
    this.running++;
    return this.releaser();
  }

  /**
   * A slot for `key`: at once when one is free and nobody waits, otherwise after its turn.
   * Throws (rejects) BulkheadRejectedError when `maxQueue` already wait, TaskCancelledError when
   * `signal` aborts first.
   */
  acquire(key: string, signal?: AbortSignal, within = ''): Promise<Release> {
    if (signal?.aborted) return Promise.reject(new TaskCancelledError());
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    if (this.waiting >= this.maxQueue && !this.makeRoomFor(key))
      return Promise.reject(new BulkheadRejectedError(this.maxConcurrent - this.running, 0));
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        seq: this.arrivals++,
        key,
        within,
        signal,
        grant: resolve,
        refuse: reject,
        onAbort: () => {
          if (this.remove(waiter)) reject(new TaskCancelledError());
        },
      };
      let turns = this.queues.get(key);
      if (!turns) this.queues.set(key, (turns = new Map()));
      let queue = turns.get(within);
      if (!queue) turns.set(within, (queue = []));
      queue.push(waiter);
      this.waiting++;
      this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
    });
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.handOver();
    };
  }

  /** Free slots go to the key whose turn it is; that key then goes to the back of the turns. */
  private handOver(): void {
    while (this.running < this.maxConcurrent && this.waiting > 0) {
      const [key, turns] = this.queues.entries().next().value as [string, Map<string, Waiter[]>];
      const [within, queue] = turns.entries().next().value as [string, Waiter[]];
      const waiter = queue.shift()!;
      turns.delete(within);
      if (queue.length > 0) turns.set(within, queue);
      this.queues.delete(key);
      if (turns.size > 0) this.queues.set(key, turns);
      this.waiting--;
      this.counted(key, -1);
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      this.running++;
      waiter.grant(this.releaser());
    }
  }

  /** Takes an aborted waiter out of its queue; false when it already had its slot. */
  private remove(waiter: Waiter): boolean {
    const turns = this.queues.get(waiter.key);
    const queue = turns?.get(waiter.within);
    const at = queue?.indexOf(waiter) ?? -1;
    if (!turns || !queue || at < 0) return false;
    queue.splice(at, 1);
    if (queue.length === 0) turns.delete(waiter.within);
    if (turns.size === 0) this.queues.delete(waiter.key);
    this.waiting--;
    this.counted(waiter.key, -1);
    return true;
  }

  private counted(key: string, by: number): void {
    const n = (this.perKey.get(key) ?? 0) + by;
    if (n > 0) this.perKey.set(key, n);
    else this.perKey.delete(key);
  }

  /** Whether a caller of `key` arriving now would wait in the queue (not be refused). */
  wouldQueue(key: string): boolean {
    return this.waiting < this.maxQueue || this.largestAbove(key) !== undefined;
  }

  /**
   * The key holding the most of the queue, when it holds at least two more than `key` holds now
   * (so that after the move it still holds at least as many: two keys never push each other out
   * in turn); undefined when there is none.
   */
  private largestAbove(key: string): string | undefined {
    let largest: string | undefined;
    let most = 0;
    for (const [k, n] of this.perKey)
      if (n > most) {
        most = n;
        largest = k;
      }
    return largest === undefined || largest === key || most < (this.perKey.get(key) ?? 0) + 2 ? undefined : largest;
  }

  /** Refuses the newest waiter of the key that holds the most (see largestAbove); false when there is none. */
  private makeRoomFor(key: string): boolean {
    const largest = this.largestAbove(key);
    if (largest === undefined) return false;
    // Each within's queue is first come first served: its last waiter is its newest.
    let victim: Waiter | undefined;
    for (const queue of this.queues.get(largest)!.values()) {
      const last = queue[queue.length - 1];
      if (last && (!victim || last.seq > victim.seq)) victim = last;
    }
    if (!victim) return false;
    this.remove(victim);
    victim.signal?.removeEventListener('abort', victim.onAbort);
    victim.refuse(new BulkheadRejectedError(this.maxConcurrent - this.running, 0));
    return true;
  }
}

import { AppError } from '@switchyard/platform';
import { answered, clientGone, type ClientGone } from './context.js';

interface Waiter {
  readonly start: () => void;
  readonly timer: NodeJS.Timeout;
  gone?: ClientGone;
}

/**
 * Reads that load whole stored payloads into this process: an execution's detail with its inputs
 * and outputs (up to the execution input bound and as much output, so tens of MB), its state at a
 * revision (the whole stream folded), a replay check, an audit page. Each such read holds its rows
 * and their JSON several times over in memory and serialises them on the event loop: eight at once
 * of a 98 MB execution held 3.5 GB and stalled every other request for 9.5 s. So at most
 * `concurrency` run at once in a gateway (the cores do no more at a time anyway), each holding its
 * turn until its answer went out (the serialisation is most of the cost); the others wait, first
 * come first served, up to `queue` of them, each no longer than `waitMs`, then 503 with
 * Retry-After. A waiter that gave up, or whose client hung up, leaves the queue at once.
 *
 * Our own gate, not cockatiel's bulkhead: there a waiter whose signal fired stays queued, and the
 * turn handed to it is lost, so live waiters behind it waited out their whole timeout while
 * nothing ran (seen: 20 of 24 reads answered 504 by an idle gateway).
 */
export class PayloadReads {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  /** How long one waits for its turn: half the request timeout, so a read that starts has time to end. */
  private readonly waitMs: number;

  constructor(
    readonly concurrency: number,
    readonly queue: number,
    requestTimeoutMs: number,
  ) {
    this.waitMs = Math.max(1, Math.floor((requestTimeoutMs > 0 ? requestTimeoutMs : 30_000) / 2));
  }

  async run<T>(read: () => Promise<T>): Promise<T> {
    await this.turn(true);
    let result: T;
    // Its client hung up while it waited: nobody takes the answer, the turn goes on at once.
    if (clientGone.now()) {
      this.release();
      throw new AppError('unavailable', 'the client went away before its turn came');
    }
    try {
      result = await read();
    } catch (err) {
      this.release();
      throw err;
    }
    // The answer is serialised and written after this returns: the turn is held until it went out.
    void answered().then(() => this.release());
    return result;
  }

  /**
   * `work` in its turn, the turn held while it runs: a command's or a wait's fold of a large
   * execution, whose answer is small. It goes on when its client hung up: a cancel that an MCP
   * client's abort sent has no client left to wait for, and a command is not a read nobody takes.
   */
  async whileRunning<T>(work: () => Promise<T>): Promise<T> {
    await this.turn(false);
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  /** Reads running and waiting now. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  private turn(leavesWithClient: boolean): Promise<void> {
    if (this.running < this.concurrency) {
      this.running += 1;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.queue)
      return Promise.reject(
        new AppError(
          'unavailable',
          `${this.concurrency} reads of whole payloads run and ${this.queue} wait: try again shortly`,
          { retry_after_ms: 1_000 },
        ),
      );
    return new Promise((resolve, reject) => {
      const leave = (err: AppError) => {
        clearTimeout(waiter.timer);
        waiter.gone?.stop();
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(err);
      };
      const waiter: Waiter = {
        // The running count stays: the turn passes from the one that ended to this one.
        start: () => {
          clearTimeout(waiter.timer);
          waiter.gone?.stop();
          resolve();
        },
        timer: setTimeout(
          () =>
            leave(
              new AppError('unavailable', `no turn for a read of whole payloads within ${this.waitMs} ms`, {
                retry_after_ms: 1_000,
              }),
            ),
          this.waitMs,
        ),
      };
      // A waiter whose client hung up leaves the queue at once (a client that gives up early and
      // asks again would otherwise fill it with reads nobody takes).
      if (leavesWithClient)
        waiter.gone = clientGone.watch(() =>
          leave(new AppError('unavailable', 'the client went away while it waited')),
        );
      this.waiting.push(waiter);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.start();
    else this.running -= 1;
  }
}

import { bulkhead, BulkheadRejectedError, TaskCancelledError, type BulkheadPolicy } from 'cockatiel';
import { AppError } from '@switchyard/platform';

/**
 * Reads that load whole stored payloads into this process: an execution's detail with its inputs
 * and outputs (up to the execution input bound and as much output, so tens of MB), its state at a
 * revision (the whole stream folded), a replay check, an audit page. Each such read holds its rows
 * and their JSON several times over in memory and serialises them on the event loop: eight at once
 * of a 98 MB execution held 3.5 GB and stalled every other request for 9.5 s. So at most
 * `concurrency` run at once in a gateway (the cores do no more at a time anyway); the others
 * wait their turn, up to `queue` of them, each no longer than `waitMs` (past it its client already
 * has its 504, and the read is not started). A full queue is answered 503 with Retry-After.
 */
export class PayloadReads {
  private readonly policy: BulkheadPolicy;
  /** How long one waits for its turn: the request timeout (0, none: 30 s). */
  private readonly waitMs: number;

  constructor(
    readonly concurrency: number,
    readonly queue: number,
    waitMs: number,
  ) {
    this.policy = bulkhead(concurrency, queue);
    this.waitMs = waitMs > 0 ? waitMs : 30_000;
  }

  async run<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await this.policy.execute(() => read(), AbortSignal.timeout(this.waitMs));
    } catch (err) {
      if (err instanceof BulkheadRejectedError)
        throw new AppError(
          'unavailable',
          `${this.concurrency} reads of whole payloads run and ${this.queue} wait: try again shortly`,
          { retry_after_ms: 1_000 },
        );
      if (err instanceof TaskCancelledError)
        throw new AppError('timeout', `no turn for a read of whole payloads within ${this.waitMs} ms`);
      throw err;
    }
  }
}

import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import type { ExtractedPage } from './extract-html.js';

export interface HtmlExtractorLimits {
  /** Longest one page may take to convert; past it the thread is ended and a new one started. */
  readonly timeoutMs: number;
  /** Pages waiting for the thread; one more is refused at once. */
  readonly maxQueued: number;
  /** Heap of the thread: a page that needs more fails alone. */
  readonly maxHeapMb: number;
}

export const defaultHtmlExtractorLimits: HtmlExtractorLimits = { timeoutMs: 5_000, maxQueued: 32, maxHeapMb: 256 };

const readySchema = z.object({ ready: z.literal(true) });
const answerSchema = z.union([
  z.object({
    id: z.number(),
    ok: z.literal(true),
    page: z.object({
      title: z.string(),
      text: z.string(),
      links: z.array(z.object({ href: z.string(), text: z.string() })),
    }),
  }),
  z.object({ id: z.number(), ok: z.literal(false), message: z.string() }),
]);

interface Job {
  readonly id: number;
  readonly html: string;
  readonly baseUrl: string;
  readonly resolve: (page: ExtractedPage) => void;
  readonly reject: (err: Error) => void;
}

/**
 * Converts HTML pages to text on a thread of its own, one at a time, each within a time limit.
 * The parsers' cost grows with the square of a page's nesting: a 1 MB page of 200,000 unclosed
 * `<div>`s took a core for 50 s, and on the process's own thread it froze every server of the
 * process (health, readiness and the other tools) for that long. Here such a page fails alone
 * (`payload_too_large`, not retried), the thread is replaced, and the process goes on.
 */
export class HtmlExtractor {
  private readonly limits: HtmlExtractorLimits;
  private worker: Worker | undefined;
  /** The thread has loaded its parsers and takes pages. */
  private ready = false;
  private running: { job: Job; timer: NodeJS.Timeout } | undefined;
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;

  constructor(limits: Partial<HtmlExtractorLimits> = {}) {
    this.limits = { ...defaultHtmlExtractorLimits, ...limits };
  }

  /** The page's title, text and links; rejects past the time limit, when the queue is full, or on `signal`. */
  extract(html: string, baseUrl: string, signal?: AbortSignal): Promise<ExtractedPage> {
    if (this.closed) return Promise.reject(new AppError('unavailable', 'the HTML converter is closed'));
    if (this.queue.length >= this.limits.maxQueued)
      return Promise.reject(
        new AppError('unavailable', `${this.limits.maxQueued} pages wait to be converted already; try again shortly`),
      );
    signal?.throwIfAborted();
    return new Promise<ExtractedPage>((resolve, reject) => {
      // A caller that gives up frees what it held: its page leaves the queue, or, running, the
      // thread is ended and the next page gets a new one. The listener goes with the job.
      const onAbort = () => {
        const why = signal?.reason instanceof Error ? signal.reason : new AppError('canceled', 'canceled');
        const at = this.queue.indexOf(job);
        if (at >= 0) {
          this.queue.splice(at, 1);
          job.reject(why);
        } else if (this.running?.job === job) this.fail(why);
      };
      const settle = () => signal?.removeEventListener('abort', onAbort);
      const job: Job = {
        id: this.nextId++,
        html,
        baseUrl,
        resolve: (page) => (settle(), resolve(page)),
        reject: (err) => (settle(), reject(err)),
      };
      this.queue.push(job);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new AppError('unavailable', 'the HTML converter is closed'));
    if (this.running) {
      clearTimeout(this.running.timer);
      this.running.job.reject(new AppError('unavailable', 'the HTML converter is closed'));
      this.running = undefined;
    }
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private pump(): void {
    if (this.running || this.closed || this.queue.length === 0) return;
    const worker = this.thread();
    // A new thread loads its parsers first: the time limit is the page's, not the start's.
    if (!this.ready) return;
    const job = this.queue.shift()!;
    const timer = setTimeout(() => {
      this.fail(
        new AppError(
          'payload_too_large',
          `the page could not be converted to text within ${this.limits.timeoutMs} ms (too large, or nested too deep); http_request returns its raw body`,
          { timeout_ms: this.limits.timeoutMs },
        ),
      );
    }, this.limits.timeoutMs);
    timer.unref();
    this.running = { job, timer };
    worker.postMessage({ id: job.id, html: job.html, baseUrl: job.baseUrl });
  }

  /** Ends the running job with `err` and the thread with it (it may be stuck in the job); the next job gets a new one. */
  private fail(err: Error): void {
    const r = this.running;
    this.running = undefined;
    if (r) {
      clearTimeout(r.timer);
      r.job.reject(err);
    }
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate();
    this.pump();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./html-extract.worker.js', import.meta.url), {
      name: 'html-extract',
      resourceLimits: { maxOldGenerationSizeMb: this.limits.maxHeapMb },
    });
    this.ready = false;
    // An idle thread does not keep the process alive.
    worker.unref();
    worker.on('message', (raw: unknown) => {
      if (worker !== this.worker) return;
      if (readySchema.safeParse(raw).success) {
        this.ready = true;
        this.pump();
        return;
      }
      const a = answerSchema.safeParse(raw);
      const r = this.running;
      if (!a.success || !r || a.data.id !== r.job.id) return;
      clearTimeout(r.timer);
      this.running = undefined;
      if (a.data.ok) r.job.resolve(a.data.page);
      else
        r.job.reject(new AppError('payload_too_large', `the page could not be converted to text: ${a.data.message}`));
      this.pump();
    });
    // Out of heap or any other end of the thread: the job it ran fails, the next gets a new thread.
    // A thread that ends before it is ready would end again: the pages waiting fail instead of
    // starting thread after thread.
    const ended = (why: string) => {
      if (worker !== this.worker) return;
      if (!this.ready) {
        this.worker = undefined;
        for (const job of this.queue.splice(0))
          job.reject(new AppError('unavailable', `the HTML converter did not start (${why})`));
        return;
      }
      this.fail(new AppError('payload_too_large', `the page could not be converted to text (${why})`));
    };
    worker.on('error', (err) => ended(err.message));
    worker.on('exit', (code) => ended(`converter exited with ${code}`));
    this.worker = worker;
    return worker;
  }
}

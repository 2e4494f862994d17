import { Worker, type ResourceLimits } from 'node:worker_threads';
import { z } from 'zod';
import { AppError } from './errors.js';

/** What a job's answer came to: its value, or an error (and whether the thread may serve again). */
export type JobOutcome<R> =
  { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: Error; readonly endThread: boolean };

export interface ThreadJobsOptions<R> {
  /** The worker's script: it posts `{ ready: true }` once loaded, then answers each `{ id, ...job }` with its `id`. */
  readonly script: URL;
  readonly name: string;
  /** Longest one job may take; past it the thread is ended and a new one started. */
  readonly timeoutMs: number;
  /** Jobs waiting for the thread; one more is refused at once. */
  readonly maxQueued: number;
  readonly resourceLimits?: ResourceLimits;
  /** The job id and outcome of a message from the thread, or undefined when it is none. */
  readonly answer: (raw: unknown) => { readonly id: number; readonly outcome: JobOutcome<R> } | undefined;
  /** The errors a job ends with: past its time, its thread ended under it, the queue full, closed. */
  readonly errors: {
    readonly timedOut: () => Error;
    readonly threadEnded: (why: string) => Error;
    readonly notStarted: (why: string) => Error;
    readonly full: () => Error;
    readonly closed: () => Error;
  };
}

interface Job<R> {
  readonly id: number;
  readonly message: Record<string, unknown>;
  readonly resolve: (value: R) => void;
  readonly reject: (err: Error) => void;
}

const readySchema = z.object({ ready: z.literal(true) });

/**
 * Jobs run on a thread of their own, one at a time, each within a time limit: for work that can
 * hold an event loop for long or leave its thread broken (a parser's cost growing with the square
 * of its input's nesting, a WebAssembly module damaged by a stack overflow). A job past its time,
 * or whose answer says the thread must not serve again, ends the thread; the next job gets a new
 * one, and the process goes on. An idle thread does not keep the process alive.
 */
export class ThreadJobs<R> {
  private worker: Worker | undefined;
  /** The thread has loaded and takes jobs. */
  private ready = false;
  private running: { job: Job<R>; timer: NodeJS.Timeout } | undefined;
  private readonly queue: Job<R>[] = [];
  private nextId = 0;
  private closed = false;

  constructor(private readonly o: ThreadJobsOptions<R>) {}

  /** The job's value; rejects past the time limit, when the queue is full, or on `signal`. */
  run(message: Record<string, unknown>, signal?: AbortSignal): Promise<R> {
    if (this.closed) return Promise.reject(this.o.errors.closed());
    if (this.queue.length >= this.o.maxQueued) return Promise.reject(this.o.errors.full());
    signal?.throwIfAborted();
    return new Promise<R>((resolve, reject) => {
      // A caller that gives up frees what it held: its job leaves the queue, or, running, the
      // thread is ended and the next job gets a new one. The listener goes with the job.
      const onAbort = () => {
        const why = signal?.reason instanceof Error ? signal.reason : new AppError('canceled', 'canceled');
        const at = this.queue.indexOf(job);
        if (at >= 0) {
          this.queue.splice(at, 1);
          job.reject(why);
        } else if (this.running?.job === job) this.fail(why);
      };
      const settle = () => signal?.removeEventListener('abort', onAbort);
      const job: Job<R> = {
        id: this.nextId++,
        message,
        resolve: (value) => (settle(), resolve(value)),
        reject: (err) => (settle(), reject(err)),
      };
      this.queue.push(job);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pump();
    });
  }

  /** Start the thread now (it loads before its first job's time starts). */
  preload(): void {
    if (!this.closed) this.thread();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(this.o.errors.closed());
    if (this.running) {
      clearTimeout(this.running.timer);
      this.running.job.reject(this.o.errors.closed());
      this.running = undefined;
    }
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private pump(): void {
    if (this.running || this.closed) return;
    if (this.queue.length === 0) {
      this.worker?.unref();
      return;
    }
    const worker = this.thread();
    // Held while someone waits for it. A new thread loads first: the time limit is the job's.
    worker.ref();
    if (!this.ready) return;
    const job = this.queue.shift()!;
    const timer = setTimeout(() => this.fail(this.o.errors.timedOut()), this.o.timeoutMs);
    timer.unref();
    this.running = { job, timer };
    worker.postMessage({ ...job.message, id: job.id });
  }

  /** Ends the running job with `err` (if any) and the thread with it (it may be stuck in the job); the next job gets a new one. */
  private fail(err?: Error): void {
    const r = this.running;
    this.running = undefined;
    if (r) {
      clearTimeout(r.timer);
      if (err) r.job.reject(err);
    }
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate();
    this.pump();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.o.script, {
      name: this.o.name,
      ...(this.o.resourceLimits && { resourceLimits: this.o.resourceLimits }),
    });
    this.ready = false;
    worker.on('message', (raw: unknown) => {
      if (worker !== this.worker) return;
      if (readySchema.safeParse(raw).success) {
        this.ready = true;
        this.pump();
        return;
      }
      const a = this.o.answer(raw);
      const r = this.running;
      if (!a || !r || a.id !== r.job.id) return;
      clearTimeout(r.timer);
      this.running = undefined;
      if (a.outcome.ok) r.job.resolve(a.outcome.value);
      else r.job.reject(a.outcome.error);
      if (!a.outcome.ok && a.outcome.endThread) this.fail();
      else this.pump();
    });
    // Out of heap or any other end of the thread: the job it ran fails, the next gets a new thread.
    // A thread that ends before it is ready would end again: the jobs waiting fail instead of
    // starting thread after thread (the next job tries once more).
    const ended = (why: string) => {
      if (worker !== this.worker) return;
      if (!this.ready) {
        this.worker = undefined;
        for (const job of this.queue.splice(0)) job.reject(this.o.errors.notStarted(why));
        return;
      }
      this.fail(this.o.errors.threadEnded(why));
    };
    worker.on('error', (err) => ended(err.message));
    worker.on('exit', (code) => ended(`the thread exited with ${code}`));
    // After the listeners: a 'message' listener refs the thread again.
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { AppError, type ErrorCode } from '@switchyard/platform';
import type { StatementVerdict } from './sql-guard.js';

/** How long one statement may take to parse and check; past it the thread is ended and a new one started. */
const VET_TIMEOUT_MS = 2_000;
/** Statements waiting for the thread; one more is refused at once. */
const MAX_QUEUED = 64;

const readySchema = z.object({ ready: z.literal(true) });
const answerSchema = z.union([
  z.object({ id: z.number(), ok: z.literal(true), verdict: z.object({ kind: z.string(), writes: z.boolean() }) }),
  z.object({
    id: z.number(),
    ok: z.literal(false),
    code: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()),
    broken: z.boolean(),
  }),
]);

interface Job {
  readonly id: number;
  readonly sql: string;
  readonly allowWrites: boolean;
  readonly resolve: (verdict: StatementVerdict) => void;
  readonly reject: (err: Error) => void;
}

/**
 * PostgreSQL's parser (libpg-query, WebAssembly) and the checks of sql-guard.ts on a thread of
 * their own, one statement at a time, each within a time limit. A statement nested deep enough
 * overflows the parser's stack: that is answered as an error, but each overflow left the module's
 * memory damaged, and after a few dozen every statement failed or the parser never returned,
 * holding the event loop of its process (in an all-in-one launcher: the gateway, the engine and
 * every server) for good. Here the thread that saw such an error, or that runs past the limit, is
 * ended, and the next statement gets a new one; the main thread never runs the parser.
 */
class StatementVetter {
  private worker: Worker | undefined;
  private ready = false;
  private running: { job: Job; timer: NodeJS.Timeout } | undefined;
  private readonly queue: Job[] = [];
  private nextId = 0;

  vet(sql: string, allowWrites: boolean): Promise<StatementVerdict> {
    if (this.queue.length >= MAX_QUEUED)
      return Promise.reject(
        new AppError(
          'unavailable',
          `${MAX_QUEUED} statements wait to be checked already; try again shortly`,
          { retry_after_ms: 1_000 },
          true,
        ),
      );
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, sql, allowWrites, resolve, reject });
      this.pump();
    });
  }

  /** Start the thread and load the parser now (it takes about half a second). */
  preload(): void {
    this.thread();
  }

  private pump(): void {
    if (this.running) return;
    if (this.queue.length === 0) {
      this.worker?.unref();
      return;
    }
    const worker = this.thread();
    // Held while someone waits for it; idle, it does not keep the process alive.
    worker.ref();
    if (!this.ready) return;
    const job = this.queue.shift()!;
    const timer = setTimeout(
      () =>
        this.fail(
          new AppError('validation', `the statement could not be checked within ${VET_TIMEOUT_MS} ms (too complex)`, {
            sqlstate: '54001',
          }),
        ),
      VET_TIMEOUT_MS,
    );
    timer.unref();
    this.running = { job, timer };
    worker.postMessage({ id: job.id, sql: job.sql, allowWrites: job.allowWrites });
  }

  /** Ends the running job with `err` (if any) and the thread with it; the next job gets a new one. */
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
    const worker = new Worker(new URL('./sql-parse.worker.js', import.meta.url), { name: 'sql-parse' });
    this.ready = false;
    worker.on('message', (raw: unknown) => {
      if (worker !== this.worker) return;
      if (readySchema.safeParse(raw).success) {
        this.ready = true;
        this.pump();
        return;
      }
      const a = answerSchema.safeParse(raw);
      if (!a.success) {
        // The parser did not load: the statements waiting fail, and the next one tries a new thread.
        this.worker = undefined;
        void worker.terminate();
        for (const job of this.queue.splice(0))
          job.reject(new AppError('unavailable', 'the SQL parser did not start', {}, true));
        return;
      }
      const r = this.running;
      if (!r || a.data.id !== r.job.id) return;
      clearTimeout(r.timer);
      this.running = undefined;
      if (a.data.ok) {
        r.job.resolve(a.data.verdict);
        this.pump();
        return;
      }
      r.job.reject(new AppError(a.data.code as ErrorCode, a.data.message, a.data.details));
      if (a.data.broken) this.fail();
      else this.pump();
    });
    const ended = (why: string) => {
      if (worker !== this.worker) return;
      this.fail(new AppError('validation', `the statement could not be checked (${why})`, { sqlstate: '54001' }));
    };
    worker.on('error', (err) => ended(err.message));
    worker.on('exit', (code) => ended(`the parser exited with ${code}`));
    // Not held until it has work (after the listeners: a 'message' listener refs it again).
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

/** The process's vetter. */
const vetter = new StatementVetter();

/** Load the parser's WebAssembly module ahead of the first call (it takes about half a second). */
export function preloadParser(): void {
  vetter.preload();
}

/**
 * Parse `sql` and refuse it (AppError) unless it is exactly one statement the server may run
 * (see vetTree of sql-guard.ts). `validation` (400): not SQL, several statements, transaction or
 * session control, too complex to parse. `forbidden` (403): what vetTree forbids.
 */
export async function vetStatement(sql: string, opts: { allowWrites: boolean }): Promise<StatementVerdict> {
  // The verdict depends only on the text and the mode: an accepted statement seen again (an
  // agent's or a dashboard's repeated query) skips the parse.
  const key = `${opts.allowWrites ? 'w' : 'r'}\u0000${sql}`;
  const seen = accepted.get(key);
  if (seen) return seen;
  const verdict = await vetter.vet(sql, opts.allowWrites);
  if (sql.length <= MAX_CACHED_SQL_CHARS) {
    if (accepted.size >= MAX_CACHED_VERDICTS) accepted.delete(accepted.keys().next().value!);
    accepted.set(key, verdict);
  }
  return verdict;
}

/** Accepted statements by mode and text (oldest dropped first), so a repeated query is vetted once. */
const accepted = new Map<string, StatementVerdict>();
const MAX_CACHED_VERDICTS = 1_000;
const MAX_CACHED_SQL_CHARS = 4_096;

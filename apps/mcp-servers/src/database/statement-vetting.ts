import { z } from 'zod';
import { AppError, ThreadJobs, type ErrorCode } from '@switchyard/platform';
import type { StatementVerdict } from './sql-guard.js';

/** How long one statement may take to parse and check; past it the thread is ended and a new one started. */
const VET_TIMEOUT_MS = 2_000;
/** Statements waiting for the thread; one more is refused at once. */
const MAX_QUEUED = 64;

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

const tooComplex = (why: string) => new AppError('validation', why, { sqlstate: '54001' });

/**
 * PostgreSQL's parser (libpg-query, WebAssembly) and the checks of sql-guard.ts on a thread of
 * their own, one statement at a time, each within a time limit. A statement nested deep enough
 * overflows the parser's stack: that is answered as an error, but each overflow left the module's
 * memory damaged, and after a few dozen every statement failed or the parser never returned,
 * holding the event loop of its process (in an all-in-one launcher: the gateway, the engine and
 * every server) for good. Here the thread that saw such an error (`broken`), or that runs past the
 * limit, is ended, and the next statement gets a new one; the main thread never runs the parser.
 */
const vetter = new ThreadJobs<StatementVerdict>({
  script: new URL('./sql-parse.worker.js', import.meta.url),
  name: 'sql-parse',
  timeoutMs: VET_TIMEOUT_MS,
  maxQueued: MAX_QUEUED,
  answer: (raw) => {
    const a = answerSchema.safeParse(raw);
    if (!a.success) return undefined;
    return {
      id: a.data.id,
      outcome: a.data.ok
        ? { ok: true, value: a.data.verdict }
        : {
            ok: false,
            error: new AppError(a.data.code as ErrorCode, a.data.message, a.data.details),
            endThread: a.data.broken,
          },
    };
  },
  errors: {
    timedOut: () => tooComplex(`the statement could not be checked within ${VET_TIMEOUT_MS} ms (too complex)`),
    threadEnded: (why) => tooComplex(`the statement could not be checked (${why})`),
    notStarted: (why) => new AppError('unavailable', `the SQL parser did not start (${why})`, {}, true),
    full: () =>
      new AppError(
        'unavailable',
        `${MAX_QUEUED} statements wait to be checked already; try again shortly`,
        { retry_after_ms: 1_000 },
        true,
      ),
    closed: () => new AppError('unavailable', 'the SQL parser is closed', {}, true),
  },
});

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
  const verdict = await vetter.run({ sql, allowWrites: opts.allowWrites });
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

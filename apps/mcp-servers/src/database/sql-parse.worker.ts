/**
 * The thread of statement-vetting.ts: parses and vets one statement at a time, as it is asked.
 * The tree stays here: only the verdict, or the refusal, goes back.
 */
import { parentPort } from 'node:worker_threads';
import { z } from 'zod';
import { loadModule, parse } from 'libpg-query';
import { isAppError } from '@switchyard/platform';
import { vetTree } from './sql-guard.js';

const port = parentPort;
if (!port) throw new Error('sql-parse.worker runs only as a worker thread');
const jobSchema = z.object({ id: z.number().int(), sql: z.string(), allowWrites: z.boolean() });
let queue: Promise<void> = Promise.resolve();
port.on('message', (raw: unknown) => {
  const job = jobSchema.safeParse(raw);
  if (!job.success) return;
  const { id, sql, allowWrites } = job.data;
  queue = queue.then(async () => {
    let tree: Parameters<typeof vetTree>[0];
    try {
      tree = await parse(sql);
    } catch (e) {
      const err = e as { message?: string; sqlDetails?: { cursorPosition?: number } };
      const position = err.sqlDetails?.cursorPosition;
      // A syntax error carries PostgreSQL's details; anything else (the parser's stack overflowing,
      // a trap of its memory) may have left the module broken: the thread is not used again.
      port.postMessage({
        id,
        ok: false,
        code: 'validation',
        message: `not valid SQL: ${err.message ?? String(e)}`,
        details: {
          sqlstate: err.sqlDetails ? '42601' : '54001',
          ...(position !== undefined ? { position: position + 1 } : {}),
        },
        broken: err.sqlDetails === undefined,
      });
      return;
    }
    try {
      port.postMessage({ id, ok: true, verdict: vetTree(tree, { allowWrites }) });
    } catch (e) {
      if (isAppError(e)) {
        port.postMessage({ id, ok: false, code: e.code, message: e.message, details: e.details, broken: false });
        return;
      }
      // A tree nested deeper than the walk's recursion goes: refused as too complex.
      port.postMessage({
        id,
        ok: false,
        code: 'validation',
        message: `the statement is too complex to check: ${e instanceof Error ? e.message : String(e)}`,
        details: { sqlstate: '54001' },
        broken: false,
      });
    }
  });
});
// Loaded: statements may come (their time limit starts when one is sent). A module that does not
// load ends the thread, and the statements waiting fail.
await loadModule();
port.postMessage({ ready: true });

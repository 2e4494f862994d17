/** The thread of HtmlExtractor (html-extractor.ts): converts one page at a time, as it is asked. */
import { parentPort } from 'node:worker_threads';
import { z } from 'zod';
import { extractHtml } from './extract-html.js';

const port = parentPort;
if (!port) throw new Error('html-extract.worker runs only as a worker thread');
const jobSchema = z.object({ id: z.number().int(), html: z.string(), baseUrl: z.string() });
port.on('message', (raw: unknown) => {
  const job = jobSchema.safeParse(raw);
  if (!job.success) return;
  try {
    port.postMessage({ id: job.data.id, ok: true, page: extractHtml(job.data.html, job.data.baseUrl) });
  } catch (err) {
    // A page nested deeper than the parser's recursion goes: a RangeError, not a crash.
    port.postMessage({ id: job.data.id, ok: false, message: err instanceof Error ? err.message : String(err) });
  }
});
// Loaded: pages may come (their time limit starts when one is sent).
port.postMessage({ ready: true });

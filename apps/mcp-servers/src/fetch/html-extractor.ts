import { z } from 'zod';
import { AppError, ThreadJobs } from '@switchyard/platform';
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

/**
 * Converts HTML pages to text on a thread of its own, one at a time, each within a time limit.
 * The parsers' cost grows with the square of a page's nesting: a 1 MB page of 200,000 unclosed
 * `<div>`s took a core for 50 s, and on the process's own thread it froze every server of the
 * process (health, readiness and the other tools) for that long. Here such a page fails alone
 * (`payload_too_large`, not retried), the thread is replaced, and the process goes on.
 */
export class HtmlExtractor {
  private readonly jobs: ThreadJobs<ExtractedPage>;

  constructor(limits: Partial<HtmlExtractorLimits> = {}) {
    const l = { ...defaultHtmlExtractorLimits, ...limits };
    this.jobs = new ThreadJobs<ExtractedPage>({
      script: new URL('./html-extract.worker.js', import.meta.url),
      name: 'html-extract',
      timeoutMs: l.timeoutMs,
      maxQueued: l.maxQueued,
      resourceLimits: { maxOldGenerationSizeMb: l.maxHeapMb },
      answer: (raw) => {
        const a = answerSchema.safeParse(raw);
        if (!a.success) return undefined;
        return {
          id: a.data.id,
          outcome: a.data.ok
            ? { ok: true, value: a.data.page }
            : {
                ok: false,
                error: new AppError('payload_too_large', `the page could not be converted to text: ${a.data.message}`),
                endThread: false,
              },
        };
      },
      errors: {
        timedOut: () =>
          new AppError(
            'payload_too_large',
            `the page could not be converted to text within ${l.timeoutMs} ms (too large, or nested too deep); http_request returns its raw body`,
            { timeout_ms: l.timeoutMs },
          ),
        threadEnded: (why) => new AppError('payload_too_large', `the page could not be converted to text (${why})`),
        notStarted: (why) => new AppError('unavailable', `the HTML converter did not start (${why})`),
        full: () => new AppError('unavailable', `${l.maxQueued} pages wait to be converted already; try again shortly`),
        closed: () => new AppError('unavailable', 'the HTML converter is closed'),
      },
    });
  }

  /** The page's title, text and links; rejects past the time limit, when the queue is full, or on `signal`. */
  extract(html: string, baseUrl: string, signal?: AbortSignal): Promise<ExtractedPage> {
    return this.jobs.run({ html, baseUrl }, signal);
  }

  close(): Promise<void> {
    return this.jobs.close();
  }
}

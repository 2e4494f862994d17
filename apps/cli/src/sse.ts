import { z } from 'zod';
import {
  apiError,
  type Api,
  DEFAULT_MAX_ANSWER_BYTES,
  readCapped,
  refuseRedirect,
  requestHeaders,
  tooLarge,
  unreachable,
} from './client.js';
import { CliError, EXIT } from './errors.js';

/** An event as the gateway's event API shows it (the fields the CLI reads). */
export const eventSchema = z.looseObject({
  id: z.string(),
  streamId: z.string(),
  type: z.string(),
  revision: z.number(),
  position: z.number(),
  recordedAt: z.string(),
  data: z.unknown(),
  metadata: z.record(z.string(), z.unknown()),
});
export type EventJson = z.infer<typeof eventSchema>;

export interface StreamOptions {
  readonly after?: number;
  readonly types?: readonly string[];
  readonly streamPrefixes?: readonly string[];
  readonly signal?: AbortSignal;
}

/** No byte for this long (the gateway sends a heartbeat comment every 15 s): the connection is lost. */
export const DEFAULT_IDLE_MS = 60_000;

/**
 * The live event feed (`GET /api/v1/events/stream`, Server-Sent Events): yields each event as it
 * is committed. Ends when `signal` aborts or the server closes the stream; fails when nothing
 * (not even a heartbeat) comes for `idleMs`, or one message is larger than the answer limit.
 */
export async function* liveEvents(api: Api, o: StreamOptions & { idleMs?: number }): AsyncGenerator<EventJson> {
  const url = api.url('/api/v1/events/stream', {
    ...(o.after !== undefined ? { after: o.after } : {}),
    ...(o.types?.length ? { type: o.types.join(',') } : {}),
    ...(o.streamPrefixes?.length ? { stream_prefix: o.streamPrefixes.join(',') } : {}),
  });
  if (o.signal?.aborted) return;
  const limit = api.conn.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;
  const idleMs = o.idleMs ?? DEFAULT_IDLE_MS;
  // Aborted by the caller's signal or by the idle timer below.
  const ac = new AbortController();
  const stop = () => ac.abort();
  o.signal?.addEventListener('abort', stop, { once: true });
  let idle = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      idle = true;
      ac.abort();
    }, idleMs);
  };
  const idleError = () =>
    new CliError(
      `the event stream from ${api.conn.url} sent nothing for ${idleMs / 1000} s (not even its heartbeat); the connection is lost`,
      EXIT.server,
    );
  try {
    arm();
    let res: Response;
    try {
      res = await fetch(url, {
        headers: requestHeaders(api.headers({ accept: 'text/event-stream' })),
        redirect: 'manual',
        signal: ac.signal,
      });
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (idle) throw idleError();
      if (o.signal?.aborted) return;
      throw unreachable(api.conn.url, err);
    }
    refuseRedirect(api.conn.url, res);
    if (res.status !== 200) {
      const text = await readCapped(res, limit, { what: 'GET /api/v1/events/stream' });
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* text */
      }
      throw apiError(res.status, body, res.headers);
    }
    const decoder = new TextDecoder();
    // The line being read (no newline yet) and the data lines of the message being read: each
    // chunk is scanned once, and both are bounded by the answer limit.
    let line = '';
    let data: string[] = [];
    let size = 0;
    const tooBig = () => tooLarge('GET /api/v1/events/stream (one message)', limit);
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        const text = decoder.decode(chunk, { stream: true });
        let from = 0;
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
          const full = (line + text.slice(from, nl)).replace(/\r$/, '');
          line = '';
          from = nl + 1;
          // One SSE message per blank line; `data:` lines joined, comments (`:`) and other fields ignored.
          if (full === '') {
            const message = data.join('\n');
            data = [];
            size = 0;
            if (!message) continue;
            let json: unknown;
            try {
              json = JSON.parse(message);
            } catch {
              continue; // not an event the CLI knows how to show
            }
            const parsed = eventSchema.safeParse(json);
            if (parsed.success) yield parsed.data;
          } else if (full.startsWith('data:')) {
            size += full.length;
            if (size > limit) throw tooBig();
            data.push(full.slice(5).replace(/^ /, ''));
          }
        }
        line += text.slice(from);
        if (size + line.length > limit) throw tooBig();
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (idle) throw idleError();
      if (o.signal?.aborted) return;
      throw unreachable(api.conn.url, err);
    }
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', stop);
    ac.abort();
  }
}

import { z } from 'zod';
import { apiError, type Api, unreachable } from './client.js';

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

/**
 * The live event feed (`GET /api/v1/events/stream`, Server-Sent Events): yields each event as it
 * is committed. Ends when `signal` aborts or the server closes the stream.
 */
export async function* liveEvents(api: Api, o: StreamOptions): AsyncGenerator<EventJson> {
  const url = api.url('/api/v1/events/stream', {
    ...(o.after !== undefined ? { after: o.after } : {}),
    ...(o.types?.length ? { type: o.types.join(',') } : {}),
    ...(o.streamPrefixes?.length ? { stream_prefix: o.streamPrefixes.join(',') } : {}),
  });
  let res: Response;
  try {
    res = await fetch(url, {
      headers: api.headers({ accept: 'text/event-stream' }),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } catch (err) {
    if (o.signal?.aborted) return;
    throw unreachable(api.conn.url, err);
  }
  if (res.status !== 200) {
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* text */
    }
    throw apiError(res.status, body, res.headers);
  }
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      // One SSE message per blank line; `data:` lines joined, comments (`:`) ignored.
      for (let end = buffer.search(/\r?\n\r?\n/); end >= 0; end = buffer.search(/\r?\n\r?\n/)) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        const data = block
          .split(/\r?\n/)
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (!data) continue;
        const parsed = eventSchema.safeParse(JSON.parse(data));
        if (parsed.success) yield parsed.data;
      }
    }
  } catch (err) {
    if (o.signal?.aborted) return;
    throw unreachable(api.conn.url, err);
  }
}

/**
 * A fetch for the SDK's Streamable HTTP client transport that bounds what one server can make the
 * connectors read: the body of a POST's answer (a JSON-RPC response, or the SSE stream of one
 * request) at `maxBytes` in all, and any one event of the long-lived GET stream (its lines up to
 * the blank line that ends it: one message) at `maxBytes`. Past it the body fails with ResponseTooLargeError, which
 * fails the call; unbounded, a server (third-party, or one taken over) answering 2 GB would have
 * the process buffer it all (`response.json()`, the SSE parser) and run out of memory.
 */
export class ResponseTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the MCP server's answer is over ${maxBytes} bytes (max_response_bytes)`);
    this.name = 'ResponseTooLargeError';
  }
}

/** `data.reason` of the JSON-RPC error that stands for an answer cut at the cap. */
export const RESPONSE_TOO_LARGE = 'response_too_large';

/** The ids of the JSON-RPC requests in a POST body (a message or a batch). */
function requestIds(body: unknown): (string | number)[] {
  if (typeof body !== 'string') return [];
  try {
    const parsed = JSON.parse(body) as unknown;
    return (Array.isArray(parsed) ? parsed : [parsed]).flatMap((m: unknown) => {
      const id = (m as { id?: unknown; method?: unknown } | null)?.id;
      return (typeof id === 'string' || typeof id === 'number') &&
        typeof (m as { method?: unknown }).method === 'string'
        ? [id]
        : [];
    });
  } catch {
    return [];
  }
}

export function fetchWithResponseCap(base: typeof fetch, maxBytes: number): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    if (!res.body) return res;
    const wholeBody = (init?.method ?? 'GET').toUpperCase() === 'POST';
    let total = 0;
    // The GET stream: bytes of its current event, which ends at a blank line (SSE joins the
    // `data:` lines of one event, and the SDK's parser holds them until that blank line).
    let event = 0;
    let lineStart = true;
    let afterCR = false;
    const tooLong = (chunk: Uint8Array): boolean => {
      if (wholeBody) return (total += chunk.byteLength) > maxBytes;
      for (const b of chunk) {
        if (b === 0x0a && afterCR) {
          afterCR = false; // the LF of a CRLF: one line end
          continue;
        }
        afterCR = b === 0x0d;
        if (b === 0x0a || b === 0x0d) {
          if (lineStart) event = 0; // a blank line: the event is over
          lineStart = true;
        } else {
          lineStart = false;
          if (++event > maxBytes) return true;
        }
      }
      return false;
    };
    // A POST answered as an event stream: the SDK fails a request only on its JSON-RPC answer (a
    // broken stream only reaches its onerror, and the call would wait out its timeout), so the
    // stream ends with an error answer for each request the POST carried.
    const sse = wholeBody && (res.headers.get('content-type') ?? '').includes('text/event-stream');
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (!tooLong(chunk)) return controller.enqueue(chunk);
          const err = new ResponseTooLargeError(maxBytes);
          const ids = sse ? requestIds(init?.body) : [];
          if (ids.length === 0) return controller.error(err);
          // The blank lines end whatever event was cut short (its data fails to parse, reported to onerror).
          const answers = ids.map(
            (id) =>
              `event: message\ndata: ${JSON.stringify({
                jsonrpc: '2.0',
                id,
                error: {
                  code: -32603,
                  message: err.message,
                  data: { reason: RESPONSE_TOO_LARGE, max_bytes: maxBytes },
                },
              })}\n\n`,
          );
          controller.enqueue(new TextEncoder().encode(`\n\n${answers.join('')}`));
          controller.terminate();
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

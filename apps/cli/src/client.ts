import { z } from 'zod';
import type { Connection } from './config.js';
import { CliError, EXIT, type Problem } from './errors.js';

const problemSchema = z.looseObject({
  title: z.string().optional(),
  status: z.number().optional(),
  detail: z.string().optional(),
  code: z.string().optional(),
  correlationId: z.string().optional(),
  errors: z
    .array(z.looseObject({ path: z.string().optional(), message: z.string().optional(), in: z.string().optional() }))
    .optional(),
});

export interface RequestOptions {
  readonly method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly query?: Record<string, string | number | boolean | undefined>;
  readonly body?: unknown;
  /** Default 60 s (a `?wait=true` answer takes up to 30 s). */
  readonly timeoutMs?: number;
  readonly headers?: Record<string, string>;
}

/** The gateway over HTTP with the caller's key; every error becomes a CliError with the right exit code. */
export class Api {
  constructor(readonly conn: Connection) {}

  url(path: string, query: RequestOptions['query'] = {}): string {
    const u = new URL(path, `${this.conn.url}/`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      accept: 'application/json',
      ...(this.conn.key ? { authorization: `Bearer ${this.conn.key}` } : {}),
      ...extra,
    };
  }

  /**
   * Raw answer (any status); throws when the server cannot be reached, redirects, or sends more
   * than the answer limit.
   */
  async raw(path: string, o: RequestOptions = {}): Promise<{ status: number; headers: Headers; body: unknown }> {
    const url = this.url(path, o.query);
    const timeoutMs = o.timeoutMs ?? 60_000;
    const headers = requestHeaders(
      this.headers({ ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers }),
    );
    let res: Response;
    try {
      res = await fetch(url, {
        method: o.method ?? 'GET',
        headers,
        ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
        // A redirect would re-send the body (SQL, inputs) to a host the URL checks never saw.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw unreachable(this.conn.url, err);
    }
    refuseRedirect(this.conn.url, res);
    const text = await readCapped(res, this.conn.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES, {
      what: `${o.method ?? 'GET'} ${path}`,
      timeoutMs,
    });
    let body: unknown = text;
    if (text && (res.headers.get('content-type') ?? '').includes('json')) {
      try {
        body = JSON.parse(text);
      } catch {
        /* keep the text */
      }
    }
    return { status: res.status, headers: res.headers, body };
  }

  /** A 2xx answer parsed by `schema`; a problem document otherwise (thrown). */
  async call<S extends z.ZodType>(
    path: string,
    schema: S,
    o: RequestOptions = {},
  ): Promise<{ status: number; body: z.output<S> }> {
    const r = await this.raw(path, o);
    if (r.status < 200 || r.status > 299) throw apiError(r.status, r.body, r.headers);
    const parsed = schema.safeParse(r.body);
    if (!parsed.success) {
      throw new CliError(
        `unexpected answer from ${o.method ?? 'GET'} ${path}: ${parsed.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
          .join('; ')}`,
        EXIT.server,
      );
    }
    return { status: r.status, body: parsed.data };
  }
}

/** The largest answer read by default (SWITCHYARD_MAX_ANSWER_MB changes it): a JSON page is far smaller. */
export const DEFAULT_MAX_ANSWER_BYTES = 32 * 1024 * 1024;

const mib = (bytes: number): string => `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;

/** The answer-too-large error: names the limit and how to raise it (not the body). */
export function tooLarge(what: string, limit: number): CliError {
  return new CliError(
    `the answer to ${what} is larger than ${mib(limit)}; stopped reading it ` +
      '(a broken gateway or proxy? SWITCHYARD_MAX_ANSWER_MB raises the limit)',
    EXIT.server,
  );
}

/**
 * The body as text, read a chunk at a time and given up past `limit` bytes, so a huge or endless
 * answer costs at most the limit in memory (not the whole answer, nor a crash at V8's string limit).
 */
export async function readCapped(
  res: Response,
  limit: number,
  o: { what: string; timeoutMs?: number },
): Promise<string> {
  if (!res.body) return '';
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body.cancel().catch(() => undefined);
    throw tooLarge(o.what, limit);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge(o.what, limit);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    throw new CliError(
      timedOut && o.timeoutMs
        ? `no complete answer to ${o.what} within ${o.timeoutMs / 1000} s (${mib(size)} read)`
        : `the answer to ${o.what} was cut off after ${mib(size)}: ${causeOf(err)}`,
      EXIT.server,
    );
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A 3xx answer as an error naming where it points (its origin only), so the user can fix --url. */
export function refuseRedirect(base: string, res: Response): void {
  if (res.status < 300 || res.status > 399) return;
  void res.body?.cancel().catch(() => undefined);
  const location = res.headers.get('location');
  let to = 'no Location';
  if (location) {
    try {
      to = new URL(location, `${base}/`).origin;
    } catch {
      to = 'an invalid Location';
    }
  }
  throw new CliError(
    `the gateway at ${base} answered ${res.status}, a redirect to ${to}; not followed ` +
      '(the request would go to a host not checked as the gateway): give that address as --url or SWITCHYARD_URL if it is the gateway',
    EXIT.server,
  );
}

/**
 * The request headers, checked before anything is sent: a value HTTP does not allow (a key with a
 * line break) is named by its header only. The fetch error would quote the value, the key with it.
 */
export function requestHeaders(values: Record<string, string>): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(values)) {
    try {
      headers.set(name, value);
    } catch {
      throw new CliError(
        `the ${name} header has a character HTTP does not allow (a line break or a control character); not sent`,
        EXIT.usage,
      );
    }
  }
  return headers;
}

const causeOf = (err: unknown): string =>
  err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);

export function unreachable(url: string, err: unknown): CliError {
  if (err instanceof CliError) return err;
  return new CliError(
    `cannot reach the gateway at ${url}: ${causeOf(err)} (is it running? \`npm start\`; or set --url / SWITCHYARD_URL)`,
    EXIT.server,
  );
}

/** A non-2xx answer as a CliError: 4xx exit 2, 5xx exit 3, with the problem document. */
export function apiError(status: number, body: unknown, headers?: Headers): CliError {
  const parsed = problemSchema.safeParse(body);
  const problem: Problem = parsed.success
    ? {
        ...parsed.data,
        // The HTTP status, not the body's: a body cannot turn a 500 into a 400.
        status,
        ...(parsed.data.correlationId
          ? {}
          : headers?.get('x-correlation-id')
            ? { correlationId: headers.get('x-correlation-id')! }
            : {}),
      }
    : {
        status,
        title: `HTTP ${status}`,
        detail: typeof body === 'string' ? body.slice(0, 500) : undefined,
        correlationId: headers?.get('x-correlation-id') ?? undefined,
      };
  return new CliError(problem.title ?? `HTTP ${status}`, status >= 500 ? EXIT.server : EXIT.api, problem);
}

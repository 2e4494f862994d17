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

  /** Raw answer (any status); throws only when the server cannot be reached. */
  async raw(path: string, o: RequestOptions = {}): Promise<{ status: number; headers: Headers; body: unknown }> {
    const url = this.url(path, o.query);
    let res: Response;
    try {
      res = await fetch(url, {
        method: o.method ?? 'GET',
        headers: this.headers({
          ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...o.headers,
        }),
        ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
        signal: AbortSignal.timeout(o.timeoutMs ?? 60_000),
      });
    } catch (err) {
      throw unreachable(this.conn.url, err);
    }
    const text = await res.text();
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

export function unreachable(url: string, err: unknown): CliError {
  const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
  return new CliError(
    `cannot reach the gateway at ${url}: ${cause} (is it running? \`npm start\`; or set --url / SWITCHYARD_URL)`,
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

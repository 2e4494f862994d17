import { HttpException } from '@nestjs/common';
import { AppError, errorCodes, isConnectionError, isResourceShortage } from '@switchyard/platform';
import { WrongExpectedVersionError } from '@switchyard/event-store';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Where a bad value was found. */
export type FieldLocation = 'body' | 'query' | 'params' | 'headers';

/** One bad field of a request: `path` is dotted (`limit`, `items.0.name`). */
export interface FieldError {
  readonly path: string;
  readonly message: string;
  readonly code: string;
  readonly in?: FieldLocation;
}

/** An RFC 9457 problem document plus our `code` and `correlationId` extensions. */
export interface ProblemDetails {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly instance: string;
  readonly code: string;
  readonly correlationId: string;
  readonly retryable?: boolean;
  readonly errors?: readonly FieldError[];
  readonly [extension: string]: unknown;
}

/** The problem plus whether it hides an unexpected failure (to be logged with its stack). */
export interface MappedProblem {
  readonly problem: ProblemDetails;
  readonly unexpected: boolean;
}

const titles: Record<string, string> = {
  validation: 'Invalid request',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  not_found: 'Not found',
  method_not_allowed: 'Method not allowed',
  illegal_state: 'Illegal state',
  canceled: 'Canceled',
  conflict: 'Conflict',
  payload_too_large: 'Payload too large',
  result_too_large: 'Result too large',
  unsupported_media_type: 'Unsupported media type',
  rate_limited: 'Too many requests',
  internal: 'Internal error',
  unavailable: 'Service unavailable',
  timeout: 'Timeout',
};

/** Problem `type` URI for a code: a URN, since there is no page to dereference. */
export const problemType = (code: string): string => `urn:switchyard:problem:${code}`;

// The first code of a status names it (409 is illegal_state; canceled shares it).
const statusToCode = new Map<number, string>([
  ...Object.entries(errorCodes)
    .reverse()
    .map(([code, status]) => [status, code] as [number, string]),
  [405, 'method_not_allowed'],
  [415, 'unsupported_media_type'],
]);

function codeForStatus(status: number): string {
  return statusToCode.get(status) ?? (status >= 500 ? 'internal' : 'validation');
}

// Keys an AppError's details may not overwrite in the problem document.
const reserved = new Set(['type', 'title', 'status', 'detail', 'instance', 'code', 'correlationId', 'retryable']);

function build(
  code: string,
  status: number,
  detail: string,
  ctx: ProblemContext,
  extensions: Record<string, unknown> = {},
): ProblemDetails {
  const ext = Object.fromEntries(Object.entries(extensions).filter(([k]) => !reserved.has(k)));
  if (Array.isArray(ext.errors)) ext.errors = ext.errors.map(fieldError);
  return {
    type: problemType(code),
    title: titles[code] ?? 'Error',
    status,
    detail,
    instance: ctx.instance,
    code,
    correlationId: ctx.correlationId,
    ...ext,
  };
}

/**
 * One entry of a problem's `errors` in the documented shape ({ path, message, code, in? }):
 * errors made elsewhere (a task's context checked by the dispatcher, a query's named
 * parameters) may come without a `code`; `invalid` then.
 */
function fieldError(e: unknown): FieldError {
  const o = (e && typeof e === 'object' ? e : { message: String(e) }) as Record<string, unknown>;
  const { in: where, ...rest } = o;
  return {
    ...rest,
    path:
      typeof o.path === 'string' ? o.path : Array.isArray(o.path) ? o.path.map(String).join('.') || '(root)' : '(root)',
    message: typeof o.message === 'string' ? o.message : 'invalid',
    code: typeof o.code === 'string' ? o.code : 'invalid',
    ...(where === 'body' || where === 'query' || where === 'params' || where === 'headers' ? { in: where } : {}),
  };
}

export interface ProblemContext {
  /** The request path (the occurrence of the problem). */
  readonly instance: string;
  readonly correlationId: string;
}

/** Errors thrown by body-parser / http-errors carry these fields. */
interface HttpLikeError {
  readonly status?: number;
  readonly statusCode?: number;
  readonly type?: string;
  readonly expose?: boolean;
  readonly limit?: number;
  readonly message?: string;
}

/**
 * Map any thrown value to a problem document. Pure: the caller sends and logs.
 * Only errors we know (AppError, WrongExpectedVersionError, Nest HTTP exceptions,
 * body-parser errors) show their message; anything else becomes a bare 500.
 */
export function toProblem(err: unknown, ctx: ProblemContext): MappedProblem {
  if (err instanceof AppError) {
    const status = errorCodes[err.code] ?? 500;
    if (status >= 500 && err.code === 'internal') {
      return { problem: build('internal', 500, 'internal error', ctx), unexpected: true };
    }
    return {
      problem: { ...build(err.code, status, err.message, ctx, err.details), retryable: err.retryable },
      unexpected: false,
    };
  }
  if (err instanceof WrongExpectedVersionError) {
    return {
      problem: {
        ...build('conflict', errorCodes.conflict, err.message, ctx, {
          streamId: err.streamId,
          expectedRevision: err.expected,
          actualRevision: err.actual,
        }),
        retryable: true,
      },
      unexpected: false,
    };
  }
  if (err instanceof HttpException) {
    const status = err.getStatus();
    if (status >= 500)
      return { problem: build(codeForStatus(status), status, 'internal error', ctx), unexpected: status === 500 };
    return { problem: build(codeForStatus(status), status, httpExceptionDetail(err), ctx), unexpected: false };
  }
  const httpLike = (typeof err === 'object' && err !== null ? err : {}) as HttpLikeError;
  const status = httpLike.status ?? httpLike.statusCode;
  if (httpLike.type === 'entity.parse.failed') {
    // Ours (body.ts) say what was wrong; any other parser's message is not shown.
    const reason = (err as { reason?: unknown }).reason;
    const detail =
      (reason === 'invalid_json' || reason === 'not_an_object') && typeof httpLike.message === 'string'
        ? httpLike.message.slice(0, 300)
        : 'the request body is not valid JSON';
    const code = reason === 'not_an_object' ? 'not_an_object' : 'invalid_json';
    return {
      problem: build('validation', 400, detail, ctx, {
        errors: [{ path: '(root)', message: detail, code, in: 'body' }],
      }),
      unexpected: false,
    };
  }
  if (httpLike.type === 'entity.too.large') {
    const limit = httpLike.limit !== undefined ? ` of ${httpLike.limit} bytes` : '';
    return {
      problem: build('payload_too_large', 413, `the request body exceeds the limit${limit}`, ctx),
      unexpected: false,
    };
  }
  // A query cancelled by the gateway's statement_timeout (its pool's, as long as a request may
  // take): the database is too busy or the read too wide right now; not the handler's bug.
  if ((err as { code?: unknown } | null)?.code === '57014') {
    return {
      problem: {
        ...build(
          'timeout',
          errorCodes.timeout,
          'the database did not answer in time; try again or narrow the request',
          ctx,
        ),
        retryable: true,
      },
      unexpected: false,
    };
  }
  // PostgreSQL unreachable or its session cut (restarting, a backend terminated) under a handler
  // that has no mapping of its own: the request may work again in a moment, so 503, not 500.
  if (isConnectionError(err)) {
    return {
      problem: {
        ...build('unavailable', errorCodes.unavailable, 'the database is unreachable right now; try again', ctx),
        retryable: true,
      },
      unexpected: false,
    };
  }
  // PostgreSQL out of disk, memory or connections: every write fails until the resource is back,
  // and then the same request works (the idempotency keys make a retry safe).
  if (isResourceShortage(err)) {
    return {
      problem: {
        ...build(
          'unavailable',
          errorCodes.unavailable,
          'the database is short of resources (disk, memory or connections) right now; try again',
          ctx,
        ),
        retryable: true,
        // Freeing a disk takes longer than a restart: a client retrying every second only adds load.
        retry_after_ms: 5_000,
      },
      unexpected: false,
    };
  }
  // http-errors marks the messages that are safe to show with `expose` (all 4xx).
  if (typeof status === 'number' && status >= 400 && status < 500 && httpLike.expose) {
    return { problem: build(codeForStatus(status), status, httpLike.message ?? 'bad request', ctx), unexpected: false };
  }
  return {
    problem: build('internal', 500, 'internal error; quote the correlation id when reporting it', ctx),
    unexpected: true,
  };
}

function httpExceptionDetail(err: HttpException): string {
  const body = err.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : err.message;
}

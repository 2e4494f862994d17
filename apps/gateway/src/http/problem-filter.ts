import {
  Catch,
  Inject,
  MethodNotAllowedException,
  NotFoundException,
  Optional,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import { correlationIdOf } from './context.js';
import { isReply, pathOf, type AnyRequest, type AnyResponse, type EdgeRequest } from './edge.js';
import { PROBLEM_CONTENT_TYPE, toProblem } from './problem.js';
import { OpenApiRegistry } from '../openapi/registry.js';
import { allowedMethods } from './route-checks.js';

// As Express sent it: the media type with its charset.
const PROBLEM_TYPE_HEADER = `${PROBLEM_CONTENT_TYPE}; charset=utf-8`;

/** Where the request log line finds an unexpected error behind a 5xx (see sendProblem). */
export const UNEXPECTED_ERROR = Symbol.for('switchyard.gateway.unexpectedError');

/** `Retry-After` (whole seconds, at least 1) for a refusal whose details say when to come back (`retry_after_ms`). */
export function retryAfterSeconds(retryAfterMs: unknown): string | undefined {
  return typeof retryAfterMs === 'number' && retryAfterMs >= 0
    ? String(Math.max(1, Math.ceil(retryAfterMs / 1000)))
    : undefined;
}

/**
 * Map an error to problem+json on the response (a Fastify reply, or the Node response of a
 * hijacked one). An unexpected error is kept on the Node response: the request log line then
 * carries it, with the correlation id, at error level; one line per failure, not two.
 */
export function sendProblem(err: unknown, req: AnyRequest, res: AnyResponse): void {
  const correlationId = correlationIdOf(req);
  const { problem, unexpected } = toProblem(err, { instance: pathOf(req), correlationId });
  const raw = isReply(res) ? res.raw : res;
  if (unexpected)
    (raw as unknown as Record<symbol, unknown>)[UNEXPECTED_ERROR] = err instanceof Error ? err : new Error(String(err));
  if (raw.headersSent) {
    // A stream (SSE) already started: the status line is gone, all we can do is stop.
    raw.end();
    return;
  }
  const body = JSON.stringify(problem);
  // A refusal that says when to come back (a full queue, a share of connections) says it in the
  // header HTTP clients and proxies read, too.
  // A retryable 503 that names no time (no process answers a subject yet: one restarting) says 1 s.
  const retryAfter =
    retryAfterSeconds((problem as { retry_after_ms?: unknown }).retry_after_ms) ??
    (problem.status === 503 && problem.retryable === true ? '1' : undefined);
  if ((problem.status === 429 || problem.status === 503) && retryAfter !== undefined)
    raw.setHeader('Retry-After', retryAfter);
  if (isReply(res)) {
    if (res.sent) return;
    res.status(problem.status).type(PROBLEM_TYPE_HEADER).send(body);
    return;
  }
  raw.statusCode = problem.status;
  raw.setHeader('content-type', PROBLEM_TYPE_HEADER);
  raw.setHeader('content-length', Buffer.byteLength(body));
  raw.end(body);
}

/**
 * Catch-all Nest filter: every error leaving a handler (and the 404 of an unknown route) becomes
 * problem+json. A path that exists with other methods (any method, TRACE included) answers 405
 * with `Allow` instead of that 404.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(@Optional() @Inject(OpenApiRegistry) private readonly registry?: OpenApiRegistry) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const http = host.switchToHttp();
    const req = http.getRequest<EdgeRequest>();
    const res = http.getResponse<AnyResponse>();
    // Nest's answer to a request no route matched (a handler's own 404 is an AppError).
    if (exception instanceof NotFoundException && this.registry && /^Cannot [A-Z-]+ /.test(exception.message)) {
      const allow = allowedMethods(this.registry.routes(), req.path);
      if (allow.length > 0 && !allow.includes(req.method.toUpperCase())) {
        methodNotAllowed(allow, req, res);
        return;
      }
    }
    // (A path documented without parameters that another method's parameterised route would take,
    // GET /executions/bulk, is answered 405 before routing: see shadowedLiteralPaths.)
    sendProblem(exception, req, res);
  }
}

/** 405 with `Allow` listing the methods the path does have. */
export function methodNotAllowed(allow: readonly string[], req: EdgeRequest, res: AnyResponse): void {
  (isReply(res) ? res.raw : res).setHeader('Allow', allow.join(', '));
  sendProblem(
    new MethodNotAllowedException(`${req.method} is not allowed here; allowed: ${allow.join(', ')}`),
    req,
    res,
  );
}

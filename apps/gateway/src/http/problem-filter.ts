import { Catch, Inject, MethodNotAllowedException, NotFoundException, Optional, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { correlationIdOf } from './context.js';
import { PROBLEM_CONTENT_TYPE, toProblem } from './problem.js';
import { OpenApiRegistry } from '../openapi/registry.js';
import { allowedMethods } from './route-checks.js';
import { isAppError } from '@switchyard/platform';

/**
 * Map an error to problem+json on the response. An unexpected error is attached as
 * `res.err`: the request log line (pino-http) then carries it, with the correlation
 * id, at error level; one line per failure, not two.
 */
export function sendProblem(err: unknown, req: Request, res: Response): void {
  const correlationId = correlationIdOf(req);
  const instance = (req.originalUrl ?? req.url ?? '/').split('?')[0] ?? '/';
  const { problem, unexpected } = toProblem(err, { instance, correlationId });
  if (unexpected) res.err = err instanceof Error ? err : new Error(String(err));
  if (res.headersSent) {
    // A stream (SSE) already started: the status line is gone, all we can do is stop.
    res.end();
    return;
  }
  res.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
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
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    // Nest's answer to a request no route matched (a handler's own 404 is an AppError).
    if (exception instanceof NotFoundException && this.registry && /^Cannot [A-Z-]+ /.test(exception.message)) {
      const allow = allowedMethods(this.registry.routes(), req.path);
      if (allow.length > 0 && !allow.includes(req.method.toUpperCase())) {
        methodNotAllowed(allow, req, res);
        return;
      }
    }
    // A path documented without parameters, with other methods, reached by a parameterised route
    // of this method (GET /executions/bulk ran GET /executions/{execution_id}, which found no
    // execution "bulk"): 405 with `Allow`, as for any other path that exists with other methods.
    if (isAppError(exception) && exception.code === 'not_found' && this.registry) {
      const allow = allowedMethods(this.registry.routes().filter((r) => r.path === req.path), req.path);
      if (allow.length > 0 && !allow.includes(req.method.toUpperCase())) {
        methodNotAllowed(allow, req, res);
        return;
      }
    }
    sendProblem(exception, req, res);
  }
}

/** 405 with `Allow` listing the methods the path does have. */
function methodNotAllowed(allow: readonly string[], req: Request, res: Response): void {
  res.setHeader('Allow', allow.join(', '));
  sendProblem(new MethodNotAllowedException(`${req.method} is not allowed here; allowed: ${allow.join(', ')}`), req, res);
}

/** Express error middleware for what fails before Nest routing: bad JSON, too large bodies, static files. */
export function problemErrorMiddleware() {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => sendProblem(err, req, res);
}

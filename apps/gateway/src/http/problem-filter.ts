import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { correlationIdOf } from './context.js';
import { PROBLEM_CONTENT_TYPE, toProblem } from './problem.js';

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

/** Catch-all Nest filter: every error leaving a handler (and the 404 of an unknown route) becomes problem+json. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const http = host.switchToHttp();
    sendProblem(exception, http.getRequest<Request>(), http.getResponse<Response>());
  }
}

/** Express error middleware for what fails before Nest routing: bad JSON, too large bodies, static files. */
export function problemErrorMiddleware() {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => sendProblem(err, req, res);
}

import { Catch, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '@switchyard/platform';
import { LOGGER } from '../tokens.js';
import { correlationIdOf } from './context.js';
import { PROBLEM_CONTENT_TYPE, toProblem } from './problem.js';

/** Map an error to problem+json on the response, logging unexpected ones with the correlation id. */
export function sendProblem(err: unknown, req: Request, res: Response, logger: Logger): void {
  const correlationId = correlationIdOf(req);
  const instance = (req.originalUrl ?? req.url ?? '/').split('?')[0] ?? '/';
  const { problem, unexpected } = toProblem(err, { instance, correlationId });
  if (unexpected) {
    logger.error({ err, correlationId, method: req.method, path: instance }, 'request failed unexpectedly');
  }
  if (res.headersSent) {
    // A stream (SSE) already started: the status line is gone, all we can do is stop.
    res.end();
    return;
  }
  // pino-http reads res.err to log the request at error level with the cause.
  if (unexpected) (res as Response & { err?: unknown }).err = err instanceof Error ? err : new Error(String(err));
  res.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

/** Catch-all Nest filter: every error leaving a handler (and the 404 of an unknown route) becomes problem+json. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const http = host.switchToHttp();
    sendProblem(exception, http.getRequest<Request>(), http.getResponse<Response>(), this.logger);
  }
}

/** Express error middleware for what fails before Nest routing: bad JSON, too large bodies, static files. */
export function problemErrorMiddleware(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => sendProblem(err, req, res, logger);
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoggerService } from '@nestjs/common';
import { pinoHttp } from 'pino-http';
import type { Logger } from '@switchyard/platform';
import { correlationIdOf, type GatewayRequest } from './context.js';

const pathOf = (req: IncomingMessage): string =>
  ((req as Partial<GatewayRequest>).originalUrl ?? req.url ?? '/').split('?')[0] ?? '/';

// Probes hit these every few seconds: log them below info so they do not drown the rest.
const quietPaths = new Set(['/livez', '/readyz']);

/**
 * One log line per finished request: method, path, status, duration and the
 * correlation id (also the pino-http request id, so req.log carries it).
 */
export function httpLogger(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId: (req) => correlationIdOf(req as GatewayRequest),
    customAttributeKeys: { reqId: 'correlationId' },
    quietReqLogger: true,
    quietResLogger: true,
    customLogLevel: (req: IncomingMessage, res: ServerResponse, err?: Error) => {
      // A deliberate 503/504 (not ready, upstream timeout) is a warning; an error is what nobody expected.
      if (err || (res as { err?: Error }).err || res.statusCode === 500) return 'error';
      if (res.statusCode >= 400) return 'warn';
      return quietPaths.has(pathOf(req)) ? 'debug' : 'info';
    },
    customSuccessObject: (req: IncomingMessage, res: ServerResponse, val: { responseTime?: number }) => ({
      method: req.method,
      path: pathOf(req),
      status: res.statusCode,
      durationMs: val.responseTime,
    }),
    // pino-http makes up an Error for any 5xx; only a real one (res.err, set by sendProblem) is worth its stack.
    customErrorObject: (req: IncomingMessage, res: ServerResponse, _err: Error, val: { responseTime?: number }) => {
      const real = (res as { err?: Error }).err;
      return { method: req.method, path: pathOf(req), status: res.statusCode, durationMs: val.responseTime, ...(real ? { err: real } : {}) };
    },
    customSuccessMessage: () => 'request completed',
    customErrorMessage: () => 'request failed',
  });
}

/** Nest's own log lines (route mapping, lifecycle) through pino; its chatty `log` level goes to debug. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  private fields(optional: unknown[]): { context?: unknown } {
    const context = optional.at(-1);
    return typeof context === 'string' ? { context } : {};
  }

  log(message: unknown, ...optional: unknown[]): void {
    this.logger.debug(this.fields(optional), String(message));
  }
  error(message: unknown, ...optional: unknown[]): void {
    const stack = optional.length > 1 && typeof optional[0] === 'string' ? optional[0] : undefined;
    this.logger.error({ ...this.fields(optional), ...(stack ? { stack } : {}) }, String(message));
  }
  warn(message: unknown, ...optional: unknown[]): void {
    this.logger.warn(this.fields(optional), String(message));
  }
  debug(message: unknown, ...optional: unknown[]): void {
    this.logger.debug(this.fields(optional), String(message));
  }
  verbose(message: unknown, ...optional: unknown[]): void {
    this.logger.trace(this.fields(optional), String(message));
  }
  fatal(message: unknown, ...optional: unknown[]): void {
    this.logger.fatal(this.fields(optional), String(message));
  }
}

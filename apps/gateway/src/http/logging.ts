import type { LoggerService } from '@nestjs/common';
import type { Logger } from '@switchyard/platform';
import { actorOf, correlationIdOf } from './context.js';
import { pathOf } from './edge.js';
import type { EndStep, Exchange } from './exchange.js';
import { UNEXPECTED_ERROR } from './problem-filter.js';

// Probes hit these every few seconds: log them below info so they do not drown the rest.
const quietPaths = new Set(['/livez', '/readyz']);

/**
 * One log line per finished request: method, path, status, duration, the correlation id and the
 * key that asked (`actor`; the client's address too on a 401 or 403).
 * 2xx/3xx at `answered` (info unless GATEWAY_ACCESS_LOG says debug; probes at debug), 4xx and a deliberate 503/504 at warn (but a 429: the limit
 * doing its job, at the rate a flood sends it, is info), a 500 or an
 * unexpected error (kept by sendProblem) at error with it. Cheap when the level is off: the
 * level is decided before any field is built, and no per-request child logger is made.
 * An Exchanges step; undefined when the logger writes nothing at any level a request can reach.
 */
export function requestLog(logger: Logger, answered: 'info' | 'debug' = 'info'): EndStep | undefined {
  if (!logger.isLevelEnabled('warn')) return undefined;
  return (x: Exchange) => {
    const { req } = x;
    const raw = x.res.raw;
    const err = (raw as unknown as Record<symbol, Error | undefined>)[UNEXPECTED_ERROR];
    const status = raw.statusCode;
    const path = pathOf(req);
    const aborted = !raw.writableFinished;
    const level =
      err || status === 500
        ? 'error'
        : status >= 400 && status !== 429
          ? 'warn'
          : quietPaths.has(path)
            ? 'debug'
            : answered;
    if (!logger.isLevelEnabled(level)) return;
    const actor = actorOf(req);
    const fields = {
      correlationId: correlationIdOf(req),
      method: req.method,
      path,
      status,
      // Who was answered, and from where when refused: a role refused (a viewer asking for an
      // admin key) is an attempt an audit must be able to name.
      ...(actor !== 'anonymous' ? { actor } : {}),
      ...(status === 401 || status === 403 ? { ip: req.ip } : {}),
      durationMs: Math.round(performance.now() - x.start),
      ...(aborted ? { aborted: true } : {}),
      ...(err ? { err } : {}),
    };
    logger[level](fields, level === 'error' ? 'request failed' : 'request completed');
  };
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

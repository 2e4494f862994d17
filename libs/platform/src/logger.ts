import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The root pino logger. Fields first, then a short message; children carry
 * the correlation id of the workflow or task (`logger.child({ correlationId })`).
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid, app: name } });
}

export function withCorrelation(logger: Logger, correlationId: string, extra: Record<string, unknown> = {}): Logger {
  return logger.child({ correlationId, ...extra });
}

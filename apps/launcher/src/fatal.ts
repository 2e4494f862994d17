import { ConfigError, type Logger } from '@switchyard/platform';

/** Log why a process could not start: each bad variable on a line of its own, else `what` and the error. */
export function logFatal(logger: Logger, err: unknown, what: string): void {
  if (err instanceof ConfigError) {
    for (const i of err.issues)
      logger.fatal({ variable: i.variable }, `bad configuration: ${i.variable}: ${i.message}`);
  } else {
    logger.fatal({ err }, what);
  }
}

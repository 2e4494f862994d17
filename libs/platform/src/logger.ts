import { pino, type DestinationStream, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';

export type { Logger };

/** How log lines are written: one JSON object a line, or readable lines for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/**
 * LOG_FORMAT: `json` or `pretty` force a format; unset or `auto` picks pretty when stdout is a
 * terminal and JSON otherwise (pipes, files, collectors). Any other value is treated as `auto`
 * here; the config schema names it as a bad variable at start.
 */
export function resolveLogFormat(setting: string | undefined, stdoutIsTTY: boolean): LogFormat {
  const v = setting?.trim().toLowerCase();
  if (v === 'json' || v === 'pretty') return v;
  return stdoutIsTTY ? 'pretty' : 'json';
}

/** The format this process logs in (LOG_FORMAT and whether stdout is a terminal). */
export const processLogFormat = (): LogFormat =>
  resolveLogFormat(process.env.LOG_FORMAT, process.stdout.isTTY === true);

/**
 * A pino-pretty stream: `HH:MM:ss.l LEVEL [app] [correlation id] message {other fields}` on one
 * line; an `err` keeps its stack below. The correlation id stays visible: it is how a line is
 * found again in the events and the JSON logs.
 */
export function prettyStream(
  options: { destination?: NodeJS.WritableStream | number; colorize?: boolean } = {},
): DestinationStream {
  return PinoPretty({
    destination: options.destination ?? 1,
    colorize: options.colorize ?? (process.stdout.isTTY === true && !process.env.NO_COLOR),
    translateTime: 'SYS:HH:MM:ss.l',
    singleLine: true,
    ignore: 'pid,hostname,name,app,correlationId',
    messageFormat: '{if app}[{app}] {end}{if correlationId}[{correlationId}] {end}{msg}',
    // Synchronous writes: a line logged just before process.exit is not lost.
    sync: true,
  });
}

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/**
 * The root pino logger. Fields first, then a short message; children carry
 * the correlation id of the workflow or task (`logger.child({ correlationId })`).
 * Pretty or JSON per `processLogFormat()` unless `format` says.
 */
export function createLogger(
  name: string,
  level = process.env.LOG_LEVEL ?? 'info',
  format: LogFormat = processLogFormat(),
): Logger {
  // A level pino does not know (LOG_LEVEL=loud) would throw its own error here, before the config
  // is read: `info` instead, and the config schema names LOG_LEVEL as a bad variable at start.
  const options = { name, level: LOG_LEVELS.has(level) ? level : 'info', base: { pid: process.pid, app: name } };
  return format === 'pretty' ? pino(options, prettyStream()) : pino(options);
}

export function withCorrelation(logger: Logger, correlationId: string, extra: Record<string, unknown> = {}): Logger {
  return logger.child({ correlationId, ...extra });
}

/**
 * A gate for a log line that may repeat in a flood (a failing store, dropped messages):
 * `gate(write)` runs `write(held)` at most once per `intervalMs`, `held` being how many calls it
 * skipped since the last line.
 */
export function logAtMostEvery(intervalMs: number): (write: (held: number) => void) => void {
  let held = 0;
  let lastAt = -Infinity;
  return (write) => {
    const now = Date.now();
    if (now - lastAt < intervalMs) {
      held += 1;
      return;
    }
    lastAt = now;
    const skipped = held;
    held = 0;
    write(skipped);
  };
}

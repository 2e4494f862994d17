import { createPgClient, type Logger } from '@switchyard/platform';

/**
 * How far PostgreSQL's clock is from this process's, measured with one query: the server's time
 * against the middle of the round trip, give or take half of it. Rate-limit windows and
 * idempotency leases run on PostgreSQL's clock, workflow timers and schedules on the processes':
 * a host whose clock is off by seconds moves them, so the start and the doctor say so.
 */
export interface ClockSkew {
  /** PostgreSQL's clock minus this process's, in ms (positive: the database is ahead). */
  readonly skewMs: number;
  /** Half the round trip: the measurement's uncertainty, in ms. */
  readonly uncertaintyMs: number;
}

/** Past this (beyond the measurement's uncertainty) the two clocks are said to disagree. */
export const CLOCK_SKEW_WARN_MS = 1_000;

export async function measureClockSkew(url: string, now: () => number = Date.now): Promise<ClockSkew> {
  const client = createPgClient(
    { connectionString: url, connectionTimeoutMillis: 5_000, application_name: 'switchyard-clock-check' },
    { name: 'clock-check' },
  );
  await client.connect();
  try {
    // Warm the connection's statement path first: the timed round trip is then one plain query.
    await client.query('select 1');
    const sent = now();
    const r = await client.query<{ ms: string }>('select (extract(epoch from clock_timestamp()) * 1000)::text as ms');
    const received = now();
    return { skewMs: Number(r.rows[0]!.ms) - (sent + received) / 2, uncertaintyMs: (received - sent) / 2 };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** True when the clocks differ by more than the warning threshold, whatever the measurement's error. */
export const clocksDisagree = (s: ClockSkew, limitMs = CLOCK_SKEW_WARN_MS): boolean =>
  Math.abs(s.skewMs) - s.uncertaintyMs > limitMs;

export const describeClockSkew = (s: ClockSkew): string =>
  `PostgreSQL's clock is ${Math.abs(Math.round(s.skewMs))} ms ${s.skewMs >= 0 ? 'ahead of' : 'behind'} this host's (± ${Math.ceil(s.uncertaintyMs)} ms)`;

/** At start, in the background: a warning when this host's clock and PostgreSQL's disagree. */
export async function warnOnClockSkew(url: string, logger: Logger, now: () => number = Date.now): Promise<void> {
  try {
    const skew = await measureClockSkew(url, now);
    if (clocksDisagree(skew))
      logger.warn(
        { skewMs: Math.round(skew.skewMs), uncertaintyMs: Math.ceil(skew.uncertaintyMs) },
        `${describeClockSkew(skew)}: run NTP on both hosts; workflow timers and schedules follow this host's clock, rate-limit windows and idempotency leases PostgreSQL's`,
      );
    else logger.debug({ skewMs: Math.round(skew.skewMs) }, 'clock check: PostgreSQL and this host agree');
  } catch (err) {
    logger.debug({ err }, 'clock check: PostgreSQL could not be asked');
  }
}

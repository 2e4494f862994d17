import type { Pool } from 'pg';
import { RateLimiterMemory, RateLimiterRes, RLWrapperTimeouts, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { createPgPool, logAtMostEvery, type Logger } from '@switchyard/platform';
import type { Limit, ResolvedSecurityOptions } from './options.js';
import { DatabaseClockRateLimiterPostgres } from './rate-limit-store.js';

/** The limiter's table: one row per bucket (`ip:<addr>`, `key:<id>`, `authfail:<addr>|<id>`), as RateLimiterPostgres reads and writes it. */
export const RATE_LIMIT_TABLE = { schema: 'gateway', table: 'rate_limits' } as const;

/**
 * Made by the owner's migration phase (the gateway's own role may not run DDL), or by the
 * gateway at start on a pool that may. `expire` is epoch ms on PostgreSQL's clock; the index
 * serves the limiter's periodic `DELETE ... WHERE expire < ...`.
 */
export const RATE_LIMIT_SCHEMA_SQL = `
create schema if not exists gateway;
create table if not exists gateway.rate_limits (
  key     varchar(255) primary key,
  points  integer not null default 0,
  expire  bigint
);
create index if not exists rate_limits_expire on gateway.rate_limits (expire);
`;

/** Bad keys one address may present across key ids: ADDRESS_FAILURES_FACTOR times the per key id limit. */
const ADDRESS_FAILURES_FACTOR = 10;
const addressFailures = (o: ResolvedSecurityOptions['rateLimit']): Limit => ({
  points: o.authFailuresPerIp.points * ADDRESS_FAILURES_FACTOR,
  durationSec: o.authFailuresPerIp.durationSec,
});

/** What one limiter said about one request. */
export interface LimitOutcome {
  readonly allowed: boolean;
  /** The limit's points per window. */
  readonly limit: number;
  readonly remaining: number;
  /** ms until the window resets (the next request is allowed, when refused). */
  readonly msBeforeNext: number;
}

/**
 * This process's own count first, then the shared one. The shared store answers within its
 * timeout or its in-memory insurance does; under a burst the store's small pool timed out and
 * the insurance, which counts only what it answered, let a key through 1,890 requests in 10 s
 * against a limit of 1,200 a minute. Counted here first, one process never lets more than the
 * limit through, whatever the store does.
 */
class LocalThenShared {
  constructor(
    private readonly local: RateLimiterMemory,
    private readonly shared: RLWrapperTimeouts,
  ) {}

  async consume(key: string, points = 1): Promise<RateLimiterRes> {
    await this.local.consume(key, points); // rejects with a RateLimiterRes past the limit
    return this.shared.consume(key, points);
  }
}

type Limiter = RateLimiterAbstract | RLWrapperTimeouts | LocalThenShared;

/**
 * The gateway's three rate limits (per address, per API key, bad keys per address and key id).
 *
 * `store: 'postgres'` (the default): the counters live in `gateway.rate_limits`, shared by
 * every gateway process on the database, so N gateways allow N in total, not N times N. Each
 * consume is one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` (atomic across processes),
 * on a small pool of its own: its statements run with `synchronous_commit=off` (a counter lost in
 * a PostgreSQL crash costs nothing), and a stuck table cannot take the connections the
 * requests need. When the store does not answer within `storeTimeoutMs` (down, locked, pool
 * exhausted) the in-memory limiter with the same limits answers instead (rate-limiter-flexible's
 * `insuranceLimiter`): the gateway keeps limiting, per process, until the store is back. The
 * windows run on PostgreSQL's clock, and one whose expiry lies more than a window ahead (the
 * clock stepped back) starts again (DatabaseClockRateLimiterPostgres): whatever a gateway's clock
 * does, stepped or wrong, a refused key waits at most one window.
 *
 * `store: 'memory'`: per-process counters only (one gateway, or limits meant per instance).
 */
export class RateLimits {
  private constructor(
    private readonly perIp: Limiter,
    private readonly perKey: Limiter,
    private readonly authFailures: Limiter,
    private readonly authFailuresFromAddress: Limiter,
    private readonly limits: ResolvedSecurityOptions['rateLimit'],
    private readonly pool: Pool | undefined,
  ) {}

  /**
   * Build the limiters. With the postgres store, `base` is the gateway's pool: the limiter's
   * own pool logs in the same way (its connection options), with at most 4 connections.
   */
  static create(o: ResolvedSecurityOptions['rateLimit'], base: Pool | undefined, logger: Logger): RateLimits {
    const memory = (l: Limit, keyPrefix: string) =>
      new RateLimiterMemory({ points: l.points, duration: l.durationSec, keyPrefix });
    if (o.store === 'memory' || !base) {
      return new RateLimits(
        memory(o.perIp, 'ip'),
        memory(o.perKey, 'key'),
        memory(o.authFailuresPerIp, 'authfail'),
        memory(addressFailures(o), 'authfailip'),
        o,
        undefined,
      );
    }
    const t = o.storeTimeoutMs;
    const { options: baseOptions } = base;
    const startup = [
      baseOptions.options,
      `-c statement_timeout=${t}`,
      `-c lock_timeout=${t}`,
      '-c synchronous_commit=off',
    ]
      .filter(Boolean)
      .join(' ');
    const pool = createPgPool(
      {
        ...baseOptions,
        max: 4,
        connectionTimeoutMillis: t,
        idleTimeoutMillis: 30_000,
        options: startup,
        application_name: 'switchyard-gateway-ratelimit',
      },
      { name: 'gateway-ratelimit', logger },
    );
    const warnGate = logAtMostEvery(10_000);
    // Through this client so a failing store is logged (at most every 10 s), then the insurance answers.
    const storeClient = {
      query: (q: { text: string; values?: unknown[]; name?: string }) =>
        pool.query(q).catch((err: unknown) => {
          warnGate(() =>
            logger.warn(
              { err: { message: (err as Error).message, code: (err as { code?: string }).code } },
              'rate limit store failed; the in-memory limits answer until it is back',
            ),
          );
          throw err;
        }),
    };
    const shared = (l: Limit, keyPrefix: string) =>
      new LocalThenShared(memory(l, keyPrefix), storeWithInsurance(l, keyPrefix));
    const storeWithInsurance = (l: Limit, keyPrefix: string) =>
      new RLWrapperTimeouts({
        // The table is made by the migrations (the gateway's role may not run DDL).
        limiter: new DatabaseClockRateLimiterPostgres({
          storeClient,
          schemaName: RATE_LIMIT_TABLE.schema,
          tableName: RATE_LIMIT_TABLE.table,
          keyPrefix,
          points: l.points,
          duration: l.durationSec,
        }),
        // One insurance, on the wrapper: it answers for a store error and for a timeout alike, and a
        // request is counted in it once (an insurance on the inner limiter too would count a request
        // twice when its late error follows the timeout). The timeout covers a network that swallows
        // packets, where the statement timeout never reaches us.
        insuranceLimiter: memory(l, keyPrefix),
        timeoutMs: t + 100,
      });
    return new RateLimits(
      shared(o.perIp, 'ip'),
      shared(o.perKey, 'key'),
      shared(o.authFailuresPerIp, 'authfail'),
      shared(addressFailures(o), 'authfailip'),
      o,
      pool,
    );
  }

  get store(): 'postgres' | 'memory' {
    return this.pool ? 'postgres' : 'memory';
  }

  private static async take(limiter: Limiter, limit: Limit, key: string, points = 1): Promise<LimitOutcome> {
    // The in-memory counters end on a timer (one window) but report their end from Date.now():
    // after a step back of the clock they would name a reset that far away.
    const windowMs = limit.durationSec * 1000;
    try {
      const res = await limiter.consume(key, points);
      const msBeforeNext = Math.min(res.msBeforeNext, windowMs);
      return { allowed: true, limit: limit.points, remaining: res.remainingPoints, msBeforeNext };
    } catch (e) {
      if (e instanceof RateLimiterRes)
        return { allowed: false, limit: limit.points, remaining: 0, msBeforeNext: Math.min(e.msBeforeNext, windowMs) };
      throw e;
    }
  }

  ip(ip: string) {
    return RateLimits.take(this.perIp, this.limits.perIp, ip);
  }
  key(id: string) {
    return RateLimits.take(this.perKey, this.limits.perKey, id);
  }
  /** `points` more of a key's budget: a request that carries that many calls more (a JSON-RPC batch). */
  keyCost(id: string, points: number) {
    return RateLimits.take(this.perKey, this.limits.perKey, id, points);
  }
  /**
   * Count a bad key against its bucket (address and key id, see failureBucket). Only
   * further bad keys of that bucket are refused: valid keys from the same address and the
   * health probes are never blocked by someone else's guessing.
   */
  failedAuth(bucket: string) {
    return RateLimits.take(this.authFailures, this.limits.authFailuresPerIp, bucket);
  }
  /**
   * Count a bad key against its address, whatever key id it named: a guesser who names a new
   * id each time opens a new bucket of failedAuth every time, and is stopped here instead.
   */
  failedAuthFromAddress(ip: string) {
    return RateLimits.take(this.authFailuresFromAddress, addressFailures(this.limits), ip);
  }

  async close(): Promise<void> {
    await this.pool?.end().catch(() => undefined);
  }
}

import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';

/** A row of the limiter's table as the statements below return it (`bigint` comes back as text). */
interface CounterRow {
  readonly points: number;
  readonly expire: string | number | null;
  /** ms from the database's now to `expire`. */
  readonly ms_left: string | number | null;
}

/** What the store needs of a PostgreSQL client: a pool's `query` (named statements are prepared per connection). */
export interface CounterStoreClient {
  query(q: {
    text: string;
    values?: unknown[];
    name?: string;
  }): Promise<{ rows: CounterRow[]; rowCount: number | null }>;
}

export interface DatabaseClockLimiterOptions {
  readonly storeClient: CounterStoreClient;
  readonly schemaName: string;
  readonly tableName: string;
  readonly keyPrefix: string;
  readonly points: number;
  /** The window, in seconds. */
  readonly duration: number;
}

/** PostgreSQL's clock in epoch ms at the moment it is evaluated (not the transaction's start). */
const DB_NOW_MS = 'floor(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * rate-limiter-flexible's PostgreSQL store on one clock, PostgreSQL's, and with a window that
 * lasts at most its duration whatever that clock does.
 *
 * The library stores an absolute `expire` computed from each gateway's `Date.now()` and resets
 * a counter only once `expire <= Date.now()`: after the clock stepped back by X a counter held
 * for X plus the window (an hour's step locked a key out for an hour), and a gateway whose clock
 * ran ahead wrote counters that held that much longer on every other gateway. Here every
 * expiry is set and compared by the database, so gateways with different clocks share one
 * window, and a counter whose expiry lies further ahead than one window (only a step back of
 * the database's clock leaves one) is stale and starts again.
 *
 * The table, the rows and the library's other paths (delete, the in-memory block, the
 * insurance) are unchanged. `block` and `set` with a duration longer than the window would be
 * undone by the next consume; the gateway uses neither.
 */
export class DatabaseClockRateLimiterPostgres extends RateLimiterPostgres {
  private readonly db: CounterStoreClient;
  private readonly qualifiedTable: string;
  private readonly statementPrefix: string;

  constructor(o: DatabaseClockLimiterOptions) {
    super({ ...o, storeType: 'pool', tableCreated: true });
    this.db = o.storeClient;
    this.qualifiedTable = `"${o.schemaName}"."${o.tableName}"`;
    this.statementPrefix = `${o.tableName}:dbclock`;
  }

  /** Called by the library's consume, penalty, reward (forceExpire false), block and set (true). */
  _upsert(rlKey: string, points: number, msDuration: number, forceExpire = false): Promise<{ rows: CounterRow[] }> {
    const t = this.qualifiedTable;
    const fresh = `case when $3::bigint > 0 then ${DB_NOW_MS} + $3::bigint end`;
    // The clock is read once, when the row is locked: a counter another gateway created a moment
    // earlier (its clock read later than this statement began) is then never "ahead" and reset.
    const update = forceExpire
      ? 'points = excluded.points, expire = excluded.expire'
      : `(points, expire) = (
           select case when w.stale then excluded.points else r.points + excluded.points end,
                  case when w.stale then w.fresh_expire else r.expire end
             from (select r.expire <= c.now_ms or ($3::bigint > 0 and r.expire > c.now_ms + $3::bigint) as stale,
                          case when $3::bigint > 0 then c.now_ms + $3::bigint end as fresh_expire
                     from (select ${DB_NOW_MS} as now_ms) c) w)`;
    return this.db.query({
      name: `${this.statementPrefix}-upsert${forceExpire ? '-force' : ''}`,
      text: `insert into ${t} as r (key, points, expire) values ($1, $2::integer, ${fresh})
             on conflict (key) do update set ${update}
             returning points, expire, expire - ${DB_NOW_MS} as ms_left`,
      values: [rlKey, points, msDuration],
    });
  }

  /** The library's `get`: a counter that is expired, or stale (ahead by more than a window), is none. */
  _get(rlKey: string): Promise<{ rows: CounterRow[] } | null> {
    return this.db
      .query({
        name: `${this.statementPrefix}-get`,
        text: `select points, expire, expire - c.now_ms as ms_left
                 from ${this.qualifiedTable}, (select ${DB_NOW_MS} as now_ms) c
                where key = $1
                  and (expire is null or (expire > c.now_ms and ($2::bigint = 0 or expire <= c.now_ms + $2::bigint)))`,
        values: [rlKey, this.msDuration],
      })
      .then((res) => (res.rowCount ? res : null));
  }

  _getRateLimiterRes(_rlKey: string, changedPoints: number, result: { rows: CounterRow[] }): RateLimiterRes {
    const row = result.rows[0]!;
    const isFirstInDuration = changedPoints === row.points;
    const consumedPoints = isFirstInDuration ? changedPoints : row.points;
    const msBeforeNext = row.expire === null ? -1 : Math.max(Number(row.ms_left), 0);
    return new RateLimiterRes(
      Math.max(this.points - consumedPoints, 0),
      msBeforeNext,
      consumedPoints,
      isFirstInDuration,
    );
  }

  /**
   * The library's periodic clean-up passes `Date.now()` less an hour: kept as an age, measured
   * back from the database's clock.
   */
  clearExpired(expireBefore: number): Promise<void> {
    return this.db
      .query({
        name: `${this.statementPrefix}-clear-expired`,
        text: `delete from ${this.qualifiedTable} where expire < ${DB_NOW_MS} - $1::bigint`,
        values: [Math.max(Date.now() - expireBefore, 0)],
      })
      .then(
        () => undefined,
        () => undefined, // as the library: a failed clean-up is retried on its next round
      );
  }
}

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, createPgClient } from '@switchyard/platform';
import { stopOwnInfra } from '@switchyard/testing';
import { generateKey } from './keys.js';
import { resolveSecurityOptions } from './options.js';
import { RateLimits, type LimitOutcome } from './rate-limits.js';
import { bearer, startSecuredGateway, type SecuredGateway } from './test-support.js';

/**
 * Two gateways (two Nest apps, each with its own pools) on one database: the rate limits are
 * counted in `gateway.rate_limits`, so a limit of N per window allows N requests in total
 * across them; with the table unreachable (locked) each gateway's in-memory insurance limiter answers,
 * never past what that gateway counted itself. The counters' windows run on PostgreSQL's clock, so
 * a gateway's clock (stepped, or set wrong) neither stretches nor splits them.
 */
describe('rate limits shared by two gateways through PostgreSQL', () => {
  const adminKey = generateKey().key;
  const limits = {
    perKey: { points: 4, durationSec: 60 },
    perIp: { points: 10_000, durationSec: 60 },
    authFailuresPerIp: { points: 100, durationSec: 60 },
  };
  let g1: SecuredGateway;
  let g2: SecuredGateway;

  before(async () => {
    g1 = await startSecuredGateway('gw_shared_rl', {
      auth: { enabled: true, adminKey },
      rateLimit: { ...limits, storeTimeoutMs: 1_000 },
    });
    g2 = await startSecuredGateway(
      'gw_shared_rl',
      { auth: { enabled: true, adminKey }, rateLimit: { ...limits, storeTimeoutMs: 1_000 } },
      g1.databaseUrl,
    );
  });
  after(async () => {
    await g2?.close();
    await g1?.close();
    await stopOwnInfra();
  });

  const get = (g: SecuredGateway, key: string) => fetch(`${g.url}/api/v1/events?limit=1`, { headers: bearer(key) });

  it('a per-key limit of 4 allows 4 requests in total across both gateways, not 8; the headers count down across them', async () => {
    const k = await g1.makeKey('viewer', 'shared-limit');
    const seen: { status: number; limit: string | null; remaining: string | null; retryAfter: string | null }[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await get(i % 2 === 0 ? g1 : g2, k.key);
      seen.push({
        status: res.status,
        limit: res.headers.get('ratelimit-limit'),
        remaining: res.headers.get('ratelimit-remaining'),
        retryAfter: res.headers.get('retry-after'),
      });
      await res.body?.cancel();
    }
    console.log(`# statuses across g1/g2 alternately: ${seen.map((s) => s.status).join(' ')}`);
    assert.deepEqual(
      seen.map((s) => s.status),
      [200, 200, 200, 200, 429, 429, 429, 429],
    );
    // Remaining counts down across the two processes: one counter.
    assert.deepEqual(
      seen.slice(0, 4).map((s) => s.remaining),
      ['3', '2', '1', '0'],
    );
    for (const s of seen) assert.equal(s.limit, '4');
    for (const s of seen.slice(4)) {
      assert.equal(s.remaining, '0');
      assert.ok(Number(s.retryAfter) >= 1, 'Retry-After on every 429');
    }
    // The counter is the table's row, as the limiter wrote it (every request counted, refused ones too).
    const row = await g1.pool.query<{ points: number }>('select points from gateway.rate_limits where key = $1', [
      `key:${k.id}`,
    ]);
    assert.equal(row.rows[0]?.points, 8);
  });

  it('a store that stops answering mid-window does not give a key a fresh budget: this process counted what it let through', async () => {
    const k = await g1.makeKey('viewer', 'mid-window');
    for (let i = 0; i < 3; i++) {
      const res = await get(g1, k.key);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const blocker = createPgClient({ connectionString: g1.databaseUrl }, { name: 'rate-limit-blocker-2' });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table gateway.rate_limits in access exclusive mode');
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await get(g1, k.key);
        statuses.push(res.status);
        await res.body?.cancel();
      }
      // Before, the insurance (which had counted none of them) allowed three more: 6 against a limit of 4.
      assert.deepEqual(statuses, [200, 429, 429]);
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await blocker.end();
    }
  });

  it('with the table locked (the store does not answer), the in-memory insurance limiter answers in each gateway; the store is used again once released', async () => {
    const k = await g1.makeKey('viewer', 'insured');
    const blocker = createPgClient({ connectionString: g1.databaseUrl }, { name: 'rate-limit-blocker' });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table gateway.rate_limits in access exclusive mode');
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await get(g1, k.key);
        statuses.push(res.status);
        await res.body?.cancel();
      }
      console.log(`# g1 with the store locked: ${statuses.join(' ')}`);
      // Per process now: g1's insurance allows its 4 and refuses the rest; g2 has its own.
      assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
      const other = await get(g2, k.key);
      assert.equal(other.status, 200);
      assert.equal(other.headers.get('ratelimit-remaining'), '3');
      await other.body?.cancel();
      // Nothing reached the table while it was locked.
      await blocker.query('rollback');
      const row = await g1.pool.query('select points from gateway.rate_limits where key = $1', [`key:${k.id}`]);
      assert.equal(row.rowCount, 0);
      // Released: the shared counter answers again (a fresh window in the table).
      const back = await get(g2, k.key);
      assert.equal(back.status, 200);
      assert.equal(back.headers.get('ratelimit-remaining'), '3');
      await back.body?.cancel();
      const after = await g1.pool.query<{ points: number }>('select points from gateway.rate_limits where key = $1', [
        `key:${k.id}`,
      ]);
      assert.equal(after.rows[0]?.points, 1);
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await blocker.end();
    }
  });

  it('a counter whose expiry lies an hour ahead (the clock stepped back an hour, or a gateway an hour ahead wrote it) is stale: the key gets a fresh window at once', async () => {
    const k = await g1.makeKey('viewer', 'stepped-back');
    // As the limiter left it when the clock read an hour later: exhausted, expiring an hour and a window from now.
    await g1.pool.query(
      `insert into gateway.rate_limits (key, points, expire)
       values ($1, 100, floor(extract(epoch from clock_timestamp()) * 1000)::bigint + 3600000 + 60000)`,
      [`key:${k.id}`],
    );
    const first = await get(g1, k.key);
    await first.body?.cancel();
    console.log(
      `# after an hour's step back: ${first.status}, RateLimit-Reset ${first.headers.get('ratelimit-reset')}`,
    );
    // Before, 429 with Retry-After 3660: the key was refused for an hour.
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('ratelimit-remaining'), '3');
    assert.ok(Number(first.headers.get('ratelimit-reset')) <= 60, 'the new window is one window long');
    // One counter again, on the other gateway too.
    const second = await get(g2, k.key);
    await second.body?.cancel();
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('ratelimit-remaining'), '2');
    assert.ok(Number(second.headers.get('ratelimit-reset')) <= 60);
  });

  describe('two gateways whose clocks differ by an hour', () => {
    const HOUR = 3_600_000;
    const o = resolveSecurityOptions({
      rateLimit: { ...limits, storeTimeoutMs: 5_000 },
    }).rateLimit;
    let onTime: RateLimits;
    let ahead: RateLimits;
    before(() => {
      onTime = RateLimits.create(o, g1.pool, createLogger('rl-on-time', 'silent'));
      ahead = RateLimits.create(o, g2.pool, createLogger('rl-ahead', 'silent'));
    });
    after(async () => {
      await onTime?.close();
      await ahead?.close();
    });
    /** A call made by the gateway whose Date.now() reads an hour ahead. */
    const fromAhead = async (key: string): Promise<LimitOutcome> => {
      const realNow = Date.now;
      Date.now = () => realNow() + HOUR;
      try {
        return await ahead.key(key);
      } finally {
        Date.now = realNow;
      }
    };
    const shape = (r: LimitOutcome) => [r.allowed, r.remaining];

    it('share one window of at most its length: the one ahead neither stretches it for the other nor sees it expired', async () => {
      const seen = [await fromAhead('clock-a'), await onTime.key('clock-a'), await fromAhead('clock-a')];
      seen.push(await onTime.key('clock-a'), await fromAhead('clock-a'), await onTime.key('clock-a'));
      console.log(`# msBeforeNext ahead/on time alternately: ${seen.map((s) => s.msBeforeNext).join(' ')}`);
      assert.deepEqual(seen.map(shape), [
        [true, 3],
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
        [false, 0],
      ]);
      // Before, the counter the one ahead wrote held for an hour and a window on the other.
      for (const s of seen) assert.ok(s.msBeforeNext > 0 && s.msBeforeNext <= 60_000, `msBeforeNext ${s.msBeforeNext}`);
      // And the other way round: the one ahead does not take a counter the other wrote for expired.
      const other = [await onTime.key('clock-b'), await fromAhead('clock-b')];
      assert.deepEqual(other.map(shape), [
        [true, 3],
        [true, 2],
      ]);
    });

    it('a counter the other made while this one waited for its row is counted on, not taken for one ahead and reset', async () => {
      const holder = createPgClient({ connectionString: g1.databaseUrl }, { name: 'rate-limit-row-holder' });
      await holder.connect();
      try {
        // The other gateway's insert of a new window, not yet committed: this one's statement waits for the row.
        await holder.query('begin');
        await holder.query(`insert into gateway.rate_limits (key, points, expire) values ('ip:clock-race', 1, 0)`);
        const waiting = onTime.ip('clock-race');
        for (;;) {
          const w = await g1.pool.query(
            `select 1 from pg_stat_activity
              where application_name = 'switchyard-gateway-ratelimit' and wait_event_type = 'Lock'`,
          );
          if (w.rowCount) break;
          await new Promise((r) => setTimeout(r, 5));
        }
        // Its window starts after the waiting statement began (a clock read later than that statement's start).
        await holder.query(`select pg_sleep(0.01)`);
        await holder.query(
          `update gateway.rate_limits set expire = floor(extract(epoch from clock_timestamp()) * 1000)::bigint + 60000
            where key = 'ip:clock-race'`,
        );
        await holder.query('commit');
        const res = await waiting;
        assert.deepEqual(shape(res), [true, limits.perIp.points - 2]);
        const row = await g1.pool.query<{ points: number }>('select points from gateway.rate_limits where key = $1', [
          'ip:clock-race',
        ]);
        assert.equal(row.rows[0]?.points, 2);
      } finally {
        await holder.query('rollback').catch(() => undefined);
        await holder.end();
      }
    });
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPgClient } from '@switchyard/platform';
import { stopOwnInfra } from '@switchyard/testing';
import { generateKey } from './keys.js';
import { bearer, startSecuredGateway, type SecuredGateway } from './test-support.js';

/**
 * Two gateways (two Nest apps, each with its own pools) on one database: the rate limits are
 * counted in `gateway.rate_limits`, so a limit of N per window allows N requests in total
 * across them; with the table unreachable (locked) each gateway's in-memory insurance limiter answers,
 * never past what that gateway counted itself.
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
});

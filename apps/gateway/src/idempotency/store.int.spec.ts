/**
 * The key table's upgrade, on real PostgreSQL: a table made before keys were scoped to their API
 * key (`primary key (key)`), with rows in it, is taken over by several gateways starting at once.
 * The primary key becomes `(key, owner)` once; the rows stored before answer as they did (a
 * repeat replays its first answer, a key in flight is still in flight), and another API key's
 * request with the same key is a request of its own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { IdempotencyStore, resolveIdempotencyOptions } from './index.js';

const logger = createLogger('idempotency-store-int', process.env.LOG_LEVEL ?? 'silent');

/** The table as gateways before the scoping made it. */
const LEGACY_SQL = `
create schema if not exists gateway;
create table if not exists gateway.idempotency_keys (
  key           text primary key,
  owner         text not null,
  fingerprint   text not null,
  method        text not null,
  path          text not null,
  state         text not null check (state in ('in_flight', 'done')),
  token         text not null,
  status        int,
  content_type  text,
  body          text,
  created_at    timestamptz not null,
  leased_until  timestamptz not null,
  completed_at  timestamptz,
  expires_at    timestamptz not null
);
create index if not exists idempotency_keys_expires on gateway.idempotency_keys (expires_at);
`;

describe('the key table scoped to API keys: an upgrade of a table with rows', () => {
  let pools: pg.Pool[] = [];
  let stores: IdempotencyStore[] = [];
  const request = { key: 'order-42', owner: 'key-a', fingerprint: 'f1', method: 'POST', path: '/api/v1/x' };

  before(async () => {
    const url = await freshDatabase('idem_legacy');
    pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: url, max: 2 }));
    const first = pools[0]!;
    await first.query(LEGACY_SQL);
    await first.query(
      `insert into gateway.idempotency_keys (key, owner, fingerprint, method, path, state, token, status, content_type, body, created_at, leased_until, completed_at, expires_at)
       values ('order-42', 'key-a', 'f1', 'POST', '/api/v1/x', 'done', 't1', 202, 'application/json', '{"first":true}', now(), now(), now(), now() + interval '1 hour'),
              ('order-43', 'key-a', 'f1', 'POST', '/api/v1/x', 'in_flight', 't2', null, null, null, now(), now() + interval '1 hour', null, now() + interval '1 hour')`,
    );
    stores = pools.map(
      (p) => new IdempotencyStore(p, logger, resolveIdempotencyOptions({ purgeIntervalMs: 3_600_000 })),
    );
  });

  after(async () => {
    for (const s of stores) s.close();
    await Promise.all(pools.map((p) => p.end()));
  });

  it('three gateways starting together swap the primary key once, and starting again changes nothing', async () => {
    await Promise.all(stores.map((s) => s.init()));
    const primaryKey = async () =>
      (
        await pools[0]!.query<{ cols: string[] }>(
          `select array_agg(a.attname::text order by k.ord) as cols
             from pg_constraint c
             cross join lateral unnest(c.conkey) with ordinality as k(attnum, ord)
             join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
            where c.conrelid = 'gateway.idempotency_keys'::regclass and c.contype = 'p'`,
        )
      ).rows[0]?.cols;
    assert.deepEqual(await primaryKey(), ['key', 'owner']);
    const again = new IdempotencyStore(pools[1]!, logger, resolveIdempotencyOptions({ purgeIntervalMs: 3_600_000 }));
    await again.init();
    again.close();
    assert.deepEqual(await primaryKey(), ['key', 'owner']);
    const rows = await pools[0]!.query<{ n: number }>('select count(*)::int as n from gateway.idempotency_keys');
    assert.equal(rows.rows[0]!.n, 2, 'the rows stored before are kept');
  });

  it('a row stored before answers its owner as before; another API key with the same key runs its own request', async () => {
    const store = stores[0]!;
    const replay = await store.claim(request);
    assert.deepEqual(replay, {
      kind: 'replay',
      answer: { status: 202, contentType: 'application/json', body: '{"first":true}' },
    });
    assert.equal((await store.claim({ ...request, fingerprint: 'f2' })).kind, 'mismatch');
    assert.equal((await store.claim({ ...request, key: 'order-43' })).kind, 'in_flight');

    // Another API key: its own claim, its own answer, and the first owner's answer unchanged.
    const other = { ...request, owner: 'key-b', fingerprint: 'f9' };
    const claimed = await stores[1]!.claim(other);
    assert.equal(claimed.kind, 'claimed');
    if (claimed.kind !== 'claimed') return;
    assert.equal((await stores[2]!.claim(other)).kind, 'in_flight', 'its own key is in flight for it');
    await stores[1]!.complete(
      { key: other.key, owner: other.owner, token: claimed.token },
      { status: 201, contentType: 'application/json', body: '{"second":true}' },
    );
    assert.deepEqual(await stores[2]!.claim(other), {
      kind: 'replay',
      answer: { status: 201, contentType: 'application/json', body: '{"second":true}' },
    });
    assert.deepEqual(await stores[2]!.claim(request), replay, "the first owner's answer is its own still");

    // Releasing one owner's key (a 5xx) frees only that owner's.
    const third = { ...request, key: 'order-44', owner: 'key-c' };
    const fourth = { ...third, owner: 'key-d' };
    const c3 = await store.claim(third);
    const c4 = await store.claim(fourth);
    assert.ok(c3.kind === 'claimed' && c4.kind === 'claimed');
    await store.release({ key: third.key, owner: third.owner, token: c3.token });
    assert.equal((await store.claim(third)).kind, 'claimed', 'freed for its owner');
    assert.equal((await store.claim(fourth)).kind, 'in_flight', "the other owner's is untouched");
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPgPool, isConnectionError, PG_CONNECTION_DEFAULTS, POOL_ENDED_MESSAGE } from './pg.js';

const url = process.env.TEST_DATABASE_URL;

describe(
  'a guarded pool against a real PostgreSQL',
  { skip: url ? false : 'TEST_DATABASE_URL is not set (run through scripts/run-tests.mjs)' },
  () => {
    it('end() rejects the requests queued for a connection instead of leaving them pending for good', async () => {
      const pool = createPgPool({ connectionString: url, max: 1 }, { name: 'queued-on-end' });
      const held = await pool.connect();
      // The pool's only connection is checked out: these two wait in its queue.
      const queued = [pool.query('select 1'), pool.connect().then((c) => c.release())];
      assert.equal(pool.waitingCount, 2);
      const ended = pool.end();
      const outcomes = await Promise.race([
        Promise.allSettled(queued),
        new Promise<'pending'>((r) => setTimeout(() => r('pending'), 5_000).unref()),
      ]);
      assert.notEqual(outcomes, 'pending', 'the queued requests were never answered');
      for (const o of outcomes as PromiseSettledResult<unknown>[]) {
        assert.equal(o.status, 'rejected');
        assert.equal(o.reason.message, POOL_ENDED_MESSAGE);
      }
      // The checked-out client still works and, released, lets end() finish.
      assert.equal((await held.query<{ one: number }>('select 1 as one')).rows[0]?.one, 1);
      held.release();
      await ended;
    });

    it('a request for a client of a full pool fails after the connect timeout, as a connection error, instead of queueing for good', async () => {
      const pool = createPgPool({ connectionString: url, max: 1, connectionTimeoutMillis: 300 }, { name: 'full' });
      const held = await pool.connect();
      try {
        const started = Date.now();
        const err = await pool.query('select 1').then(
          () => assert.fail('the query ran on a pool whose only client was held'),
          (e: unknown) => e,
        );
        assert.ok(isConnectionError(err), `not a connection error: ${String(err)}`);
        assert.ok(Date.now() - started < 5_000, 'the wait was not bounded by the connect timeout');
      } finally {
        held.release();
      }
      // The pool serves again once the client is back.
      assert.equal((await pool.query<{ one: number }>('select 1 as one')).rows[0]?.one, 1);
      await pool.end();
    });

    it('a session left idle inside a transaction is ended by the server, and the pool goes on with a new one', async () => {
      const pool = createPgPool(
        { connectionString: url, max: 1, idle_in_transaction_session_timeout: 300 },
        { name: 'idle-in-tx' },
      );
      const c = await pool.connect();
      await c.query('begin');
      await c.query('select pg_advisory_xact_lock(4242)');
      // The owner stalls between two statements, holding the lock.
      await new Promise((r) => setTimeout(r, 1_000));
      const err = await c.query('select 1').then(
        () => assert.fail('the stalled transaction was left open'),
        (e: unknown) => e,
      );
      assert.ok(isConnectionError(err), `not a connection error: ${String(err)}`);
      c.release(err as Error);
      // The lock went with the session: another connection takes it at once.
      assert.equal((await pool.query<{ ok: boolean }>('select pg_try_advisory_lock(4242) as ok')).rows[0]?.ok, true);
      await pool.end();
    });

    it('every pool gets the defaults unless its config says otherwise', async () => {
      const pool = createPgPool({ connectionString: url, max: 1 }, { name: 'defaults' });
      assert.equal(pool.options.connectionTimeoutMillis, PG_CONNECTION_DEFAULTS.connectionTimeoutMillis);
      const shown = await pool.query<{ v: string }>(
        "select current_setting('idle_in_transaction_session_timeout') as v",
      );
      assert.equal(shown.rows[0]?.v, '1min');
      await pool.end();
      const own = createPgPool({ connectionString: url, max: 1, connectionTimeoutMillis: 1234 }, { name: 'own' });
      assert.equal(own.options.connectionTimeoutMillis, 1234);
      await own.end();
    });
  },
);

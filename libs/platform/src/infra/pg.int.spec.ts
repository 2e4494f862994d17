import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPgPool, POOL_ENDED_MESSAGE } from './pg.js';

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
  },
);

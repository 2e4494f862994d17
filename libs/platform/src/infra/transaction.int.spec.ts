import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPgPool } from './pg.js';
import { rerunOnDeadlock, withTransaction } from './transaction.js';

const url = process.env.TEST_DATABASE_URL;

describe(
  'rerunOnDeadlock against a real PostgreSQL',
  { skip: url ? false : 'TEST_DATABASE_URL is not set (run through scripts/run-tests.mjs)' },
  () => {
    it('two transactions that lock two rows in opposite orders both end: the deadlock victim runs again', async () => {
      const pool = createPgPool({ connectionString: url, max: 4 }, { name: 'deadlock-rerun' });
      const table = `deadlock_rerun_${process.pid}`;
      try {
        await pool.query(`create table ${table} (id int primary key, v int not null default 0)`);
        await pool.query(`insert into ${table} (id) values (1), (2)`);
        const runs: string[] = [];
        const victims: string[] = [];
        // Each takes its first row, waits until the other holds its own, then asks for the other's.
        let held = 0;
        const bothHeld = () =>
          new Promise<void>((resolve) => {
            const poll = () => (held >= 2 ? resolve() : setTimeout(poll, 5));
            poll();
          });
        const crossing = (name: string, first: number, second: number) =>
          rerunOnDeadlock(() => {
            runs.push(name);
            return withTransaction(pool, async (c) => {
              await c.query(`update ${table} set v = v + 1 where id = $1`, [first]);
              held++;
              await bothHeld();
              await c.query(`update ${table} set v = v + 1 where id = $1`, [second]);
            }).catch((err: unknown) => {
              if ((err as { code?: string }).code === '40P01') victims.push(name);
              throw err;
            });
          });
        await Promise.all([crossing('a', 1, 2), crossing('b', 2, 1)]);
        assert.equal(victims.length, 1, `one deadlock victim: ${JSON.stringify({ runs, victims })}`);
        assert.equal(runs.length, 3, 'the victim ran once more');
        const rows = await pool.query<{ v: number }>(`select v from ${table} order by id`);
        assert.deepEqual(
          rows.rows.map((r) => r.v),
          [2, 2],
          'both transactions committed their two updates once',
        );
        // Any other error goes on at once.
        let tries = 0;
        await assert.rejects(
          rerunOnDeadlock(() => {
            tries++;
            return pool.query('select 1/0');
          }),
          { code: '22012' },
        );
        assert.equal(tries, 1);
      } finally {
        await pool.query(`drop table if exists ${table}`);
        await pool.end();
      }
    });
  },
);

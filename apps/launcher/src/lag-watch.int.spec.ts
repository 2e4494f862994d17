import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { LAG_EVENTS, LAG_FOR_MS, ReadModelLagWatch } from './lag-watch.js';

describe('read-model lag, for the units that run them (real PostgreSQL)', () => {
  let pool: pg.Pool;
  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('lag_watch'), max: 2 });
    await pool.query(`create schema read_models;
      create table read_models.checkpoints (name text primary key, position bigint not null, updated_at timestamptz not null default now())`);
  });
  after(async () => {
    await pool.end();
  });

  it('a read model far behind the log for a while is named with its lag; caught up, nothing is said', async () => {
    const head = 50_000;
    let now = 0;
    const watch = new ReadModelLagWatch({
      pool,
      store: { headPosition: async () => head },
      logger: createLogger('lag-watch-int', 'silent'),
      now: () => now,
    });
    await pool.query(
      `insert into read_models.checkpoints (name, position) values ('workflow_executions', 1000), ('delegation.tasks', 49990)`,
    );
    await watch.poll();
    const workflows = (n: string) => n === 'workflow_executions';
    assert.equal(watch.trouble(workflows), undefined, 'not at once: a burst of appends is caught up in moments');
    now = LAG_FOR_MS + 1;
    await watch.poll();
    assert.match(watch.trouble(workflows) ?? '', /workflow_executions 49000 events behind/);
    assert.equal(
      watch.trouble((n) => n === 'delegation.tasks'),
      undefined,
      'within LAG_EVENTS of the head',
    );
    // Caught up to within LAG_EVENTS: nothing to say.
    await pool.query(`update read_models.checkpoints set position = $1 where name = 'workflow_executions'`, [
      head - LAG_EVENTS + 1,
    ]);
    await watch.poll();
    assert.equal(watch.trouble(workflows), undefined);
  });
});

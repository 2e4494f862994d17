import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPgPool } from '@switchyard/platform';
import { startReplicatedPostgres, type ReplicatedPostgres } from './replica.js';
import { until } from './until.js';

describe('startReplicatedPostgres: a real streaming replica of a real primary', () => {
  let r: ReplicatedPostgres;
  before(async () => {
    r = await startReplicatedPostgres();
  });
  after(async () => {
    await r?.stop();
  });

  it('streams what the primary commits; is read-only; a paused replay holds the replica back until resumed', async () => {
    const db = await r.database('replica_smoke');
    const primary = createPgPool({ connectionString: db.primary, max: 2 }, { name: 'primary' });
    const replica = createPgPool({ connectionString: db.replica, max: 2 }, { name: 'replica' });
    try {
      const role = await replica.query<{ standby: boolean }>('select pg_is_in_recovery() as standby');
      assert.equal(role.rows[0]?.standby, true);
      const sender = await primary.query<{ state: string }>('select state from pg_stat_replication');
      assert.equal(sender.rows[0]?.state, 'streaming');
      await primary.query('create table t (n int)');
      await primary.query('insert into t values (1)');
      await until(
        'the replica replays the insert',
        async () => (await replica.query('select n from t')).rowCount === 1,
        10_000,
      );
      await assert.rejects(replica.query('insert into t values (2)'), (e: { code?: string }) => e.code === '25006');
      await r.pauseReplay();
      await primary.query('insert into t values (2)');
      // The primary has it; the paused replica does not (its replay position stays).
      assert.equal((await primary.query('select n from t')).rowCount, 2);
      await new Promise((res) => setTimeout(res, 300));
      assert.equal((await replica.query('select n from t')).rowCount, 1);
      await r.resumeReplay();
      await until(
        'the replica catches up after resume',
        async () => (await replica.query('select n from t')).rowCount === 2,
        10_000,
      );
    } finally {
      await primary.end();
      await replica.end();
    }
  });
});

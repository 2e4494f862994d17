import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshDatabase } from '@switchyard/testing';
import { buildVersion, checkDataFormat, DATA_FORMAT } from './data-format.js';

describe('the data format check (real PostgreSQL)', () => {
  let pool: pg.Pool;
  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('data_format'), max: 2 });
  });
  after(async () => {
    await pool?.end();
  });

  it("records this build's format, takes it again, and refuses data a newer build wrote before changing anything", async () => {
    await checkDataFormat(pool, `switchyard ${buildVersion()}`);
    await checkDataFormat(pool, `switchyard ${buildVersion()}`);
    const row = (await pool.query(`SELECT format, written_by FROM switchyard.data_format`)).rows[0];
    assert.equal(row.format, DATA_FORMAT);
    assert.match(row.written_by, /^switchyard \d+\.\d+\.\d+/);
    await pool.query(`UPDATE switchyard.data_format SET format = $1, written_by = 'switchyard 9.9.9'`, [
      DATA_FORMAT + 1,
    ]);
    await assert.rejects(
      checkDataFormat(pool, 'switchyard 0.1.0'),
      new RegExp(
        `written by a newer Switchyard \\(switchyard 9\\.9\\.9, data format ${DATA_FORMAT + 1}\\).*Downgrades are not supported`,
      ),
    );
    assert.equal((await pool.query(`SELECT format FROM switchyard.data_format`)).rows[0].format, DATA_FORMAT + 1);
  });
});

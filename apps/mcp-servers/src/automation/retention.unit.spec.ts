import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { silentLogger } from '../test-helpers.js';
import { RECORD_PURGE_INTERVAL_MS, RecordRetention } from './retention.js';

/** A retention whose database answers every delete with no rows; it counts the rounds that ran. */
function counted(retentionDays: number) {
  const cutoffs: Date[] = [];
  const pool = { query: async () => ({ rowCount: 0, rows: [] }) } as unknown as pg.Pool;
  const retention = new RecordRetention({
    pool,
    logger: silentLogger,
    retentionDays,
    expiredOneShots: async (cutoff) => {
      cutoffs.push(cutoff);
      return [];
    },
    expireOneShot: async () => true,
  });
  return { retention, cutoffs };
}

describe('RecordRetention.maybePurge', () => {
  it('runs a round on the first tick, then once every interval, with the cutoff the retention gives', async () => {
    const { retention, cutoffs } = counted(30);
    const t0 = Date.parse('2026-06-01T00:00:00Z');
    retention.maybePurge(new Date(t0));
    await retention.settled();
    retention.maybePurge(new Date(t0 + 60_000));
    await retention.settled();
    retention.maybePurge(new Date(t0 + RECORD_PURGE_INTERVAL_MS - 1));
    await retention.settled();
    assert.equal(cutoffs.length, 1);
    retention.maybePurge(new Date(t0 + RECORD_PURGE_INTERVAL_MS));
    await retention.settled();
    assert.deepEqual(
      cutoffs.map((c) => c.toISOString()),
      ['2026-05-02T00:00:00.000Z', '2026-05-02T00:10:00.000Z'],
    );
  });

  it('never runs with a retention of 0 days', async () => {
    const { retention, cutoffs } = counted(0);
    retention.maybePurge(new Date());
    await retention.settled();
    assert.equal(cutoffs.length, 0);
  });
});

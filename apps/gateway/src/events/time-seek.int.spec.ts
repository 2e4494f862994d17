import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshDatabase } from '@switchyard/testing';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { readEventsPage } from './paging.js';
import { eventsQuerySchema } from './schemas.js';
import { auditQuerySchema, readAuditPage } from '../audit/audit.js';

const BASE = Date.parse('2026-09-01T00:00:00.000Z');
const EVENTS = 25_000;
const at = (position: number) => new Date(BASE + position * 1_000);

/**
 * A read of the whole log bounded in time starts where that time is (a binary search over
 * positions), and one newest-first ends once it passed `since`: "events since an hour ago" on a
 * log of three million events walked it from position 0, a window of 10,000 positions per
 * request. Real PostgreSQL; the log's times spread one second apart by hand, as months of history.
 */
describe('time-bounded reads of the log seek by time (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  before(async () => {
    const url = await freshDatabase('gw_time_seek');
    pool = new pg.Pool({ connectionString: url, max: 4 });
    store = new PostgresEventStore({ pool });
    await store.init();
    for (let i = 0; i < EVENTS; i += 1_000) {
      const batch: NewEvent[] = Array.from({ length: 1_000 }, (_, k) => ({
        type: (i + k) % 1_000 === 0 ? 'Milestone' : 'Tick',
        data: { n: i + k },
        metadata: { correlationId: `c${i + k}`, actor: 'apikey:history', timestamp: at(i + k).toISOString() },
      }));
      await store.append(`history-${i}`, batch);
    }
    await pool.query(`update eventstore.events set recorded_at = $1::timestamptz + make_interval(secs => position)`, [
      new Date(BASE),
    ]);
  });
  after(async () => {
    await store.close();
    await pool.end();
  });

  it('events since a time late in the log: found in one request, from the first one recorded then', async () => {
    const since = at(24_500);
    const p = await readEventsPage(
      store,
      eventsQuerySchema.parse({ since: since.toISOString(), limit: '3' }),
      '/api/v1/events',
    );
    assert.deepEqual(
      p.events.map((e) => e.position),
      [24_500, 24_501, 24_502],
    );
    // A rare type since then: its one event, and the log's end.
    const rare = await readEventsPage(
      store,
      eventsQuerySchema.parse({ since: since.toISOString(), type: 'Milestone', limit: '10' }),
      '/api/v1/events',
    );
    assert.deepEqual(
      rare.events.map((e) => e.position),
      [],
      'no Milestone after 24,500 (the last is at 24,000)',
    );
    assert.equal(rare.next, null);
  });

  it('newest first with `since`: the page ends at that time (next null), not at position 0', async () => {
    const p = await readEventsPage(
      store,
      eventsQuerySchema.parse({ since: at(24_990).toISOString(), direction: 'backwards', limit: '100' }),
      '/api/v1/events',
    );
    assert.equal(p.events.length, 10);
    assert.equal(p.events.at(-1)!.position, 24_990);
    assert.equal(p.next, null);
  });

  it('the audit log: until a time early in the log, newest first, starts there', async () => {
    const until = at(2_000);
    const a = await readAuditPage(store, auditQuerySchema.parse({ until: until.toISOString(), limit: '2' }));
    assert.deepEqual(
      a.entries.map((e) => e.position),
      [2_000, 1_999],
    );
    const since = await readAuditPage(
      store,
      auditQuerySchema.parse({ since: at(24_998).toISOString(), direction: 'forwards', limit: '5' }),
    );
    assert.deepEqual(
      since.entries.map((e) => e.position),
      [24_998, 24_999],
    );
    assert.equal(since.next, null);
  });
});

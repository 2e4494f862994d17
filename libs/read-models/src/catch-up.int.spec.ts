import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { freshDatabase } from '@switchyard/testing';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { AppError } from '@switchyard/platform';
import { ProjectionRunner } from './projection-runner.js';
import type { Projection } from './projection.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const meta = { correlationId: 'catch-up', timestamp: '2026-01-01T00:00:00.000Z' };
const ticks = (n: number): NewEvent[] =>
  Array.from({ length: n }, (_, i) => ({ id: randomUUID(), type: 'Tick', data: { i }, metadata: meta }));

/** A projection that takes `perEventMs` per event, and stops after `hangAfter` events until `release()`. */
function slowProjection(
  name: string,
  perEventMs: number,
  hangAfter = Infinity,
): Projection & { applied: () => number; release: () => void } {
  let applied = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  return {
    name,
    handles: ['Tick'],
    setup: async () => undefined,
    apply: async () => {
      if (applied >= hangAfter) await gate;
      await sleep(perEventMs);
      applied++;
    },
    applied: () => applied,
    release: () => release(),
  };
}

describe('ProjectionRunner.catchUp (real PostgreSQL)', () => {
  let store: PostgresEventStore;
  let pool: pg.Pool;
  before(async () => {
    const url = await freshDatabase('rm_catch_up');
    store = new PostgresEventStore({ connectionString: url });
    await store.init();
    pool = new pg.Pool({ connectionString: url, max: 4 });
    await store.append('tick-1', ticks(120));
  });
  after(async () => {
    await store.close();
    await pool.end();
  });

  it('waits as long as the read models move, past any one stall bound, and rejects once they stop moving', async () => {
    // 120 events at 10 ms each: over a second in all, ten times the 120 ms bound.
    const moving = slowProjection('moving', 10);
    const runner = new ProjectionRunner({ store, db: { pool }, projections: [moving], batchSize: 5 });
    await runner.start();
    try {
      const t0 = performance.now();
      await runner.catchUp(undefined, 120);
      assert.equal(moving.applied(), 120);
      assert.ok(performance.now() - t0 > 240, 'it took longer than two bounds');
    } finally {
      await runner.stop();
    }

    await store.append('tick-2', ticks(20));
    const stuck = slowProjection('stuck', 1, 30);
    const stalled = new ProjectionRunner({ store, db: { pool }, projections: [stuck], batchSize: 5 });
    await stalled.start();
    try {
      await assert.rejects(
        stalled.catchUp(undefined, 200),
        (err: unknown) => err instanceof AppError && err.code === 'timeout' && /no progress/.test(err.message),
      );
      assert.equal(stuck.applied(), 30);
    } finally {
      stuck.release();
      await stalled.stop();
    }
  });
});

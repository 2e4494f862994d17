import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { freshDatabase } from '@switchyard/testing';
import { PostgresEventStore, type RecordedEvent } from '@switchyard/event-store';
import { withTransaction } from '@switchyard/platform';
import {
  LATENCY_KEPT_MS,
  LATENCY_KEPT_SUCCESSES,
  performanceProjection,
  queryPerformance,
  tasksProjection,
  trimTaskLatency,
} from './delegation.js';
import { ProjectionRunner } from './projection-runner.js';
import type { Projection } from './projection.js';
import { readIntegrationStatus } from './status/read.js';

const SCHEMA = 'lat_trim';
const NOW = Date.parse('2026-12-07T12:00:00.000Z');
const OLD = NOW - LATENCY_KEPT_MS - 3_600_000;
const RECENT = NOW - 10 * 60_000;

let position = 0;
/** A task's end as the dispatcher records it. */
function ended(agent: string, ok: boolean, at: number, durationMs: number): RecordedEvent {
  const task_id = randomUUID();
  const base = { task_id, task_type: 'analyze', agent, instance: `${agent}-1`, assignment: 1, duration_ms: durationMs };
  const iso = new Date(at).toISOString();
  return {
    id: randomUUID(),
    streamId: `task-${task_id}`,
    type: ok ? 'TaskCompleted' : 'TaskFailed',
    data: ok
      ? { ...base, result: {}, completed_at: iso }
      : { ...base, attempts: 1, error: { code: 'agent_error', message: 'no' }, failed_at: iso },
    metadata: { correlationId: task_id, timestamp: iso },
    revision: 0,
    position: position++,
    recordedAt: new Date(at),
  };
}

describe('delegation task_latency trim (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let url: string;
  before(async () => {
    url = await freshDatabase('rm_latency_trim');
    pool = new pg.Pool({ connectionString: url, max: 3 });
  });
  after(async () => {
    await pool.end();
  });

  it('deletes only rows no reader asks for: the answers of the performance and status reads stay the same', async () => {
    const projection = performanceProjection(SCHEMA);
    const events: RecordedEvent[] = [];
    // analyst: more old successes than are kept, old failures, recent successes and a recent failure.
    for (let i = 0; i < LATENCY_KEPT_SUCCESSES + 5; i++)
      events.push(ended('analyst', true, OLD + i * 1_000, 100 + (i % 50)));
    for (let i = 0; i < 3; i++) events.push(ended('analyst', false, OLD + i * 500, 9_000));
    events.push(ended('analyst', true, RECENT, 40), ended('analyst', true, RECENT + 1, 60));
    events.push(ended('analyst', false, RECENT + 2, 7_000));
    // writer: few, all old: every success is among its newest kept ones.
    for (let i = 0; i < 5; i++) events.push(ended('writer', true, OLD + i, 300 + i));
    await withTransaction(pool, async (c) => {
      await projection.setup(c);
      await tasksProjection(SCHEMA).setup(c);
      await projection.applyBatch!(c, events);
    });
    const rows = async () =>
      (await pool.query<{ n: string }>(`select count(*) as n from ${SCHEMA}.task_latency`)).rows[0]!.n;
    const performanceBefore = await queryPerformance(pool, SCHEMA);
    assert.equal(Number(await rows()), LATENCY_KEPT_SUCCESSES + 5 + 3 + 3 + 5);

    // In batches of 4 with a cap of 6 a call: 6, then the rest (4), then nothing.
    assert.equal(await trimTaskLatency(pool, SCHEMA, NOW, { batch: 4, maxRows: 6 }), 6);
    assert.equal(await trimTaskLatency(pool, SCHEMA, NOW, { batch: 4, maxRows: 6 }), 4);
    assert.equal(await trimTaskLatency(pool, SCHEMA, NOW), 0);
    // Gone: the 7 oldest analyst successes (1,007 kept to 1,000) and its 3 old failures.
    assert.equal(Number(await rows()), LATENCY_KEPT_SUCCESSES + 1 + 5);
    const left = await pool.query<{ agent: string; succeeded: boolean; n: string }>(
      `select agent, succeeded, count(*) as n from ${SCHEMA}.task_latency group by 1, 2 order by 1, 2`,
    );
    assert.deepEqual(
      left.rows.map((r) => [r.agent, r.succeeded, Number(r.n)]),
      [
        ['analyst', false, 1],
        ['analyst', true, LATENCY_KEPT_SUCCESSES],
        ['writer', true, 5],
      ],
    );
    assert.deepEqual(await queryPerformance(pool, SCHEMA), performanceBefore);
    // The status read's last hour (recent successes only) is what it was.
    const status = await readIntegrationStatus(pool, { now: new Date(NOW), delegationSchema: SCHEMA });
    const analyst = status.agents.items.find((a) => a.agent === 'analyst');
    assert.ok(analyst, JSON.stringify(status.agents));
    assert.equal(analyst.last_hour.latency_p50_ms, 50);
  });

  it("the runner runs a projection's housekeeping soon after start and every everyMs, and stop() waits for the one in flight", async () => {
    const store = new PostgresEventStore({ connectionString: url });
    await store.init();
    const runs: number[] = [];
    let inFlight = false;
    const trimming: Projection = {
      name: 'trimming',
      handles: ['Nothing'],
      setup: async () => undefined,
      apply: async () => undefined,
      housekeeping: {
        everyMs: 50,
        run: async (p) => {
          inFlight = true;
          await p.query('select pg_sleep(0.05)');
          runs.push(Date.now());
          inFlight = false;
          if (runs.length === 2) throw new Error('a failed round does not end the rounds');
          return runs.length;
        },
      },
    };
    const runner = new ProjectionRunner({ store, db: { pool }, projections: [trimming], housekeepingFirstMs: 20 });
    await runner.start();
    const deadline = Date.now() + 10_000;
    while (runs.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(runs.length >= 4, `four rounds within 10 s (saw ${runs.length})`);
    while (!inFlight && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await runner.stop();
    assert.equal(inFlight, false, 'stop() returned while a round was still running');
    const count = runs.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(runs.length, count, 'no round after stop()');
    await store.close();
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { freshDatabase } from '@switchyard/testing';
import { ProjectionRunner } from './projection-runner.js';
import { getExecutionView, listExecutions, workflowExecutionsProjection } from './workflow-executions.js';

const logger = createLogger('workflow-durations-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * The engine's clock stepped back a minute while a 7 s step ran: the step's end is stamped before
 * its dispatch. Durations are differences of those wall-clock stamps, and the execution and its
 * attempt read -53992 ms. Both ways the read model is written (event by event, and a batch folded
 * in memory) report 0 instead.
 */
describe('durations across a step of the clock back (real PostgreSQL)', () => {
  let storePool: pg.Pool;
  let store: PostgresEventStore;
  const runs: { runner: ProjectionRunner; pool: pg.Pool; how: string }[] = [];
  const id = 'wf-stepped-back';

  before(async () => {
    storePool = new pg.Pool({ connectionString: await freshDatabase('durations_store'), max: 4 });
    store = new PostgresEventStore({ pool: storePool, logger });
    await store.init();
    const t0 = Date.parse('2026-01-01T02:47:35.165Z');
    const iso = (ms: number) => new Date(t0 + ms).toISOString();
    let seq = 0;
    const ev = (type: string, data: Record<string, unknown>, ms: number): NewEvent => ({
      type,
      data,
      metadata: { correlationId: `c-${++seq}`, actor: 'test', timestamp: iso(ms) },
    });
    const definition = { id: 'slow', version: 1, name: 'Slow', steps: [{ id: 'q', uses: 'mcp:database/query' }] };
    // 7 s of work; the clock went back 61 s 2.5 s into it.
    const back = -61_000;
    const { position } = await store.append(`workflow_execution-${id}`, [
      ev('WorkflowStarted', { executionId: id, definition, input: {}, seed: 1, startedAt: iso(0) }, 0),
      ev(
        'StepScheduled',
        {
          stepId: 'q',
          attempt: 1,
          idempotencyKey: `${id}:q:1`,
          uses: 'mcp:database/query',
          input: {},
          timeoutMs: 30_000,
          scheduledAt: iso(1),
        },
        1,
      ),
      ev(
        'StepDispatched',
        { stepId: 'q', attempt: 1, idempotencyKey: `${id}:q:1`, dispatchedAt: iso(8), timeoutAt: iso(30_008) },
        8,
      ),
      ev('StepSucceeded', { stepId: 'q', attempt: 1, output: { rows: 1 }, at: iso(7_000 + back) }, 7_000 + back),
      ev('WorkflowCompleted', { outputs: { q: { rows: 1 } }, completedAt: iso(7_010 + back) }, 7_010 + back),
    ]);
    for (const [how, projection] of [
      ['event by event', { ...workflowExecutionsProjection, applyBatch: undefined }],
      ['folded in a batch', workflowExecutionsProjection],
    ] as const) {
      const url = await freshDatabase(`durations_${how === 'event by event' ? 'each' : 'batch'}`);
      const runner = new ProjectionRunner({ store, db: { connectionString: url }, projections: [projection], logger });
      await runner.start();
      await runner.waitFor(position, undefined, 30_000);
      runs.push({ runner, pool: new pg.Pool({ connectionString: url, max: 2 }), how });
    }
  });

  after(async () => {
    for (const r of runs) {
      await r.runner.stop();
      await r.pool.end();
    }
    await store?.close();
    await storePool?.end();
  });

  it('the execution and its attempt: 0, not negative', async () => {
    for (const { pool, how } of runs) {
      const view = await getExecutionView(pool, id);
      assert.ok(view, how);
      assert.equal(view.status, 'completed', how);
      assert.equal(view.duration_ms, 0, `${how}: execution`);
      assert.equal(view.steps[0]?.attempt_history[0]?.duration_ms, 0, `${how}: attempt`);
      const listed = await listExecutions(pool, { limit: 10 });
      assert.equal(listed.items.find((x) => x.execution_id === id)?.duration_ms, 0, `${how}: listed`);
      const stored = await pool.query<{ duration_ms: number }>(
        `select duration_ms from read_models.workflow_step_attempts where execution_id = $1`,
        [id],
      );
      assert.equal(stored.rows[0]?.duration_ms, 0, `${how}: stored`);
    }
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { freshDatabase } from '@switchyard/testing';
import { ProjectionRunner } from './projection-runner.js';
import { workflowExecutionsProjection } from './workflow-executions.js';

const logger = createLogger('late-item-int', process.env.LOG_LEVEL ?? 'silent');
const t0 = Date.parse('2026-12-08T08:00:00.000Z');
const at = (ms: number) => new Date(t0 + ms).toISOString();
const ev = (type: string, data: Record<string, unknown>, ms: number): NewEvent => ({
  type,
  data,
  metadata: { correlationId: 'c-late', actor: 'test', timestamp: at(ms) },
});

const definition = {
  id: 'late',
  version: 1,
  name: 'Items stopped by a failed sibling',
  steps: [
    {
      id: 'each',
      uses: 'mcp:automation/create_schedule',
      for_each: { items: '${input.names}', concurrency: 3, compensate: 'undo' },
      on_error: 'continue',
    },
    { id: 'undo', uses: 'mcp:automation/delete_schedule', with: { schedule: '${output.id}' } },
  ],
};

describe('workflow read model: an item stopped by its step failure that succeeds late (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let runner: ProjectionRunner;

  before(async () => {
    const url = await freshDatabase('rm_late_item');
    pool = new pg.Pool({ connectionString: url, max: 4 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowExecutionsProjection], logger });
    await runner.start();
  });
  after(async () => {
    await runner?.stop();
    await store?.close();
    await pool?.end();
  });

  it("the item's attempt row says succeeded with its output and no error; the step row stays failed", async () => {
    const unit = (i: number) => ({ stepId: 'each', itemIndex: i, attempt: 1, idempotencyKey: `late-1:each[${i}]:1` });
    const invalid = { code: 'validation', message: 'bad arguments', retryable: false };
    const events: NewEvent[] = [
      ev(
        'WorkflowStarted',
        { executionId: 'late-1', definition, input: { names: ['a', 'b', 'c'] }, seed: 1, startedAt: at(0) },
        0,
      ),
      ev('StepExpanded', { stepId: 'each', items: ['a', 'b', 'c'] }, 1),
    ];
    for (let i = 0; i < 3; i++) {
      events.push(
        ev(
          'StepScheduled',
          { ...unit(i), uses: 'mcp:automation/create_schedule', input: { i }, timeoutMs: 9000, scheduledAt: at(10) },
          10,
        ),
        ev('StepDispatched', { ...unit(i), dispatchedAt: at(20), timeoutAt: at(9020) }, 20),
      );
    }
    const stopped = (i: number) =>
      ev('StepStopped', { ...unit(i), dispatched: true, reason: 'step "each" failed', at: at(40) }, 40);
    events.push(
      ev('StepSucceeded', { ...unit(0), output: { id: 's0' }, at: at(30) }, 30),
      ev('StepFailed', { ...unit(1), error: invalid, final: true, at: at(40) }, 40),
      ev('StepFailed', { stepId: 'each', attempt: 1, error: invalid, final: true, at: at(40) }, 40),
      stopped(2),
    );
    const { position } = await store.append('workflow_execution-late-1', events);
    await runner.waitFor(position);
    const late = await store.append('workflow_execution-late-1', [
      ev('StepSucceeded', { ...unit(2), output: { id: 's2' }, at: at(3000), late: true }, 3000),
    ]);
    await runner.waitFor(late.position);

    const step = await pool.query<{ status: string; error: unknown; output: unknown }>(
      `select status, error, output from read_models.workflow_steps where execution_id = 'late-1' and step_id = 'each'`,
    );
    assert.deepEqual(step.rows[0], { status: 'failed', error: invalid, output: null });
    const attempts = await pool.query<{ item_index: number; status: string; output: unknown; error: unknown }>(
      `select item_index, status, output, error from read_models.workflow_step_attempts
        where execution_id = 'late-1' and step_id = 'each' order by item_index`,
    );
    assert.deepEqual(attempts.rows, [
      { item_index: 0, status: 'succeeded', output: { id: 's0' }, error: null },
      { item_index: 1, status: 'failed', output: null, error: invalid },
      { item_index: 2, status: 'succeeded', output: { id: 's2' }, error: null },
    ]);
  });
});

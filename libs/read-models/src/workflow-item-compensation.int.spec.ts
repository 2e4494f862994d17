import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { freshDatabase } from '@switchyard/testing';
import { ProjectionRunner } from './projection-runner.js';
import { workflowExecutionsProjection } from './workflow-executions.js';

const logger = createLogger('item-compensation-int', process.env.LOG_LEVEL ?? 'silent');
const t0 = Date.parse('2026-12-07T08:00:00.000Z');
const at = (ms: number) => new Date(t0 + ms).toISOString();
const ev = (type: string, data: Record<string, unknown>, ms: number): NewEvent => ({
  type,
  data,
  metadata: { correlationId: 'c-items', actor: 'test', timestamp: at(ms) },
});

/** A for_each step of three items undone item by item on a cancel (the `compensate` of for_each). */
const definition = {
  id: 'items',
  version: 1,
  name: 'Items undone one by one',
  steps: [
    { id: 'each', uses: 'mcp:automation/create_schedule', for_each: { items: '${input.names}', compensate: 'undo' } },
    { id: 'undo', uses: 'mcp:automation/delete_schedule', with: { schedule: '${output.id}' } },
  ],
};

/** A for_each step whose item 1 fails for good while item 2 is at its server (its success comes late). */
const lateDefinition = {
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

describe('workflow read model: for_each items undone one by one, and an item that succeeds late (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let runner: ProjectionRunner;
  const stream = 'workflow_execution-items-1';
  const append = async (events: NewEvent[]) => {
    const { position } = await store.append(stream, events);
    await runner.waitFor(position);
  };
  const undo = async () => {
    const step = await pool.query<{ kind: string; status: string; ended_at: Date | null; error: unknown }>(
      `select kind, status, ended_at, error from read_models.workflow_steps where execution_id = 'items-1' and step_id = 'undo'`,
    );
    const attempts = await pool.query<{ item_index: number; status: string; output: unknown; error: unknown }>(
      `select item_index, status, output, error from read_models.workflow_step_attempts
        where execution_id = 'items-1' and step_id = 'undo' order by item_index`,
    );
    return { step: step.rows[0]!, attempts: attempts.rows };
  };

  before(async () => {
    const url = await freshDatabase('rm_item_comp');
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

  it('an attempt row per item undone; the step row runs until the last ends, and fails when one failed', async () => {
    const unit = (i: number) => ({ stepId: 'each', itemIndex: i, attempt: 1, idempotencyKey: `items-1:each[${i}]:1` });
    const events: NewEvent[] = [
      ev(
        'WorkflowStarted',
        { executionId: 'items-1', definition, input: { names: ['a', 'b', 'c'] }, seed: 1, startedAt: at(0) },
        0,
      ),
      ev('StepExpanded', { stepId: 'each', items: ['a', 'b', 'c'] }, 1),
    ];
    for (let i = 0; i < 3; i++) {
      events.push(
        ev(
          'StepScheduled',
          { ...unit(i), uses: 'mcp:automation/create_schedule', input: { i }, timeoutMs: 1000, scheduledAt: at(10) },
          10,
        ),
        ev('StepDispatched', { ...unit(i), dispatchedAt: at(20), timeoutAt: at(1020) }, 20),
      );
    }
    events.push(
      ev('StepSucceeded', { ...unit(0), output: { id: 's0' }, at: at(30) }, 30),
      ev('StepSucceeded', { ...unit(1), output: { id: 's1' }, at: at(31) }, 31),
      ev('ExecutionCancelRequested', { reason: 'operator', actor: 'test', requestedAt: at(40) }, 40),
    );
    const started = (i: number) =>
      ev(
        'CompensationStarted',
        {
          stepId: 'undo',
          itemIndex: i,
          forStepId: 'each',
          cause: 'canceled',
          uses: 'mcp:automation/delete_schedule',
          input: { schedule: `s${i}` },
          idempotencyKey: `items-1:compensate:undo[${i}]:1`,
          timeoutMs: 1000,
          startedAt: at(50 + i),
        },
        50 + i,
      );
    events.push(started(0), started(1));
    await append(events);
    let seen = await undo();
    assert.equal(seen.step.kind, 'compensation', "a for_each step's compensate names a compensation step");
    assert.equal(seen.step.status, 'running');
    assert.deepEqual(
      seen.attempts.map((a) => [a.item_index, a.status]),
      [
        [0, 'dispatched'],
        [1, 'dispatched'],
      ],
    );

    await append([
      ev('CompensationSucceeded', { stepId: 'undo', itemIndex: 0, output: { deleted: 's0' }, at: at(60) }, 60),
    ]);
    seen = await undo();
    assert.equal(seen.step.status, 'running', 'item 1 is still being undone');
    assert.equal(seen.step.ended_at, null);
    assert.deepEqual(seen.attempts[0], { item_index: 0, status: 'succeeded', output: { deleted: 's0' }, error: null });

    // Item 2 succeeds late (it was in flight at the cancel) and is undone too.
    await append([ev('StepSucceeded', { ...unit(2), output: { id: 's2' }, at: at(70) }, 70), started(2)]);
    await append([
      ev(
        'CompensationFailed',
        { stepId: 'undo', itemIndex: 1, error: { code: 'not_found', message: 'gone' }, at: at(80) },
        80,
      ),
    ]);
    seen = await undo();
    assert.equal(seen.step.status, 'failed', 'one item could not be undone');
    assert.equal(seen.step.ended_at, null, 'item 2 is still being undone');
    await append([
      ev('CompensationSucceeded', { stepId: 'undo', itemIndex: 2, output: { deleted: 's2' }, at: at(90) }, 90),
    ]);
    seen = await undo();
    assert.equal(seen.step.status, 'failed');
    assert.deepEqual(seen.step.ended_at, new Date(at(90)), 'ended with the last item undone');
    assert.deepEqual(seen.step.error, { code: 'not_found', message: 'gone' });
    assert.deepEqual(
      seen.attempts.map((a) => [a.item_index, a.status]),
      [
        [0, 'succeeded'],
        [1, 'failed'],
        [2, 'succeeded'],
      ],
    );
  });

  it("an item stopped by its step's failure that succeeds late: its attempt row says succeeded with its output and no error; the step row stays failed", async () => {
    const unit = (i: number) => ({ stepId: 'each', itemIndex: i, attempt: 1, idempotencyKey: `late-1:each[${i}]:1` });
    const invalid = { code: 'validation', message: 'bad arguments', retryable: false };
    const events: NewEvent[] = [
      ev(
        'WorkflowStarted',
        {
          executionId: 'late-1',
          definition: lateDefinition,
          input: { names: ['a', 'b', 'c'] },
          seed: 1,
          startedAt: at(0),
        },
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

/**
 * One truth in both answers of the execution detail, through the real store and the real
 * projection: the detail folded from the stream at its last revision (what `?at=` answers) says
 * what the read model's detail says, for a canceled execution whose for_each items were undone one
 * by one (one undo failed; step instants left out: the state does not keep when steps ended), and
 * for an execution retried within a step and as a whole (every attempt row, instants included).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { ProjectionRunner, getExecutionView, workflowExecutionsProjection } from '@switchyard/read-models';
import { freshDatabase } from '@switchyard/testing';
import {
  stateAt,
  workflowExecutionStream,
  type WorkflowCommand,
  type WorkflowDefinitionInput,
  type WorkflowEvent,
} from '@switchyard/domain';
import { runWorkflowCommand } from '@switchyard/workflow-executions';
import { detailFromReadModel, detailFromState, type ExecutionDetail } from './execution-detail.js';

const logger = createLogger('execution-detail-item-compensation', process.env.LOG_LEVEL ?? 'silent');
const links = { self: 's', events: 'e', cancel: 'c' };

const definition: WorkflowDefinitionInput = {
  id: 'item_undo',
  version: 1,
  name: 'item undo',
  steps: [
    {
      id: 'mk',
      uses: 'mcp:database/query',
      for_each: { items: '${{ [0, 1] }}', concurrency: 2, compensate: 'undo' },
      with: { sql: 'insert', params: ['${{ item }}'] },
    },
    { id: 'hold', uses: 'mcp:database/query', needs: ['mk'], with: { sql: 'select pg_sleep(30)' } },
    { id: 'undo', uses: 'mcp:database/query', with: { sql: 'delete', params: ['${{ output.id }}'] } },
  ],
};

const INSTANTS = [
  'scheduled_at',
  'dispatched_at',
  'timeout_at',
  'ended_at',
  'duration_ms',
  'started_at',
  'next_retry_at',
];
const withoutInstants = (d: ExecutionDetail) =>
  d.steps.map((s) => {
    const step: Record<string, unknown> = { ...s };
    for (const k of INSTANTS) delete step[k];
    step.attempt_history = s.attempt_history.map((a) => {
      const row: Record<string, unknown> = { ...a };
      for (const k of INSTANTS) delete row[k];
      return row;
    });
    return step;
  });

/** `a` retries once within a run; `mk` has two items; the execution failed at `a`, was retried, and ended. */
const retried: WorkflowDefinitionInput = {
  id: 'retried_runs',
  version: 1,
  name: 'retried runs',
  steps: [
    {
      id: 'a',
      uses: 'mcp:database/query',
      retry: { attempts: 2 },
      timeout_ms: 10_000,
      with: { sql: 'select 1' },
    },
    {
      id: 'mk',
      uses: 'mcp:database/query',
      needs: ['a'],
      for_each: { items: '${{ [0, 1] }}', concurrency: 2 },
      retry: { attempts: 2 },
      with: { sql: 'insert', params: ['${{ item }}'] },
    },
  ],
};

describe('the detail folded from the stream equals the read model (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let runner: ProjectionRunner;

  before(async () => {
    const url = await freshDatabase('exec_detail_item_undo');
    pool = new pg.Pool({ connectionString: url, max: 3 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowExecutionsProjection], logger });
    await runner.start();
  });

  after(async () => {
    await runner?.stop();
    await store?.close();
    await pool?.end();
  });

  it('the undo step, with its two item rows (one failed), reads the same in both, and every step in outline', async () => {
    const id = `item-undo-${newId().slice(0, 12)}`;
    const meta = (ms: number) => ({
      timestamp: new Date(Date.parse('2026-01-01T00:00:00.000Z') + ms).toISOString(),
      actor: 'user:test',
      correlationId: id,
    });
    const item = (i: number) => ({ stepId: 'mk', itemIndex: i });
    const commands: WorkflowCommand[] = [
      { type: 'StartWorkflow', data: { executionId: id, definition, input: {} }, metadata: meta(0) },
      ...[0, 1].map((i): WorkflowCommand => ({
        type: 'RecordStepDispatched',
        data: { ...item(i), attempt: 1 },
        metadata: meta(10),
      })),
      ...[0, 1].map((i): WorkflowCommand => ({
        type: 'RecordStepSucceeded',
        data: { ...item(i), attempt: 1, output: { id: 100 + i } },
        metadata: meta(20 + i),
      })),
      { type: 'RequestCancel', data: { reason: 'no longer needed' }, metadata: meta(1_000) },
      {
        type: 'RecordCompensationFailed',
        data: {
          stepId: 'undo',
          itemIndex: 0,
          error: { code: 'query_failed', message: 'division by zero', retryable: false },
        },
        metadata: meta(1_100),
      },
      {
        type: 'RecordCompensationSucceeded',
        data: { stepId: 'undo', itemIndex: 1, output: { deleted: 1 } },
        metadata: meta(1_200),
      },
    ];
    for (const c of commands) await runWorkflowCommand(store, id, c);
    const recorded = await store.readStream(workflowExecutionStream(id));
    assert.equal(recorded[recorded.length - 1]!.type, 'WorkflowCanceled');
    const folded = stateAt(
      recorded.map((e) => ({
        revision: e.revision,
        event: { type: e.type, data: e.data, metadata: e.metadata } as unknown as WorkflowEvent,
      })),
      recorded[recorded.length - 1]!.revision,
    );
    assert.ok(folded.status === 'canceled');
    await runner.waitFor(recorded[recorded.length - 1]!.position);
    const view = await getExecutionView(pool, id);
    assert.ok(view);
    const readModel = detailFromReadModel(view, links);
    const fromStream = detailFromState(id, folded, links);

    const undo = readModel.steps.find((s) => s.step_id === 'undo')!;
    assert.deepEqual(
      [undo.kind, undo.status, undo.attempts, undo.compensation_for, undo.attempt_history.length],
      ['compensation', 'failed', 1, 'mk', 2],
    );
    assert.equal(fromStream.status, readModel.status);
    const [foldedSteps, readSteps] = [withoutInstants(fromStream), withoutInstants(readModel)];
    assert.deepEqual(
      foldedSteps.find((s) => s.step_id === 'undo'),
      readSteps.find((s) => s.step_id === 'undo'),
    );
    // The other steps, as far as this case goes (what each was and where it ended).
    const outline = (steps: Record<string, unknown>[]) =>
      steps.map((s) => [s.step_id, s.kind, s.status, s.attempts, s.compensation_for]);
    assert.deepEqual(outline(foldedSteps), outline(readSteps));
  });

  it('a step retried within its run and the execution retried after failing: the same rows, instants included', async () => {
    const id = `retried-${newId().slice(0, 12)}`;
    const meta = (ms: number) => ({
      timestamp: new Date(Date.parse('2026-01-01T00:00:00.000Z') + ms).toISOString(),
      actor: 'user:test',
      correlationId: id,
    });
    const a = { stepId: 'a' };
    const item = (i: number) => ({ stepId: 'mk', itemIndex: i });
    const down = { code: 'unavailable', message: 'server down', retryable: true };
    const timedOut = (ref: { stepId: string; itemIndex?: number }, attempt: number, ms: number): WorkflowCommand => ({
      type: 'RecordStepTimedOut',
      data: { ...ref, attempt },
      metadata: meta(ms),
    });
    const commands: WorkflowCommand[] = [
      { type: 'StartWorkflow', data: { executionId: id, definition: retried, input: {} }, metadata: meta(0) },
      { type: 'RecordStepDispatched', data: { ...a, attempt: 1 }, metadata: meta(5) },
      { type: 'RecordStepFailed', data: { ...a, attempt: 1, error: down }, metadata: meta(40) },
      { type: 'RetryStep', data: { ...a, attempt: 2 }, metadata: meta(1_040) },
      { type: 'RecordStepDispatched', data: { ...a, attempt: 2 }, metadata: meta(1_050) },
      timedOut(a, 2, 31_050),
      // The first run failed at `a`; the retry runs it again, then both items.
      { type: 'RetryExecution', data: { reason: 'server is back' }, metadata: meta(60_000) },
      { type: 'RecordStepDispatched', data: { ...a, attempt: 3 }, metadata: meta(60_010) },
      { type: 'RecordStepSucceeded', data: { ...a, attempt: 3, output: { rows: [] } }, metadata: meta(60_030) },
      ...[0, 1].map((i): WorkflowCommand => ({
        type: 'RecordStepDispatched',
        data: { ...item(i), attempt: 1 },
        metadata: meta(60_040),
      })),
      { type: 'RecordStepSucceeded', data: { ...item(0), attempt: 1, output: { id: 1 } }, metadata: meta(60_070) },
      { type: 'RecordStepFailed', data: { ...item(1), attempt: 1, error: down }, metadata: meta(60_080) },
      { type: 'RetryStep', data: { ...item(1), attempt: 2 }, metadata: meta(61_080) },
      { type: 'RecordStepDispatched', data: { ...item(1), attempt: 2 }, metadata: meta(61_090) },
      { type: 'RecordStepSucceeded', data: { ...item(1), attempt: 2, output: { id: 2 } }, metadata: meta(61_120) },
    ];
    for (const c of commands) await runWorkflowCommand(store, id, c);
    const recorded = await store.readStream(workflowExecutionStream(id));
    const events = recorded.map((e) => ({
      revision: e.revision,
      event: { type: e.type, data: e.data, metadata: e.metadata } as unknown as WorkflowEvent,
    }));
    const last = recorded[recorded.length - 1]!;
    assert.equal(last.type, 'WorkflowCompleted', recorded.map((e) => e.type).join(','));
    await runner.waitFor(last.position);
    const view = await getExecutionView(pool, id);
    assert.ok(view);
    const readModel = detailFromReadModel(view, links);
    const at = (revision: number) =>
      detailFromState(
        id,
        stateAt(events, revision) as Parameters<typeof detailFromState>[1],
        links,
        events.filter((e) => e.revision <= revision).map((e) => e.event),
      );
    const rows = (d: ExecutionDetail, stepId: string) =>
      d.steps
        .find((s) => s.step_id === stepId)!
        .attempt_history.map((r) => `${r.item_index ?? '-'}:${r.attempt}:${r.status}`);
    assert.deepEqual(rows(readModel, 'a'), ['-:1:failed', '-:2:timed_out', '-:3:succeeded']);
    assert.deepEqual(rows(readModel, 'mk'), ['0:1:succeeded', '1:1:failed', '1:2:succeeded']);
    // At the last revision: every row, with its instants and durations, as the read model has it.
    const now = at(last.revision);
    for (const stepId of ['a', 'mk'])
      assert.deepEqual(
        now.steps.find((s) => s.step_id === stepId)!.attempt_history,
        readModel.steps.find((s) => s.step_id === stepId)!.attempt_history,
        stepId,
      );
    // Each step's start too: the first run's, which the retry does not move.
    for (const s of readModel.steps)
      assert.equal(
        now.steps.find((x) => x.step_id === s.step_id)!.started_at,
        s.started_at,
        `started_at of ${s.step_id}`,
      );
    // Right after the retry: the first run's two attempts are still there (the state keeps none).
    const retriedAt = recorded.find((e) => e.type === 'ExecutionRetried')!.revision;
    assert.deepEqual(rows(at(retriedAt), 'a'), ['-:1:failed', '-:2:timed_out']);
    assert.equal(at(retriedAt).steps.find((s) => s.step_id === 'a')!.status, 'pending');
    // Before the first timeout: attempt 2 in flight, with its deadline.
    const second = at(
      recorded.findIndex((e) => e.type === 'StepDispatched' && (e.data as { attempt: number }).attempt === 2),
    );
    const inFlight = second.steps.find((s) => s.step_id === 'a')!.attempt_history[1]!;
    assert.equal(inFlight.status, 'dispatched');
    assert.ok(inFlight.timeout_at !== null && inFlight.ended_at === null);
  });
});

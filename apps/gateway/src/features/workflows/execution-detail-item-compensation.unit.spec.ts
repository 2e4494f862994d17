/**
 * The detail folded from the stream (what `?at=` answers) shows a for_each step's compensation as
 * the read model does: a compensation of its for_each step, run once per item that succeeded, an
 * attempt row each, failed when one of them failed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decideWorkflow,
  evolveWorkflow,
  initialWorkflowState,
  type WorkflowCommand,
  type WorkflowDefinitionInput,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { detailFromState, type ExecutionDetail } from './execution-detail.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const meta = (ms: number) => ({
  timestamp: new Date(T0 + ms).toISOString(),
  actor: 'user:tester',
  correlationId: 'corr-1',
});

/** Two items made, then a step that waits; a cancel undoes each item by its own run of `undo`. */
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
const divisionByZero = { code: 'query_failed', message: 'division by zero', retryable: false };

/** The events of the commands, each decided on the state the previous ones left, and the state after each event. */
function run(commands: WorkflowCommand[]): { events: WorkflowEvent[]; states: WorkflowExecutionState[] } {
  let state: WorkflowExecutionState = initialWorkflowState;
  const events: WorkflowEvent[] = [];
  const states: WorkflowExecutionState[] = [];
  for (const c of commands) {
    for (const e of decideWorkflow(c, state)) {
      state = evolveWorkflow(state, e);
      events.push(e);
      states.push(state);
    }
  }
  return { events, states };
}

const undoOf = (s: WorkflowExecutionState): ExecutionDetail['steps'][number] => {
  assert.ok(s.status !== 'not_started');
  return detailFromState('ex1', s, { self: 's', events: 'e', cancel: 'c' }).steps.find((x) => x.step_id === 'undo')!;
};
const rows = (step: ExecutionDetail['steps'][number]) =>
  step.attempt_history.map((a) => [
    a.item_index,
    a.attempt,
    a.status,
    a.idempotency_key,
    a.input,
    a.output,
    (a.error as { message?: string } | null)?.message ?? null,
  ]);

describe('the execution detail folded from the stream: a for_each step whose items a cancel undoes', () => {
  const item = (i: number) => ({ stepId: 'mk', itemIndex: i });
  const { events, states } = run([
    { type: 'StartWorkflow', data: { executionId: 'ex1', definition, input: {}, seed: 42 }, metadata: meta(0) },
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
      data: { stepId: 'undo', itemIndex: 0, error: divisionByZero },
      metadata: meta(1_100),
    },
    {
      type: 'RecordCompensationSucceeded',
      data: { stepId: 'undo', itemIndex: 1, output: { deleted: 1 } },
      metadata: meta(1_200),
    },
  ]);
  const at = (type: WorkflowEvent['type'], nth = 0) => states[events.map((e) => e.type).indexOf(type) + nth]!;
  const started = (i: number) => events.find((e) => e.type === 'CompensationStarted' && e.data.itemIndex === i)!;
  const keyOf = (i: number) => (started(i).data as { idempotencyKey: string }).idempotencyKey;

  it('the cancel started one compensation per item and ended canceled', () => {
    assert.deepEqual(
      events.filter((e) => e.type === 'CompensationStarted').map((e) => [e.data.stepId, e.data.itemIndex]),
      [
        ['undo', 0],
        ['undo', 1],
      ],
    );
    assert.equal(events[events.length - 1]!.type, 'WorkflowCanceled');
  });

  it('at the last revision: a compensation of mk that failed, one attempt row per item', () => {
    const undo = undoOf(states[states.length - 1]!);
    assert.equal(undo.kind, 'compensation');
    assert.equal(undo.compensation_for, 'mk');
    assert.equal(undo.status, 'failed');
    assert.equal(undo.attempts, 1);
    assert.deepEqual(undo.error, divisionByZero);
    assert.deepEqual(rows(undo), [
      [0, 1, 'failed', keyOf(0), { sql: 'delete', params: [100] }, null, 'division by zero'],
      [1, 1, 'succeeded', keyOf(1), { sql: 'delete', params: [101] }, { deleted: 1 }, null],
    ]);
    assert.equal(undo.started_at, meta(1_000).timestamp);
  });

  it('while the undos run: running, each row dispatched; once one failed: failed, the other still dispatched', () => {
    const running = undoOf(at('CompensationStarted', 1));
    assert.deepEqual(
      [running.kind, running.status, running.attempts, running.error],
      ['compensation', 'running', 1, null],
    );
    assert.deepEqual(
      running.attempt_history.map((a) => [a.item_index, a.status]),
      [
        [0, 'dispatched'],
        [1, 'dispatched'],
      ],
    );
    const oneFailed = undoOf(at('CompensationFailed'));
    assert.equal(oneFailed.status, 'failed');
    assert.deepEqual(
      oneFailed.attempt_history.map((a) => [a.item_index, a.status]),
      [
        [0, 'failed'],
        [1, 'dispatched'],
      ],
    );
  });

  it('before the cancel: a compensation that has not run', () => {
    const before = undoOf(at('ExecutionCancelRequested', -1));
    assert.deepEqual(
      [before.kind, before.status, before.attempts, before.compensation_for, before.attempt_history],
      ['compensation', 'pending', 0, null, []],
    );
  });
});

/**
 * The detail built from the decider's state (what `?at=` and a lagging read model answer) says of
 * a step's attempts what its events say, as the read model does: a retry that waits, or that a
 * cancel abandoned before it was scheduled, is no attempt made; a for_each step's compensation is
 * a compensation of that step, run once per item that succeeded, an attempt row each, failed when
 * one of them failed; an item its step's failure stopped, whose call finished at its server
 * anyway, reads succeeded while its step stays failed.
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
const links = { self: 's', events: 'e', cancel: 'c' };

/** One step with its own timeout and a retry policy whose backoff outlasts the test's cancel. */
const definition = {
  id: 'retry_cancel',
  version: 1,
  name: 'retry then cancel',
  steps: [
    {
      id: 't',
      uses: 'mcp:database/query',
      timeout_ms: 300,
      retry: { attempts: 3, backoff: { initialMs: 10_000, maxMs: 10_000 } },
      with: { sql: 'select 1' },
    },
  ],
};

/** Two items made, then a step that waits; a cancel undoes each item by its own run of `undo`. */
const itemUndoDefinition: WorkflowDefinitionInput = {
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

/** Three items made; item 1 fails for good while item 2 is at its server, whose call finishes anyway. */
const lateItemDefinition: WorkflowDefinitionInput = {
  id: 'late_item',
  version: 1,
  name: 'late item',
  steps: [
    {
      id: 'make',
      uses: 'mcp:automation/create_schedule',
      for_each: { items: '${{ [1, 2, 3] }}', concurrency: 3, compensate: 'unmake' },
      with: { after: '${{ item }}' },
      on_error: 'continue',
    },
    { id: 'slow', uses: 'agent:revenue_analysis' },
    { id: 'unmake', uses: 'mcp:automation/delete_schedule', with: { schedule: '${{ output.id }}' } },
  ],
};
const invalid = { code: 'validation', message: 'bad arguments', retryable: false };

/** The events of the commands, each decided on the state the previous ones left, and the states after each event. */
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

const detail = (s: WorkflowExecutionState): ExecutionDetail => {
  assert.ok(s.status !== 'not_started');
  return detailFromState('ex1', s, links);
};
const stepT = (d: ExecutionDetail) => d.steps.find((s) => s.step_id === 't')!;
const history = (d: ExecutionDetail) =>
  stepT(d).attempt_history.map((a) => [a.attempt, a.status, (a.error as { code?: string } | null)?.code ?? null]);

describe('the execution detail folded from the stream', () => {
  const unit = { stepId: 't' };
  const { events, states } = run([
    { type: 'StartWorkflow', data: { executionId: 'ex1', definition, input: {}, seed: 42 }, metadata: meta(0) },
    { type: 'RecordStepDispatched', data: { ...unit, attempt: 1 }, metadata: meta(10) },
    { type: 'RecordStepTimedOut', data: { ...unit, attempt: 1 }, metadata: meta(310) },
    { type: 'RequestCancel', data: { reason: 'no longer needed' }, metadata: meta(2_000) },
  ]);

  it('the events are those of a step canceled while it waited for its retry', () => {
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'WorkflowStarted',
        'StepScheduled',
        'StepDispatched',
        'StepTimedOut',
        'StepFailed',
        'StepRetryScheduled',
        'ExecutionCancelRequested',
        'StepStopped',
        'WorkflowCanceled',
      ],
    );
  });

  it('while the retry waits: one attempt made (it timed out), and when the next is due', () => {
    const waiting = detail(states[events.findIndex((e) => e.type === 'StepRetryScheduled')]!);
    assert.equal(stepT(waiting).status, 'running');
    assert.equal(stepT(waiting).attempts, 1);
    assert.deepEqual(history(waiting), [[1, 'timed_out', 'timeout']]);
    assert.equal(stepT(waiting).attempt_history[0]!.idempotency_key, 'ex1:t:1');
    assert.equal(stepT(waiting).next_retry_at, new Date(T0 + 310 + 10_000).toISOString());
  });

  it('canceled during the wait: still the one attempt, no attempt 2, the step failed as canceled and no retry due', () => {
    const last = detail(states[states.length - 1]!);
    assert.equal(last.status, 'canceled');
    assert.equal(stepT(last).status, 'failed');
    assert.equal((stepT(last).error as { code: string }).code, 'canceled');
    assert.equal(stepT(last).attempts, 1);
    assert.deepEqual(history(last), [[1, 'timed_out', 'timeout']]);
    assert.equal(stepT(last).next_retry_at, null);
  });

  it('a retry scheduled and then abandoned by the cancel is an attempt made, shown canceled', () => {
    const retried = run([
      { type: 'StartWorkflow', data: { executionId: 'ex1', definition, input: {}, seed: 42 }, metadata: meta(0) },
      { type: 'RecordStepDispatched', data: { ...unit, attempt: 1 }, metadata: meta(10) },
      { type: 'RecordStepTimedOut', data: { ...unit, attempt: 1 }, metadata: meta(310) },
      { type: 'RetryStep', data: { ...unit, attempt: 2 }, metadata: meta(10_310) },
      { type: 'RequestCancel', data: { reason: 'no longer needed' }, metadata: meta(10_400) },
    ]);
    assert.ok(retried.events.some((e) => e.type === 'StepScheduled' && e.data.attempt === 2));
    const last = detail(retried.states[retried.states.length - 1]!);
    assert.equal(stepT(last).attempts, 2);
    assert.deepEqual(
      history(last).map(([attempt, status]) => [attempt, status]),
      [[2, 'canceled']],
    );
  });
});

const undoOf = (s: WorkflowExecutionState): ExecutionDetail['steps'][number] => {
  assert.ok(s.status !== 'not_started');
  return detailFromState('ex1', s, links).steps.find((x) => x.step_id === 'undo')!;
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
    {
      type: 'StartWorkflow',
      data: { executionId: 'ex1', definition: itemUndoDefinition, input: {}, seed: 42 },
      metadata: meta(0),
    },
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

describe('the execution detail folded from the stream: a late item success', () => {
  const item = (i: number) => ({ stepId: 'make', itemIndex: i });
  const { events, states } = run([
    {
      type: 'StartWorkflow',
      data: { executionId: 'ex1', definition: lateItemDefinition, input: {}, seed: 42 },
      metadata: meta(0),
    },
    ...[0, 1, 2].map((i): WorkflowCommand => ({
      type: 'RecordStepDispatched',
      data: { ...item(i), attempt: 1 },
      metadata: meta(10),
    })),
    { type: 'RecordStepSucceeded', data: { ...item(0), attempt: 1, output: { id: 's0' } }, metadata: meta(20) },
    { type: 'RecordStepFailed', data: { ...item(1), attempt: 1, error: invalid }, metadata: meta(30) },
    // Item 2 was stopped by the failure; its call finished at its server anyway.
    { type: 'RecordStepSucceeded', data: { ...item(2), attempt: 1, output: { id: 's2' } }, metadata: meta(3_000) },
  ]);

  it("the item's attempt reads succeeded with its output and no error; the step stays failed", () => {
    const state = states[states.length - 1]!;
    assert.ok(events.some((e) => e.type === 'StepStopped' && e.data.itemIndex === 2));
    assert.ok(state.status === 'running');
    const make = detailFromState('ex1', state, links).steps.find((s) => s.step_id === 'make')!;
    assert.equal(make.status, 'failed');
    assert.deepEqual(make.error, invalid);
    assert.deepEqual(
      make.attempt_history.map((a) => [
        a.item_index,
        a.status,
        a.output,
        (a.error as { code?: string } | null)?.code ?? null,
      ]),
      [
        [0, 'succeeded', { id: 's0' }, null],
        [1, 'failed', null, 'validation'],
        [2, 'succeeded', { id: 's2' }, null],
      ],
    );
  });
});

/**
 * The detail built from the decider's state (what `?at=` and a lagging read model answer) says of
 * a step's attempts what its events say, as the read model does: a retry that waits, or that a
 * cancel abandoned before it was scheduled, is no attempt made.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decideWorkflow,
  evolveWorkflow,
  initialWorkflowState,
  type WorkflowCommand,
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

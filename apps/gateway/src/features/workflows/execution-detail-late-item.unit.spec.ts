/**
 * The detail folded from the stream shows an item its step's failure stopped, whose call finished
 * at its server anyway, as the events tell it: the item's attempt succeeded, the step failed.
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
import { detailFromState } from './execution-detail.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const meta = (ms: number) => ({
  timestamp: new Date(T0 + ms).toISOString(),
  actor: 'user:tester',
  correlationId: 'corr-1',
});

const definition: WorkflowDefinitionInput = {
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

function run(commands: WorkflowCommand[]): { events: WorkflowEvent[]; state: WorkflowExecutionState } {
  let state: WorkflowExecutionState = initialWorkflowState;
  const events: WorkflowEvent[] = [];
  for (const c of commands) {
    for (const e of decideWorkflow(c, state)) {
      state = evolveWorkflow(state, e);
      events.push(e);
    }
  }
  return { events, state };
}

describe('the execution detail folded from the stream: a late item success', () => {
  const item = (i: number) => ({ stepId: 'make', itemIndex: i });
  const { events, state } = run([
    { type: 'StartWorkflow', data: { executionId: 'ex1', definition, input: {}, seed: 42 }, metadata: meta(0) },
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
    assert.ok(events.some((e) => e.type === 'StepStopped' && e.data.itemIndex === 2));
    assert.ok(state.status === 'running');
    const make = detailFromState('ex1', state, { self: 's', events: 'e', cancel: 'c' }).steps.find(
      (s) => s.step_id === 'make',
    )!;
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

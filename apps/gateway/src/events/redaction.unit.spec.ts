import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  eventsForCaller,
  executionDetailForCaller,
  executionSummaryForCaller,
  REDACTED_PAYLOAD,
  redactEventPayloads,
  taskViewForCaller,
} from './redaction.js';
import type { EventJson } from './schemas.js';

const event = (type: string, data: Record<string, unknown>): EventJson => ({
  id: 'e1',
  streamId: 's-1',
  type,
  revision: 0,
  position: 1,
  recordedAt: '2026-01-01T00:00:00.000Z',
  data,
  metadata: { correlationId: 'c' },
});

describe('payload redaction for viewers', () => {
  it('replaces tool arguments/results, step inputs/outputs and task contexts/results; keeps the rest', () => {
    const r = redactEventPayloads(
      event('McpToolSucceeded', {
        server: 'fetch',
        tool: 'http_request',
        result: { value: { rows: [1] }, size: 9, truncated: false },
      }),
    );
    assert.deepEqual(r.data, { server: 'fetch', tool: 'http_request', result: REDACTED_PAYLOAD });
    assert.equal(
      (
        redactEventPayloads(event('StepSucceeded', { stepId: 'a', output: { secret: 1 } })).data as Record<
          string,
          unknown
        >
      )['output'],
      REDACTED_PAYLOAD,
    );
    assert.equal(
      (
        redactEventPayloads(event('TaskSubmitted', { task_id: 't', context: { q: 1 } })).data as Record<string, unknown>
      )['context'],
      REDACTED_PAYLOAD,
    );
    const other = event('ApiKeyCreated', { id: 'x' });
    assert.equal(redactEventPayloads(other), other);
  });

  it('applies only when asked (the caller is a viewer); outside a request nothing is redacted', () => {
    const e = event('McpToolCalled', { arguments: { sql: 'select 1' } });
    assert.deepEqual(eventsForCaller([e], false), [e]);
    assert.deepEqual(eventsForCaller([e]), [e], 'no request context: no key, no redaction');
    assert.equal((eventsForCaller([e], true)[0]!.data as Record<string, unknown>)['arguments'], REDACTED_PAYLOAD);
  });

  it('an execution detail keeps status, timings and errors; inputs and outputs go', () => {
    const d = {
      execution_id: 'x',
      status: 'completed',
      input: { customer: 1 },
      output: { total: 2 },
      steps: [
        {
          step_id: 'a',
          status: 'succeeded',
          output: { rows: [] },
          error: null,
          attempt_history: [{ attempt: 1, input: { q: 1 }, output: null, error: null }],
        },
      ],
    };
    const r = executionDetailForCaller(d, true);
    assert.equal(r.input, REDACTED_PAYLOAD);
    assert.equal(r.output, REDACTED_PAYLOAD);
    assert.equal(r.steps[0]!.output, REDACTED_PAYLOAD);
    assert.deepEqual(r.steps[0]!.attempt_history[0], {
      attempt: 1,
      input: REDACTED_PAYLOAD,
      output: null,
      error: null,
    });
    assert.equal(r.steps[0]!.status, 'succeeded');
    assert.equal(executionDetailForCaller(d, false), d);
  });

  it("an execution in the list loses its input and output for a viewer (a running one's null output stays null)", () => {
    const done = { execution_id: 'e', status: 'completed', input: { n: 1 }, output: { v: 2 }, error: null };
    const running = { execution_id: 'r', status: 'running', input: { n: 1 }, output: null, error: null };
    assert.deepEqual(executionSummaryForCaller(done, true), {
      ...done,
      input: REDACTED_PAYLOAD,
      output: REDACTED_PAYLOAD,
    });
    assert.deepEqual(executionSummaryForCaller(running, true), { ...running, input: REDACTED_PAYLOAD });
    assert.equal(executionSummaryForCaller(done, false), done);
  });

  it('a task view loses its result for a viewer', () => {
    const done: { task_id: string; result?: unknown } = { task_id: 't', result: { x: 1 } };
    const queued: { task_id: string; result?: unknown } = { task_id: 't' };
    assert.deepEqual(taskViewForCaller(done, true), { task_id: 't', result: REDACTED_PAYLOAD });
    assert.deepEqual(taskViewForCaller(queued, true), { task_id: 't' });
  });
});

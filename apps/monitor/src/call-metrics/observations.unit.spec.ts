import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { callMetricNames as N, samplesOf, toObservation, windowSamples } from './observations.js';

const recordedAt = new Date('2026-01-01T00:00:10Z');
const at = '2026-01-01T00:00:00.000Z';
const t = Date.parse(at);

describe('toObservation', () => {
  it('reads MCP successes and failures, with the event time', () => {
    assert.deepEqual(
      toObservation({
        type: 'McpToolSucceeded',
        data: { server: 'fs', tool: 'read', call_id: 'c', duration_ms: 12, outcome: 'success', attempts: 1, at },
        recordedAt,
      }),
      { kind: 'mcp', server: 'fs', tool: 'read', outcome: 'success', errorCode: null, durationMs: 12, at: t },
    );
    assert.deepEqual(
      toObservation({
        type: 'McpToolFailed',
        data: { server: 'fs', tool: 'read', duration_ms: 3, outcome: 'error', error_code: 'timeout', at },
        recordedAt,
      }),
      { kind: 'mcp', server: 'fs', tool: 'read', outcome: 'error', errorCode: 'timeout', durationMs: 3, at: t },
    );
  });

  it('reads task ends; a timeout lasts its timeout; without a time it takes the recorded one', () => {
    assert.deepEqual(
      toObservation({
        type: 'TaskCompleted',
        data: { task_id: 'x', agent: 'a', task_type: 'sum', duration_ms: 900, completed_at: at },
        recordedAt,
      }),
      { kind: 'agent', agent: 'a', taskType: 'sum', outcome: 'completed', errorCode: null, durationMs: 900, at: t },
    );
    assert.deepEqual(
      toObservation({
        type: 'TaskFailed',
        data: { agent: 'a', task_type: 'sum', duration_ms: 5, error: { code: 'agent_error', message: 'no' } },
        recordedAt,
      }),
      {
        kind: 'agent',
        agent: 'a',
        taskType: 'sum',
        outcome: 'failed',
        errorCode: 'agent_error',
        durationMs: 5,
        at: recordedAt.getTime(),
      },
    );
    assert.deepEqual(
      toObservation({
        type: 'TaskTimedOut',
        data: { agent: 'a', task_type: 'sum', timeout_ms: 30_000, timed_out_at: at },
        recordedAt,
      }),
      {
        kind: 'agent',
        agent: 'a',
        taskType: 'sum',
        outcome: 'timed_out',
        errorCode: 'timeout',
        durationMs: 30_000,
        at: t,
      },
    );
  });

  it('ignores other types and throws on a handled type without the needed fields', () => {
    assert.equal(toObservation({ type: 'TaskSubmitted', data: {}, recordedAt }), null);
    assert.throws(() => toObservation({ type: 'McpToolSucceeded', data: { server: 'fs' }, recordedAt }));
    assert.throws(() =>
      toObservation({
        type: 'McpToolFailed',
        data: { server: 'fs', tool: 't', duration_ms: 1, outcome: 'success' },
        recordedAt,
      }),
    );
  });
});

describe('samplesOf', () => {
  it('a call gives its latency and a 0/1 error sample; a rejected call no latency', () => {
    const base = { kind: 'mcp', server: 's', tool: 't', errorCode: null, durationMs: 7, at: t } as const;
    assert.deepEqual(
      samplesOf({ ...base, outcome: 'success' }).map((s) => [s.metric, s.value]),
      [
        [N.mcpCallError, 0],
        [N.mcpCallMs, 7],
      ],
    );
    assert.deepEqual(
      samplesOf({ ...base, outcome: 'tool_error' }).map((s) => [s.metric, s.value]),
      [
        [N.mcpCallError, 1],
        [N.mcpCallMs, 7],
      ],
    );
    assert.deepEqual(
      samplesOf({ ...base, outcome: 'rejected' }).map((s) => [s.metric, s.value]),
      [[N.mcpCallError, 1]],
    );
    const task = samplesOf({
      kind: 'agent',
      agent: 'a',
      taskType: 'x',
      outcome: 'timed_out',
      errorCode: 'timeout',
      durationMs: 9,
      at: t,
    });
    assert.deepEqual(task, [
      { metric: N.agentTaskMs, labels: { agent: 'a', task_type: 'x' }, ts: t, value: 9 },
      { metric: N.agentTaskError, labels: { agent: 'a', task_type: 'x' }, ts: t, value: 1 },
    ]);
  });
});

describe('windowSamples', () => {
  it('p95 and avg per series with calls, error rate in %', () => {
    const labels = { server: 's', tool: 't' };
    const out = windowSamples(
      'mcp',
      [
        { labels, count: 4, avg: 10, p95: 30 },
        { labels: { server: 'q', tool: 't' }, count: 0, avg: 0, p95: 0 },
      ],
      [{ labels, count: 3, avg: 1 / 3, p95: 1 }],
      1000,
    );
    assert.deepEqual(out, [
      { metric: N.mcpCallP95Ms, labels, ts: 1000, value: 30 },
      { metric: N.mcpCallAvgMs, labels, ts: 1000, value: 10 },
      { metric: N.mcpCallErrorRatePercent, labels, ts: 1000, value: 33.333 },
    ]);
    assert.equal(
      windowSamples('agent', [{ labels: { agent: 'a', task_type: 'x' }, count: 1, avg: 5, p95: 5 }], [], 1)[0]!.metric,
      N.agentTaskP95Ms,
    );
  });
});

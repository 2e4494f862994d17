import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import { DomainError } from '../../decider.js';
import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { workflowExecutionDecider } from './decider.js';
import { decideAfter, nextActions } from './saga.js';
import { at, cmd, fold, history, invalid, meta, T0, types, unavailable } from './spec-helpers.js';
import { AGENT_QUEUE_WAIT_BUDGET_MS, STEP_QUEUE_WAIT_BUDGET_MS, TRANSIENT_RETRY_BUDGET_MS } from './timing.js';
import type { StepError, WorkflowCommand, WorkflowEvent, WorkflowExecutionState } from './types.js';

const spec = DeciderSpecification.for(workflowExecutionDecider);
const isCode = (code: string) => (e: unknown) => e instanceof DomainError && e.code === code;

/** a and b are independent; c needs both and maps their outputs. */
const diamond: WorkflowDefinitionInput = {
  id: 'diamond',
  version: 1,
  name: 'Diamond',
  input: { type: 'object', properties: { email: { type: 'string' } }, required: ['email'] },
  steps: [
    { id: 'a', uses: 'mcp:database/query', with: { sql: 'select 1', params: ['${{ input.email }}'] } },
    { id: 'b', uses: 'agent:revenue_analysis', with: {} },
    {
      id: 'c',
      uses: 'mcp:automation/send_webhook',
      needs: ['a', 'b'],
      with: {
        total: '${{ steps.a.output.total * 2 }}',
        text: 'for ${{ input.email }}: ${{ steps.b.output.summary }}',
        raw: 'literal',
      },
    },
  ],
  outputs: { total: '${{ steps.a.output.total }}', sent: '${{ steps.c.output.ok }}' },
};
const diamondInput = { email: 'ann@example.com' };

const state = (events: WorkflowEvent[]): WorkflowExecutionState => fold(events);

describe('WorkflowExecution: not_started', () => {
  it('StartWorkflow starts and schedules every step without needs, in parallel', () => {
    spec
      .given([])
      .when(cmd.start(diamond, diamondInput))
      .then((events) => {
        assert.deepEqual(types(events), ['WorkflowStarted', 'StepScheduled:a', 'StepScheduled:b']);
        const started = events[0]!;
        assert.equal(started.type, 'WorkflowStarted');
        if (started.type !== 'WorkflowStarted') return;
        assert.equal(started.data.executionId, 'ex1');
        assert.equal(started.data.seed, 42);
        assert.deepEqual(started.data.input, diamondInput);
        assert.deepEqual(events[1], {
          type: 'StepScheduled',
          data: {
            stepId: 'a',
            attempt: 1,
            idempotencyKey: 'ex1:a:1',
            uses: 'mcp:database/query',
            input: { sql: 'select 1', params: ['ann@example.com'] },
            // Its size as JSON, counted once here so that a fold does not serialise it again.
            inputChars: JSON.stringify({ sql: 'select 1', params: ['ann@example.com'] }).length,
            timeoutMs: 300_000,
            scheduledAt: T0,
          },
          metadata: meta(),
        });
      });
  });

  it("a dispatch names who started the execution (its WorkflowStarted's actor), for its turn at a busy server", () => {
    const started = history(cmd.start(diamond, diamondInput));
    const state = fold(started);
    assert.equal(state.status === 'running' && state.startedBy, 'user:tester');
    const { dispatch } = nextActions(state, T0);
    assert.deepEqual(
      dispatch.map((d) => [d.stepId, d.startedBy]),
      [
        ['a', 'user:tester'],
        ['b', 'user:tester'],
      ],
    );
  });

  it("a sub-workflow started by the engine on behalf of its parent's starter dispatches for that starter", () => {
    const start = cmd.start(diamond, diamondInput);
    const child = history({
      ...start,
      data: { ...start.data, onBehalfOf: 'apikey:parent-starter' },
      metadata: meta(T0, 'system:orchestrator'),
    } as WorkflowCommand);
    const state = fold(child);
    assert.equal(state.status === 'running' && state.startedBy, 'apikey:parent-starter');
    assert.ok(nextActions(state, T0).dispatch.every((d) => d.startedBy === 'apikey:parent-starter'));
  });

  it('expressions see the execution itself: a per-execution idempotency key for a tool', () => {
    const def: WorkflowDefinitionInput = {
      id: 'keyed',
      version: 3,
      name: 'Keyed',
      steps: [
        {
          id: 'notify',
          uses: 'mcp:automation/send_webhook',
          with: {
            idempotency_key: '${{ execution.id }}:notify',
            about: '${{ execution.definition_id }}@${{ execution.definition_version }}',
          },
        },
      ],
    };
    spec
      .given([])
      .when(cmd.start(def, {}))
      .then((events) => {
        const scheduled = events.find((e) => e.type === 'StepScheduled');
        assert.deepEqual((scheduled?.data as { input: unknown }).input, {
          idempotency_key: 'ex1:notify',
          about: 'keyed@3',
        });
      });
  });

  it('applies input defaults and rejects an input that misses required fields (validation, with problems)', () => {
    const def: WorkflowDefinitionInput = {
      ...diamond,
      input: {
        type: 'object',
        properties: { email: { type: 'string' }, flag: { type: 'boolean', default: false } },
        required: ['email'],
      },
    };
    spec
      .given([])
      .when(cmd.start(def, { email: 'x@y.z' }))
      .then((events) => {
        assert.deepEqual((events[0]!.data as { input: unknown }).input, { email: 'x@y.z', flag: false });
      });
    const err = spec.given([]).when(cmd.start(def, {})).thenThrows<DomainError>(isCode('validation'));
    assert.equal(err.status, 400);
    assert.deepEqual(
      (err.details['problems'] as { path: string }[]).map((p) => p.path),
      ['email'],
    );
  });

  it('rejects an invalid definition with every problem listed', () => {
    const bad = { ...diamond, steps: [{ id: 'a', uses: 'mcp:database/query', needs: ['a'] }] };
    const err = spec.given([]).when(cmd.start(bad, diamondInput)).thenThrows<DomainError>(isCode('validation'));
    assert.match(JSON.stringify(err.details['problems']), /a -> a/);
  });

  it('any other command is not_found (404)', () => {
    const err = spec
      .given([])
      .when(cmd.succeeded({ stepId: 'a' }, {}))
      .thenThrows<DomainError>(isCode('not_found'));
    assert.equal(err.status, 404);
    spec.given([]).when(cmd.cancel()).thenThrows(isCode('not_found'));
  });
});

describe('WorkflowExecution: running', () => {
  const started = history(cmd.start(diamond, diamondInput));

  it('a repeated StartWorkflow is ignored (at-least-once delivery)', () => {
    spec.given(started).when(cmd.start(diamond, diamondInput)).thenNothingHappened();
  });

  it('dependency ordering: c waits until both a and b have succeeded', () => {
    const afterA = history(cmd.start(diamond, diamondInput), cmd.succeeded({ stepId: 'a' }, { total: 21 }));
    spec
      .given(started)
      .when(cmd.succeeded({ stepId: 'a' }, { total: 21 }))
      .then([
        {
          type: 'StepSucceeded',
          data: { stepId: 'a', attempt: 1, output: { total: 21 }, outputChars: '{"total":21}'.length, at: T0 },
          metadata: meta(),
        },
      ]);
    spec
      .given(afterA)
      .when(cmd.succeeded({ stepId: 'b' }, { summary: 'up 5%' }))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:b', 'StepScheduled:c']));
  });

  it('maps inputs from earlier outputs: typed for a whole ${{ }}, interpolated inside text', () => {
    const events = history(
      cmd.start(diamond, diamondInput),
      cmd.succeeded({ stepId: 'a' }, { total: 21 }),
      cmd.succeeded({ stepId: 'b' }, { summary: 'up 5%' }),
    );
    const c = events.find((e) => e.type === 'StepScheduled' && e.data.stepId === 'c');
    assert.deepEqual((c?.data as { input: unknown }).input, {
      total: 42,
      text: 'for ann@example.com: up 5%',
      raw: 'literal',
    });
  });

  it('completes with the outputs mapping once every step has succeeded', () => {
    const before = history(
      cmd.start(diamond, diamondInput),
      cmd.succeeded({ stepId: 'a' }, { total: 21 }),
      cmd.succeeded({ stepId: 'b' }, { summary: 's' }),
    );
    spec
      .given(before)
      .when(cmd.succeeded({ stepId: 'c' }, { ok: true }, 1, at(5000)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepSucceeded:c', 'WorkflowCompleted']);
        assert.deepEqual(events[1]!.data, { outputs: { total: 21, sent: true }, completedAt: at(5000) });
        assert.equal(after.status, 'completed');
      });
  });

  it('an unknown step is not_found', () => {
    spec
      .given(started)
      .when(cmd.succeeded({ stepId: 'zzz' }, {}))
      .thenThrows(isCode('not_found'));
  });

  it('a bad expression at run time fails the step with expression_error (no dispatch)', () => {
    const def: WorkflowDefinitionInput = {
      id: 'expr',
      version: 1,
      name: 'expr',
      steps: [
        { id: 'a', uses: 'mcp:database/query' },
        { id: 'b', uses: 'mcp:database/query', needs: ['a'], with: { x: '${{ steps.a.output.missing }}' } },
      ],
    };
    spec
      .given(history(cmd.start(def)))
      .when(cmd.succeeded({ stepId: 'a' }, { present: 1 }))
      .then((events) => {
        assert.deepEqual(types(events), ['StepSucceeded:a', 'StepFailed:b', 'WorkflowFailed']);
        const failed = events[1]!.data as { error: { code: string }; attempt: number; final: boolean };
        assert.equal(failed.error.code, 'expression_error');
        assert.equal(failed.attempt, 0);
        assert.equal(failed.final, true);
      });
  });
});

describe('WorkflowExecution: running, conditions', () => {
  const def: WorkflowDefinitionInput = {
    id: 'cond',
    version: 1,
    name: 'cond',
    input: { type: 'object', properties: { go: { type: 'boolean', default: false } } },
    steps: [
      { id: 'fetch', uses: 'mcp:database/query' },
      { id: 'maybe', uses: 'agent:revenue_forecast', needs: ['fetch'], if: 'input.go' },
      { id: 'after_maybe', uses: 'mcp:database/query', needs: ['maybe'] },
      { id: 'report', uses: 'mcp:filesystem/write_file', needs: ['maybe'], if: "steps.fetch.status == 'succeeded'" },
    ],
    outputs: { forecast: "${{ steps.maybe.status == 'succeeded' }}" },
  };

  it('condition false -> StepSkipped; dependents without `if` are skipped, those with `if` decide for themselves', () => {
    spec
      .given(history(cmd.start(def, {})))
      .when(cmd.succeeded({ stepId: 'fetch' }, {}))
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'StepSucceeded:fetch',
          'StepSkipped:maybe',
          'StepSkipped:after_maybe',
          'StepScheduled:report',
        ]);
        assert.equal((events[1]!.data as { reason: string }).reason, 'condition_false');
        assert.equal((events[2]!.data as { reason: string }).reason, 'dependency_skipped');
        assert.equal(after.status, 'running');
      });
    const before = history(cmd.start(def, {}), cmd.succeeded({ stepId: 'fetch' }, {}));
    spec
      .given(before)
      .when(cmd.succeeded({ stepId: 'report' }, {}))
      .then((events) => {
        assert.deepEqual(types(events), ['StepSucceeded:report', 'WorkflowCompleted']);
        assert.deepEqual((events[1]!.data as { outputs: unknown }).outputs, { forecast: false });
      });
  });

  it('condition true -> scheduled', () => {
    spec
      .given(history(cmd.start(def, { go: true })))
      .when(cmd.succeeded({ stepId: 'fetch' }, {}))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:fetch', 'StepScheduled:maybe']));
  });
});

describe('WorkflowExecution: running, retries and timeouts', () => {
  const def = (onError: 'fail' | 'continue' = 'fail', on?: string[]): WorkflowDefinitionInput => ({
    id: 'retry',
    version: 1,
    name: 'retry',
    steps: [
      {
        id: 'a',
        uses: 'mcp:fetch/http_request',
        retry: { attempts: 3, backoff: { initialMs: 1000, factor: 2, maxMs: 1500, jitter: 0 }, ...(on ? { on } : {}) },
        timeout_ms: 10_000,
        on_error: onError,
      },
      { id: 'b', uses: 'mcp:database/query', needs: ['a'] },
    ],
  });
  const a = { stepId: 'a' };

  it('a retryable failure schedules a retry with exponential backoff (durable timer, dueAt)', () => {
    spec
      .given(history(cmd.start(def())))
      .when(cmd.failed(a, unavailable, 1, at(100)))
      .then([
        {
          type: 'StepFailed',
          data: { stepId: 'a', attempt: 1, error: unavailable, final: false, at: at(100) },
          metadata: meta(at(100)),
        },
        {
          type: 'StepRetryScheduled',
          data: { stepId: 'a', attempt: 2, delayMs: 1000, dueAt: at(1100) },
          metadata: meta(at(100)),
        },
      ]);
  });

  it('the retry timer schedules the next attempt with a new idempotency key, not before it is due; then success completes', () => {
    const waiting = history(cmd.start(def()), cmd.failed(a, unavailable, 1, at(100)));
    spec
      .given(waiting)
      .when(cmd.retry(a, 2, at(1000)))
      .thenNothingHappened();
    spec
      .given(waiting)
      .when(cmd.retry(a, 2, at(1100)))
      .then((events) => {
        assert.deepEqual(types(events), ['StepScheduled:a']);
        assert.equal((events[0]!.data as { idempotencyKey: string }).idempotencyKey, 'ex1:a:2');
      });
    // Second failure: delay doubles but is capped by maxMs (2000 -> 1500).
    const again = history(
      cmd.start(def()),
      cmd.failed(a, unavailable, 1, at(100)),
      cmd.retry(a, 2, at(1100)),
      cmd.failed(a, unavailable, 2, at(1200)),
    );
    assert.deepEqual(again.at(-1)!.data, { stepId: 'a', attempt: 3, delayMs: 1500, dueAt: at(2700) });
    spec
      .given(again)
      .when(cmd.retry(a, 3, at(2700)))
      .then((events) => assert.deepEqual(types(events), ['StepScheduled:a']));
    const third = history(
      cmd.start(def()),
      cmd.failed(a, unavailable, 1, at(100)),
      cmd.retry(a, 2, at(1100)),
      cmd.failed(a, unavailable, 2, at(1200)),
      cmd.retry(a, 3, at(2700)),
    );
    spec
      .given(third)
      .when(cmd.succeeded(a, { ok: 1 }, 3))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:a', 'StepScheduled:b']));
  });

  it('jitter is deterministic from the seed and stays within [base*(1-jitter), base]', () => {
    const jittered: WorkflowDefinitionInput = {
      id: 'j',
      version: 1,
      name: 'j',
      steps: [
        {
          id: 'a',
          uses: 'mcp:fetch/http_request',
          retry: { attempts: 2, backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.5 } },
        },
      ],
    };
    const run = () => history(cmd.start(jittered), cmd.failed(a, unavailable)).at(-1)!.data as { delayMs: number };
    const first = run().delayMs;
    assert.equal(run().delayMs, first);
    assert.ok(first >= 500 && first <= 1000, `delay ${first}`);
  });

  it('policy retries exhausted: a transient error is still retried until the transient budget is spent, then StepFailed(final) and WorkflowFailed', () => {
    const lastAttempt = history(
      cmd.start(def()),
      cmd.failed(a, unavailable, 1),
      cmd.retry(a, 2, at(1000)),
      cmd.failed(a, unavailable, 2, at(1000)),
      cmd.retry(a, 3, at(3000)),
    );
    spec
      .given(lastAttempt)
      .when(cmd.failed(a, unavailable, 3, at(4000)))
      .then((events) => {
        assert.deepEqual(types(events), ['StepFailed:a', 'StepRetryScheduled:a']);
        assert.equal((events[0]!.data as { final: boolean }).final, false);
        assert.equal((events[1]!.data as { transient?: boolean }).transient, true);
      });
    spec
      .given(lastAttempt)
      .when(cmd.failed(a, unavailable, 3, at(TRANSIENT_RETRY_BUDGET_MS)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepFailed:a', 'WorkflowFailed']);
        assert.equal((events[0]!.data as { final: boolean }).final, true);
        assert.deepEqual(events[1]!.data, {
          reason: 'step "a" failed: server down',
          stepId: 'a',
          error: unavailable,
          failedAt: at(TRANSIENT_RETRY_BUDGET_MS),
        });
        assert.equal(after.status, 'failed');
      });
  });

  it('a non-retryable error fails at once; a retryable code not in retry.on is retried as transient, not failed', () => {
    spec
      .given(history(cmd.start(def())))
      .when(cmd.failed(a, invalid))
      .then((events) => assert.deepEqual(types(events), ['StepFailed:a', 'WorkflowFailed']));
    spec
      .given(history(cmd.start(def('fail', ['timeout']))))
      .when(cmd.failed(a, unavailable))
      .then((events) => {
        assert.deepEqual(types(events), ['StepFailed:a', 'StepRetryScheduled:a']);
        assert.equal((events[1]!.data as { transient?: boolean }).transient, true);
      });
  });

  it('on_error continue: the step fails, its dependents are skipped, the workflow completes', () => {
    spec
      .given(history(cmd.start(def('continue'))))
      .when(cmd.failed(a, invalid))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepFailed:a', 'StepSkipped:b', 'WorkflowCompleted']);
        assert.equal((events[1]!.data as { reason: string }).reason, 'dependency_failed');
        assert.equal(after.status, 'completed');
      });
  });

  it('timeout: the dispatch arms a deadline; an early timer is ignored; at the deadline the attempt times out and is retried', () => {
    const dispatched = history(cmd.start(def()), cmd.dispatched(a, 1, at(0)));
    assert.deepEqual(dispatched.at(-1)!.data, {
      stepId: 'a',
      attempt: 1,
      idempotencyKey: 'ex1:a:1',
      dispatchedAt: T0,
      timeoutAt: at(10_000),
    });
    spec
      .given(dispatched)
      .when(cmd.timedOut(a, 1, at(9_999)))
      .thenNothingHappened();
    spec
      .given(dispatched)
      .when(cmd.timedOut(a, 1, at(10_000)))
      .then((events) => {
        assert.deepEqual(types(events), ['StepTimedOut:a', 'StepFailed:a', 'StepRetryScheduled:a']);
        assert.equal((events[1]!.data as { error: { code: string } }).error.code, 'timeout');
      });
    // A timeout timer for a unit that was never dispatched (or already settled) does nothing.
    spec
      .given(history(cmd.start(def())))
      .when(cmd.timedOut(a, 1, at(20_000)))
      .thenNothingHappened();
  });
});

describe('WorkflowExecution: running, duplicate and late results', () => {
  const a = { stepId: 'a' };
  const def: WorkflowDefinitionInput = {
    id: 'dup',
    version: 1,
    name: 'dup',
    steps: [
      {
        id: 'a',
        uses: 'mcp:fetch/http_request',
        retry: { attempts: 3, backoff: { initialMs: 1000, factor: 2, maxMs: 5000, jitter: 0 } },
      },
      { id: 'b', uses: 'mcp:database/query', needs: ['a'] },
    ],
  };

  it('a step succeeding twice: the second result is ignored', () => {
    spec
      .given(history(cmd.start(def), cmd.succeeded(a, { n: 1 })))
      .when(cmd.succeeded(a, { n: 2 }))
      .thenNothingHappened();
  });

  it('a late result for an old attempt is ignored (retry already scheduled or running)', () => {
    const waiting = history(cmd.start(def), cmd.failed(a, unavailable, 1));
    spec
      .given(waiting)
      .when(cmd.succeeded(a, { late: true }, 1))
      .thenNothingHappened();
    const second = history(cmd.start(def), cmd.failed(a, unavailable, 1), cmd.retry(a, 2, at(1000)));
    spec
      .given(second)
      .when(cmd.failed(a, unavailable, 1))
      .thenNothingHappened();
    spec
      .given(second)
      .when(cmd.retry(a, 2, at(5000)))
      .thenNothingHappened();
  });

  it('a repeated dispatch record is ignored; a result without a dispatch record is accepted', () => {
    const once = history(cmd.start(def), cmd.dispatched(a));
    spec.given(once).when(cmd.dispatched(a)).thenNothingHappened();
    spec
      .given(history(cmd.start(def)))
      .when(cmd.succeeded(a, {}))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:a', 'StepScheduled:b']));
  });

  it('results after the end are ignored', () => {
    const done = history(cmd.start(def), cmd.succeeded(a, {}), cmd.succeeded({ stepId: 'b' }, {}));
    assert.equal(fold(done).status, 'completed');
    spec
      .given(done)
      .when(cmd.succeeded({ stepId: 'b' }, { again: true }))
      .thenNothingHappened();
    spec.given(done).when(cmd.failed(a, unavailable)).thenNothingHappened();
  });
});

describe('WorkflowExecution: running, for_each', () => {
  const def: WorkflowDefinitionInput = {
    id: 'fe',
    version: 1,
    name: 'fe',
    input: {
      type: 'object',
      properties: { emails: { type: 'array', items: { type: 'string' } } },
      required: ['emails'],
    },
    steps: [
      {
        id: 'notify',
        uses: 'mcp:automation/send_webhook',
        for_each: { items: '${{ input.emails }}', concurrency: 2 },
        with: { to: '${{ item }}', n: '${{ index + 1 }}' },
        retry: { attempts: 2, backoff: { initialMs: 100, factor: 2, maxMs: 100, jitter: 0 } },
      },
      { id: 'done', uses: 'mcp:database/query', needs: ['notify'], with: { sent: '${{ size(steps.notify.output) }}' } },
    ],
    outputs: { results: '${{ steps.notify.output }}' },
  };
  const input = { emails: ['a@x.io', 'b@x.io', 'c@x.io'] };
  const item = (i: number) => ({ stepId: 'notify', itemIndex: i });

  it('expands the items and keeps at most `concurrency` in flight, each with item/index in scope', () => {
    spec
      .given([])
      .when(cmd.start(def, input))
      .then((events) => {
        assert.deepEqual(types(events), [
          'WorkflowStarted',
          'StepExpanded:notify',
          'StepScheduled:notify[0]',
          'StepScheduled:notify[1]',
        ]);
        const s1 = events[3]!.data as { input: unknown; idempotencyKey: string };
        assert.deepEqual(s1.input, { to: 'b@x.io', n: 2 });
        assert.equal(s1.idempotencyKey, 'ex1:notify[1]:1');
      });
    spec
      .given(history(cmd.start(def, input)))
      .when(cmd.succeeded(item(1), { id: 'm1' }))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:notify[1]', 'StepScheduled:notify[2]']));
  });

  it('when every item succeeded the step succeeds with the outputs in item order', () => {
    const before = history(
      cmd.start(def, input),
      cmd.succeeded(item(1), { id: 'm1' }),
      cmd.succeeded(item(2), { id: 'm2' }),
    );
    spec
      .given(before)
      .when(cmd.succeeded(item(0), { id: 'm0' }))
      .then((events) => {
        assert.deepEqual(types(events), ['StepSucceeded:notify[0]', 'StepSucceeded:notify', 'StepScheduled:done']);
        assert.deepEqual((events[1]!.data as { output: unknown }).output, [{ id: 'm0' }, { id: 'm1' }, { id: 'm2' }]);
        assert.deepEqual((events[2]!.data as { input: unknown }).input, { sent: 3 });
      });
  });

  it('items retry on their own; an item failing for good fails the step', () => {
    spec
      .given(history(cmd.start(def, input)))
      .when(cmd.failed(item(0), unavailable))
      .then((events) => assert.deepEqual(types(events), ['StepFailed:notify[0]', 'StepRetryScheduled:notify[0]']));
    spec
      .given(history(cmd.start(def, input)))
      .when(cmd.failed(item(0), invalid))
      .then((events) =>
        // Item 1 was in flight: it is given up with its step (see the for_each stop specs).
        assert.deepEqual(types(events), [
          'StepFailed:notify[0]',
          'StepFailed:notify',
          'StepStopped:notify[1]',
          'WorkflowFailed',
        ]),
      );
  });

  it('an empty list succeeds at once with []', () => {
    spec
      .given([])
      .when(cmd.start(def, { emails: [] }))
      .then((events) =>
        assert.deepEqual(types(events), [
          'WorkflowStarted',
          'StepExpanded:notify',
          'StepSucceeded:notify',
          'StepScheduled:done',
        ]),
      );
  });
});

describe('WorkflowExecution: running, compensation', () => {
  const def: WorkflowDefinitionInput = {
    id: 'comp',
    version: 1,
    name: 'comp',
    steps: [
      { id: 'create', uses: 'mcp:database/query', with: { sql: 'insert' } },
      { id: 'side', uses: 'mcp:analytics/record_metric' },
      { id: 'email', uses: 'mcp:automation/send_webhook', needs: ['create'], on_error: { compensate: 'undo_create' } },
      {
        id: 'undo_create',
        uses: 'mcp:database/query',
        needs: ['create'],
        with: { sql: 'delete', id: '${{ steps.create.output.id }}' },
      },
      { id: 'later', uses: 'mcp:database/query', needs: ['email', 'side'] },
    ],
  };
  const base = history(cmd.start(def), cmd.succeeded({ stepId: 'create' }, { id: 7 }));

  it('a compensation step never runs in the normal flow', () => {
    assert.deepEqual(types(base), [
      'WorkflowStarted',
      'StepScheduled:create',
      'StepScheduled:side',
      'StepSucceeded:create',
      'StepScheduled:email',
    ]);
  });

  it('on_error compensate: the compensation starts with its mapped input, nothing new is scheduled, the workflow fails once it settles', () => {
    spec
      .given(base)
      .when(cmd.failed({ stepId: 'email' }, invalid, 1, at(50)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepFailed:email', 'CompensationStarted:undo_create']);
        assert.deepEqual(events[1]!.data, {
          stepId: 'undo_create',
          forStepId: 'email',
          cause: 'step_failed',
          uses: 'mcp:database/query',
          input: { sql: 'delete', id: 7 },
          inputChars: JSON.stringify({ sql: 'delete', id: 7 }).length,
          idempotencyKey: 'ex1:compensate:undo_create:1',
          timeoutMs: 300_000,
          startedAt: at(50),
        });
        assert.equal(after.status, 'running');
        assert.ok(after.status === 'running' && after.failing);
      });
    const failing = history(
      cmd.start(def),
      cmd.dispatched({ stepId: 'side' }),
      cmd.succeeded({ stepId: 'create' }, { id: 7 }),
      cmd.failed({ stepId: 'email' }, invalid),
    );
    // A dispatched step may still report; it is recorded but starts nothing.
    spec
      .given(failing)
      .when(cmd.succeeded({ stepId: 'side' }, {}))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:side']));
    spec
      .given(failing)
      .when(cmd.compensated('undo_create'))
      .then((events, after) => {
        // `side` still runs: it is stopped with the execution's end.
        assert.deepEqual(types(events), ['CompensationSucceeded:undo_create', 'StepStopped:side', 'WorkflowFailed']);
        assert.equal(after.status, 'failed');
      });
    // A failed compensation also ends the workflow (failed); the record says so.
    spec
      .given(failing)
      .when(cmd.compensationFailed('undo_create', invalid))
      .then((events) =>
        assert.deepEqual(types(events), ['CompensationFailed:undo_create', 'StepStopped:side', 'WorkflowFailed']),
      );
  });
});

describe('WorkflowExecution: canceling', () => {
  const def: WorkflowDefinitionInput = {
    id: 'cancel',
    version: 1,
    name: 'cancel',
    steps: [
      { id: 'create', uses: 'mcp:database/query', on_error: { compensate: 'undo' } },
      { id: 'slow', uses: 'agent:revenue_analysis', timeout_ms: 60_000 },
      { id: 'next', uses: 'mcp:database/query', needs: ['create', 'slow'] },
      { id: 'undo', uses: 'mcp:database/query', with: { sql: 'delete' } },
    ],
  };
  const running = history(
    cmd.start(def),
    cmd.succeeded({ stepId: 'create' }, { id: 1 }),
    cmd.dispatched({ stepId: 'slow' }),
  );

  it('RequestCancel while a step runs: cancel requested, succeeded steps compensated, the run waits', () => {
    spec
      .given(running)
      .when(cmd.cancel('customer withdrew', at(10)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['ExecutionCancelRequested', 'CompensationStarted:undo']);
        assert.deepEqual(events[0]!.data, { reason: 'customer withdrew', actor: 'user:tester', requestedAt: at(10) });
        assert.equal((events[1]!.data as { cause: string }).cause, 'canceled');
        assert.equal(after.status, 'canceling');
      });
  });

  it('while canceling, nothing new starts, nothing is retried; it ends canceled when the running step and the compensation settle', () => {
    const canceling = history(
      cmd.start(def),
      cmd.succeeded({ stepId: 'create' }, { id: 1 }),
      cmd.dispatched({ stepId: 'slow' }),
      cmd.cancel(),
    );
    spec.given(canceling).when(cmd.cancel()).thenNothingHappened();
    spec
      .given(canceling)
      .when(cmd.succeeded({ stepId: 'slow' }, {}))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:slow'])); // `next` is not scheduled
    spec
      .given(canceling)
      .when(cmd.failed({ stepId: 'slow' }, unavailable))
      .then((events) => {
        assert.deepEqual(types(events), ['StepFailed:slow']);
        assert.equal((events[0]!.data as { final: boolean }).final, true);
      });
    const slowDone = history(
      cmd.start(def),
      cmd.succeeded({ stepId: 'create' }, { id: 1 }),
      cmd.dispatched({ stepId: 'slow' }),
      cmd.cancel(),
      cmd.succeeded({ stepId: 'slow' }, {}),
    );
    spec
      .given(slowDone)
      .when(cmd.compensated('undo', { deleted: 1 }, at(99)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['CompensationSucceeded:undo', 'WorkflowCanceled']);
        assert.deepEqual(events[1]!.data, { reason: 'no longer needed', canceledAt: at(99) });
        assert.equal(after.status, 'canceled');
      });
  });

  it('the saga asks every running unit to stop, by its key, when the cancel is recorded (and again on recovery)', () => {
    spec
      .given(running)
      .when(cmd.cancel('customer withdrew', at(10)))
      .then((events, after) => {
        const cancelRequested = events[0]!;
        const stop = decideAfter(cancelRequested, after).stop;
        assert.deepEqual(
          stop.map((x) => ({ stepId: x.stepId, key: x.idempotencyKey, kind: x.target.kind, reason: x.reason })),
          [{ stepId: 'slow', key: 'ex1:slow:1', kind: 'agent', reason: 'customer withdrew' }],
        );
        // Recovery of a canceling execution asks again (a stop may have been lost with a crash).
        assert.deepEqual(
          nextActions(after, at(11)).stop.map((x) => x.stepId),
          ['slow'],
        );
        // Other events ask nothing; a running execution stops nothing.
        assert.deepEqual(decideAfter(events[1]!, after).stop, []);
      });
    assert.deepEqual(nextActions(state(running), at(5)).stop, []);
  });

  it('with nothing in flight and nothing to undo, cancel ends at once; undispatched units are abandoned', () => {
    const fresh = history(cmd.start(def));
    spec
      .given(fresh)
      .when(cmd.cancel())
      .then((events, after) => {
        // The abandoned units' steps end stopped: none was sent, so nobody is asked to stop.
        assert.deepEqual(types(events), [
          'ExecutionCancelRequested',
          'StepStopped:create',
          'StepStopped:slow',
          'WorkflowCanceled',
        ]);
        assert.ok(events.every((e) => e.type !== 'StepStopped' || !e.data.dispatched));
        assert.equal(after.status, 'canceled');
        assert.equal(after.status === 'canceled' && after.steps['slow']?.status, 'failed');
      });
  });
});

describe('WorkflowExecution: completed, failed, canceled', () => {
  const def: WorkflowDefinitionInput = {
    id: 'one',
    version: 1,
    name: 'one',
    steps: [{ id: 'a', uses: 'mcp:database/query' }],
  };

  it('RequestCancel on an ended execution is illegal_state (409)', () => {
    const completed = history(cmd.start(def), cmd.succeeded({ stepId: 'a' }, {}));
    const failed = history(cmd.start(def), cmd.failed({ stepId: 'a' }, invalid));
    const canceled = history(cmd.start(def), cmd.cancel());
    for (const given of [completed, failed, canceled]) {
      const e = spec.given(given).when(cmd.cancel()).thenThrows<DomainError>(isCode('illegal_state'));
      assert.equal(e.status, 409);
    }
  });

  it('late results after failure or cancel are ignored', () => {
    spec
      .given(history(cmd.start(def), cmd.failed({ stepId: 'a' }, invalid)))
      .when(cmd.succeeded({ stepId: 'a' }, {}))
      .thenNothingHappened();
    spec
      .given(history(cmd.start(def), cmd.cancel()))
      .when(cmd.succeeded({ stepId: 'a' }, {}))
      .thenNothingHappened();
  });
});

describe('WorkflowExecution saga: nextActions / decideAfter', () => {
  const def: WorkflowDefinitionInput = {
    id: 'saga',
    version: 1,
    name: 'saga',
    steps: [
      {
        id: 'a',
        uses: 'mcp:database/query',
        timeout_ms: 1000,
        retry: { attempts: 2, backoff: { initialMs: 500, factor: 2, maxMs: 500, jitter: 0 } },
      },
      { id: 'b', uses: 'agent:support_response' },
    ],
  };

  it('lists the scheduled units to dispatch, with their target and idempotency key', () => {
    const s = state(history(cmd.start(def)));
    const actions = nextActions(s, T0);
    assert.equal(actions.status, 'running');
    assert.deepEqual(
      actions.dispatch.map((d) => [d.stepId, d.idempotencyKey, d.target]),
      [
        ['a', 'ex1:a:1', { kind: 'mcp', server: 'database', tool: 'query' }],
        ['b', 'ex1:b:1', { kind: 'agent', taskType: 'support_response' }],
      ],
    );
    assert.deepEqual(actions.timers, []);
  });

  it('arms the timeout of a dispatched unit and reports it due at the deadline; the retry timer after a failure', () => {
    const events = history(cmd.start(def), cmd.dispatched({ stepId: 'a' }));
    const s = state(events);
    assert.deepEqual(nextActions(s, at(999)).due, []);
    const due = nextActions(s, at(1000)).due;
    assert.deepEqual(due, [
      {
        type: 'RecordStepTimedOut',
        data: { stepId: 'a', attempt: 1 },
        metadata: { timestamp: at(1000), actor: 'system:orchestrator', correlationId: 'corr-1' },
      },
    ]);
    const after = decideAfter(events.at(-1)!, s);
    assert.deepEqual(
      after.timers.map((t) => [t.kind, t.dueAt]),
      [['timeout', at(1000)]],
    );
    assert.deepEqual(after.dispatch, []);

    // Feeding the due command back into the decider times the attempt out and arms the retry timer.
    const timedOut = workflowExecutionDecider.decide(due[0]!, s);
    const s2 = timedOut.reduce(workflowExecutionDecider.evolve, s);
    const retry = decideAfter(timedOut.at(-1)!, s2);
    assert.deepEqual(
      retry.timers.map((t) => [t.kind, t.dueAt, t.command.type]),
      [['retry', at(1500), 'RetryStep']],
    );
  });

  it('decideAfter(StepScheduled) dispatches exactly that unit; terminal states ask for nothing', () => {
    const events = history(cmd.start(def));
    const s = state(events);
    assert.deepEqual(
      decideAfter(events[2]!, s).dispatch.map((d) => d.stepId),
      ['b'],
    );
    const done = history(cmd.start(def), cmd.succeeded({ stepId: 'a' }, {}), cmd.succeeded({ stepId: 'b' }, {}));
    const end = nextActions(state(done), T0);
    assert.equal(end.terminal, true);
    assert.equal(end.status, 'completed');
    assert.deepEqual(end.dispatch, []);
  });

  it('decideAfter of each event asks for what the full picture (nextActions) holds for that event: dispatch, timers, due', () => {
    // The reference: nextActions filtered to the event's unit (decideAfter computes that unit alone).
    const reference = (e: WorkflowEvent, s: WorkflowExecutionState) => {
      const all = nextActions(s, e.metadata.timestamp);
      const d = e.data as { stepId?: string; itemIndex?: number };
      const same = (a: { stepId: string; itemIndex?: number }) => a.stepId === d.stepId && a.itemIndex === d.itemIndex;
      const kind = e.type === 'StepRetryScheduled' ? 'retry' : 'timeout';
      const timers = ['StepDispatched', 'StepRedispatched', 'StepQueued', 'StepStarted', 'StepRetryScheduled'].includes(
        e.type,
      )
        ? all.timers.filter((t) => t.kind === kind && same(t.command.data))
        : [];
      return {
        dispatch: e.type === 'StepScheduled' ? all.dispatch.filter((x) => x.kind === 'step' && same(x)) : [],
        timers,
        due: timers.filter((t) => Date.parse(t.dueAt) <= Date.parse(e.metadata.timestamp)).map((t) => t.command),
        terminal: all.terminal,
      };
    };
    const forEach: WorkflowDefinitionInput = {
      id: 'fe',
      version: 1,
      name: 'fe',
      input: { type: 'object', properties: { xs: { type: 'array' } } },
      steps: [
        {
          id: 'a',
          uses: 'mcp:database/query',
          timeout_ms: 1000,
          retry: { attempts: 2, backoff: { initialMs: 500, factor: 2, maxMs: 500, jitter: 0 } },
        },
        { id: 'm', uses: 'mcp:database/query', needs: ['a'], for_each: { items: '${{ input.xs }}' }, timeout_ms: 2000 },
      ],
    };
    const events = history(
      cmd.start(forEach, { xs: [1, 2] }),
      cmd.dispatched({ stepId: 'a' }),
      cmd.queued({ stepId: 'a' }),
      cmd.started({ stepId: 'a' }),
      cmd.failed({ stepId: 'a' }, unavailable),
      cmd.retry({ stepId: 'a' }, 2, at(500)),
      cmd.dispatched({ stepId: 'a' }, 2, at(600)),
      cmd.succeeded({ stepId: 'a' }, { ok: true }, 2, at(700)),
      cmd.dispatched({ stepId: 'm', itemIndex: 1 }, 1, at(800)),
      cmd.succeeded({ stepId: 'm', itemIndex: 1 }, {}, 1, at(900)),
      cmd.dispatched({ stepId: 'm', itemIndex: 0 }, 1, at(900)),
      cmd.succeeded({ stepId: 'm', itemIndex: 0 }, {}, 1, at(1000)),
    );
    assert.ok(
      types(events).includes('StepScheduled:m[1]') && types(events).includes('StepRetryScheduled:a'),
      types(events).join(' '),
    );
    let s: WorkflowExecutionState = workflowExecutionDecider.initialState;
    for (const e of events) {
      s = workflowExecutionDecider.evolve(s, e);
      const got = decideAfter(e, s);
      assert.deepEqual(
        { dispatch: got.dispatch, timers: got.timers, due: got.due, terminal: got.terminal },
        reference(e, s),
        e.type,
      );
    }
  });

  it('running compensations are dispatched with their own key', () => {
    const comp: WorkflowDefinitionInput = {
      id: 'c',
      version: 1,
      name: 'c',
      steps: [
        { id: 'a', uses: 'mcp:database/query', on_error: { compensate: 'u' } },
        { id: 'u', uses: 'mcp:database/query' },
      ],
    };
    const s = state(history(cmd.start(comp), cmd.failed({ stepId: 'a' }, invalid)));
    const actions = nextActions(s, T0);
    assert.deepEqual(
      actions.dispatch.map((d) => [d.kind, d.stepId, d.idempotencyKey]),
      [['compensation', 'u', 'ex1:compensate:u:1']],
    );
  });
});

describe('WorkflowExecution: transient errors under load (full queue, unreachable worker)', () => {
  /** No retry policy at all: before, any error failed the step. */
  const plain: WorkflowDefinitionInput = {
    id: 'plain',
    version: 1,
    name: 'plain',
    steps: [{ id: 'a', uses: 'mcp:analytics/record_metric', timeout_ms: 5_000 }],
  };
  const withPolicy: WorkflowDefinitionInput = {
    id: 'policy',
    version: 1,
    name: 'policy',
    steps: [
      {
        id: 'a',
        uses: 'mcp:analytics/record_metric',
        retry: { attempts: 2, on: ['unavailable'], backoff: { initialMs: 1000, factor: 2, maxMs: 1000, jitter: 0 } },
      },
    ],
  };
  const a = { stepId: 'a' };
  const full: StepError = {
    code: 'rate_limited',
    message: 'MCP server analytics: too many concurrent calls',
    retryable: true,
    retryAfterMs: 750,
  };
  const noHint: StepError = { code: 'rate_limited', message: 'busy', retryable: true };

  it('a retryable error of a step without a retry policy is retried, no sooner than the retry-after, with a new key', () => {
    const failed = history(cmd.start(plain), cmd.dispatched(a), cmd.failed(a, full, 1, at(10)));
    assert.deepEqual(types(failed.slice(-2)), ['StepFailed:a', 'StepRetryScheduled:a']);
    const retry = failed.at(-1)!.data as { attempt: number; delayMs: number; dueAt: string; transient?: boolean };
    assert.equal(retry.attempt, 2);
    assert.equal(retry.transient, true);
    assert.ok(retry.delayMs >= 750, `delay ${retry.delayMs} honours retry-after 750`);
    assert.equal(retry.dueAt, at(10 + retry.delayMs));
    spec
      .given(failed)
      .when(cmd.retry(a, 2, retry.dueAt))
      .then((events) => assert.equal((events[0]!.data as { idempotencyKey: string }).idempotencyKey, 'ex1:a:2'));
  });

  it('backs off exponentially with seeded jitter (the same history gives the same delays)', () => {
    const delays: number[] = [];
    let h = history(cmd.start(plain));
    let t = 0;
    for (let n = 1; n <= 6; n++) {
      h = [...h, ...workflowExecutionDecider.decide(cmd.failed(a, noHint, n, at(t)), state(h))];
      const d = (h.at(-1)!.data as { delayMs: number }).delayMs;
      delays.push(d);
      t += d;
      h = [...h, ...workflowExecutionDecider.decide(cmd.retry(a, n + 1, at(t)), state(h))];
    }
    // 250 ms doubling, up to half removed at random: each delay lies in [base/2, base].
    delays.forEach((d, i) => {
      const base = Math.min(10_000, 250 * 2 ** i);
      assert.ok(d >= base / 2 && d <= base, `delay ${i + 1} = ${d} within [${base / 2}, ${base}]`);
    });
    const again = history(cmd.start(plain), cmd.failed(a, noHint, 1, at(0)));
    assert.equal((again.at(-1)!.data as { delayMs: number }).delayMs, delays[0]);
  });

  it('transient retries do not use up the policy: its attempts still apply to the errors it names', () => {
    // Three refusals for load, then two unavailable: the policy (2 attempts on unavailable) still retries once.
    let h = history(cmd.start(withPolicy));
    let t = 0;
    let attempt = 1;
    const fail = (e: StepError) => {
      h = [...h, ...workflowExecutionDecider.decide(cmd.failed(a, e, attempt, at(t)), state(h))];
      const last = h.at(-1)!;
      if (last.type !== 'StepRetryScheduled') return last;
      t += last.data.delayMs;
      attempt++;
      h = [...h, ...workflowExecutionDecider.decide(cmd.retry(a, attempt, at(t)), state(h))];
      return last;
    };
    for (let i = 0; i < 3; i++) assert.equal((fail(noHint).data as { transient?: boolean }).transient, true);
    const policyRetry = fail(unavailable);
    assert.equal(policyRetry.type, 'StepRetryScheduled');
    assert.equal(
      (policyRetry.data as { transient?: boolean }).transient,
      undefined,
      'the policy retry, not a transient one',
    );
    assert.equal((policyRetry.data as { delayMs: number }).delayMs, 1000, 'with the policy backoff');
    // Policy spent: unavailable is transient from now on, until the budget is over.
    assert.equal((fail(unavailable).data as { transient?: boolean }).transient, true);
  });

  it("the budget counts from the unit's first schedule: a server that stays down still ends the step", () => {
    const late = history(
      cmd.start(plain),
      cmd.failed(a, noHint, 1, at(1000)),
      cmd.retry(a, 2, at(TRANSIENT_RETRY_BUDGET_MS - 1)),
    );
    spec
      .given(late)
      .when(cmd.failed(a, noHint, 2, at(TRANSIENT_RETRY_BUDGET_MS)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepFailed:a', 'WorkflowFailed']);
        assert.equal(after.status, 'failed');
      });
  });

  it("time an attempt waited in its worker's queue and was refused unrun does not use up the budget: a busy server delays the step, a down one still ends it", () => {
    const expired: StepError = {
      code: 'rate_limited',
      message: 'the call waited for a slot past its budget; not run',
      retryable: true,
    };
    // Attempt 1 waits 104 s in the queue and is refused; attempt 2 waits 66 s and is refused too.
    const busyCommands = [
      cmd.start(plain),
      cmd.dispatched(a, 1, at(0)),
      cmd.queued(a, 1, at(10)),
      cmd.failed(a, expired, 1, at(104_010)),
      cmd.retry(a, 2, at(104_500)),
      cmd.dispatched(a, 2, at(104_500)),
      cmd.queued(a, 2, at(104_510)),
    ];
    const busy = history(...busyCommands);
    spec
      .given(busy)
      .when(cmd.failed(a, expired, 2, at(170_510)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepFailed:a', 'StepRetryScheduled:a'], 'past 120 s, but 170 s of it queued');
        assert.ok('steps' in after);
        assert.equal(after.steps['a']!.units[0]!.queueWaitedMs, 104_000 + 66_000);
      });
    // The server then goes down: the budget counts what was not queueing (1.5 s so far), and ends it.
    const down = history(...busyCommands, cmd.failed(a, expired, 2, at(170_510)), cmd.retry(a, 3, at(171_000)));
    spec
      .given(down)
      .when(cmd.failed(a, unavailable, 3, at(171_000 + 60_000)))
      .then((events) => assert.deepEqual(types(events), ['StepFailed:a', 'StepRetryScheduled:a']));
    spec
      .given(down)
      .when(cmd.failed(a, unavailable, 3, at(170_000 + TRANSIENT_RETRY_BUDGET_MS + 1_000)))
      .then((events) => assert.deepEqual(types(events), ['StepFailed:a', 'WorkflowFailed']));
  });

  it("the step's own timeout is not a transient error: without a policy it fails the step", () => {
    const dispatched = history(cmd.start(plain), cmd.dispatched(a, 1, at(0)));
    spec
      .given(dispatched)
      .when(cmd.timedOut(a, 1, at(5_000)))
      .then((events) => assert.deepEqual(types(events), ['StepTimedOut:a', 'StepFailed:a', 'WorkflowFailed']));
  });

  it('a non-retryable error, or a failure while canceling, is never retried', () => {
    spec
      .given(history(cmd.start(plain), cmd.dispatched(a)))
      .when(cmd.failed(a, invalid))
      .then((events) => assert.deepEqual(types(events), ['StepFailed:a', 'WorkflowFailed']));
    spec
      .given(history(cmd.start(plain), cmd.dispatched(a), cmd.cancel()))
      .when(cmd.failed(a, full))
      .then((events) => assert.deepEqual(types(events), ['StepFailed:a', 'WorkflowCanceled']));
  });
});

describe('WorkflowExecution: re-dispatch after the engine was down', () => {
  const def: WorkflowDefinitionInput = {
    id: 'r',
    version: 1,
    name: 'r',
    steps: [{ id: 'a', uses: 'mcp:filesystem/write_file', timeout_ms: 10_000 }],
  };
  const a = { stepId: 'a' };
  const redispatch = (t: string): WorkflowCommand => ({
    type: 'RecordStepRedispatched',
    data: { stepId: 'a', attempt: 1 },
    metadata: meta(t),
  });

  it("restarts the attempt's clock: the old deadline no longer times it out, the new one does", () => {
    const dispatched = history(cmd.start(def), cmd.dispatched(a, 1, at(0)));
    // The engine was down from 2 s to 30 s; recovery re-sends the call at 30 s.
    const events = workflowExecutionDecider.decide(redispatch(at(30_000)), state(dispatched));
    assert.deepEqual(
      events.map((e) => [e.type, e.data]),
      [
        [
          'StepRedispatched',
          { stepId: 'a', attempt: 1, idempotencyKey: 'ex1:a:1', dispatchedAt: at(30_000), timeoutAt: at(40_000) },
        ],
      ],
    );
    const after = [...dispatched, ...events];
    // The timer armed before the crash (due at 10 s) fires: ignored.
    spec
      .given(after)
      .when(cmd.timedOut(a, 1, at(10_000)))
      .thenNothingHappened();
    // The saga re-arms the timeout at the new deadline.
    const actions = decideAfter(events[0]!, state(after));
    assert.deepEqual(
      actions.timers.map((t) => [t.kind, t.dueAt]),
      [['timeout', at(40_000)]],
    );
    // The answer of the re-sent call is accepted for the same attempt.
    spec
      .given(after)
      .when(cmd.succeeded(a, { ok: true }, 1, at(31_000)))
      .then((ev) => assert.deepEqual(types(ev), ['StepSucceeded:a', 'WorkflowCompleted']));
    // No reply by the new deadline: the step's own timeout applies.
    spec
      .given(after)
      .when(cmd.timedOut(a, 1, at(40_000)))
      .then((ev) => assert.deepEqual(types(ev), ['StepTimedOut:a', 'StepFailed:a', 'WorkflowFailed']));
  });

  it('does nothing for a unit that is not dispatched (settled, or another attempt)', () => {
    spec
      .given(history(cmd.start(def)))
      .when(redispatch(at(1)))
      .thenNothingHappened();
    spec
      .given(history(cmd.start(def), cmd.dispatched(a), cmd.succeeded(a, {})))
      .when(redispatch(at(1)))
      .thenNothingHappened();
  });
});

describe("WorkflowExecution: the step timeout counts from the call's start, not its wait in a queue", () => {
  // A 3 s step whose call waits 20 s for a slot on a full server, then runs 2 s.
  const def: WorkflowDefinitionInput = {
    id: 'q',
    version: 1,
    name: 'q',
    steps: [{ id: 'a', uses: 'mcp:analytics/report', timeout_ms: 3_000 }],
  };
  const a = { stepId: 'a' };
  const dispatched = () => history(cmd.start(def), cmd.dispatched(a, 1, at(0)));
  const queued = () => history(cmd.start(def), cmd.dispatched(a, 1, at(0)), cmd.queued(a, 1, at(50)));

  describe('dispatched', () => {
    it('RecordStepQueued allows for the wait: the deadline becomes queued + the queue budget + the step timeout', () => {
      spec
        .given(dispatched())
        .when(cmd.queued(a, 1, at(50)))
        .then([
          {
            type: 'StepQueued',
            data: { stepId: 'a', attempt: 1, queuedAt: at(50), timeoutAt: at(50 + STEP_QUEUE_WAIT_BUDGET_MS + 3_000) },
            metadata: meta(at(50)),
          },
        ]);
    });

    it('an agent step waiting for a free agent gets the agent queue budget', () => {
      const agentDef: WorkflowDefinitionInput = {
        id: 'qa',
        version: 1,
        name: 'qa',
        steps: [{ id: 'a', uses: 'agent:support_response', timeout_ms: 60_000 }],
      };
      spec
        .given(history(cmd.start(agentDef), cmd.dispatched(a, 1, at(0))))
        .when(cmd.queued(a, 1, at(10)))
        .then([
          {
            type: 'StepQueued',
            data: {
              stepId: 'a',
              attempt: 1,
              queuedAt: at(10),
              timeoutAt: at(10 + AGENT_QUEUE_WAIT_BUDGET_MS + 60_000),
            },
            metadata: meta(at(10)),
          },
        ]);
    });

    it('RecordStepStarted without a queue notice: the timeout counts from the start', () => {
      spec
        .given(dispatched())
        .when(cmd.started(a, 1, at(100)))
        .then([
          {
            type: 'StepStarted',
            data: { stepId: 'a', attempt: 1, startedAt: at(100), timeoutAt: at(3_100) },
            metadata: meta(at(100)),
          },
        ]);
    });

    it('the saga re-arms the step timeout at the new deadline of StepQueued and StepStarted', () => {
      const q = workflowExecutionDecider.decide(cmd.queued(a, 1, at(50)), state(dispatched()));
      const afterQ = [...dispatched(), ...q];
      assert.deepEqual(
        decideAfter(q[0]!, state(afterQ)).timers.map((t) => [t.kind, t.dueAt]),
        [['timeout', at(50 + STEP_QUEUE_WAIT_BUDGET_MS + 3_000)]],
      );
      const s = workflowExecutionDecider.decide(cmd.started(a, 1, at(20_000)), state(afterQ));
      const afterS = [...afterQ, ...s];
      assert.deepEqual(
        decideAfter(s[0]!, state(afterS)).timers.map((t) => [t.kind, t.dueAt]),
        [['timeout', at(23_000)]],
      );
      // Recovery (nextActions from the folded stream) arms the same deadline: it is in the events.
      assert.deepEqual(
        nextActions(state(afterS), at(20_001)).timers.map((t) => [t.kind, t.dueAt]),
        [['timeout', at(23_000)]],
      );
    });

    it('ignores a notice for another attempt, or for a unit that is not dispatched', () => {
      spec
        .given(dispatched())
        .when(cmd.queued(a, 2, at(50)))
        .thenNothingHappened();
      spec
        .given(dispatched())
        .when(cmd.started(a, 2, at(50)))
        .thenNothingHappened();
      spec
        .given(history(cmd.start(def)))
        .when(cmd.started(a, 1, at(50)))
        .thenNothingHappened();
      spec
        .given(history(cmd.start(def), cmd.dispatched(a), cmd.succeeded(a, {}, 1, at(10))))
        .when(cmd.queued(a, 1, at(50)))
        .thenNothingHappened();
    });
  });

  describe('queued', () => {
    it('the dispatch deadline no longer times the attempt out', () => {
      spec
        .given(queued())
        .when(cmd.timedOut(a, 1, at(3_000)))
        .thenNothingHappened();
      spec
        .given(queued())
        .when(cmd.timedOut(a, 1, at(20_000)))
        .thenNothingHappened();
    });

    it('RecordStepStarted after 20 s in the queue: the timeout counts from then', () => {
      spec
        .given(queued())
        .when(cmd.started(a, 1, at(20_000)))
        .then([
          {
            type: 'StepStarted',
            data: { stepId: 'a', attempt: 1, startedAt: at(20_000), timeoutAt: at(23_000) },
            metadata: meta(at(20_000)),
          },
        ]);
    });

    it('a repeated queue notice changes nothing', () => {
      spec
        .given(queued())
        .when(cmd.queued(a, 1, at(5_000)))
        .thenNothingHappened();
    });

    it('a call that never leaves the queue still ends: the attempt times out at queued + budget + timeout', () => {
      const end = 50 + STEP_QUEUE_WAIT_BUDGET_MS + 3_000;
      spec
        .given(queued())
        .when(cmd.timedOut(a, 1, at(end - 1)))
        .thenNothingHappened();
      spec
        .given(queued())
        .when(cmd.timedOut(a, 1, at(end)))
        .then((ev) => assert.deepEqual(types(ev), ['StepTimedOut:a', 'StepFailed:a', 'WorkflowFailed']));
    });

    it("a full queue's refusal (rate_limited, retryable) is retried by the engine, not the step's failure", () => {
      const full: StepError = { code: 'rate_limited', message: 'queue full', retryable: true, retryAfterMs: 1_000 };
      spec
        .given(queued())
        .when(cmd.failed(a, full, 1, at(500)))
        .then((ev) => {
          assert.deepEqual(types(ev), ['StepFailed:a', 'StepRetryScheduled:a']);
          assert.equal((ev[1]!.data as { transient?: boolean }).transient, true);
        });
    });
  });

  describe('started', () => {
    const started = () =>
      history(cmd.start(def), cmd.dispatched(a, 1, at(0)), cmd.queued(a, 1, at(50)), cmd.started(a, 1, at(20_000)));

    it("the step's own timeout_ms from the start times it out; the answer before it is taken", () => {
      spec
        .given(started())
        .when(cmd.timedOut(a, 1, at(22_999)))
        .thenNothingHappened();
      spec
        .given(started())
        .when(cmd.timedOut(a, 1, at(23_000)))
        .then((ev) => assert.deepEqual(types(ev), ['StepTimedOut:a', 'StepFailed:a', 'WorkflowFailed']));
      spec
        .given(started())
        .when(cmd.succeeded(a, { ok: true }, 1, at(22_000)))
        .then((ev) => assert.deepEqual(types(ev), ['StepSucceeded:a', 'WorkflowCompleted']));
    });

    it('a late or repeated notice changes nothing (queued never after started)', () => {
      spec
        .given(started())
        .when(cmd.queued(a, 1, at(20_100)))
        .thenNothingHappened();
      spec
        .given(started())
        .when(cmd.started(a, 1, at(20_100)))
        .thenNothingHappened();
    });

    it('a re-dispatch after a crash clears the notices: the worker tells again where the re-sent call is', () => {
      const re = workflowExecutionDecider.decide(
        { type: 'RecordStepRedispatched', data: { stepId: 'a', attempt: 1 }, metadata: meta(at(30_000)) },
        state(started()),
      );
      const after = [...started(), ...re];
      spec
        .given(after)
        .when(cmd.queued(a, 1, at(30_010)))
        .then([
          {
            type: 'StepQueued',
            data: {
              stepId: 'a',
              attempt: 1,
              queuedAt: at(30_010),
              timeoutAt: at(30_010 + STEP_QUEUE_WAIT_BUDGET_MS + 3_000),
            },
            metadata: meta(at(30_010)),
          },
        ]);
    });
  });
});

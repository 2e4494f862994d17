/**
 * Nothing is left under way once what it was for has settled: the other items of a for_each step
 * that failed, whatever still runs when the execution ends, and the call of an attempt that timed
 * out (StepStopped in the stream, stops from the saga).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { workflowExecutionDecider } from './decider.js';
import { decideAfter, nextActions, type StopAction } from './saga.js';
import { at, cmd, fold, history, invalid, meta, T0, types } from './spec-helpers.js';
import type { StartedExecution, WorkflowCommand, WorkflowEvent, WorkflowExecutionState } from './types.js';

const spec = DeciderSpecification.for(workflowExecutionDecider);

/** The stops the saga asks for after each event of a decision (each with the state right after it). */
function stopsAfter(given: readonly WorkflowEvent[], events: readonly WorkflowEvent[]): StopAction[] {
  let s: WorkflowExecutionState = fold(given);
  const out: StopAction[] = [];
  for (const e of events) {
    s = workflowExecutionDecider.evolve(s, e);
    out.push(...decideAfter(e, s).stop);
  }
  return out;
}

const brief = (stops: readonly StopAction[]) =>
  stops.map((x) => ({ key: x.idempotencyKey, kind: x.target.kind, cause: x.cause }));

const started = (s: WorkflowExecutionState): StartedExecution => {
  assert.notEqual(s.status, 'not_started');
  return s as StartedExecution;
};

const retryExecution = (t = T0): WorkflowCommand => ({ type: 'RetryExecution', data: {}, metadata: meta(t) });

describe('StepStopped: the execution ends while a sub-workflow step waits on its child', () => {
  // The reviewer's parent: a sub-workflow whose child waits for a signal, beside a step that fails.
  const parent: WorkflowDefinitionInput = {
    id: 'parent',
    version: 1,
    name: 'parent',
    steps: [
      { id: 'sub', uses: 'workflow:child' },
      { id: 'bad', uses: 'mcp:database/query', with: { sql: 'select * from business.nope' } },
    ],
  };
  const running = history(cmd.start(parent), cmd.dispatched({ stepId: 'sub' }), cmd.dispatched({ stepId: 'bad' }));

  it('a failure that ends the execution stops the running sub-workflow step first; the saga cancels its child', () => {
    spec
      .given(running)
      .when(cmd.failed({ stepId: 'bad' }, invalid, 1, at(10)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepFailed:bad', 'StepStopped:sub', 'WorkflowFailed']);
        const reason = 'the execution failed: step "bad" failed: bad arguments';
        assert.deepEqual(events[1]!.data, { stepId: 'sub', attempt: 1, dispatched: true, reason, at: at(10) });
        const s = started(after);
        assert.equal(s.status, 'failed');
        // Not `running` in a failed execution: ended, and said why.
        assert.equal(s.steps['sub']!.status, 'failed');
        assert.deepEqual(s.steps['sub']!.error, { code: 'canceled', message: `stopped: ${reason}`, retryable: false });
        assert.equal(s.steps['sub']!.units[0]!.phase, 'canceled');
        // The child is canceled by the unit's key, as a cancel of the parent does.
        assert.deepEqual(brief(stopsAfter(running, events)), [
          { key: 'ex1:sub:1', kind: 'workflow', cause: 'stopped' },
        ]);
        assert.equal(stopsAfter(running, events)[0]!.reason, reason);
      });
  });

  it("the canceled child's report to its failed parent changes nothing", () => {
    const failed = history(
      cmd.start(parent),
      cmd.dispatched({ stepId: 'sub' }),
      cmd.dispatched({ stepId: 'bad' }),
      cmd.failed({ stepId: 'bad' }, invalid),
    );
    spec
      .given(failed)
      .when(cmd.failed({ stepId: 'sub' }, { code: 'subworkflow_canceled', message: 'parent: ...', retryable: false }))
      .thenNothingHappened();
  });

  it('a retry of the failed parent runs the stopped step again under a new key: one child at a time', () => {
    const failed = history(
      cmd.start(parent),
      cmd.dispatched({ stepId: 'sub' }),
      cmd.dispatched({ stepId: 'bad' }),
      cmd.failed({ stepId: 'bad' }, invalid),
    );
    spec
      .given(failed)
      .when(retryExecution(at(20)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['ExecutionRetried', 'StepScheduled:sub', 'StepScheduled:bad']);
        assert.deepEqual((events[0]!.data as { steps: readonly string[] }).steps, ['sub', 'bad']);
        assert.equal(started(after).steps['sub']!.units[0]!.idempotencyKey, 'ex1:sub:2');
      });
  });

  it('an MCP call or an agent task still running at the end is stopped the same way, by its key', () => {
    const def: WorkflowDefinitionInput = {
      id: 'mixed',
      version: 1,
      name: 'mixed',
      steps: [
        { id: 'call', uses: 'mcp:fetch/http_request' },
        { id: 'task', uses: 'agent:revenue_analysis' },
        { id: 'bad', uses: 'mcp:database/query' },
      ],
    };
    const given = history(
      cmd.start(def),
      cmd.dispatched({ stepId: 'call' }),
      cmd.dispatched({ stepId: 'task' }),
      cmd.dispatched({ stepId: 'bad' }),
    );
    spec
      .given(given)
      .when(cmd.failed({ stepId: 'bad' }, invalid))
      .then((events) => {
        assert.deepEqual(types(events), ['StepFailed:bad', 'StepStopped:call', 'StepStopped:task', 'WorkflowFailed']);
        assert.deepEqual(brief(stopsAfter(given, events)), [
          { key: 'ex1:call:1', kind: 'mcp', cause: 'stopped' },
          { key: 'ex1:task:1', kind: 'agent', cause: 'stopped' },
        ]);
      });
  });

  it('a unit not sent yet, or waiting for its retry, is stopped without asking anyone', () => {
    const def: WorkflowDefinitionInput = {
      id: 'waiting',
      version: 1,
      name: 'waiting',
      steps: [
        { id: 'later', uses: 'mcp:database/query', retry: { attempts: 3, backoff: { initialMs: 60_000 } } },
        { id: 'queued', uses: 'mcp:database/query' },
        { id: 'bad', uses: 'mcp:database/query' },
      ],
    };
    const given = history(
      cmd.start(def),
      cmd.dispatched({ stepId: 'later' }),
      cmd.failed({ stepId: 'later' }, { code: 'unavailable', message: 'down', retryable: true }),
      cmd.dispatched({ stepId: 'bad' }),
    );
    spec
      .given(given)
      .when(cmd.failed({ stepId: 'bad' }, invalid))
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'StepFailed:bad',
          'StepStopped:later',
          'StepStopped:queued',
          'WorkflowFailed',
        ]);
        // `later` waited for attempt 2: that attempt is the one given up.
        assert.deepEqual(
          events.filter((e) => e.type === 'StepStopped').map((e) => [e.data.stepId, e.data.attempt, e.data.dispatched]),
          [
            ['later', 2, false],
            ['queued', 1, false],
          ],
        );
        assert.deepEqual(stopsAfter(given, events), []);
        assert.deepEqual(
          Object.values(started(after).steps).map((st) => [st.id, st.status, st.units[0]?.phase]),
          [
            ['later', 'failed', 'canceled'],
            ['queued', 'failed', 'canceled'],
            ['bad', 'failed', 'failed'],
          ],
        );
      });
  });
});

describe('a timed-out attempt is stopped', () => {
  const parent: WorkflowDefinitionInput = {
    id: 'parent',
    version: 1,
    name: 'parent',
    steps: [
      {
        id: 'sub',
        uses: 'workflow:child',
        timeout_ms: 1_000,
        retry: { attempts: 2, backoff: { initialMs: 100 }, on: ['timeout'] },
      },
    ],
  };

  it('a sub-workflow attempt that timed out has its child canceled, whether the step is retried or fails', () => {
    const first = history(cmd.start(parent), cmd.dispatched({ stepId: 'sub' }));
    spec
      .given(first)
      .when(cmd.timedOut({ stepId: 'sub' }, 1, at(1_000)))
      .then((events) => {
        assert.deepEqual(types(events), ['StepTimedOut:sub', 'StepFailed:sub', 'StepRetryScheduled:sub']);
        const stops = stopsAfter(first, events);
        assert.deepEqual(brief(stops), [{ key: 'ex1:sub:1', kind: 'workflow', cause: 'timed_out' }]);
        assert.equal(stops[0]!.reason, 'attempt 1 of step "sub" timed out');
      });
    const second = history(
      cmd.start(parent),
      cmd.dispatched({ stepId: 'sub' }),
      cmd.timedOut({ stepId: 'sub' }, 1, at(1_000)),
      cmd.retry({ stepId: 'sub' }, 2, at(1_100)),
      cmd.dispatched({ stepId: 'sub' }, 2, at(1_100)),
    );
    spec
      .given(second)
      .when(cmd.timedOut({ stepId: 'sub' }, 2, at(2_100)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepTimedOut:sub', 'StepFailed:sub', 'WorkflowFailed']);
        assert.equal(after.status, 'failed');
        assert.deepEqual(brief(stopsAfter(second, events)), [
          { key: 'ex1:sub:2', kind: 'workflow', cause: 'timed_out' },
        ]);
      });
  });

  it('so is a timed-out MCP call (an agent task alike): the worker is told by the key of that attempt', () => {
    const def: WorkflowDefinitionInput = {
      id: 'call',
      version: 1,
      name: 'call',
      steps: [{ id: 'post', uses: 'mcp:fetch/http_request', timeout_ms: 1_000 }],
    };
    const given = history(cmd.start(def), cmd.dispatched({ stepId: 'post' }));
    spec
      .given(given)
      .when(cmd.timedOut({ stepId: 'post' }, 1, at(1_000)))
      .then((events) =>
        assert.deepEqual(brief(stopsAfter(given, events)), [{ key: 'ex1:post:1', kind: 'mcp', cause: 'timed_out' }]),
      );
  });
});

describe('a for_each step that fails stops its items still in flight', () => {
  const def = (onError: 'fail' | 'continue'): WorkflowDefinitionInput => ({
    id: `fe_${onError}`,
    version: 1,
    name: 'fe',
    steps: [
      {
        id: 'fe',
        uses: 'mcp:database/query',
        for_each: { items: '[0, 1, 2, 3]', concurrency: 4 },
        on_error: onError,
        with: { i: '${{ item }}' },
      },
      { id: 'check', uses: 'mcp:database/query', needs: ['fe'], if: "steps.fe.status == 'failed'" },
    ],
    outputs: { fe: '${{ steps.fe.status }}' },
  });
  const item = (i: number) => ({ stepId: 'fe', itemIndex: i });
  const allSent = (d: WorkflowDefinitionInput) =>
    history(cmd.start(d), ...[0, 1, 2, 3].map((i) => cmd.dispatched(item(i))));

  it('on_error continue: items 1-3 end canceled (asked to stop), the run goes on without waiting for them', () => {
    const given = allSent(def('continue'));
    spec
      .given(given)
      .when(cmd.failed(item(0), invalid, 1, at(5)))
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'StepFailed:fe[0]',
          'StepFailed:fe',
          'StepStopped:fe[1]',
          'StepStopped:fe[2]',
          'StepStopped:fe[3]',
          'StepScheduled:check',
        ]);
        assert.deepEqual(events[2]!.data, {
          stepId: 'fe',
          itemIndex: 1,
          attempt: 1,
          dispatched: true,
          reason: 'step "fe" failed',
          at: at(5),
        });
        const s = started(after);
        assert.deepEqual(
          s.steps['fe']!.units.map((u) => u!.phase),
          ['failed', 'canceled', 'canceled', 'canceled'],
        );
        assert.deepEqual(
          brief(stopsAfter(given, events)),
          [1, 2, 3].map((i) => ({ key: `ex1:fe[${i}]:1`, kind: 'mcp', cause: 'stopped' })),
        );
        // Their timeouts are no longer armed: nothing of theirs is left to the engine.
        assert.deepEqual(
          nextActions(after, at(5)).timers.map((t) => t.command.data.stepId),
          [],
        );
      });
  });

  it('a late result of a stopped item changes nothing else (a success is kept for the item), and the execution completes with nothing dispatched', () => {
    const d = def('continue');
    const given = history(
      cmd.start(d),
      ...[0, 1, 2, 3].map((i) => cmd.dispatched(item(i))),
      cmd.failed(item(0), invalid),
    );
    // Its call finished at its server: recorded for a later cancel to undo; the step stays failed.
    spec
      .given(given)
      .when(cmd.succeeded(item(1), { ok: true }))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepSucceeded:fe[1]']);
        assert.equal((events[0]!.data as { late?: boolean }).late, true);
        const s = started(after);
        assert.equal(s.steps['fe']!.status, 'failed');
        assert.ok(Object.values(s.steps).every((st) => st.units.every((u) => u?.phase !== 'dispatched')));
      });
    spec
      .given(given)
      .when(cmd.failed(item(1), invalid))
      .thenNothingHappened();
    spec
      .given(given)
      .when(cmd.succeeded({ stepId: 'check' }, {}))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepSucceeded:check', 'WorkflowCompleted']);
        const s = started(after);
        assert.ok(Object.values(s.steps).every((st) => st.units.every((u) => u?.phase !== 'dispatched')));
      });
  });

  it('on_error fail: the items are stopped before the execution fails', () => {
    const given = allSent(def('fail'));
    spec
      .given(given)
      .when(cmd.failed(item(0), invalid))
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'StepFailed:fe[0]',
          'StepFailed:fe',
          'StepStopped:fe[1]',
          'StepStopped:fe[2]',
          'StepStopped:fe[3]',
          'WorkflowFailed',
        ]);
        assert.equal(after.status, 'failed');
        assert.equal(brief(stopsAfter(given, events)).length, 3);
      });
  });

  it('an item that timed out for good stops the others too', () => {
    const given = allSent(def('fail'));
    spec
      .given(given)
      .when(cmd.timedOut(item(2), 1, at(300_000)))
      .then((events) => {
        assert.deepEqual(types(events), [
          'StepTimedOut:fe[2]',
          'StepFailed:fe[2]',
          'StepFailed:fe',
          'StepStopped:fe[0]',
          'StepStopped:fe[1]',
          'StepStopped:fe[3]',
          'WorkflowFailed',
        ]);
        // The timed-out item's own call is stopped too (its timeout), then its siblings.
        assert.deepEqual(
          brief(stopsAfter(given, events)).map((x) => [x.key, x.cause]),
          [
            ['ex1:fe[2]:1', 'timed_out'],
            ['ex1:fe[0]:1', 'stopped'],
            ['ex1:fe[1]:1', 'stopped'],
            ['ex1:fe[3]:1', 'stopped'],
          ],
        );
      });
  });

  it('while canceling, a failing item does not give up the others: the cancel asked them to stop, and one that succeeds anyway is compensated', () => {
    const given = history(cmd.start(def('fail')), ...[0, 1, 2, 3].map((i) => cmd.dispatched(item(i))), cmd.cancel());
    spec
      .given(given)
      .when(cmd.failed(item(0), { code: 'canceled', message: 'canceled', retryable: false }))
      .then((events) => assert.deepEqual(types(events), ['StepFailed:fe[0]', 'StepFailed:fe']));
  });

  it('a stream recorded before StepStopped (items left dispatched after the step failed) folds as it did; its end stops them', () => {
    // What the decider recorded before: the same run without its StepStopped events.
    const old = history(
      cmd.start(def('continue')),
      ...[0, 1, 2, 3].map((i) => cmd.dispatched(item(i))),
      cmd.failed(item(0), invalid),
    ).filter((e) => e.type !== 'StepStopped');
    assert.deepEqual(
      started(fold(old)).steps['fe']!.units.map((u) => u!.phase),
      ['failed', 'dispatched', 'dispatched', 'dispatched'],
    );
    spec
      .given(old)
      .when(cmd.succeeded({ stepId: 'check' }, {}))
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'StepSucceeded:check',
          'StepStopped:fe[1]',
          'StepStopped:fe[2]',
          'StepStopped:fe[3]',
          'WorkflowCompleted',
        ]);
        assert.equal((events[1]!.data as { reason: string }).reason, 'the execution completed');
        assert.deepEqual(
          started(after).steps['fe']!.units.map((u) => u!.phase),
          ['failed', 'canceled', 'canceled', 'canceled'],
        );
        assert.equal(brief(stopsAfter(old, events)).length, 3);
      });
  });

  it('a StepStopped for another attempt than the one in flight changes nothing (a repeat, a late record)', () => {
    const given = allSent(def('continue'));
    const s = fold(given);
    const stale: WorkflowEvent = {
      type: 'StepStopped',
      data: { stepId: 'fe', itemIndex: 1, attempt: 7, dispatched: true, reason: 'x', at: T0 },
      metadata: meta(),
    };
    assert.deepEqual(workflowExecutionDecider.evolve(s, stale), s);
  });
});

describe('the execution ends while a for_each step runs', () => {
  it('its items in flight are stopped, then the step itself', () => {
    const def: WorkflowDefinitionInput = {
      id: 'side',
      version: 1,
      name: 'side',
      steps: [
        { id: 'fe', uses: 'mcp:database/query', for_each: { items: '[1, 2, 3]', concurrency: 2 } },
        { id: 'bad', uses: 'mcp:database/query' },
      ],
    };
    const given = history(
      cmd.start(def),
      cmd.dispatched({ stepId: 'fe', itemIndex: 0 }),
      cmd.dispatched({ stepId: 'bad' }),
    );
    spec
      .given(given)
      .when(cmd.failed({ stepId: 'bad' }, invalid))
      .then((events, after) => {
        // Item 1 was scheduled, not sent: stopped without a stop; item 2 never started.
        assert.deepEqual(types(events), [
          'StepFailed:bad',
          'StepStopped:fe[0]',
          'StepStopped:fe[1]',
          'StepStopped:fe',
          'WorkflowFailed',
        ]);
        assert.deepEqual(
          events.filter((e) => e.type === 'StepStopped').map((e) => e.data.dispatched),
          [true, false, false],
        );
        assert.equal(started(after).steps['fe']!.status, 'failed');
        assert.deepEqual(brief(stopsAfter(given, events)), [{ key: 'ex1:fe[0]:1', kind: 'mcp', cause: 'stopped' }]);
      });
  });
});

/**
 * Wait steps and signals (SendSignal, RecordWaitTimedOut), given events / when command / then events.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import { DomainError } from '../../decider.js';
import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { validateDefinition } from '../definition/validate.js';
import { workflowExecutionDecider } from './decider.js';
import { decideAfter, nextActions } from './saga.js';
import { at, cmd, fold, history, meta, T0, types } from './spec-helpers.js';
import type { WorkflowCommand, WorkflowEvent } from './types.js';
import * as limitsModule from '../definition/limits.js';

const spec = DeciderSpecification.for(workflowExecutionDecider);
const isCode = (code: string) => (e: unknown) => e instanceof DomainError && e.code === code;

/** prepare -> approval (waits for `approve`, 1 s) -> send (only when approved). */
const approval = (onTimeout: unknown = 'fail', timeout: number | string = 1000): WorkflowDefinitionInput =>
  ({
    id: 'approval',
    version: 1,
    name: 'Approval',
    input: { type: 'object', properties: { timeout: { type: 'integer', default: 1000 } } },
    steps: [
      { id: 'prepare', uses: 'mcp:database/query', with: { sql: 'select 1' } },
      { id: 'approval', needs: ['prepare'], wait: { signal: 'approve', timeout_ms: timeout, on_timeout: onTimeout } },
      {
        id: 'send',
        uses: 'mcp:automation/send_email',
        needs: ['approval'],
        with: { ok: '${{ steps.approval.output }}' },
      },
    ],
  }) as WorkflowDefinitionInput;

const signal = (
  name: string,
  payload: Record<string, unknown>,
  t = T0,
  signalId = `sig-${name}-${t}`,
): WorkflowCommand => ({
  type: 'SendSignal',
  data: { signalId, name, payload },
  metadata: meta(t),
});
const waitTimedOut = (stepId: string, t: string): WorkflowCommand => ({
  type: 'RecordWaitTimedOut',
  data: { stepId },
  metadata: meta(t),
});

/** Started, prepare dispatched and succeeded at +10 ms: the wait step is waiting until +1010 ms. */
const waiting = (def = approval()): WorkflowEvent[] =>
  history(
    cmd.start(def),
    cmd.dispatched({ stepId: 'prepare' }),
    cmd.succeeded({ stepId: 'prepare' }, { rows: [] }, 1, at(10)),
  );

describe('wait step: definition', () => {
  it('a wait step validates; its timeout may be an expression', () => {
    assert.equal(validateDefinition(approval()).ok, true);
    assert.equal(validateDefinition(approval('continue', '${{ input.timeout }}')).ok, true);
    assert.equal(validateDefinition(approval({ default_output: { approved: false } })).ok, true);
  });

  it('bad timeout, unknown on_timeout, both uses and wait, call settings on a wait step: problems', () => {
    const codes = (d: unknown) => {
      const v = validateDefinition(d);
      return v.ok ? [] : v.problems.map((p) => `${p.path}:${p.code}`);
    };
    assert.deepEqual(codes(approval('fail', 0)), ['steps[1].wait.timeout_ms:schema']);
    assert.deepEqual(codes(approval('fail', -5)), ['steps[1].wait.timeout_ms:schema']);
    assert.deepEqual(codes(approval('fail', 'soon')), ['steps[1].wait.timeout_ms:schema']);
    assert.ok(
      codes(approval('retry')).every((c) => c.startsWith('steps[1].wait.on_timeout')),
      String(codes(approval('retry'))),
    );
    assert.ok(codes(approval('retry')).length > 0);
    const both = approval();
    (both.steps[1] as Record<string, unknown>).uses = 'mcp:database/query';
    assert.deepEqual(codes(both), ['steps[1].uses:schema']);
    const withRetry = approval();
    (withRetry.steps[1] as Record<string, unknown>).retry = { attempts: 2 };
    assert.deepEqual(codes(withRetry), ['steps[1].retry:bad_wait']);
    assert.deepEqual(codes(approval('fail', '${{ steps.send.output }}')), ['steps[1].wait.timeout_ms:bad_expression']);
  });
});

describe('wait step: running', () => {
  it('reaching a wait step starts it (no dispatch) and arms its durable timer', () => {
    const events = waiting();
    assert.deepEqual(types(events).slice(-2), ['StepSucceeded:prepare', 'WaitStarted:approval']);
    const started = events.at(-1)!;
    assert.deepEqual(started.data, { stepId: 'approval', signal: 'approve', startedAt: at(10), timeoutAt: at(1010) });
    const s = fold(events);
    const after = decideAfter(started, s);
    assert.deepEqual(after.dispatch, []);
    assert.deepEqual(
      after.timers.map((t) => [t.kind, t.dueAt, t.command.type]),
      [['wait_timeout', at(1010), 'RecordWaitTimedOut']],
    );
    // Recovery sees the same timer.
    assert.deepEqual(
      nextActions(s, at(20)).timers.map((t) => t.kind),
      ['wait_timeout'],
    );
  });

  it('the timeout expression is resolved from the input when the step starts', () => {
    const def = approval('fail', '${{ input.timeout }}');
    const events = history(
      cmd.start(def, { timeout: 5000 }),
      cmd.dispatched({ stepId: 'prepare' }),
      cmd.succeeded({ stepId: 'prepare' }, {}, 1, at(10)),
    );
    const w = events.find((e) => e.type === 'WaitStarted')!;
    assert.equal((w.data as { timeoutAt: string }).timeoutAt, at(5010));
  });

  it('a timeout expression that gives no positive integer fails the step', () => {
    const def = approval('fail', '${{ input.timeout }}');
    const events = history(
      cmd.start(def, { timeout: 0 }),
      cmd.dispatched({ stepId: 'prepare' }),
      cmd.succeeded({ stepId: 'prepare' }, {}, 1, at(10)),
    );
    assert.deepEqual(types(events).slice(-2), ['StepFailed:approval', 'WorkflowFailed']);
  });
});

describe('SendSignal', () => {
  it('while the step waits: recorded, consumed, the step succeeds with the payload and the next step is scheduled', () => {
    spec
      .given(waiting())
      .when(signal('approve', { approved: true }, at(500)))
      .then((events) => {
        assert.deepEqual(types(events), ['SignalReceived:approval', 'StepSucceeded:approval', 'StepScheduled:send']);
        assert.deepEqual(events[0]!.data, {
          signalId: `sig-approve-${at(500)}`,
          name: 'approve',
          payload: { approved: true },
          receivedAt: at(500),
          actor: 'user:tester',
          disposition: 'consumed',
          stepId: 'approval',
        });
        assert.deepEqual(events[1]!.data, { stepId: 'approval', attempt: 0, output: { approved: true }, at: at(500) });
        assert.deepEqual((events[2]!.data as { input: unknown }).input, { ok: { approved: true } });
      });
  });

  it('before the step is reached: buffered, then consumed when the step starts', () => {
    const given = history(cmd.start(approval()), cmd.dispatched({ stepId: 'prepare' }));
    const early = spec
      .given(given)
      .when(signal('approve', { approved: false }, at(5)))
      .then((events) => {
        assert.deepEqual(types(events), ['SignalReceived']);
        assert.equal((events[0]!.data as { disposition: string }).disposition, 'buffered');
      });
    spec
      .given([...given, ...early])
      .when(cmd.succeeded({ stepId: 'prepare' }, {}, 1, at(10)))
      .then((events) => {
        assert.deepEqual(types(events), [
          'StepSucceeded:prepare',
          'WaitStarted:approval',
          'SignalConsumed:approval',
          'StepSucceeded:approval',
          'StepScheduled:send',
        ]);
        assert.deepEqual((events[3]!.data as { output: unknown }).output, { approved: false });
      });
  });

  it('a second early signal for the one pending wait step is ignored (recorded)', () => {
    const given = history(cmd.start(approval()), signal('approve', { n: 1 }, at(1)));
    spec
      .given(given)
      .when(signal('approve', { n: 2 }, at(2)))
      .then((events) => {
        assert.equal((events[0]!.data as { disposition: string }).disposition, 'ignored');
      });
  });

  it('after the timeout fired (on_timeout continue): recorded, ignored, says why', () => {
    const given = [...waiting(approval('continue')), ...[]];
    const afterTimeout = [
      ...given,
      ...workflowExecutionDecider.decide(waitTimedOut('approval', at(1010)), fold(given)),
    ];
    spec
      .given(afterTimeout)
      .when(signal('approve', { approved: true }, at(2000)))
      .then((events) => {
        assert.deepEqual(types(events), ['SignalReceived']);
        const d = events[0]!.data as { disposition: string; reason: string };
        assert.equal(d.disposition, 'ignored');
        assert.match(d.reason, /timed out at .*changes nothing/);
      });
  });

  it('after the deadline but before its timer is recorded (a late timer): the wait is still open, the signal is consumed', () => {
    spec
      .given(waiting(approval('fail')))
      .when(signal('approve', { approved: true }, at(1050)))
      .then((events) => {
        assert.deepEqual(types(events), ['SignalReceived:approval', 'StepSucceeded:approval', 'StepScheduled:send']);
        assert.equal((events[0]!.data as { disposition: string }).disposition, 'consumed');
        assert.deepEqual((events[1]!.data as { output: unknown }).output, { approved: true });
      });
    // The timer coming afterwards changes nothing.
    const given = waiting(approval('fail'));
    const late = workflowExecutionDecider.decide(signal('approve', { approved: true }, at(1050)), fold(given));
    spec
      .given([...given, ...late])
      .when(waitTimedOut('approval', at(1010)))
      .thenNothingHappened();
  });

  it('a signal stamped an hour past the deadline by a sender whose clock is ahead, while the wait is open: consumed', () => {
    // The wait (1 s, on_timeout fail) is open until the engine's timer fires; the sender's clock
    // says an hour later than the engine's (another host, or a forward step of its clock).
    spec
      .given(waiting(approval('fail')))
      .when(signal('approve', { approved: true }, at(1010 + 3_600_000)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['SignalReceived:approval', 'StepSucceeded:approval', 'StepScheduled:send']);
        assert.equal((events[0]!.data as { disposition: string }).disposition, 'consumed');
        assert.equal(after.status !== 'not_started' && after.steps['approval']?.wait?.ended, 'signaled');
        assert.equal(after.status, 'running');
      });
  });

  it('the same signal id twice records nothing the second time', () => {
    const given = [
      ...waiting(),
      ...workflowExecutionDecider.decide(signal('approve', {}, at(100), 'once'), fold(waiting())),
    ];
    spec
      .given(given)
      .when(signal('approve', {}, at(200), 'once'))
      .thenNothingHappened();
  });

  it('an ended execution: 409; an unknown signal name: 404; no execution: 404', () => {
    const given = [...waiting(approval('fail'))];
    const failed = [...given, ...workflowExecutionDecider.decide(waitTimedOut('approval', at(1010)), fold(given))];
    spec.given(failed).when(signal('approve', {})).thenThrows(isCode('illegal_state'));
    spec.given(waiting()).when(signal('reject', {})).thenThrows(isCode('not_found'));
    spec.given([]).when(signal('approve', {})).thenThrows(isCode('not_found'));
  });

  it('while failing (a compensation runs): recorded as ignored', () => {
    const def = {
      ...approval(),
      steps: [
        ...approval().steps,
        { id: 'side', uses: 'mcp:database/query', on_error: { compensate: 'undo' } },
        { id: 'undo', uses: 'mcp:database/query' },
      ],
    };
    const given = history(
      cmd.start(def),
      cmd.dispatched({ stepId: 'prepare' }),
      cmd.succeeded({ stepId: 'prepare' }, {}, 1, at(10)),
      cmd.dispatched({ stepId: 'side' }),
      cmd.failed({ stepId: 'side' }, { code: 'x', message: 'no', retryable: false }, 1, at(20)),
    );
    assert.equal(fold(given).status, 'running');
    spec
      .given(given)
      .when(signal('approve', {}, at(30)))
      .then((events) =>
        assert.deepEqual(
          [types(events), (events[0]!.data as { disposition: string }).disposition],
          [['SignalReceived'], 'ignored'],
        ),
      );
  });
});

describe('RecordWaitTimedOut', () => {
  it('on_timeout fail: the step fails (wait_timeout) and with it the workflow', () => {
    spec
      .given(waiting(approval('fail')))
      .when(waitTimedOut('approval', at(1010)))
      .then((events) => {
        assert.deepEqual(types(events), ['WaitTimedOut:approval', 'StepFailed:approval', 'WorkflowFailed']);
        assert.equal((events[1]!.data as { error: { code: string } }).error.code, 'wait_timeout');
      });
  });

  it('on_timeout continue: the step succeeds with null; default_output: with that output', () => {
    spec
      .given(waiting(approval('continue')))
      .when(waitTimedOut('approval', at(1010)))
      .then((events) => {
        assert.deepEqual(types(events), ['WaitTimedOut:approval', 'StepSucceeded:approval', 'StepScheduled:send']);
        assert.equal((events[1]!.data as { output: unknown }).output, null);
      });
    spec
      .given(waiting(approval({ default_output: { approved: false, timed_out: true } })))
      .when(waitTimedOut('approval', at(1010)))
      .then((events) => {
        assert.deepEqual((events[1]!.data as { output: unknown }).output, { approved: false, timed_out: true });
        assert.equal((events[0]!.data as { onTimeout: string }).onTimeout, 'default_output');
      });
  });

  it('an early timer, a timer after the signal, a repeated timer: nothing happens', () => {
    spec
      .given(waiting())
      .when(waitTimedOut('approval', at(1000)))
      .thenNothingHappened();
    const signaled = [
      ...waiting(),
      ...workflowExecutionDecider.decide(signal('approve', {}, at(100)), fold(waiting())),
    ];
    spec
      .given(signaled)
      .when(waitTimedOut('approval', at(1010)))
      .thenNothingHappened();
    const given = waiting(approval('continue'));
    const timedOut = [...given, ...workflowExecutionDecider.decide(waitTimedOut('approval', at(1010)), fold(given))];
    spec
      .given(timedOut)
      .when(waitTimedOut('approval', at(1020)))
      .thenNothingHappened();
  });

  it('a canceled waiting execution ends at once (nothing is dispatched for a wait step); the wait step ends stopped', () => {
    spec
      .given(waiting())
      .when(cmd.cancel('bulk', at(20)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['ExecutionCancelRequested', 'StepStopped:approval', 'WorkflowCanceled']);
        // Nothing was sent for a wait step: nobody to ask to stop.
        assert.deepEqual(events[1]!.data, {
          stepId: 'approval',
          attempt: 0,
          dispatched: false,
          reason: 'the execution was canceled: bulk',
          at: at(20),
        });
        assert.equal(after.status !== 'not_started' && after.steps['approval']?.status, 'failed');
        assert.equal(after.status !== 'not_started' && after.steps['approval']?.error?.code, 'canceled');
      });
  });
});

describe('signals are bounded per execution (each stays in the stream every command folds)', () => {
  it('refuses one past WORKFLOW_MAX_SIGNALS or past WORKFLOW_MAX_SIGNAL_BYTES of payloads (409), ignored ones counted too', () => {
    const { configureWorkflowLimits, defaultWorkflowLimits } = limitsModule;
    try {
      configureWorkflowLimits({ maxSignals: 3, maxSignalChars: 2_000 });
      // Before the wait step runs: the first buffers, the next two are ignored, all three recorded.
      let events = history(cmd.start(approval()));
      for (let i = 0; i < 3; i++) {
        const more = workflowExecutionDecider.decide(signal('approve', { n: i }, at(i), `s${i}`), fold(events));
        assert.equal(more.length, 1);
        events = [...events, ...more];
      }
      const past = spec
        .given(events)
        .when(signal('approve', { n: 3 }, at(3), 's3'))
        .thenThrows<DomainError>(isCode('illegal_state'));
      assert.match(past.message, /recorded 3 signals; at most 3 \(WORKFLOW_MAX_SIGNALS\)/);
      assert.equal(past.status, 409);
      spec
        .given(events)
        .when(signal('approve', { n: 0 }, at(0), 's0'))
        .thenNothingHappened();

      const big = spec
        .given(history(cmd.start(approval())))
        .when(signal('approve', { blob: 'x'.repeat(2_000) }, at(1), 'big'))
        .thenThrows<DomainError>(isCode('illegal_state'));
      assert.match(big.message, /at most 2000 \(WORKFLOW_MAX_SIGNAL_BYTES\)/);
    } finally {
      configureWorkflowLimits(defaultWorkflowLimits);
    }
  });
});

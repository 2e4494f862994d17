import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { validateDefinition } from '../definition/validate.js';
import { workflowExecutionDecider } from './decider.js';
import { checkReplay, stateAt } from './operations.js';
import { decideAfter, nextActions } from './saga.js';
import { at, cmd, fold, history, invalid, meta, types, unavailable } from './spec-helpers.js';
import type { StepError, WorkflowCommand, WorkflowEvent } from './types.js';

const spec = DeciderSpecification.for(workflowExecutionDecider);

/**
 * `make` creates one schedule per delay (two in flight at once); `unmake`, the compensation of one
 * item, deletes the schedule that item made. `slow` keeps the execution running after `make`.
 */
const def: WorkflowDefinitionInput = {
  id: 'fan',
  version: 1,
  name: 'fan',
  input: {
    type: 'object',
    properties: { delays: { type: 'array', items: { type: 'string' } } },
    required: ['delays'],
  },
  steps: [
    {
      id: 'make',
      uses: 'mcp:automation/create_schedule',
      for_each: { items: 'input.delays', concurrency: 2, compensate: 'unmake' },
      with: { name: 'f-${{ item }}', after: '${{ item }}' },
      on_error: 'continue',
    },
    { id: 'slow', uses: 'agent:revenue_analysis', timeout_ms: 60_000 },
    {
      id: 'unmake',
      uses: 'mcp:automation/delete_schedule',
      timeout_ms: 30_000,
      with: { schedule: '${{ output.schedule.id }}', made_for: '${{ item }}', n: '${{ index + 1 }}' },
    },
  ],
};
const input = { delays: ['1d', '7d', '30d'] };
const item = (i: number) => ({ stepId: 'make', itemIndex: i });
const made = (i: number) => ({ schedule: { id: `s-${i}` } });
const compensated = (itemIndex: number, output: unknown = { deleted: true }, t = at(0)): WorkflowCommand => ({
  type: 'RecordCompensationSucceeded',
  data: { stepId: 'unmake', itemIndex, output },
  metadata: meta(t),
});
const compensationFailed = (itemIndex: number, error: StepError, t = at(0)): WorkflowCommand => ({
  type: 'RecordCompensationFailed',
  data: { stepId: 'unmake', itemIndex, error },
  metadata: meta(t),
});
const started = (events: readonly WorkflowEvent[]) =>
  events.filter((e) => e.type === 'CompensationStarted').map((e) => e.data);

describe('WorkflowExecution: compensation of for_each items', () => {
  const allMade = history(
    cmd.start(def, input),
    cmd.dispatched({ stepId: 'slow' }),
    cmd.succeeded(item(0), made(0)),
    cmd.succeeded(item(1), made(1)),
    cmd.succeeded(item(2), made(2)),
  );

  it('the item compensation never runs in the normal flow', () => {
    assert.ok(!types(allMade).some((t) => t.includes('unmake')), types(allMade).join(','));
    assert.ok(types(allMade).includes('StepSucceeded:make'));
  });

  it('on cancel, each item that succeeded is undone by its own compensation, against that item, under a key of its own', () => {
    spec
      .given(allMade)
      .when(cmd.cancel('customer withdrew', at(10)))
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'ExecutionCancelRequested',
          'CompensationStarted:unmake[0]',
          'CompensationStarted:unmake[1]',
          'CompensationStarted:unmake[2]',
        ]);
        assert.deepEqual(events[2]!.data, {
          stepId: 'unmake',
          itemIndex: 1,
          forStepId: 'make',
          cause: 'canceled',
          uses: 'mcp:automation/delete_schedule',
          input: { schedule: 's-1', made_for: '7d', n: 2 },
          inputChars: JSON.stringify({ schedule: 's-1', made_for: '7d', n: 2 }).length,
          idempotencyKey: 'ex1:compensate:unmake[1]:1',
          timeoutMs: 30_000,
          startedAt: at(10),
        });
        assert.equal(after.status, 'canceling');
        // The saga sends each one with its item and arms a deadline per item.
        const actions = decideAfter(events[2]!, after);
        assert.deepEqual(
          actions.dispatch.map((d) => [d.kind, d.stepId, d.itemIndex, d.idempotencyKey, d.input]),
          [['compensation', 'unmake', 1, 'ex1:compensate:unmake[1]:1', { schedule: 's-1', made_for: '7d', n: 2 }]],
        );
        assert.deepEqual(
          actions.timers.map((t) => [t.kind, t.dueAt, t.command.type, t.command.data]),
          [
            [
              'compensation_timeout',
              at(30_010),
              'RecordCompensationFailed',
              {
                stepId: 'unmake',
                itemIndex: 1,
                error: { code: 'timeout', message: 'compensation timed out after 30000 ms', retryable: false },
              },
            ],
          ],
        );
        // Recovery (after a crash) sends all three again, with the same keys.
        assert.deepEqual(
          nextActions(after, at(20))
            .dispatch.filter((d) => d.kind === 'compensation')
            .map((d) => d.idempotencyKey),
          ['ex1:compensate:unmake[0]:1', 'ex1:compensate:unmake[1]:1', 'ex1:compensate:unmake[2]:1'],
        );
      });
  });

  it('the execution ends canceled once every item compensation and the running step have ended; results are per item, duplicates ignored', () => {
    const two = then(
      allMade,
      cmd.cancel(),
      cmd.failed({ stepId: 'slow' }, invalid),
      compensated(2),
      compensationFailed(0, invalid),
    );
    spec.given(two).when(compensated(2)).thenNothingHappened();
    spec
      .given(two)
      .when(compensated(1, { deleted: 's-1' }, at(99)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['CompensationSucceeded:unmake[1]', 'WorkflowCanceled']);
        assert.equal(after.status, 'canceled');
        assert.ok(after.status === 'canceled');
        assert.deepEqual(
          Object.fromEntries(Object.entries(after.compensations).map(([k, c]) => [k, [c.itemIndex, c.status]])),
          { 'unmake[0]': [0, 'failed'], 'unmake[1]': [1, 'succeeded'], 'unmake[2]': [2, 'succeeded'] },
        );
      });
  });

  it('an item in flight at the cancel is undone once it succeeds; one that fails, or was never sent, is not', () => {
    // Items 0 and 1 are sent; item 0 succeeds (item 2 is scheduled), item 1 is still with its server.
    const midway = history(
      cmd.start(def, input),
      cmd.dispatched({ stepId: 'slow' }),
      cmd.dispatched(item(0)),
      cmd.dispatched(item(1)),
      cmd.succeeded(item(0), made(0)),
    );
    assert.deepEqual(types(midway).slice(-2), ['StepSucceeded:make[0]', 'StepScheduled:make[2]']);
    const canceled = then(midway, cmd.cancel('stop', at(5)));
    assert.deepEqual(types(canceled).slice(-2), ['ExecutionCancelRequested', 'CompensationStarted:unmake[0]']);
    // Item 2 was never sent: it is abandoned, never compensated.
    const st = fold(canceled);
    assert.ok(st.status === 'canceling');
    assert.equal(st.steps['make']!.units[2]!.phase, 'canceled');

    spec
      .given(canceled)
      .when(cmd.succeeded(item(1), made(1), 1, at(8)))
      .then((events) => {
        assert.deepEqual(types(events), ['StepSucceeded:make[1]', 'CompensationStarted:unmake[1]']);
        assert.deepEqual((events[1]!.data as { input: unknown }).input, {
          schedule: 's-1',
          made_for: '7d',
          n: 2,
        });
      });
    spec
      .given(canceled)
      .when(cmd.failed(item(1), invalid, 1, at(8)))
      .then((events) => assert.ok(!types(events).some((t) => t.startsWith('Compensation')), types(events).join(',')));
    // A late duplicate of item 0's success starts nothing again.
    spec
      .given(canceled)
      .when(cmd.succeeded(item(0), made(0), 1, at(9)))
      .thenNothingHappened();
  });

  it('an item that failed for good is not undone; the items that succeeded are', () => {
    const partly = history(
      cmd.start(def, input),
      cmd.dispatched({ stepId: 'slow' }),
      cmd.succeeded(item(0), made(0)),
      cmd.failed(item(1), invalid),
    );
    // on_error continue: the step failed, item 2 (in flight) was given up with it.
    assert.ok(types(partly).includes('StepFailed:make'));
    spec
      .given(partly)
      .when(cmd.cancel())
      .then((events) => assert.deepEqual(types(events), ['ExecutionCancelRequested', 'CompensationStarted:unmake[0]']));
  });

  it('an item compensation whose input cannot be resolved fails alone, recorded; the others run', () => {
    const odd = history(
      cmd.start(def, input),
      cmd.dispatched({ stepId: 'slow' }),
      cmd.succeeded(item(0), made(0)),
      cmd.succeeded(item(1), { nothing: true }),
      cmd.succeeded(item(2), made(2)),
    );
    spec
      .given(odd)
      .when(cmd.cancel())
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'ExecutionCancelRequested',
          'CompensationStarted:unmake[0]',
          'CompensationStarted:unmake[1]',
          'CompensationFailed:unmake[1]',
          'CompensationStarted:unmake[2]',
        ]);
        assert.equal((events[3]!.data as { error: StepError }).error.code, 'expression_error');
        assert.deepEqual(
          started(events).map((d) => (d as { input: unknown }).input),
          [{ schedule: 's-0', made_for: '1d', n: 1 }, null, { schedule: 's-2', made_for: '30d', n: 3 }],
        );
        assert.ok(after.status === 'canceling');
      });
  });
});

describe("WorkflowExecution: an item stopped by its step's failure that succeeds anyway", () => {
  /** As `fan`, four items at once, and `report` depends on `make` (skipped when it fails). */
  const wide: WorkflowDefinitionInput = {
    ...def,
    id: 'fan_wide',
    steps: [
      { ...def.steps[0]!, for_each: { items: 'input.delays', concurrency: 4, compensate: 'unmake' } },
      { id: 'report', uses: 'mcp:database/query', needs: ['make'], with: {} },
      def.steps[1]!,
      def.steps[2]!,
    ],
  };
  const four = { delays: ['1d', '7d', '30d', '90d'] };
  // All four items sent; item 0 made its schedule, item 2 failed for good: the step failed (on_error
  // continue) and items 1 and 3, still with their server, were stopped.
  const stopped = history(
    cmd.start(wide, four),
    cmd.dispatched({ stepId: 'slow' }),
    ...[0, 1, 2, 3].map((i) => cmd.dispatched(item(i))),
    cmd.succeeded(item(0), made(0)),
    cmd.failed(item(2), invalid, 1, at(1)),
  );
  const lateSuccess = cmd.succeeded(item(1), made(1), 1, at(3));

  it('the late success is recorded for the item, and the step stays failed with what follows from it', () => {
    assert.deepEqual(types(stopped).slice(-5), [
      'StepFailed:make[2]',
      'StepFailed:make',
      'StepStopped:make[1]',
      'StepStopped:make[3]',
      'StepSkipped:report',
    ]);
    spec
      .given(stopped)
      .when(lateSuccess)
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepSucceeded:make[1]']);
        assert.deepEqual(events[0]!.data, {
          stepId: 'make',
          itemIndex: 1,
          attempt: 1,
          output: made(1),
          outputChars: JSON.stringify(made(1)).length,
          at: at(3),
          late: true,
        });
        assert.ok(after.status === 'running');
        const make = after.steps['make']!;
        assert.equal(make.status, 'failed');
        assert.deepEqual(make.error, invalid);
        assert.deepEqual(
          make.units.map((u) => [u?.phase, u?.output, u?.error?.code]),
          [
            ['succeeded', made(0), undefined],
            ['succeeded', made(1), undefined],
            ['failed', undefined, 'validation'],
            ['canceled', undefined, 'canceled'],
          ],
        );
        assert.equal(after.steps['report']!.status, 'skipped');
        // Nothing to send: the item is not run again.
        assert.deepEqual(
          nextActions(after, at(3)).dispatch.map((d) => d.stepId),
          [],
        );
      });
  });

  it('recorded once, for the attempt that was stopped; a late failure, or a success after the end, records nothing', () => {
    const recorded = then(stopped, lateSuccess);
    assert.deepEqual(types(recorded).slice(-1), ['StepSucceeded:make[1]']);
    spec.given(recorded).when(lateSuccess).thenNothingHappened();
    spec
      .given(stopped)
      .when(cmd.succeeded(item(1), made(1), 2, at(3)))
      .thenNothingHappened();
    spec
      .given(stopped)
      .when(cmd.failed(item(3), invalid, 1, at(3)))
      .thenNothingHappened();
    // An item failing for good under on_error fail ends the execution: nothing is recorded after.
    const failing: WorkflowDefinitionInput = {
      ...wide,
      id: 'fan_wide_fail',
      steps: wide.steps.map((x) => (x.id === 'make' ? { ...x, on_error: 'fail' as const } : x)),
    };
    const ended = history(
      cmd.start(failing, four),
      ...[0, 1, 2, 3].map((i) => cmd.dispatched(item(i))),
      cmd.failed(item(2), invalid),
    );
    assert.equal(fold(ended).status, 'failed');
    spec.given(ended).when(lateSuccess).thenNothingHappened();
  });

  it('a later cancel undoes it with the items that succeeded before, each once under its own key; not an item with no success', () => {
    spec
      .given(then(stopped, lateSuccess))
      .when(cmd.cancel('customer withdrew', at(10)))
      .then((events) => {
        assert.deepEqual(types(events), [
          'ExecutionCancelRequested',
          'CompensationStarted:unmake[0]',
          'CompensationStarted:unmake[1]',
        ]);
        assert.deepEqual(
          started(events).map((d) => [d.idempotencyKey, d.input]),
          [
            ['ex1:compensate:unmake[0]:1', { schedule: 's-0', made_for: '1d', n: 1 }],
            ['ex1:compensate:unmake[1]:1', { schedule: 's-1', made_for: '7d', n: 2 }],
          ],
        );
      });
  });

  it('a late success that comes while canceling is undone at once', () => {
    const canceling = then(stopped, cmd.cancel('customer withdrew', at(2)));
    assert.deepEqual(types(canceling).slice(-2), ['ExecutionCancelRequested', 'CompensationStarted:unmake[0]']);
    spec
      .given(canceling)
      .when(cmd.succeeded(item(3), made(3), 1, at(3)))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepSucceeded:make[3]', 'CompensationStarted:unmake[3]']);
        assert.equal((events[0]!.data as { late?: boolean }).late, true);
        assert.deepEqual(started(events)[0]!.input, { schedule: 's-3', made_for: '90d', n: 4 });
        assert.ok(after.status === 'canceling');
      });
  });

  it('an item stopped while it waited for its retry was not sent: a result for it records nothing', () => {
    const retrying: WorkflowDefinitionInput = {
      ...wide,
      id: 'fan_wide_retry',
      steps: wide.steps.map((x) =>
        x.id === 'make' ? { ...x, retry: { attempts: 2, backoff: { initialMs: 60_000 } } } : x,
      ),
    };
    const waited = history(
      cmd.start(retrying, four),
      ...[0, 1, 2, 3].map((i) => cmd.dispatched(item(i))),
      cmd.failed(item(1), unavailable),
      cmd.failed(item(2), invalid),
    );
    assert.deepEqual(types(waited).slice(-6), [
      'StepFailed:make[2]',
      'StepFailed:make',
      'StepStopped:make[0]',
      'StepStopped:make[1]',
      'StepStopped:make[3]',
      'StepSkipped:report',
    ]);
    const w = fold(waited);
    assert.equal(w.status === 'running' && w.steps['make']!.units[1]!.attempt, 2);
    spec
      .given(waited)
      .when(cmd.succeeded(item(1), made(1), 1))
      .thenNothingHappened();
    spec
      .given(waited)
      .when(cmd.succeeded(item(1), made(1), 2))
      .thenNothingHappened();
    // Item 0, sent when stopped, still takes its late success.
    spec
      .given(waited)
      .when(cmd.succeeded(item(0), made(0)))
      .then((events) => assert.deepEqual(types(events), ['StepSucceeded:make[0]']));
  });

  it('time travel and the replay check see the late success as recorded', () => {
    const recorded = then(
      stopped,
      lateSuccess,
      cmd.cancel('customer withdrew', at(10)),
      // `slow`, asked to stop by the cancel, says so.
      cmd.failed({ stepId: 'slow' }, { code: 'canceled', message: 'stopped', retryable: false }, 1, at(11)),
      compensated(0),
      compensated(1),
    );
    const source = fold(recorded);
    assert.ok(source.status === 'canceled');
    const revisioned = recorded.map((event, revision) => ({ revision, event }));
    const late = recorded.findIndex((e) => e.type === 'StepSucceeded' && e.data.itemIndex === 1);
    const before = stateAt(revisioned, late - 1);
    const afterLate = stateAt(revisioned, late);
    assert.ok(before.status === 'running' && afterLate.status === 'running');
    assert.equal(before.steps['make']!.units[1]!.phase, 'canceled');
    assert.equal(afterLate.steps['make']!.units[1]!.phase, 'succeeded');
    assert.equal(afterLate.steps['make']!.status, 'failed');
    const report = checkReplay(source, source.definition);
    assert.deepEqual(report.differences, []);
    assert.equal(report.replayed_status, 'canceled', JSON.stringify(report));
    assert.equal(report.same, true);
  });

  it('the replay check of a run canceled mid-way answers each item with its own outcome, not its step’s cancel', () => {
    // Items 0 and 1 made their schedules (item 2 was sent after item 0); the cancel stopped the
    // step with item 2 in flight, and the two were undone.
    const recorded = history(
      cmd.start(def, input),
      cmd.dispatched({ stepId: 'slow' }),
      cmd.succeeded(item(0), made(0)),
      cmd.succeeded(item(1), made(1)),
      cmd.cancel('customer withdrew', at(10)),
      cmd.failed({ stepId: 'slow' }, { code: 'canceled', message: 'stopped', retryable: false }, 1, at(11)),
      compensated(0),
      compensated(1),
    );
    const source = fold(recorded);
    assert.ok(source.status === 'canceled');
    assert.equal(source.steps['make']!.error?.code, 'canceled');
    assert.deepEqual(
      source.steps['make']!.units.map((u) => u?.phase),
      ['succeeded', 'succeeded', 'canceled'],
    );
    // Replayed on its own version: the same three items sent, the same two undone, the same end.
    const report = checkReplay(source, source.definition, recorded);
    assert.deepEqual(report.differences, []);
    assert.equal(report.replayed_status, 'canceled');
    assert.equal(report.same, true);
  });

  it('the replay check follows where the cancel came: items in flight at it finish and are undone; none after them is sent', () => {
    // Five items, two at a time: 0 and 1 made their schedules, 2 and 3 were sent; the cancel came
    // then; 2 and 3 succeeded after it (and were undone with 0 and 1); item 4 was never sent.
    const five = { delays: ['1d', '7d', '30d', '60d', '90d'] };
    const recorded = history(
      cmd.start(def, five),
      cmd.dispatched({ stepId: 'slow' }),
      cmd.succeeded(item(0), made(0)),
      cmd.succeeded(item(1), made(1)),
      cmd.dispatched(item(2)),
      cmd.dispatched(item(3)),
      cmd.cancel('customer withdrew', at(10)),
      cmd.succeeded(item(2), made(2), 1, at(11)),
      cmd.succeeded(item(3), made(3), 1, at(12)),
      cmd.failed({ stepId: 'slow' }, { code: 'canceled', message: 'stopped', retryable: false }, 1, at(13)),
      ...[0, 1, 2, 3].map((i) => compensated(i)),
    );
    const source = fold(recorded);
    assert.ok(source.status === 'canceled', source.status);
    assert.deepEqual(
      source.steps['make']!.units.map((u) => u?.phase),
      ['succeeded', 'succeeded', 'succeeded', 'succeeded'],
    );
    const report = checkReplay(source, source.definition, recorded);
    assert.deepEqual(report.differences, [], JSON.stringify(report));
    assert.equal(report.replayed_status, 'canceled');
    assert.equal(report.same, true);
  });
});

describe('WorkflowExecution: a retry of a for_each step whose items are undone on cancel', () => {
  /** As `fan`, but an item failing for good fails the execution (on_error fail). */
  const failing: WorkflowDefinitionInput = {
    ...def,
    id: 'fan_fail',
    steps: def.steps.map((s) => (s.id === 'make' ? { ...s, on_error: 'fail' as const } : s)),
  };
  const retry: WorkflowCommand = { type: 'RetryExecution', data: {}, metadata: meta(at(20)) };
  // Items 0 and 1 made their schedules, item 2 failed: the execution failed (`slow` stopped).
  const failedRun = history(
    cmd.start(failing, input),
    cmd.dispatched({ stepId: 'slow' }),
    cmd.succeeded(item(0), made(0)),
    cmd.succeeded(item(1), made(1)),
    cmd.failed(item(2), invalid),
  );

  it('the retry runs again only the item that did not succeed; the others keep their outputs', () => {
    assert.equal(fold(failedRun).status, 'failed');
    spec
      .given(failedRun)
      .when(retry)
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'ExecutionRetried',
          'StepExpanded:make',
          'StepScheduled:make[2]',
          'StepScheduled:slow',
        ]);
        assert.equal((events[2]!.data as { idempotencyKey: string }).idempotencyKey, 'ex1:make[2]:2');
        assert.ok(after.status === 'running');
        assert.deepEqual(
          after.steps['make']!.units.map((u) => [u?.phase, u?.attempt, u?.output]),
          [
            ['succeeded', 1, made(0)],
            ['succeeded', 1, made(1)],
            ['scheduled', 2, undefined],
          ],
        );
      });
    // Item 2 succeeding now completes the step with every item's output, in order.
    spec
      .given(then(failedRun, retry))
      .when(cmd.succeeded(item(2), { schedule: { id: 's-2b' } }, 2))
      .then((events, after) => {
        assert.deepEqual(types(events), ['StepSucceeded:make[2]', 'StepSucceeded:make']);
        assert.ok(after.status === 'running');
        assert.deepEqual(after.steps['make']!.output, [made(0), made(1), { schedule: { id: 's-2b' } }]);
      });
  });

  it('a cancel after the retry undoes the items of both runs, each once, under its own key', () => {
    const retried = then(failedRun, retry, cmd.succeeded(item(2), { schedule: { id: 's-2b' } }, 2));
    spec
      .given(retried)
      .when(cmd.cancel('customer withdrew', at(30)))
      .then((events) => {
        assert.deepEqual(types(events), [
          'ExecutionCancelRequested',
          'CompensationStarted:unmake[0]',
          'CompensationStarted:unmake[1]',
          'CompensationStarted:unmake[2]',
        ]);
        assert.deepEqual(
          started(events).map((d) => [d.idempotencyKey, (d.input as { schedule: string }).schedule]),
          [
            ['ex1:compensate:unmake[0]:1', 's-0'],
            ['ex1:compensate:unmake[1]:1', 's-1'],
            ['ex1:compensate:unmake[2]:2', 's-2b'],
          ],
        );
      });
  });

  it('an item whose input resolves differently after the retry runs again', () => {
    // `make` runs (its `if` alone decides) even when `check` failed; its items name check's status.
    const guarded: WorkflowDefinitionInput = {
      ...def,
      id: 'fan_guarded',
      steps: [
        { id: 'check', uses: 'mcp:database/query', with: {}, on_error: 'continue' },
        {
          ...def.steps[0]!,
          needs: ['check'],
          if: 'true',
          on_error: 'fail',
          with: { ...def.steps[0]!.with, checked: '${{ steps.check.status }}' },
        },
        def.steps[2]!,
      ],
    };
    const failed = history(
      cmd.start(guarded, { delays: ['1d', '7d'] }),
      cmd.failed({ stepId: 'check' }, invalid),
      cmd.succeeded(item(0), made(0)),
      cmd.failed(item(1), invalid),
    );
    assert.equal(fold(failed).status, 'failed');
    const retried = then(failed, retry);
    assert.deepEqual(types(retried).slice(failed.length), ['ExecutionRetried', 'StepScheduled:check']);
    spec
      .given(retried)
      .when(cmd.succeeded({ stepId: 'check' }, { rows: [] }, 2))
      .then((events) =>
        assert.deepEqual(types(events), [
          'StepSucceeded:check',
          'StepExpanded:make',
          'StepScheduled:make[0]',
          'StepScheduled:make[1]',
        ]),
      );
  });

  it('a step whose own compensation ran when it failed runs all its items again (that compensation undid them)', () => {
    const undone: WorkflowDefinitionInput = {
      ...def,
      id: 'fan_undone',
      steps: [
        {
          ...def.steps[0]!,
          for_each: { items: 'input.delays', concurrency: 2 },
          on_error: { compensate: 'unmake_all' },
        },
        { id: 'unmake_all', uses: 'mcp:automation/delete_schedule', with: { schedule: 'all' } },
      ],
    };
    const failed = history(
      cmd.start(undone, { delays: ['1d', '7d'] }),
      cmd.succeeded(item(0), made(0)),
      cmd.failed(item(1), invalid),
      cmd.compensated('unmake_all'),
    );
    assert.equal(fold(failed).status, 'failed');
    spec
      .given(failed)
      .when(retry)
      .then((events) =>
        assert.deepEqual(types(events), [
          'ExecutionRetried',
          'StepExpanded:make',
          'StepScheduled:make[0]',
          'StepScheduled:make[1]',
        ]),
      );
  });
});

describe('workflow definitions: for_each.compensate', () => {
  const steps = def.steps;
  const withSteps = (s: WorkflowDefinitionInput['steps']) => validateDefinition({ ...def, steps: s });
  const problems = (s: WorkflowDefinitionInput['steps']) => {
    const v = withSteps(s);
    return v.ok ? [] : v.problems.map((p) => `${p.code} ${p.path}: ${p.message}`);
  };

  it('names a plain step, whose mapping may read item, index and output', () => {
    assert.deepEqual(problems(steps), []);
  });

  it('refuses an unknown step, itself, a for_each or wait step, and a compensation another step names too', () => {
    const make = steps[0]!;
    const fe = (compensate: string) => ({ ...make, for_each: { ...make.for_each!, compensate } });
    assert.match(problems([fe('nope'), ...steps.slice(1)]).join('\n'), /unknown_ref .*for_each\.compensate/);
    assert.match(problems([fe('make'), ...steps.slice(1)]).join('\n'), /cannot compensate its items with itself/);
    assert.match(
      problems([fe('unmake'), steps[1]!, { ...steps[2]!, for_each: { items: 'input.delays' } }]).join('\n'),
      /compensation step "unmake" cannot use for_each/,
    );
    assert.match(
      problems([steps[0]!, { ...steps[1]!, on_error: { compensate: 'unmake' } }, steps[2]!]).join('\n'),
      /undoes the items of "make" and cannot also compensate "slow"/,
    );
  });

  it('output is only in scope in an item compensation; item and index only there and in for_each steps', () => {
    const plainUndo = [
      { ...steps[0]!, for_each: { items: 'input.delays' } },
      { ...steps[1]!, on_error: { compensate: 'unmake' } },
      steps[2]!,
    ];
    const found = problems(plainUndo).join('\n');
    assert.match(found, /bad_expression steps\[2\]\.with\.schedule/);
    assert.match(found, /bad_expression steps\[2\]\.with\.made_for/);
    assert.match(
      problems([{ ...steps[0]!, with: { name: '${{ output.x }}' } }, steps[1]!, steps[2]!]).join('\n'),
      /bad_expression steps\[0\]\.with\.name/,
    );
  });
});

/** `given` and the events each command adds to it in turn. */
function then(given: readonly WorkflowEvent[], ...commands: WorkflowCommand[]): WorkflowEvent[] {
  return commands.reduce<WorkflowEvent[]>(
    (events, c) => [...events, ...workflowExecutionDecider.decide(c, fold(events))],
    [...given],
  );
}

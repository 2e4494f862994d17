import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import { DomainError } from '../decider.js';
import { taskDelegationDecider } from './decider.js';
import { effectivePriority, orderQueue } from './priority.js';
import {
  abandonedAttemptCounts,
  attemptsMade,
  isCallerError,
  submitTaskData,
  TASK_SUBMIT_DEFAULTS,
  type ExistingTaskState,
  type TaskCommand,
  type TaskEvent,
  type TaskState,
} from './types.js';

const spec = DeciderSpecification.for(taskDelegationDecider);
const isCode = (code: string) => (e: unknown) => e instanceof DomainError && e.code === code;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (s: number) => ({ timestamp: new Date(T0 + s * 1000).toISOString(), correlationId: 'c1' });
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();

const submitData = {
  task_id: 't1',
  task_type: 'revenue_analysis',
  context: { timeframe: '12m' },
  priority: 'normal' as const,
  max_attempts: 2,
  timeout_ms: 10_000,
};
const cmd = {
  submit: (s = 0, extra: Partial<typeof submitData & { agent: string }> = {}): TaskCommand => ({
    type: 'SubmitTask',
    data: { ...submitData, ...extra },
    metadata: at(s),
  }),
  assign: (instance: string, s = 1, agent = 'data_analyst'): TaskCommand => ({
    type: 'AssignTask',
    data: { agent, instance },
    metadata: at(s),
  }),
  start: (assignment: number, s = 2): TaskCommand => ({ type: 'StartTask', data: { assignment }, metadata: at(s) }),
  complete: (assignment: number, s = 3, result: unknown = { total: 1 }): TaskCommand => ({
    type: 'CompleteTask',
    data: { assignment, result },
    metadata: at(s),
  }),
  fail: (
    assignment: number,
    s = 3,
    extra: { retryable?: boolean; avoid_instance?: boolean; count_attempt?: boolean } = {},
  ): TaskCommand => ({
    type: 'FailTask',
    data: {
      assignment,
      error: { code: 'unavailable', message: 'instance lost' },
      retryable: extra.retryable ?? true,
      ...extra,
    },
    metadata: at(s),
  }),
  cancel: (s = 4): TaskCommand => ({
    type: 'CancelTask',
    data: { actor: 'ann', reason: 'not needed' },
    metadata: at(s),
  }),
  timeOut: (assignment: number, s = 11): TaskCommand => ({
    type: 'TimeOutTask',
    data: { assignment },
    metadata: at(s),
  }),
};

/** Run commands through decide+evolve to build a history (so specs read as stories). */
function history(...commands: TaskCommand[]): TaskEvent[] {
  const events: TaskEvent[] = [];
  let state = taskDelegationDecider.initialState;
  for (const c of commands) {
    const out = taskDelegationDecider.decide(c, state);
    for (const e of out) state = taskDelegationDecider.evolve(state, e);
    events.push(...out);
  }
  return events;
}
const types = (es: TaskEvent[]) => es.map((e) => e.type);

const queued = () => history(cmd.submit());
const assigned = () => history(cmd.submit(), cmd.assign('i1'));
const working = () => history(cmd.submit(), cmd.assign('i1'), cmd.start(1));

describe('TaskDelegation: initial', () => {
  it('SubmitTask submits and queues', () => {
    spec
      .given([])
      .when(cmd.submit())
      .then([
        { type: 'TaskSubmitted', data: { ...submitData, submitted_at: iso(0) }, metadata: at(0) },
        { type: 'TaskQueued', data: { task_id: 't1', reason: 'submitted', queued_at: iso(0) }, metadata: at(0) },
      ]);
  });
  it('rejects bad attempts and timeouts', () => {
    spec
      .given([])
      .when(cmd.submit(0, { max_attempts: 0 }))
      .thenThrows(isCode('validation'));
    spec
      .given([])
      .when(cmd.submit(0, { timeout_ms: 0 }))
      .thenThrows(isCode('validation'));
  });
  it('anything else on a missing task is not_found', () => {
    spec.given([]).when(cmd.assign('i1')).thenThrows(isCode('not_found'));
    spec.given([]).when(cmd.complete(1)).thenThrows(isCode('not_found'));
    spec.given([]).when(cmd.cancel()).thenThrows(isCode('not_found'));
  });
});

describe('TaskDelegation: submitted', () => {
  // SubmitTask always appends TaskQueued with TaskSubmitted; a stream holding only TaskSubmitted
  // (written by hand or by an older version) is still handled sensibly.
  const submittedOnly = () => history(cmd.submit()).slice(0, 1);
  it('cannot be assigned before it is queued', () => {
    assert.equal(spec.given(submittedOnly()).state.status, 'submitted');
    spec.given(submittedOnly()).when(cmd.assign('i1')).thenThrows(isCode('illegal_state'));
  });
  it('can be canceled, and a duplicate submit changes nothing', () => {
    spec
      .given(submittedOnly())
      .when(cmd.cancel())
      .then((es) => assert.equal((es[0]!.data as { previous_status: string }).previous_status, 'submitted'));
    spec.given(submittedOnly()).when(cmd.submit(1)).thenNothingHappened();
  });
});

describe('TaskDelegation: queued', () => {
  it('a duplicate submit (same idempotency key -> same id) changes nothing', () => {
    spec.given(queued()).when(cmd.submit(5)).thenNothingHappened();
  });
  it('AssignTask assigns attempt 1 with a deadline of assigned_at + timeout', () => {
    spec
      .given(queued())
      .when(cmd.assign('i1'))
      .then([
        {
          type: 'TaskAssigned',
          data: {
            task_id: 't1',
            agent: 'data_analyst',
            instance: 'i1',
            assignment: 1,
            attempt: 1,
            assigned_at: iso(1),
            deadline: iso(11),
          },
          metadata: at(1),
        },
      ]);
  });
  it('refuses another agent than the one asked for', () => {
    spec
      .given(history(cmd.submit(0, { agent: 'financial_advisor' })))
      .when(cmd.assign('i1', 1, 'data_analyst'))
      .thenThrows(isCode('illegal_state'));
  });
  it('after a failure the task is queued again with the failed instance recorded, and the next assignment is number 2', () => {
    const given = history(cmd.submit(), cmd.assign('i1'), cmd.fail(1));
    const state = spec.given(given).state;
    assert.equal(state.status, 'queued');
    if (state.status === 'queued') assert.deepEqual(state.failed_instances, ['i1']);
    spec
      .given(given)
      .when(cmd.assign('i2', 4))
      .then((es) =>
        assert.deepEqual(
          [(es[0]!.data as { assignment: number }).assignment, (es[0]!.data as { attempt: number }).attempt],
          [2, 2],
        ),
      );
  });
  it('late results of an earlier assignment are ignored', () => {
    const given = history(cmd.submit(), cmd.assign('i1'), cmd.fail(1));
    spec.given(given).when(cmd.complete(1, 9)).thenNothingHappened();
    spec.given(given).when(cmd.timeOut(1)).thenNothingHappened();
  });
  it('can be canceled', () => {
    spec
      .given(queued())
      .when(cmd.cancel())
      .then((es) => {
        assert.deepEqual(types(es), ['TaskCanceled']);
        assert.equal((es[0]!.data as { previous_status: string }).previous_status, 'queued');
        assert.equal('instance' in es[0]!.data, false);
      });
  });
  it('cannot start or complete without an assignment', () => {
    spec.given(queued()).when(cmd.start(1)).thenNothingHappened();
    spec.given(queued()).when(cmd.complete(1)).thenNothingHappened();
  });
});

describe('TaskDelegation: assigned', () => {
  it('StartTask moves to working; a second start is a duplicate', () => {
    spec
      .given(assigned())
      .when(cmd.start(1))
      .then((_, s) => assert.equal(s.status, 'working'));
    spec.given(working()).when(cmd.start(1)).thenNothingHappened();
  });
  it('CompleteTask straight from assigned (start notice lost) completes, with duration from assignment', () => {
    spec
      .given(assigned())
      .when(cmd.complete(1, 4))
      .then((es, s) => {
        assert.deepEqual(types(es), ['TaskCompleted']);
        assert.equal((es[0]!.data as { duration_ms: number }).duration_ms, 3000);
        assert.equal(s.status, 'completed');
      });
  });
  it('cannot be assigned twice', () => {
    spec.given(assigned()).when(cmd.assign('i2')).thenThrows(isCode('illegal_state'));
  });
  it('a busy refusal requeues without using an attempt or blaming the instance', () => {
    spec
      .given(assigned())
      .when(cmd.fail(1, 2, { avoid_instance: false, count_attempt: false }))
      .then((es, s) => {
        assert.deepEqual(types(es), ['TaskRetryScheduled', 'TaskQueued']);
        assert.equal(s.status, 'queued');
        if (s.status !== 'queued') return;
        assert.equal(s.attempts, 0);
        assert.deepEqual(s.failed_instances, []);
      });
  });
});

describe('TaskDelegation: working', () => {
  it('CompleteTask completes', () => {
    spec
      .given(working())
      .when(cmd.complete(1, 5, { total: 42 }))
      .then((es, s) => {
        assert.equal(es[0]!.type, 'TaskCompleted');
        assert.equal(s.status, 'completed');
        if (s.status === 'completed') assert.deepEqual(s.result, { total: 42 });
      });
  });
  it('a retryable failure schedules a retry on another instance and records the failed one', () => {
    spec
      .given(working())
      .when(cmd.fail(1))
      .then((es, s) => {
        assert.deepEqual(types(es), ['TaskRetryScheduled', 'TaskQueued']);
        assert.equal(s.status, 'queued');
        if (s.status !== 'queued') return;
        assert.equal(s.attempts, 1);
        assert.deepEqual(s.failed_instances, ['i1']);
        assert.equal(s.last_error?.code, 'unavailable');
      });
  });
  it('the last allowed attempt failing fails the task', () => {
    const given = history(cmd.submit(), cmd.assign('i1'), cmd.fail(1), cmd.assign('i2', 4), cmd.start(2, 5));
    spec
      .given(given)
      .when(cmd.fail(2, 6))
      .then((es, s) => {
        assert.deepEqual(types(es), ['TaskFailed']);
        assert.equal((es[0]!.data as { attempts: number }).attempts, 2);
        assert.equal(s.status, 'failed');
      });
  });
  it('a non-retryable failure fails at once', () => {
    spec
      .given(working())
      .when(cmd.fail(1, 3, { retryable: false }))
      .then((es) => assert.deepEqual(types(es), ['TaskFailed']));
  });
  it('TimeOutTask times the live assignment out', () => {
    spec
      .given(working())
      .when(cmd.timeOut(1))
      .then((es, s) => {
        assert.deepEqual(types(es), ['TaskTimedOut']);
        assert.equal(s.status, 'timed_out');
      });
  });
  it('CancelTask names the instance so the dispatcher can stop it', () => {
    spec
      .given(working())
      .when(cmd.cancel())
      .then((es) => {
        assert.deepEqual(es[0]!.data, {
          task_id: 't1',
          actor: 'ann',
          reason: 'not needed',
          previous_status: 'working',
          instance: 'i1',
          agent: 'data_analyst',
          canceled_at: iso(4),
        });
      });
  });
  it('a result for another assignment number is ignored', () => {
    spec.given(working()).when(cmd.complete(7)).thenNothingHappened();
  });
});

describe('TaskDelegation: completed', () => {
  const done = () => history(cmd.submit(), cmd.assign('i1'), cmd.start(1), cmd.complete(1));
  it('a completion after a failed or abandoned attempt leaves no error: the earlier one stays in its TaskRetryScheduled', () => {
    const abandoned = { retryable: true, avoid_instance: false, count_attempt: false };
    for (const [what, failure] of [
      ['failed', cmd.fail(1)],
      ['abandoned', cmd.fail(1, 3, abandoned)],
    ] as const) {
      const retried = history(cmd.submit(), cmd.assign('i1'), failure, cmd.assign('i2', 4));
      assert.ok(
        retried.some((e) => e.type === 'TaskRetryScheduled' && e.data.error.code === 'unavailable'),
        what,
      );
      spec
        .given(retried)
        .when(cmd.complete(2, 5))
        .then((es, s) => {
          assert.deepEqual(types(es), ['TaskCompleted']);
          assert.equal(s.status, 'completed', what);
          assert.equal('last_error' in s, false, what);
        });
    }
  });
  it('a task canceled or timed out after a retry keeps that retry’s error', () => {
    const retried = () =>
      history(cmd.submit(0, { max_attempts: 3 }), cmd.assign('i1'), cmd.fail(1), cmd.assign('i2', 4));
    for (const end of [cmd.cancel(5), cmd.timeOut(2, 5)])
      spec
        .given(retried())
        .when(end)
        .then((_, s) => {
          assert.deepEqual(s.status !== 'initial' && s.last_error, { code: 'unavailable', message: 'instance lost' });
        });
  });
  it('duplicate results, failures and timeouts are ignored', () => {
    spec
      .given(done())
      .when(cmd.complete(1, 9, { other: true }))
      .thenNothingHappened();
    spec.given(done()).when(cmd.fail(1, 9)).thenNothingHappened();
    spec.given(done()).when(cmd.timeOut(1)).thenNothingHappened();
    spec.given(done()).when(cmd.submit(9)).thenNothingHappened();
  });
  it('cannot be canceled or assigned', () => {
    spec.given(done()).when(cmd.cancel()).thenThrows(isCode('illegal_state'));
    spec.given(done()).when(cmd.assign('i2')).thenThrows(isCode('illegal_state'));
  });
});

describe('TaskDelegation: failed', () => {
  it('late results are ignored', () => {
    const failed = history(cmd.submit(), cmd.assign('i1'), cmd.fail(1, 3, { retryable: false }));
    spec.given(failed).when(cmd.complete(1, 9)).thenNothingHappened();
    spec.given(failed).when(cmd.cancel()).thenThrows(isCode('illegal_state'));
  });
});

describe('TaskDelegation: canceled', () => {
  const canceled = () => history(cmd.submit(), cmd.assign('i1'), cmd.cancel(2));
  it('a late result after cancel is ignored; a second cancel is a no-op', () => {
    spec.given(canceled()).when(cmd.complete(1, 9)).thenNothingHappened();
    spec.given(canceled()).when(cmd.cancel(5)).thenNothingHappened();
  });
});

describe('TaskDelegation: timed_out', () => {
  it('a late result is ignored', () => {
    const out = history(cmd.submit(), cmd.assign('i1'), cmd.timeOut(1));
    spec.given(out).when(cmd.complete(1, 12)).thenNothingHappened();
    spec.given(out).when(cmd.cancel()).thenThrows(isCode('illegal_state'));
  });
});

describe('queue order with aging', () => {
  it('critical before low when both are fresh; an old low beats a fresh normal', () => {
    const now = 100_000;
    const q = orderQueue(
      [
        { task_id: 'low', priority: 'low' as const, waiting_since_ms: now - 10 },
        { task_id: 'crit', priority: 'critical' as const, waiting_since_ms: now },
      ],
      now,
      1_000,
    );
    assert.deepEqual(
      q.map((t) => t.task_id),
      ['crit', 'low'],
    );
    const aged = orderQueue(
      [
        { task_id: 'normal', priority: 'normal' as const, waiting_since_ms: now },
        { task_id: 'old-low', priority: 'low' as const, waiting_since_ms: now - 1_500 },
      ],
      now,
      1_000,
    );
    assert.deepEqual(
      aged.map((t) => t.task_id),
      ['old-low', 'normal'],
    );
    assert.equal(effectivePriority('low', now - 3_000, now, 1_000), 3);
  });
});

describe('submitTaskData', () => {
  it('fills the limits a submitter left out and keeps no key for what is absent', () => {
    const data = submitTaskData('t9', 'revenue_analysis', undefined, { priority: 'high' });
    assert.deepEqual(data, {
      task_id: 't9',
      task_type: 'revenue_analysis',
      context: {},
      priority: 'high',
      max_attempts: TASK_SUBMIT_DEFAULTS.max_attempts,
      timeout_ms: TASK_SUBMIT_DEFAULTS.timeout_ms,
    });
    assert.equal(Object.keys(data).includes('agent'), false);
  });

  it('keeps what the submitter named, the alias, and the given defaults over the domain’s', () => {
    const data = submitTaskData(
      't9',
      'support_response',
      'customer_support',
      { priority: 'low', context: { q: 1 }, agent: 'customer_success', timeout_ms: 5_000, idempotency_key: 'k' },
      { max_attempts: 7, timeout_ms: 1_000 },
    );
    assert.deepEqual(data, {
      task_id: 't9',
      task_type: 'support_response',
      requested_task_type: 'customer_support',
      context: { q: 1 },
      priority: 'low',
      agent: 'customer_success',
      max_attempts: 7,
      timeout_ms: 5_000,
      idempotency_key: 'k',
    });
  });
});

/** The state a history leaves (the fold the dispatcher and the task view read). */
const stateOf = (...commands: TaskCommand[]): ExistingTaskState =>
  history(...commands).reduce<TaskState>(
    (s, e) => taskDelegationDecider.evolve(s, e),
    taskDelegationDecider.initialState,
  ) as ExistingTaskState;

describe('the start and the attempts of a task that ended', () => {
  it('completed, failed, timed out or canceled while it ran: the last attempt keeps its start', () => {
    const ends: [string, TaskCommand][] = [
      ['completed', cmd.complete(1, 3)],
      ['failed', cmd.fail(1, 3, { retryable: false })],
      ['timed_out', cmd.timeOut(1, 3)],
      ['canceled', cmd.cancel(3)],
    ];
    for (const [status, end] of ends) {
      const s = stateOf(cmd.submit(), cmd.assign('i1'), cmd.start(1, 2), end);
      assert.equal(s.status, status);
      assert.equal('started_at' in s ? s.started_at : undefined, iso(2), status);
    }
  });

  it('no start recorded (the notice lost), or canceled before it ran: no start', () => {
    const lost = stateOf(cmd.submit(), cmd.assign('i1'), cmd.complete(1, 3));
    assert.equal('started_at' in lost ? lost.started_at : undefined, undefined);
    const queuedCancel = stateOf(cmd.submit(), cmd.cancel(1));
    assert.equal('started_at' in queuedCancel ? queuedCancel.started_at : undefined, undefined);
  });

  it('a retry forgets the failed attempt’s start: the next one has not started yet', () => {
    const s = stateOf(cmd.submit(), cmd.assign('i1'), cmd.start(1, 2), cmd.fail(1, 3), cmd.assign('i2', 4));
    assert.equal(s.status, 'assigned');
    assert.equal('started_at' in s, false);
  });

  it('attempts made: the attempt under way or that ended the task counts, a busy refusal does not', () => {
    const busy = { retryable: true, avoid_instance: false, count_attempt: false };
    const cases: [string, ExistingTaskState, number][] = [
      ['queued', stateOf(cmd.submit()), 0],
      ['assigned', stateOf(cmd.submit(), cmd.assign('i1')), 1],
      ['working', stateOf(cmd.submit(), cmd.assign('i1'), cmd.start(1)), 1],
      ['completed at once', stateOf(cmd.submit(), cmd.assign('i1'), cmd.start(1), cmd.complete(1)), 1],
      ['refused busy, queued again', stateOf(cmd.submit(), cmd.assign('i1'), cmd.fail(1, 2, busy)), 0],
      [
        'refused busy, then completed',
        stateOf(cmd.submit(), cmd.assign('i1'), cmd.fail(1, 2, busy), cmd.assign('i2', 3), cmd.complete(2, 4)),
        1,
      ],
      ['failed once, queued again', stateOf(cmd.submit(), cmd.assign('i1'), cmd.fail(1)), 1],
      [
        'failed once, then completed',
        stateOf(cmd.submit(), cmd.assign('i1'), cmd.fail(1), cmd.assign('i2', 4), cmd.complete(2, 5)),
        2,
      ],
      ['failed at once', stateOf(cmd.submit(), cmd.assign('i1'), cmd.fail(1, 3, { retryable: false })), 1],
      [
        'failed on its last attempt',
        stateOf(cmd.submit(), cmd.assign('i1'), cmd.fail(1), cmd.assign('i2', 4), cmd.fail(2, 5)),
        2,
      ],
      ['timed out', stateOf(cmd.submit(), cmd.assign('i1'), cmd.timeOut(1)), 1],
      ['canceled while it ran', stateOf(cmd.submit(), cmd.assign('i1'), cmd.start(1), cmd.cancel(3)), 1],
      ['canceled while queued', stateOf(cmd.submit(), cmd.cancel(1)), 0],
    ];
    for (const [what, s, n] of cases) assert.equal(attemptsMade(s), n, what);
  });
});

describe('isCallerError', () => {
  it("the input's faults are the caller's; exceptions, timeouts and the system's own refusals are the agent's", () => {
    const caller = [
      { code: 'validation', message: 'invalid context' },
      { code: 'not_found', message: 'customer 99999 not found' },
      { code: 'illegal_state', message: 'no active subscription' },
    ];
    const agents = [
      { code: 'internal', message: 'boom', details: { reason: 'handler_error' } },
      { code: 'internal', message: 'boom' },
      { code: 'unavailable', message: 'instance lost' },
      { code: 'timeout', message: 'late' },
      { code: 'forbidden', message: 'bad agent token' },
      { code: 'payload_too_large', message: "the agent's answer is over the bound" },
      { code: 'validation', message: 'result not recorded', details: { reason: 'result_unrecordable' } },
      { code: 'illegal_state', message: 'already running here', details: { reason: 'already_running' } },
      { code: 'validation', message: 'not my task type', details: { reason: 'unhandled_task_type' } },
      { code: 'illegal_state', message: 'the A2A task failed', details: { reason: 'agent_ended_task' } },
    ];
    for (const e of caller) assert.equal(isCallerError(e), true, e.message);
    for (const e of agents) assert.equal(isCallerError(e), false, e.message);
  });
});

describe('TaskDelegation: an attempt a dispatcher restart abandons', () => {
  /** The live attempt of a history, as the recovery reads it. */
  const live = (...commands: TaskCommand[]) => {
    const s = stateOf(...commands);
    assert.ok(s.status === 'assigned' || s.status === 'working', s.status);
    return s;
  };
  /** The recovery's FailTask for that attempt. */
  const abandon = (assignment: number, counted: boolean, s = 20): TaskCommand => ({
    type: 'FailTask',
    data: {
      assignment,
      error: { code: 'unavailable', message: 'dispatcher restarted or partition taken over; attempt abandoned' },
      retryable: true,
      avoid_instance: false,
      count_attempt: counted,
    },
    metadata: at(s),
  });
  const ext = (s = 1) => cmd.assign('http-ext', s, 'ext');

  it('an external agent (no start notice, nothing stops its request) used the attempt, whether it is still there or not', () => {
    const s = live(cmd.submit(), ext());
    assert.equal(abandonedAttemptCounts(s, { sendsStartNotice: false, instanceLost: false }), true);
    assert.equal(abandonedAttemptCounts(s, { sendsStartNotice: false, instanceLost: true }), true);
  });

  it('our agent over NATS: none while its instance is there (asked to stop) or had not started; one once started on an instance gone', () => {
    const assignedOnly = live(cmd.submit(), cmd.assign('i1'));
    const started = live(cmd.submit(), cmd.assign('i1'), cmd.start(1));
    assert.equal(abandonedAttemptCounts(assignedOnly, { sendsStartNotice: true, instanceLost: false }), false);
    assert.equal(abandonedAttemptCounts(assignedOnly, { sendsStartNotice: true, instanceLost: true }), false);
    assert.equal(abandonedAttemptCounts(started, { sendsStartNotice: true, instanceLost: false }), false);
    assert.equal(abandonedAttemptCounts(started, { sendsStartNotice: true, instanceLost: true }), true);
  });

  it('counted on an external agent: the task is queued again with one attempt used, and its next run is the second attempt', () => {
    spec
      .given(history(cmd.submit(), ext()))
      .when(abandon(1, true))
      .then((es, s) => {
        assert.deepEqual(types(es), ['TaskRetryScheduled', 'TaskQueued']);
        assert.deepEqual(es[0]!.data, {
          task_id: 't1',
          agent: 'ext',
          instance: 'http-ext',
          assignment: 1,
          error: { code: 'unavailable', message: 'dispatcher restarted or partition taken over; attempt abandoned' },
          avoid_instance: false,
          counted: true,
          attempts: 1,
        });
        assert.equal(s.status, 'queued');
        assert.deepEqual(s.status === 'queued' && s.failed_instances, [], 'the agent is not blamed');
      });
    spec
      .given(history(cmd.submit(), ext(), abandon(1, true)))
      .when(cmd.assign('http-ext', 21, 'ext'))
      .then((es) => assert.equal((es[0]!.data as { attempt: number }).attempt, 2));
    const done = stateOf(cmd.submit(), ext(), abandon(1, true), cmd.assign('http-ext', 21, 'ext'), cmd.complete(2, 22));
    assert.equal(attemptsMade(done), 2, 'both runs of the agent are attempts made');
  });

  it('the last attempt allowed abandoned on an external agent fails the task: restarts do not run it again without bound', () => {
    spec
      .given(history(cmd.submit(0, { max_attempts: 1 }), ext()))
      .when(abandon(1, true))
      .then((es, s) => {
        assert.deepEqual(types(es), ['TaskFailed']);
        assert.equal((es[0]!.data as { attempts: number }).attempts, 1);
        assert.equal(s.status, 'failed');
        assert.equal(attemptsMade(s as ExistingTaskState), 1);
      });
  });

  it('not counted (our agent asked to stop): queued again with no attempt used', () => {
    spec
      .given(working())
      .when(abandon(1, false))
      .then((es) => {
        assert.deepEqual(types(es), ['TaskRetryScheduled', 'TaskQueued']);
        assert.equal((es[0]!.data as { counted: boolean; attempts: number }).counted, false);
        assert.equal((es[0]!.data as { attempts: number }).attempts, 0);
      });
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DeciderSpecification } from '@switchyard/testing';
import { DomainError } from '../../decider.js';
import type { WorkflowDefinition, WorkflowDefinitionInput } from '../definition/schema.js';
import { validateDefinition } from '../definition/validate.js';
import { workflowExecutionDecider } from './decider.js';
import { checkReplay, planFork, stateAt, type RevisionedEvent } from './operations.js';
import { at, cmd, fold, history, invalid, meta, T0, types } from './spec-helpers.js';
import type { StartedExecution, WorkflowCommand, WorkflowEvent } from './types.js';

const spec = DeciderSpecification.for(workflowExecutionDecider);
const isCode = (code: string) => (e: unknown) => e instanceof DomainError && e.code === code;

/** fetch -> analyze -> report, and an independent side step. */
const chain: WorkflowDefinitionInput = {
  id: 'chain',
  version: 1,
  name: 'Chain',
  steps: [
    { id: 'fetch', uses: 'mcp:database/query', with: { sql: 'select 1' } },
    {
      id: 'analyze',
      uses: 'agent:revenue_analysis',
      needs: ['fetch'],
      with: { rows: '${{ steps.fetch.output.rows }}' },
    },
    {
      id: 'report',
      uses: 'mcp:filesystem/write_file',
      needs: ['analyze'],
      with: { content: '${{ steps.analyze.output.total }}' },
    },
    { id: 'side', uses: 'mcp:database/query', with: { sql: 'select 2' } },
  ],
  outputs: { total: '${{ steps.analyze.output.total }}' },
};
const def = (d: WorkflowDefinitionInput): WorkflowDefinition => {
  const v = validateDefinition(d);
  if (!v.ok) throw new Error(JSON.stringify(v.problems));
  return v.definition;
};

/** fetch and side succeed, analyze fails for good: the execution failed. */
const failedRun = history(
  cmd.start(chain, {}),
  cmd.succeeded({ stepId: 'fetch' }, { rows: [1, 2] }),
  cmd.succeeded({ stepId: 'side' }, { rows: [3] }),
  cmd.failed({ stepId: 'analyze' }, invalid),
);
const retry = (reason?: string): WorkflowCommand => ({
  type: 'RetryExecution',
  data: reason === undefined ? {} : { reason },
  metadata: meta(T0, 'apikey:op'),
});
const fork = (data: Partial<Extract<WorkflowCommand, { type: 'ForkWorkflow' }>['data']> = {}): WorkflowCommand => ({
  type: 'ForkWorkflow',
  data: {
    executionId: 'ex2',
    definition: chain,
    input: {},
    fromExecutionId: 'ex1',
    fromStep: 'analyze',
    copies: [{ stepId: 'fetch', output: { rows: [1, 2] }, revision: 4 }],
    ...data,
  },
  metadata: meta(),
});
const revisioned = (events: readonly WorkflowEvent[]): RevisionedEvent[] =>
  events.map((event, revision) => ({ revision, event }));

describe('WorkflowExecution: RetryExecution', () => {
  it('given a failed execution, re-runs the failed step and what depends on it with the next attempt number; keeps what succeeded', () => {
    assert.equal(fold(failedRun).status, 'failed');
    spec
      .given(failedRun)
      .when(retry())
      .then((events, after) => {
        assert.deepEqual(types(events), ['ExecutionRetried', 'StepScheduled:analyze']);
        assert.deepEqual(events[0]!.data, {
          steps: ['analyze', 'report'],
          reason: 'retried by request',
          actor: 'apikey:op',
          retriedAt: T0,
        });
        const scheduled = events[1]!.data as { attempt: number; idempotencyKey: string; input: unknown };
        assert.equal(scheduled.attempt, 2);
        assert.equal(scheduled.idempotencyKey, 'ex1:analyze:2');
        assert.deepEqual(scheduled.input, { rows: [1, 2] });
        assert.equal(after.status, 'running');
        if (after.status !== 'running') return;
        assert.equal(after.steps['fetch']!.status, 'succeeded');
        assert.equal(after.steps['side']!.status, 'succeeded');
        assert.equal(after.steps['report']!.status, 'pending');
      });
  });

  it('the retried run completes, and a failure of it counts its retry policy from its own first attempt', () => {
    const afterRetry = [...failedRun, ...workflowExecutionDecider.decide(retry(), fold(failedRun))];
    const done = [
      ...afterRetry,
      ...workflowExecutionDecider.decide(cmd.succeeded({ stepId: 'analyze' }, { total: 7 }, 2), fold(afterRetry)),
    ];
    const end = [
      ...done,
      ...workflowExecutionDecider.decide(cmd.succeeded({ stepId: 'report' }, { ok: true }, 1), fold(done)),
    ];
    const s = fold(end);
    assert.equal(s.status, 'completed');
    if (s.status === 'completed') assert.deepEqual(s.outputs, { total: 7 });
  });

  it('given a running, completed or canceled execution: 409 illegal_state', () => {
    const running = history(cmd.start(chain, {}));
    const err = spec.given(running).when(retry()).thenThrows<DomainError>(isCode('illegal_state'));
    assert.equal(err.status, 409);
    const completed = history(
      cmd.start(chain, {}),
      cmd.succeeded({ stepId: 'fetch' }, { rows: [] }),
      cmd.succeeded({ stepId: 'side' }, {}),
      cmd.succeeded({ stepId: 'analyze' }, { total: 1 }),
      cmd.succeeded({ stepId: 'report' }, {}),
    );
    spec.given(completed).when(retry()).thenThrows(isCode('illegal_state'));
  });

  it('ifRetries: retries only the failure of the run the caller saw; a retry since (its run failed again) is 409 naming both counts', () => {
    const ifRetries = (n: number): WorkflowCommand => ({
      type: 'RetryExecution',
      data: { ifRetries: n },
      metadata: meta(T0, 'apikey:op'),
    });
    spec
      .given(failedRun)
      .when(ifRetries(0))
      .then((events, after) => {
        assert.equal(events[0]!.type, 'ExecutionRetried');
        assert.equal(after.status === 'running' ? after.retries : undefined, 1);
      });
    // Someone else retried it, and that run failed again at once: the same failed status, one retry more.
    const afterRetry = [...failedRun, ...workflowExecutionDecider.decide(retry(), fold(failedRun))];
    const failedAgain = [
      ...afterRetry,
      ...workflowExecutionDecider.decide(cmd.failed({ stepId: 'analyze' }, invalid, 2), fold(afterRetry)),
    ];
    const s = fold(failedAgain);
    assert.equal(s.status, 'failed');
    assert.equal(s.status === 'failed' ? s.retries : undefined, 1, 'the count survives the end of the run');
    const err = spec.given(failedAgain).when(ifRetries(0)).thenThrows<DomainError>(isCode('illegal_state'));
    assert.equal(err.status, 409);
    assert.deepEqual(err.details, { retries: 1, expected: 0 });
    spec
      .given(failedAgain)
      .when(ifRetries(1))
      .then((events, after) => {
        assert.equal(events[0]!.type, 'ExecutionRetried');
        assert.equal(after.status === 'running' ? after.retries : undefined, 2);
      });
    // Without it, any failure is retried (the single route's behaviour).
    spec
      .given(failedAgain)
      .when(retry())
      .then((events) => assert.equal(events[0]!.type, 'ExecutionRetried'));
  });

  it('given nothing: 404', () => {
    spec.given([]).when(retry()).thenThrows(isCode('not_found'));
  });

  it('a timed-out step is re-run too, on a new attempt', () => {
    const timedOut = history(
      cmd.start(chain, {}),
      cmd.succeeded({ stepId: 'side' }, {}),
      cmd.dispatched({ stepId: 'fetch' }, 1, T0),
      cmd.timedOut({ stepId: 'fetch' }, 1, '2026-01-01T01:00:00.000Z'),
    );
    assert.equal(fold(timedOut).status, 'failed');
    spec
      .given(timedOut)
      .when(retry('db is back'))
      .then((events) => {
        assert.deepEqual(types(events), ['ExecutionRetried', 'StepScheduled:fetch']);
        assert.deepEqual((events[0]!.data as { steps: readonly string[] }).steps, ['fetch', 'analyze', 'report']);
        assert.equal((events[1]!.data as { attempt: number }).attempt, 2);
      });
  });
});

describe('WorkflowExecution: RetryExecution of a for_each step', () => {
  const each: WorkflowDefinitionInput = {
    id: 'each',
    version: 1,
    name: 'Each',
    steps: [
      {
        id: 'store',
        uses: 'mcp:analytics/record_metric',
        for_each: { items: '[1, 2]', concurrency: 2 },
        with: { v: '${{ item }}' },
      },
    ],
  };
  it('runs again only the items that did not succeed, on attempt numbers after the old ones', () => {
    const failed = history(
      cmd.start(each, {}),
      cmd.succeeded({ stepId: 'store', itemIndex: 0 }, { ok: 1 }),
      cmd.failed({ stepId: 'store', itemIndex: 1 }, invalid),
    );
    assert.equal(fold(failed).status, 'failed');
    spec
      .given(failed)
      .when(retry())
      .then((events) => {
        assert.deepEqual(types(events), ['ExecutionRetried', 'StepExpanded:store', 'StepScheduled:store[1]']);
        assert.deepEqual(
          events.slice(2).map((e) => (e.data as { idempotencyKey: string }).idempotencyKey),
          ['ex1:store[1]:2'],
        );
      });
  });
});

describe('a retried for_each step in the replay check and time travel', () => {
  const each: WorkflowDefinitionInput = {
    id: 'each',
    version: 1,
    name: 'Each',
    steps: [
      {
        id: 'store',
        uses: 'mcp:analytics/record_metric',
        for_each: { items: '[1, 2, 3]', concurrency: 3 },
        with: { v: '${{ item }}' },
      },
    ],
    outputs: { stored: '${{ steps.store.output }}' },
  };
  // Items 0 and 2 succeed, 1 fails; the retry runs item 1 alone, and the execution completes.
  const ran = history(
    cmd.start(each, {}),
    cmd.succeeded({ stepId: 'store', itemIndex: 0 }, { ok: 1 }),
    cmd.succeeded({ stepId: 'store', itemIndex: 2 }, { ok: 3 }),
    cmd.failed({ stepId: 'store', itemIndex: 1 }, invalid),
    retry(),
    cmd.succeeded({ stepId: 'store', itemIndex: 1 }, { ok: 2 }, 2),
  );
  const source = fold(ran) as StartedExecution;

  it('the execution completes with every item in order; its own version replays the same', () => {
    assert.equal(source.status, 'completed');
    assert.ok(source.status === 'completed');
    assert.deepEqual(source.outputs, { stored: [{ ok: 1 }, { ok: 2 }, { ok: 3 }] });
    assert.deepEqual(
      source.steps['store']!.units.map((u) => u?.idempotencyKey),
      ['ex1:store[0]:1', 'ex1:store[1]:2', 'ex1:store[2]:1'],
    );
    const r = checkReplay(source, def(each));
    assert.equal(r.same, true, JSON.stringify(r.differences));
  });

  it('time travel: just after the retry the kept items are there, the failed one is pending again', () => {
    const retriedAt = ran.findIndex((e) => e.type === 'ExecutionRetried');
    const s = stateAt(revisioned(ran), retriedAt + 2) as StartedExecution; // ExecutionRetried, StepExpanded, StepScheduled
    assert.deepEqual(
      s.steps['store']!.units.map((u) => [u?.phase, u?.attempt]),
      [
        ['succeeded', 1],
        ['scheduled', 2],
        ['succeeded', 1],
      ],
    );
  });
});

describe('WorkflowExecution: ForkWorkflow', () => {
  it('given nothing, starts with the copied outputs and schedules only what does not depend on the fork point... and the fork point', () => {
    spec
      .given([])
      .when(fork())
      .then((events, after) => {
        assert.deepEqual(types(events), [
          'WorkflowStarted',
          'StepOutputCopied:fetch',
          'StepScheduled:analyze',
          'StepScheduled:side',
        ]);
        assert.deepEqual((events[0]!.data as { forkedFrom: unknown }).forkedFrom, {
          executionId: 'ex1',
          fromStep: 'analyze',
        });
        assert.deepEqual(events[1]!.data, {
          stepId: 'fetch',
          output: { rows: [1, 2] },
          fromExecutionId: 'ex1',
          revision: 4,
          at: T0,
        });
        assert.deepEqual((events[2]!.data as { input: unknown }).input, { rows: [1, 2] });
        if (after.status !== 'running') return assert.fail('running expected');
        assert.equal(after.steps['fetch']!.status, 'succeeded');
      });
  });

  it('refuses copies the target version lacks: 409 naming them', () => {
    const err = spec
      .given([])
      .when(
        fork({
          copies: [
            { stepId: 'fetch', output: {}, revision: 1 },
            { stepId: 'gone', output: {}, revision: 2 },
          ],
        }),
      )
      .thenThrows<DomainError>(isCode('illegal_state'));
    assert.equal(err.status, 409);
    assert.deepEqual(err.details['missing_steps'], ['gone']);
    assert.match(err.message, /gone/);
  });

  it('refuses a fork without a fork point (400) and a copy of the fork point or its downstream (400)', () => {
    spec
      .given([])
      .when(fork({ fromStep: '' }))
      .thenThrows(isCode('validation'));
    spec
      .given([])
      .when(fork({ copies: [{ stepId: 'report', output: {}, revision: 1 }] }))
      .thenThrows(isCode('validation'));
  });

  describe('onto a version that renamed a step (v1: a -> old -> c, v2: a -> new -> c)', () => {
    const q = (id: string, needs: string[] = []) => ({ id, uses: 'mcp:database/query', needs, with: { sql: id } });
    const v1: WorkflowDefinitionInput = {
      id: 'renamed',
      version: 1,
      name: 'v1',
      steps: [q('a'), q('old', ['a']), q('c', ['old'])],
    };
    const v2: WorkflowDefinitionInput = {
      id: 'renamed',
      version: 2,
      name: 'v2',
      steps: [q('a'), q('new', ['a']), q('c', ['new'])],
    };
    const ran = history(
      cmd.start(v1, {}),
      cmd.succeeded({ stepId: 'a' }, { a: 1 }),
      cmd.succeeded({ stepId: 'old' }, { old: 1 }),
      cmd.succeeded({ stepId: 'c' }, { c: 1 }),
    );
    const source = fold(ran) as StartedExecution;

    it('from a step only the source has: what followed it in the source runs again, the new step runs, the rest is copied', () => {
      const plan = planFork(source, revisioned(ran), 'old', def(v2));
      assert.deepEqual(
        plan.copies.map((c) => c.stepId),
        ['a'],
      );
      assert.deepEqual(plan.rerun, ['c']);
      const forkOld = fork({ definition: v2, fromStep: 'old', copies: [...plan.copies] });
      spec
        .given([])
        .when(forkOld)
        .then((events) => {
          assert.deepEqual(types(events), ['WorkflowStarted', 'StepOutputCopied:a', 'StepScheduled:new']);
          assert.deepEqual((events[0]!.data as { forkedFrom: unknown }).forkedFrom, {
            executionId: 'ex1',
            fromStep: 'old',
          });
        });
      spec
        .given(history(forkOld))
        .when({ ...cmd.succeeded({ stepId: 'new' }, { new: 1 }), metadata: meta() })
        .then((events) => assert.deepEqual(types(events), ['StepSucceeded:new', 'StepScheduled:c']));
    });

    it('from the new step: `old` would be copied and v2 lacks it, so 409 naming it (fork from `old` instead)', () => {
      const plan = planFork(source, revisioned(ran), 'new', def(v2));
      assert.deepEqual(
        plan.copies.map((c) => c.stepId),
        ['a', 'old'],
      );
      const err = spec
        .given([])
        .when(fork({ definition: v2, fromStep: 'new', copies: [...plan.copies] }))
        .thenThrows<DomainError>(isCode('illegal_state'));
      assert.deepEqual(err.details['missing_steps'], ['old']);
    });

    it('a step of neither version is still 400', () => {
      assert.throws(() => planFork(source, revisioned(ran), 'nope', def(v2)), isCode('validation'));
    });
  });

  it('a cancel of a fork does not undo a copied step (its effect belongs to the source), only what the fork itself did', () => {
    // create (undone by remove) -> notify (undone by unnotify); the fork from notify copies create.
    const undoable: WorkflowDefinitionInput = {
      id: 'undoable',
      version: 1,
      name: 'Undoable',
      steps: [
        {
          id: 'create',
          uses: 'mcp:database_writer/query',
          with: { email: '${{ input.email }}' },
          on_error: { compensate: 'remove' },
        },
        {
          id: 'notify',
          uses: 'mcp:automation/send_email',
          needs: ['create'],
          with: { to: '${{ input.email }}' },
          on_error: { compensate: 'unnotify' },
        },
        { id: 'wait_more', uses: 'mcp:database/query', needs: ['notify'], with: { sql: 'select 1' } },
        { id: 'remove', uses: 'mcp:database_writer/query', with: { email: '${{ input.email }}' } },
        { id: 'unnotify', uses: 'mcp:automation/send_email', with: { to: '${{ input.email }}' } },
      ],
    };
    const forkCommand = fork({
      definition: undoable,
      input: { email: 'someone-else@example.com' },
      fromStep: 'notify',
      copies: [{ stepId: 'create', output: { id: 7 }, revision: 3 }],
    });
    assert.deepEqual(types(history(forkCommand)), [
      'WorkflowStarted',
      'StepOutputCopied:create',
      'StepScheduled:notify',
    ]);
    spec
      .given(history(forkCommand, cmd.succeeded({ stepId: 'notify' }, { sent: true })))
      .when(cmd.cancel())
      .then((events) => {
        const compensations = events.filter((e) => e.type === 'CompensationStarted');
        assert.deepEqual(
          compensations.map((e) => (e.data as { stepId: string }).stepId),
          ['unnotify'],
          'only the step the fork ran is undone',
        );
      });
  });

  it('given a started execution, a repeated fork is ignored', () => {
    const started = workflowExecutionDecider.decide(fork(), workflowExecutionDecider.initialState);
    spec.given(started).when(fork()).thenNothingHappened();
  });
});

describe('planFork', () => {
  const source = fold(failedRun) as StartedExecution;
  it('copies succeeded steps that are neither the fork point nor downstream of it, with the revision that recorded them', () => {
    const plan = planFork(source, revisioned(failedRun), 'analyze', def(chain));
    assert.deepEqual(
      plan.copies.map((c) => c.stepId),
      ['fetch', 'side'],
    );
    const fetchRevision = failedRun.findIndex((e) => e.type === 'StepSucceeded' && e.data.stepId === 'fetch');
    assert.equal(plan.copies[0]!.revision, fetchRevision);
    assert.deepEqual(plan.rerun, ['analyze', 'report']);
  });
  it('downstream in the target counts too: a step that now needs the fork point runs again', () => {
    const v2 = def({
      ...chain,
      version: 2,
      steps: chain.steps.map((s) => (s.id === 'side' ? { ...s, needs: ['analyze'] } : s)),
    });
    assert.deepEqual(
      planFork(source, revisioned(failedRun), 'analyze', v2).copies.map((c) => c.stepId),
      ['fetch'],
    );
  });
  describe('with an input other than the one the source ran on', () => {
    /** lookup(e-mail) -> create (only when the lookup found nothing) -> welcome; stats and tags on their own. */
    const onboarding: WorkflowDefinitionInput = {
      id: 'onboarding_like',
      version: 1,
      name: 'Onboarding-like',
      steps: [
        { id: 'lookup', uses: 'mcp:database/query', with: { params: ['${{ input.email }}'] } },
        {
          id: 'create',
          uses: 'mcp:database_writer/query',
          needs: ['lookup'],
          if: 'size(steps.lookup.output.rows) == 0',
          with: { params: ['${{ input.email }}'] },
        },
        { id: 'welcome', uses: 'mcp:automation/send_email', needs: ['create'], with: { to: '${{ input.email }}' } },
        { id: 'stats', uses: 'mcp:database/query', with: { sql: 'select 1' } },
        { id: 'tagging', uses: 'mcp:database/query', for_each: { items: 'input.tags' }, with: { tag: '${{ item }}' } },
      ],
    };
    const ran = history(
      cmd.start(onboarding, { email: 'mine@example.com', tags: ['a', 'b'] }),
      cmd.succeeded({ stepId: 'lookup' }, { rows: [] }),
      cmd.succeeded({ stepId: 'stats' }, { rows: [{ one: 1 }] }),
      cmd.succeeded({ stepId: 'tagging', itemIndex: 0 }, 'a'),
      cmd.succeeded({ stepId: 'tagging', itemIndex: 1 }, 'b'),
      cmd.succeeded({ stepId: 'create' }, { rows: [{ customer_id: 7 }] }),
      cmd.failed({ stepId: 'welcome' }, invalid),
    );
    const src = fold(ran) as StartedExecution;
    const copied = (input?: Record<string, unknown>) =>
      planFork(src, revisioned(ran), 'welcome', def(onboarding), input).copies.map((c) => c.stepId);

    it('the same input (given or not) copies as before', () => {
      assert.deepEqual(copied(undefined), ['lookup', 'create', 'stats', 'tagging']);
      assert.deepEqual(copied({ tags: ['a', 'b'], email: 'mine@example.com' }), [
        'lookup',
        'create',
        'stats',
        'tagging',
      ]);
    });
    it('a step whose resolved input would differ runs again, and so does what depends on it', () => {
      const plan = planFork(src, revisioned(ran), 'welcome', def(onboarding), {
        email: 'someone-else@example.com',
        tags: ['a', 'b'],
      });
      assert.deepEqual(
        plan.copies.map((c) => c.stepId),
        ['stats', 'tagging'],
        "the lookup and the create made for the source's e-mail are not taken over",
      );
      assert.deepEqual(plan.rerun, ['lookup', 'create', 'welcome']);
    });
    it('a for_each step whose items would differ runs again; one whose items and inputs are the same is copied', () => {
      assert.deepEqual(copied({ email: 'mine@example.com', tags: ['a', 'c'] }), ['lookup', 'create', 'stats']);
      assert.deepEqual(copied({ email: 'mine@example.com', tags: ['a', 'b'], extra: 1 }), [
        'lookup',
        'create',
        'stats',
        'tagging',
      ]);
    });
    it('a step whose condition would not hold, or whose mapping fails on the new input, runs again', () => {
      const guarded = def({
        ...onboarding,
        steps: onboarding.steps.map((st) => (st.id === 'stats' ? { ...st, if: 'input.tags[0] == "a"' } : st)),
      });
      const guardedRun = history(
        cmd.start(guarded, { email: 'mine@example.com', tags: ['a', 'b'] }),
        cmd.succeeded({ stepId: 'lookup' }, { rows: [] }),
        cmd.succeeded({ stepId: 'stats' }, { rows: [] }),
        cmd.failed({ stepId: 'create' }, invalid),
      );
      const g = fold(guardedRun) as StartedExecution;
      assert.equal(g.status, 'failed');
      const plan = planFork(g, revisioned(guardedRun), 'welcome', guarded, { email: 'mine@example.com', tags: ['z'] });
      assert.deepEqual(
        plan.copies.map((c) => c.stepId),
        ['lookup'],
      );
      const noEmail = planFork(g, revisioned(guardedRun), 'welcome', guarded, { tags: ['a'] });
      assert.ok(!noEmail.copies.some((c) => c.stepId === 'lookup'), 'input.email is missing: the lookup runs again');
    });
  });
  describe('of a canceled execution whose cancel undid steps', () => {
    /** create (undone by remove) -> items (each undone by unitem) -> hold; side on its own. */
    const undoing: WorkflowDefinitionInput = {
      id: 'undoing',
      version: 1,
      name: 'Undoing',
      steps: [
        {
          id: 'create',
          uses: 'mcp:database_writer/query',
          with: { sql: 'insert' },
          on_error: { compensate: 'remove' },
        },
        {
          id: 'items',
          uses: 'mcp:database_writer/query',
          needs: ['create'],
          for_each: { items: '[1, 2]', compensate: 'unitem' },
          with: { v: '${{ item }}' },
        },
        { id: 'hold', uses: 'mcp:database/query', needs: ['items'], with: { sql: 'select pg_sleep(30)' } },
        { id: 'side', uses: 'mcp:database/query', with: { sql: 'select 1' } },
        { id: 'remove', uses: 'mcp:database_writer/query', with: { sql: 'delete' } },
        { id: 'unitem', uses: 'mcp:database_writer/query', with: { id: '${{ output.id }}' } },
      ],
    };
    const canceled = history(
      cmd.start(undoing, {}),
      cmd.succeeded({ stepId: 'side' }, { rows: [] }),
      cmd.succeeded({ stepId: 'create' }, { id: 1 }),
      cmd.succeeded({ stepId: 'items', itemIndex: 0 }, { id: 10 }),
      cmd.succeeded({ stepId: 'items', itemIndex: 1 }, { id: 11 }),
      cmd.cancel(),
      cmd.compensated('remove'),
      { type: 'RecordCompensationSucceeded', data: { stepId: 'unitem', itemIndex: 0, output: {} }, metadata: meta() },
      { type: 'RecordCompensationSucceeded', data: { stepId: 'unitem', itemIndex: 1, output: {} }, metadata: meta() },
      cmd.failed({ stepId: 'hold' }, { code: 'canceled', message: 'canceled', retryable: false }),
    );
    const src = fold(canceled) as StartedExecution;

    it("a step whose effect the cancel undid (its own compensation, or its items') is not copied: it runs again", () => {
      assert.equal(src.status, 'canceled');
      assert.equal(src.steps['items']!.status, 'succeeded');
      const plan = planFork(src, revisioned(canceled), 'hold', def(undoing));
      assert.deepEqual(
        plan.copies.map((c) => c.stepId),
        ['side'],
        'create and items name records the cancel removed',
      );
      assert.deepEqual(plan.rerun, ['create', 'items', 'hold']);
    });

    it('a step whose compensation started is not copied, however far the cancel got; with nothing undone, all is copied', () => {
      // Canceled before `items` ran: nothing of it to undo, `create` was undone; fork from `hold`.
      const early = history(
        cmd.start(undoing, {}),
        cmd.succeeded({ stepId: 'side' }, { rows: [] }),
        cmd.succeeded({ stepId: 'create' }, { id: 1 }),
        cmd.cancel(),
        cmd.compensated('remove'),
      );
      const s = fold(early) as StartedExecution;
      assert.ok(s.compensations['remove']);
      assert.equal(s.status, 'canceled');
      assert.deepEqual(
        planFork(s, revisioned(early), 'side', def(undoing)).copies.map((c) => c.stepId),
        [],
        'create was undone (and side is the fork point)',
      );
      const completed = history(
        cmd.start(undoing, {}),
        cmd.succeeded({ stepId: 'side' }, { rows: [] }),
        cmd.succeeded({ stepId: 'create' }, { id: 1 }),
        cmd.succeeded({ stepId: 'items', itemIndex: 0 }, { id: 10 }),
        cmd.succeeded({ stepId: 'items', itemIndex: 1 }, { id: 11 }),
        cmd.succeeded({ stepId: 'hold' }, { rows: [] }),
      );
      assert.equal(fold(completed).status, 'completed');
      assert.deepEqual(
        planFork(fold(completed) as StartedExecution, revisioned(completed), 'hold', def(undoing)).copies.map(
          (c) => c.stepId,
        ),
        ['create', 'items', 'side'],
        'nothing was undone: everything before the fork point is copied',
      );
    });
  });
  it('409 for a source still running or canceling: it may yet undo what would be copied', () => {
    const running = history(cmd.start(chain, {}), cmd.succeeded({ stepId: 'fetch' }, { rows: [] }));
    assert.equal(fold(running).status, 'running');
    assert.throws(
      () => planFork(fold(running) as StartedExecution, revisioned(running), 'analyze', def(chain)),
      isCode('illegal_state'),
    );
    // `analyze` in flight when the cancel came: canceling until it answers.
    const canceling = history(
      cmd.start(chain, {}),
      cmd.succeeded({ stepId: 'fetch' }, { rows: [] }),
      cmd.dispatched({ stepId: 'analyze' }),
      cmd.cancel(),
    );
    const c = fold(canceling) as StartedExecution;
    assert.equal(c.status, 'canceling');
    assert.throws(() => planFork(c, revisioned(canceling), 'analyze', def(chain)), isCode('illegal_state'));
  });
  it('400 for a fork from a compensation step (it never runs as a step of its own)', () => {
    const undoing = def({
      id: 'undoing_fork',
      version: 1,
      name: 'Undoing',
      steps: [
        { id: 'create', uses: 'mcp:database/query', with: { sql: 'select 1' }, on_error: { compensate: 'remove' } },
        { id: 'next', uses: 'mcp:database/query', needs: ['create'], with: { sql: 'select 2' } },
        { id: 'remove', uses: 'mcp:database/query', with: { sql: 'select 3' } },
      ],
    });
    const ran = history(
      cmd.start(undoing, {}),
      cmd.succeeded({ stepId: 'create' }, { rows: [] }),
      cmd.succeeded({ stepId: 'next' }, { rows: [] }),
    );
    const s = fold(ran) as StartedExecution;
    assert.equal(s.status, 'completed');
    assert.throws(() => planFork(s, revisioned(ran), 'remove', undoing), isCode('validation'));
    assert.deepEqual(
      planFork(s, revisioned(ran), 'next', undoing).copies.map((c) => c.stepId),
      ['create'],
    );
  });
  it('400 for a fork point of neither definition', () => {
    assert.throws(() => planFork(source, revisioned(failedRun), 'nope', def(chain)), isCode('validation'));
  });
});

describe('stateAt (time travel)', () => {
  it('property: the state at the last revision is the fold of the whole stream; at every revision, a step never goes back to pending', () => {
    const outcomes = fc.array(
      fc.record({ step: fc.constantFrom('fetch', 'analyze', 'report', 'side'), ok: fc.boolean() }),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(outcomes, (list) => {
        const commands: WorkflowCommand[] = [cmd.start(chain, {})];
        for (const o of list) {
          commands.push(
            o.ok ? cmd.succeeded({ stepId: o.step }, { rows: [1], total: 1 }) : cmd.failed({ stepId: o.step }, invalid),
          );
        }
        const events = history(...commands);
        const rev = revisioned(events);
        assert.deepEqual(stateAt(rev, events.length - 1), fold(events));
        const rank = { pending: 0, running: 1, succeeded: 2, failed: 2, skipped: 2 } as const;
        let prev: Record<string, number> = {};
        for (let r = 0; r < events.length; r++) {
          const s = stateAt(rev, r);
          if (s.status === 'not_started') return false;
          const now = Object.fromEntries(Object.values(s.steps).map((st) => [st.id, rank[st.status]]));
          for (const [id, v] of Object.entries(prev)) if (now[id]! < v) return false;
          prev = now;
        }
        return true;
      }),
      { numRuns: 200 },
    );
  });
});

describe('checkReplay of a fork that copied a for_each step', () => {
  const eachThen: WorkflowDefinitionInput = {
    id: 'each_then',
    version: 1,
    name: 'Each then sum',
    steps: [
      {
        id: 'store',
        uses: 'mcp:analytics/record_metric',
        for_each: { items: '[1, 2, 3]', concurrency: 3 },
        with: { v: '${{ item }}' },
      },
      {
        id: 'sum',
        uses: 'mcp:analytics/record_metric',
        needs: ['store'],
        with: { n: '${{ size(steps.store.output) }}' },
      },
    ],
  };
  it('answers each item with the copied output: the fork on its own version replays the same', () => {
    const sourceRun = history(
      cmd.start(eachThen, {}),
      ...[0, 1, 2].map((i) => cmd.succeeded({ stepId: 'store', itemIndex: i }, { ok: i })),
      cmd.succeeded({ stepId: 'sum' }, { n: 3 }),
    );
    const source = fold(sourceRun) as StartedExecution;
    assert.equal(source.status, 'completed');
    const plan = planFork(source, revisioned(sourceRun), 'sum', def(eachThen));
    assert.deepEqual(
      plan.copies.map((c) => [c.stepId, c.output]),
      [['store', [{ ok: 0 }, { ok: 1 }, { ok: 2 }]]],
    );
    const forkRun = history(
      fork({ definition: def(eachThen), fromStep: 'sum', copies: plan.copies }),
      cmd.succeeded({ stepId: 'sum' }, { n: 3 }),
    );
    const forked = fold(forkRun) as StartedExecution;
    assert.equal(forked.status, 'completed');
    assert.ok(forked.steps['store']!.copiedFrom);
    for (const withEvents of [undefined, forkRun]) {
      const r = checkReplay(forked, def(eachThen), withEvents);
      assert.deepEqual(r.differences, [], JSON.stringify(r));
      assert.equal(r.replayed_status, 'completed');
      assert.equal(r.same, true);
    }
  });
});

describe('checkReplay of a fork that copied a wait step', () => {
  const gate = {
    id: 'gate_then',
    version: 1,
    name: 'Gate then',
    steps: [
      { id: 'ask', uses: 'mcp:database/query', with: { sql: 'select 1' } },
      { id: 'hold', needs: ['ask'], wait: { signal: 'go', timeout_ms: 600_000, on_timeout: 'continue' } },
      { id: 'after', uses: 'mcp:database/query', needs: ['hold'], with: { sql: 'select 2' } },
    ],
  } as WorkflowDefinitionInput;
  const signal = {
    type: 'SendSignal',
    data: { signalId: 's1', name: 'go', payload: { approved: true } },
    metadata: meta(at(500)),
  } as WorkflowCommand;
  const timeout = {
    type: 'RecordWaitTimedOut',
    data: { stepId: 'hold' },
    metadata: meta(at(700_000)),
  } as WorkflowCommand;
  for (const [how, ending] of [
    ['signaled', signal],
    ['timed out (continue: a null output)', timeout],
  ] as const) {
    it(`the copied wait (${how}) ends with its copied output: the fork on its own version replays the same`, () => {
      const sourceRun = history(
        cmd.start(gate, {}),
        cmd.succeeded({ stepId: 'ask' }, { ok: true }),
        ending,
        cmd.succeeded({ stepId: 'after' }, { rows: [] }, 1, at(800_000)),
      );
      const source = fold(sourceRun) as StartedExecution;
      assert.equal(source.status, 'completed');
      const plan = planFork(source, revisioned(sourceRun), 'after', def(gate));
      assert.deepEqual(
        plan.copies.map((c) => c.stepId),
        ['ask', 'hold'],
      );
      const forkRun = history(
        fork({ definition: def(gate), fromStep: 'after', copies: plan.copies }),
        cmd.succeeded({ stepId: 'after' }, { rows: [] }),
      );
      const forked = fold(forkRun) as StartedExecution;
      assert.equal(forked.status, 'completed');
      const r = checkReplay(forked, def(gate), forkRun);
      assert.deepEqual(r.differences, [], JSON.stringify(r));
      assert.equal(r.replayed_status, 'completed');
      assert.equal(r.same, true);
      // A version whose wait takes another signal: the copied answer was the old signal's.
      const renamed = def({
        ...gate,
        version: 2,
        steps: gate.steps.map((st) => (st.id === 'hold' ? { ...st, wait: { ...st.wait!, signal: 'proceed' } } : st)),
      });
      assert.equal(checkReplay(forked, renamed, forkRun).same, false);
    });
  }
});

describe('checkReplay', () => {
  const completed = history(
    cmd.start(chain, {}),
    cmd.succeeded({ stepId: 'fetch' }, { rows: [1, 2] }),
    cmd.succeeded({ stepId: 'side' }, {}),
    cmd.succeeded({ stepId: 'analyze' }, { total: 3 }),
    cmd.succeeded({ stepId: 'report' }, {}),
  );
  const source = fold(completed) as StartedExecution;
  it('the same definition decides the same', () => {
    const r = checkReplay(source, def(chain));
    assert.deepEqual(r.differences, []);
    assert.equal(r.replayed_status, 'completed');
    assert.equal(r.same, true);
  });
  it('a canceled recording replayed on its own version is the same: canceled where its answers end', () => {
    // Canceled while `analyze` ran (its stop answered canceled), and one that waited for a signal.
    const whileRunning = fold(
      history(
        cmd.start(chain, {}),
        cmd.succeeded({ stepId: 'fetch' }, { rows: [1, 2] }),
        cmd.succeeded({ stepId: 'side' }, {}),
        cmd.dispatched({ stepId: 'analyze' }),
        cmd.cancel('no longer needed'),
        cmd.failed({ stepId: 'analyze' }, { code: 'canceled', message: 'stopped', retryable: false }),
      ),
    ) as StartedExecution;
    assert.equal(whileRunning.status, 'canceled');
    const r = checkReplay(whileRunning, def(chain));
    assert.deepEqual(r.differences, []);
    assert.equal(r.replayed_status, 'canceled');
    assert.equal(r.same, true);

    const gate = {
      id: 'gate',
      version: 1,
      name: 'Gate',
      steps: [
        { id: 'ask', uses: 'mcp:database/query', with: { sql: 'select 1' } },
        { id: 'hold', needs: ['ask'], wait: { signal: 'go', timeout_ms: 600_000 } },
        { id: 'after', uses: 'mcp:database/query', needs: ['hold'], with: { sql: 'select 2' } },
      ],
    } as WorkflowDefinitionInput;
    const waiting = fold(
      history(cmd.start(gate, {}), cmd.succeeded({ stepId: 'ask' }, { ok: true }), cmd.cancel('not needed')),
    ) as StartedExecution;
    assert.equal(waiting.status, 'canceled');
    const w = checkReplay(waiting, def(gate));
    assert.deepEqual(w.differences, []);
    assert.equal(w.same, true, JSON.stringify(w));
    // A version that changes what ran before the cancel still says so.
    const changed = checkReplay(
      waiting,
      def({ ...gate, version: 2, steps: [{ ...gate.steps[0]!, with: { sql: 'select 3' } }, ...gate.steps.slice(1)] }),
    );
    assert.equal(changed.same, false);
    assert.deepEqual(
      changed.differences.map((d) => `${d.kind}:${d.step_id}`),
      ['input_changed:ask', 'undetermined:hold', 'undetermined:after'],
    );
  });

  it('a recording whose wait step got its signal, or timed out, replays the same on its own version', () => {
    const gate = {
      id: 'approval',
      version: 1,
      name: 'Approval',
      steps: [
        { id: 'ask', uses: 'mcp:database/query', with: { sql: 'select 1' } },
        { id: 'hold', needs: ['ask'], wait: { signal: 'go', timeout_ms: 1_000, on_timeout: 'continue' } },
        { id: 'after', uses: 'mcp:database/query', needs: ['hold'], if: 'steps.hold.output != null', with: {} },
      ],
    } as WorkflowDefinitionInput;
    const signaled = fold(
      history(
        cmd.start(gate, {}),
        cmd.succeeded({ stepId: 'ask' }, { ok: true }),
        {
          type: 'SendSignal',
          data: { signalId: 's1', name: 'go', payload: { approved: true } },
          metadata: meta(at(500)),
        },
        cmd.succeeded({ stepId: 'after' }, { done: true }, 1, at(600)),
      ),
    ) as StartedExecution;
    assert.equal(signaled.status, 'completed');
    const r = checkReplay(signaled, def(gate));
    assert.deepEqual(r.differences, []);
    assert.equal(r.same, true, JSON.stringify(r));

    const timedOut = fold(
      history(cmd.start(gate, {}), cmd.succeeded({ stepId: 'ask' }, { ok: true }), {
        type: 'RecordWaitTimedOut',
        data: { stepId: 'hold' },
        metadata: meta(at(5_000)),
      }),
    ) as StartedExecution;
    assert.equal(timedOut.status, 'completed');
    const t = checkReplay(timedOut, def(gate));
    assert.deepEqual(t.differences, []);
    assert.equal(t.same, true, JSON.stringify(t));
  });

  it('names steps added, removed, conditions that now skip, changed inputs and dependencies', () => {
    const v2 = def({
      ...chain,
      version: 2,
      steps: [
        { id: 'fetch', uses: 'mcp:database/query', with: { sql: 'select 1' } },
        {
          id: 'analyze',
          uses: 'agent:revenue_analysis',
          needs: ['fetch'],
          with: { rows: '${{ steps.fetch.output.rows }}' },
        },
        {
          id: 'report',
          uses: 'mcp:filesystem/write_file',
          needs: ['analyze'],
          if: 'steps.analyze.output.total > 10',
          with: {},
        },
        { id: 'audit', uses: 'mcp:database/query', needs: ['fetch', 'analyze'], with: {} },
      ],
    });
    const r = checkReplay(source, v2);
    const kinds = r.differences.map((d) => `${d.kind}:${d.step_id}`).sort();
    assert.deepEqual(kinds, [
      'condition_changed:report',
      'now_skipped:report',
      'step_added:audit',
      'step_removed:side',
    ]);
    assert.equal(r.same, false);
    // audit ran in no recording: its outcome is undetermined, and so is the end.
    assert.equal(r.replayed_status, 'undetermined');
  });
  it('a step whose input now resolves differently is named, and what follows it is undetermined (no tool is called)', () => {
    const v4 = def({
      ...chain,
      version: 4,
      steps: chain.steps.map((s) =>
        s.id === 'analyze' ? { ...s, with: { rows: '${{ steps.fetch.output.rows }}', more: true } } : s,
      ),
    });
    const r = checkReplay(source, v4);
    assert.deepEqual(
      r.differences.map((d) => `${d.kind}:${d.step_id}`),
      ['input_changed:analyze', 'undetermined:report'],
    );
    assert.deepEqual(r.differences[0]!.replayed, [{ rows: [1, 2], more: true }]);
    assert.equal(r.replayed_status, 'undetermined');
  });

  it('reports an input the checked version refuses', () => {
    const strict = def({
      ...chain,
      version: 3,
      input: { type: 'object', properties: { x: { type: 'string' } }, required: ['x'] },
    });
    const r = checkReplay(source, strict);
    assert.equal(r.replayed_status, 'not_started');
    assert.match(r.input_problem ?? '', /invalid workflow input/);
  });
});

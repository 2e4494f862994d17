import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import type { WorkflowDefinitionInput, WorkflowExecutionState } from '@switchyard/domain';
import {
  buildCatalog,
  cancelExecution,
  executionEvents,
  startExecution,
  waitForExecution,
  runWorkflowCommandOnNewStream,
} from '@switchyard/workflow-executions';
import { WorkflowEngine } from './engine.js';
import { getExecutionView } from '@switchyard/read-models';
import { taskIdForIdempotencyKey } from '@switchyard/contracts';
import { Responders, TEST_ENGINE_TIMINGS } from './test-responders.js';

const logger = createLogger('workflow-engine-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('workflow engine over real PostgreSQL and nats-server', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let responders: Responders;
  let engine: WorkflowEngine;
  const server = `t${newId().slice(0, 6)}`;
  // Own subjects: other suites (real connectors, the task service) may share the nats-server.
  const subjects = {
    mcpPrefix: `test.wf.${server}.mcp`,
    tasks: `test.wf.${server}.tasks.execute`,
    tasksCancel: `test.wf.${server}.tasks.cancel`,
  };

  before(async () => {
    const url = await freshDatabase('wf_engine');
    pool = new pg.Pool({ connectionString: url, max: 10 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    nc = await connect({ servers: await testNatsUrl() });
    responders = await new Responders(nc, logger).start([server], {
      tasks: true,
      queue: `q-${server}`,
      mcpPrefix: subjects.mcpPrefix,
      tasksSubject: subjects.tasks,
      tasksCancelSubject: subjects.tasksCancel,
    });
    engine = new WorkflowEngine({
      store,
      pool,
      nats: nc,
      logger,
      databaseUrl: url,
      ...TEST_ENGINE_TIMINGS,
      recoveryIntervalMs: 60_000,
      subjects,
    });
    await engine.start();
  });

  after(async () => {
    await engine?.stop();
    await responders?.stop();
    await nc?.close();
    await store?.close();
    await pool?.end();
  });

  const run = async (
    definition: WorkflowDefinitionInput,
    input: unknown = {},
    waitMs = 15_000,
  ): Promise<{ id: string; state: WorkflowExecutionState }> => {
    const { executionId } = await startExecution(store, { definition, input, correlationId: newId() });
    const state = await waitForExecution(store, executionId, waitMs);
    return { id: executionId, state };
  };
  const types = async (id: string) => (await executionEvents(store, id)).map((e) => e.type);

  it('runs ready steps in parallel, honours needs and conditions, and resolves outputs', async () => {
    // A barrier: each of the two parallel steps answers only once both have arrived (deadlock if serial).
    let arrived = 0;
    let release!: () => void;
    const both = new Promise<void>((r) => (release = r));
    const barrier = async () => {
      if (++arrived === 2) release();
      await Promise.race([
        both,
        sleep(5_000).then(() => Promise.reject(new AppError('internal', 'steps did not run in parallel'))),
      ]);
      return { n: arrived };
    };
    responders.behaviours.set(`${server}/left`, barrier);
    responders.behaviours.set(`${server}/right`, barrier);
    responders.behaviours.set(`${server}/join`, (c) => ({ joined: c.args }));
    const { id, state } = await run(
      {
        id: 'parallel_demo',
        version: 1,
        name: 'parallel',
        input: { type: 'object', properties: { flag: { type: 'boolean', default: true } } },
        steps: [
          { id: 'left', uses: `mcp:${server}/left`, timeout_ms: 10_000 },
          { id: 'right', uses: `mcp:${server}/right`, timeout_ms: 10_000 },
          {
            id: 'join',
            uses: `mcp:${server}/join`,
            needs: ['left', 'right'],
            if: 'input.flag',
            with: { l: '${{ steps.left.output.n }}' },
          },
          { id: 'never', uses: `mcp:${server}/join`, needs: ['left'], if: 'input.flag == false' },
          { id: 'after_never', uses: `agent:revenue_analysis`, needs: ['never'] },
        ],
        outputs: { joined: '${{ steps.join.output.joined.l }}' },
      },
      { flag: true },
    );
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed' && state.outputs.joined === 2);
    const ev = await executionEvents(store, id);
    const skipped = ev
      .filter((e) => e.type === 'StepSkipped')
      .map((e) => [(e.data as { stepId: string }).stepId, (e.data as { reason: string }).reason]);
    assert.deepEqual(skipped, [
      ['never', 'condition_false'],
      ['after_never', 'dependency_skipped'],
    ]);
    // join was scheduled only after both of its needs succeeded.
    const pos = (t: string, step: string) =>
      ev.findIndex((e) => e.type === t && (e.data as { stepId?: string }).stepId === step);
    assert.ok(
      pos('StepScheduled', 'join') > pos('StepSucceeded', 'left') &&
        pos('StepScheduled', 'join') > pos('StepSucceeded', 'right'),
    );
    await engine.readModelCaughtUp();
    const view = await getExecutionView(pool, id);
    assert.equal(view?.status, 'completed');
    assert.deepEqual(
      view?.steps.map((s) => [s.step_id, s.status, s.attempts]),
      [
        ['left', 'succeeded', 1],
        ['right', 'succeeded', 1],
        ['join', 'succeeded', 1],
        ['never', 'skipped', 0],
        ['after_never', 'skipped', 0],
      ],
    );
    const join = view.steps.find((s) => s.step_id === 'join')!;
    assert.deepEqual(join.attempt_history[0]?.input, { l: 2 });
    assert.equal(join.attempt_history[0]?.idempotency_key, `${id}:join:1`);
    assert.ok(join.attempt_history[0]?.dispatched_at && join.attempt_history[0]?.ended_at);
  });

  it('a start records its first units as dispatched in its own append; the engine sends them as they are, or restarts the clock of one it picks up late', async () => {
    responders.behaviours.set(`${server}/first`, () => ({ ok: true }));
    const definition: WorkflowDefinitionInput = {
      id: 'first_dispatch',
      version: 1,
      name: 'first',
      steps: [{ id: 'a', uses: `mcp:${server}/first`, timeout_ms: 10_000 }],
    };
    // 1. One transaction holds the start, the schedule and the dispatch record; nobody appends another.
    const { id, state } = await run(definition);
    assert.equal(state.status, 'completed');
    const ev = await executionEvents(store, id);
    assert.deepEqual(
      ev.map((e) => e.type),
      ['WorkflowStarted', 'StepScheduled', 'StepDispatched', 'StepSucceeded', 'WorkflowCompleted'],
    );
    assert.equal(
      new Set(ev.slice(0, 3).map((e) => e.recordedAt.getTime())).size,
      1,
      'start, schedule and dispatch in one append',
    );
    // 2. Recorded dispatched 5 s before the engine sees it: sent with a new clock (StepRedispatched), not charged the wait.
    const late = newId();
    const at = new Date(Date.now() - 5_000).toISOString();
    await runWorkflowCommandOnNewStream(store, late, {
      type: 'StartWorkflow',
      data: { executionId: late, definition, input: {} },
      metadata: { timestamp: at, actor: 'test', correlationId: newId() },
    });
    const lateState = await waitForExecution(store, late, 15_000);
    assert.equal(lateState.status, 'completed');
    const lateEvents = await executionEvents(store, late);
    assert.deepEqual(
      lateEvents.map((e) => e.type),
      ['WorkflowStarted', 'StepScheduled', 'StepDispatched', 'StepRedispatched', 'StepSucceeded', 'WorkflowCompleted'],
    );
    const redispatched = lateEvents[3]!.data as { dispatchedAt: string };
    assert.ok(
      Date.parse(redispatched.dispatchedAt) - Date.parse(at) >= 4_000,
      `clock restarted at ${redispatched.dispatchedAt}, recorded at ${at}`,
    );
  });

  it('retries retryable failures with backoff from durable timers, each attempt with its own key', async () => {
    responders.behaviours.set(`${server}/flaky`, (_c, n) => {
      if (responders.calls.filter((c) => c.tool === `${server}/flaky`).length <= 2)
        throw new AppError('unavailable', `flaky down (${n})`);
      return { ok: true };
    });
    const { id, state } = await run({
      id: 'retry_demo',
      version: 1,
      name: 'retry',
      steps: [
        {
          id: 'flaky',
          uses: `mcp:${server}/flaky`,
          retry: { attempts: 3, backoff: { initialMs: 150, factor: 2, maxMs: 1000, jitter: 0 } },
        },
      ],
    });
    assert.equal(state.status, 'completed');
    const ev = await executionEvents(store, id);
    const retries = ev
      .filter((e) => e.type === 'StepRetryScheduled')
      .map((e) => e.data as { attempt: number; delayMs: number; dueAt: string });
    assert.deepEqual(
      retries.map((r) => [r.attempt, r.delayMs]),
      [
        [2, 150],
        [3, 300],
      ],
    );
    const calls = responders.calls.filter((c) => c.tool === `${server}/flaky`);
    assert.deepEqual(
      calls.map((c) => c.key),
      [`${id}:flaky:1`, `${id}:flaky:2`, `${id}:flaky:3`],
    );
    // Each retry was sent only once its timer was due.
    for (const r of retries)
      assert.ok(calls[r.attempt - 1]!.at >= Date.parse(r.dueAt), `attempt ${r.attempt} sent before its due time`);
  });

  it('times out a hung attempt (durable timer), retries it, then fails the workflow', async () => {
    responders.behaviours.set(`${server}/hang`, () => sleep(4_000).then(() => ({ late: true })));
    const { id, state } = await run({
      id: 'timeout_demo',
      version: 1,
      name: 'timeout',
      steps: [
        {
          id: 'hang',
          uses: `mcp:${server}/hang`,
          timeout_ms: 300,
          retry: { attempts: 2, backoff: { initialMs: 50, factor: 1, maxMs: 50, jitter: 0 } },
        },
      ],
    });
    assert.equal(state.status, 'failed');
    const t = await types(id);
    assert.equal(t.filter((x) => x === 'StepTimedOut').length, 2);
    assert.equal(t.at(-1), 'WorkflowFailed');
  });

  /**
   * An execution that reserved (`reserve<suffix>`, compensated by `release<suffix>`, which runs
   * `release`), canceled while its next step (`slow<suffix>`, running until asked to stop) runs;
   * resolves once it ended.
   */
  const canceledAfterReserving = async (
    suffix: string,
    release: (c: { args: unknown }) => unknown,
    releaseStep: Record<string, unknown> = {},
  ) => {
    responders.behaviours.set(`${server}/reserve${suffix}`, () => ({ reservation: `r-${suffix}` }));
    // Like a real worker: runs until asked to stop, then answers `canceled`.
    responders.behaviours.set(`${server}/slow${suffix}`, async (c) => {
      const reason = await responders.whenCanceled(c.key);
      throw new AppError('canceled', `tool call canceled: ${reason}`, {}, false);
    });
    responders.behaviours.set(`${server}/release${suffix}`, (c) => release(c));
    const { executionId: id } = await startExecution(store, {
      definition: {
        id: `cancel_demo${suffix}`,
        version: 1,
        name: 'cancel',
        steps: [
          { id: 'reserve', uses: `mcp:${server}/reserve${suffix}`, on_error: { compensate: 'release' } },
          { id: 'work', uses: `mcp:${server}/slow${suffix}`, needs: ['reserve'], timeout_ms: 30_000 },
          { id: 'release', uses: `mcp:${server}/release${suffix}`, ...releaseStep },
        ],
      },
      input: {},
      correlationId: newId(),
    });
    await until('work dispatched', async () => (await types(id)).filter((x) => x === 'StepDispatched').length === 2);
    const canceled = await cancelExecution(store, id, { reason: 'operator said so', correlationId: newId() });
    return { id, canceled, state: await waitForExecution(store, id, 20_000) };
  };

  it('cancels a running execution: asks the running unit to stop, waits for it, compensates what succeeded, ends canceled', async () => {
    const {
      id,
      canceled: r,
      state,
    } = await canceledAfterReserving('', (c) => ({ released: c.args }), {
      with: { id: 'r-1' },
    });
    assert.equal(r.status, 'canceling');
    assert.equal(state.status, 'canceled');
    const t = await types(id);
    assert.ok(t.includes('CompensationStarted') && t.includes('CompensationSucceeded'), t.join(','));
    assert.equal(responders.calls.filter((c) => c.tool === `${server}/release`).length, 1);
    // The running unit was asked to stop by its key (not left to its 30 s timeout) and said it stopped.
    assert.deepEqual(
      responders.cancels.filter((c) => c.key === `${id}:work:1`).map((c) => c.reason),
      ['operator said so'],
    );
    const failed = (await executionEvents(store, id)).find((e) => e.type === 'StepFailed');
    assert.equal((failed?.data as { stepId: string; error: { code: string } }).error.code, 'canceled');
    assert.ok(!t.includes('StepTimedOut'));
    await assert.rejects(
      cancelExecution(store, id, { reason: 'again', correlationId: newId() }),
      (e: AppError) => e.code === 'illegal_state',
    );
  });

  it('a compensation that fails for a passing reason (its server away) is sent again under its key until it succeeds', async () => {
    let tries = 0;
    const { id, state } = await canceledAfterReserving('2', () => {
      tries += 1;
      if (tries <= 2) throw new AppError('unavailable', 'no service is listening (restarting)');
      return { released: true };
    });
    assert.equal(state.status, 'canceled');
    const t = await types(id);
    assert.ok(t.includes('CompensationSucceeded') && !t.includes('CompensationFailed'), t.join(','));
    const releases = responders.calls.filter((c) => c.tool === `${server}/release2`);
    assert.equal(releases.length, 3, 'two refusals, then the one that undid it');
    assert.equal(new Set(releases.map((c) => c.key)).size, 1, 'every send under the same key');
  });

  it('a compensation that keeps failing is sent again only within its own time, and not after it ended', async () => {
    const { id, state } = await canceledAfterReserving(
      '3',
      () => {
        throw new AppError('unavailable', 'no service is listening (gone for good)');
      },
      { timeout_ms: 2_500 },
    );
    assert.equal(state.status, 'canceled');
    assert.ok((await types(id)).includes('CompensationFailed'));
    const sends = () => responders.calls.filter((c) => c.tool === `${server}/release3`).length;
    const atEnd = sends();
    // 0.5 s, then 1 s, then 2 s would pass its 2.5 s: three sends at most.
    assert.ok(atEnd >= 2 && atEnd <= 3, `sent ${atEnd} times within its time`);
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(sends(), atEnd, 'nothing sent after it ended');
  });

  it('a cancel asks the task service to cancel a running agent step, by the task id its key names', async () => {
    responders.behaviours.set('agent:slow_analysis', async (c) => {
      const reason = await responders.whenCanceled(taskIdForIdempotencyKey(c.key));
      throw new AppError('canceled', `task canceled: ${reason}`, {}, false);
    });
    const { executionId: id } = await startExecution(store, {
      definition: {
        id: 'cancel_agent',
        version: 1,
        name: 'cancel an agent step',
        steps: [{ id: 'think', uses: 'agent:slow_analysis', timeout_ms: 30_000 }],
      },
      input: {},
      correlationId: newId(),
    });
    await until('the agent step dispatched', async () => (await types(id)).includes('StepDispatched'));
    await cancelExecution(store, id, { reason: 'customer left', correlationId: newId() });
    const state = await waitForExecution(store, id, 15_000);
    assert.equal(state.status, 'canceled');
    assert.deepEqual(
      responders.cancels
        .filter((c) => c.subject === subjects.tasksCancel && c.key === taskIdForIdempotencyKey(`${id}:think:1`))
        .map((c) => c.reason),
      ['customer left'],
    );
  });

  it('runs agent steps on the task service and sub-workflows as child executions', async () => {
    responders.behaviours.set('agent:revenue_analysis', (c) => ({ analysed: (c.args as { n: number }).n * 2 }));
    const catalog = await buildCatalog(
      { nats: nc, definitions: engine.definitions },
      { timeoutMs: 300, lenientFor: { steps: [] } },
    );
    await engine.definitions.register(
      {
        id: 'child_flow',
        version: 1,
        name: 'child',
        input: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
        steps: [{ id: 'analyse', uses: 'agent:revenue_analysis', with: { n: '${{ input.n }}' } }],
        outputs: { value: '${{ steps.analyse.output.analysed }}' },
      },
      catalog,
    );
    const { id, state } = await run({
      id: 'parent_flow',
      version: 1,
      name: 'parent',
      steps: [{ id: 'child', uses: 'workflow:child_flow', with: { n: 21 } }],
      outputs: { answer: '${{ steps.child.output.value }}' },
    });
    assert.equal(state.status, 'completed', JSON.stringify(state.status === 'failed' ? state.reason : state.status));
    assert.ok(state.status === 'completed' && state.outputs.answer === 42);
    const childId = WorkflowEngine.childExecutionId(`${id}:child:1`);
    assert.equal((await waitForExecution(store, childId, 1_000)).status, 'completed');
    const task = responders.calls.find((c) => c.tool === 'agent:revenue_analysis');
    assert.equal(task?.key, `${childId}:analyse:1`);
  });

  it('a cancel reaches a running sub-workflow: the child ends canceled, then the parent', async () => {
    responders.behaviours.set(`${server}/long`, () => sleep(2_500).then(() => ({ done: true })));
    await engine.definitions.register(
      {
        id: 'long_child',
        version: 1,
        name: 'long child',
        steps: [{ id: 'long', uses: `mcp:${server}/long`, timeout_ms: 1_000 }],
      },
      { servers: [{ name: server, tools: ['long'] }], taskTypes: [], definitions: [] },
    );
    const { executionId: id } = await startExecution(store, {
      definition: {
        id: 'long_parent',
        version: 1,
        name: 'long parent',
        steps: [{ id: 'child', uses: 'workflow:long_child' }],
      },
      input: {},
      correlationId: newId(),
    });
    const childId = WorkflowEngine.childExecutionId(`${id}:child:1`);
    await until('child step dispatched', async () =>
      (await store.readStream(`workflow_execution-${childId}`)).some((e) => e.type === 'StepDispatched'),
    );
    await cancelExecution(store, id, { reason: 'stop all', correlationId: newId() });
    const parent = await waitForExecution(store, id, 15_000);
    assert.equal(parent.status, 'canceled');
    const child = await waitForExecution(store, childId, 1_000);
    assert.equal(child.status, 'canceled');
    assert.ok(child.status === 'canceled' && /parent canceled: stop all/.test(child.reason));
  });

  it('accepts a step naming an agent task by its alias (the dispatcher resolves it on submit), refuses an unknown one', async () => {
    const catalog = await buildCatalog({ nats: nc, definitions: engine.definitions }, { timeoutMs: 300 });
    const def = (uses: string) => ({
      id: `alias_flow_${uses.replace(/\W/g, '_')}`,
      version: 1,
      name: 'alias',
      steps: [{ id: 'a', uses }],
    });
    await engine.definitions.register(def('agent:analyze_revenue'), catalog);
    await assert.rejects(
      engine.definitions.register(def('agent:analyse_revenue_please'), catalog),
      (e: AppError) => e.code === 'validation' && /unknown agent task type/.test(e.message),
    );
  });

  it('refuses a definition with a cycle, naming it', async () => {
    const catalog = await buildCatalog({ nats: nc, definitions: engine.definitions }, { timeoutMs: 300 });
    await assert.rejects(
      engine.definitions.register(
        {
          id: 'cyclic',
          version: 1,
          name: 'cyclic',
          steps: [
            { id: 'a', uses: 'agent:revenue_analysis', needs: ['b'] },
            { id: 'b', uses: 'agent:revenue_analysis', needs: ['a'] },
          ],
        },
        catalog,
      ),
      (e: AppError) => e.code === 'validation' && /dependency cycle: a -> b -> a/.test(e.message),
    );
  });
});

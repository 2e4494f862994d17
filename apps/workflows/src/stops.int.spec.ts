/**
 * Nothing is left under way once what it was for has settled, through the real engine (PostgreSQL,
 * nats-server): a failed parent's waiting child, the child of a sub-workflow attempt that timed
 * out, and the items of a for_each step that failed are stopped, and shown so in the read model.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import type { WorkflowDefinitionInput, WorkflowExecutionState } from '@switchyard/domain';
import { retryExecution, startExecution, waitForExecution } from '@switchyard/workflow-executions';
import { getExecutionView } from '@switchyard/read-models';
import { WorkflowEngine } from './engine.js';
import { Responders, TEST_ENGINE_TIMINGS } from './test-responders.js';

const logger = createLogger('workflow-stops-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('stops: nothing is left running once its step or its execution has settled (real engine)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let responders: Responders;
  let engine: WorkflowEngine;
  const server = `s${newId().slice(0, 6)}`;
  const subjects = {
    mcpPrefix: `test.wfstop.${server}.mcp`,
    tasks: `test.wfstop.${server}.tasks.execute`,
    tasksCancel: `test.wfstop.${server}.tasks.cancel`,
  };
  const catalog = {
    servers: [{ name: server, tools: ['slow', 'effect', 'bad', 'items', 'times_out'] }],
    taskTypes: [],
    definitions: [],
  };

  before(async () => {
    const url = await freshDatabase('wf_stops');
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
    // A slow call runs until its worker is told to stop it (or 3 s).
    responders.behaviours.set(`${server}/slow`, async (c) => {
      const stopped = await Promise.race([responders.whenCanceled(c.key).then(() => true), sleep(3_000)]);
      if (stopped) throw new AppError('canceled', 'stopped by its caller');
      return { slept: true };
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

  const start = async (definition: WorkflowDefinitionInput, input: unknown = {}) =>
    (await startExecution(store, { definition, input, correlationId: newId() })).executionId;
  const streamOf = async (id: string) => store.readStream(`workflow_execution-${id}`);
  const childOf = (parentId: string, stepId: string, attempt: number) =>
    WorkflowEngine.childExecutionId(`${parentId}:${stepId}:${attempt}`);
  const reasonOf = (s: WorkflowExecutionState) => (s.status === 'canceled' || s.status === 'failed' ? s.reason : '');

  it('a call its worker timed out (retryable, as the connector says at the deadline) runs once with no retry policy, twice with two attempts', async () => {
    // The worker answers `timeout` as the connector does when a call outlasts the step's deadline:
    // it may have run, so only the step's policy may run it again (it was retried as transient,
    // eleven runs of a write in two minutes).
    responders.behaviours.set(`${server}/times_out`, () =>
      Promise.reject(new AppError('timeout', 'no answer within 1000 ms', {}, true)),
    );
    const runs = () => responders.calls.filter((c) => c.tool === `${server}/times_out`).length;
    for (const [retry, expected] of [
      [undefined, 1],
      [{ attempts: 2, backoff: { initialMs: 10 } }, 2],
    ] as const) {
      const before = runs();
      const id = await start({
        id: `times_out_${expected}`,
        version: 1,
        name: 'times out',
        steps: [{ id: 'write', uses: `mcp:${server}/times_out`, timeout_ms: 5_000, ...(retry ? { retry } : {}) }],
      });
      const end = await waitForExecution(store, id, 15_000);
      assert.equal(end.status, 'failed');
      await sleep(1_000); // a transient retry would have come by now (its first delay is under 250 ms)
      assert.equal(runs() - before, expected, `runs with retry ${JSON.stringify(retry)}`);
    }
  });

  it("a failed parent's child that waits for a signal ends canceled, and a retry of the parent leaves one child at a time", async () => {
    await engine.definitions.register(
      {
        id: 'waiting_child',
        version: 1,
        name: 'waiting child',
        steps: [{ id: 'gate', wait: { signal: 'go', timeout_ms: 2_592_000_000 } }],
      },
      catalog,
    );
    // `bad` fails once the child is waiting, so the parent's end has a running child to reach.
    let parentId = '';
    responders.behaviours.set(`${server}/bad`, async () => {
      const attempt = responders.calls.filter((c) => c.tool === `${server}/bad`).length;
      const child = childOf(parentId, 'sub', attempt);
      await until('child waits', async () => (await streamOf(child)).some((e) => e.type === 'WaitStarted'));
      throw new AppError('validation', 'no such table');
    });
    parentId = newId();
    await startExecution(store, {
      executionId: parentId,
      definition: {
        id: 'orphan_parent',
        version: 1,
        name: 'parent',
        steps: [
          { id: 'sub', uses: 'workflow:waiting_child' },
          { id: 'bad', uses: `mcp:${server}/bad` },
        ],
      },
      input: {},
      correlationId: newId(),
    });
    const parent = await waitForExecution(store, parentId, 15_000);
    assert.equal(parent.status, 'failed', reasonOf(parent));
    const child1 = await waitForExecution(store, childOf(parentId, 'sub', 1), 10_000);
    assert.equal(child1.status, 'canceled');
    assert.match(reasonOf(child1), /^parent: the execution failed: step "bad" failed/);
    // The parent shows its sub-workflow step stopped, not running.
    assert.ok(parent.status === 'failed');
    assert.equal(parent.steps['sub']!.status, 'failed');
    assert.equal(parent.steps['sub']!.error?.code, 'canceled');

    // A retry runs `sub` again (attempt 2, a new child); `bad` fails again and that child is canceled too.
    await retryExecution(store, parentId, { correlationId: newId(), actor: 'user:tester' });
    const again = await waitForExecution(store, parentId, 15_000);
    assert.equal(again.status, 'failed', reasonOf(again));
    const child2 = await waitForExecution(store, childOf(parentId, 'sub', 2), 10_000);
    assert.equal(child2.status, 'canceled');
    assert.equal((await waitForExecution(store, childOf(parentId, 'sub', 1), 1_000)).status, 'canceled');
  });

  it("the child of a sub-workflow attempt that timed out is canceled: neither attempt's child does its effect", async () => {
    await engine.definitions.register(
      {
        id: 'slow_child',
        version: 1,
        name: 'slow child',
        steps: [
          { id: 'slow', uses: `mcp:${server}/slow`, timeout_ms: 10_000 },
          { id: 'effect', uses: `mcp:${server}/effect`, needs: ['slow'] },
        ],
      },
      catalog,
    );
    const id = await start({
      id: 'timeout_parent',
      version: 1,
      name: 'parent',
      steps: [
        {
          id: 'sub',
          uses: 'workflow:slow_child',
          timeout_ms: 1_000,
          retry: { attempts: 2, backoff: { initialMs: 100 }, on: ['timeout'] },
        },
      ],
    });
    const parent = await waitForExecution(store, id, 15_000);
    assert.equal(parent.status, 'failed', reasonOf(parent));
    for (const attempt of [1, 2]) {
      const childId = childOf(id, 'sub', attempt);
      const child = await waitForExecution(store, childId, 10_000);
      assert.equal(child.status, 'canceled', `child of attempt ${attempt}: ${child.status}`);
      assert.match(reasonOf(child), new RegExp(`^parent: attempt ${attempt} of step "sub" timed out`));
      // Its running call was told to stop, by its key.
      assert.ok(responders.cancels.some((c) => c.key === `${childId}:slow:1`));
    }
    // Longer than the slow call would have taken: no child went on to its effect.
    await sleep(1_000);
    assert.deepEqual(
      responders.calls.filter((c) => c.tool === `${server}/effect`),
      [],
    );
  });

  for (const onError of ['continue', 'fail'] as const) {
    it(`a for_each step that fails (on_error ${onError}) leaves no item dispatched: the others are stopped and shown canceled`, async () => {
      // Item 0 fails at once; the others run until told to stop.
      responders.behaviours.set(`${server}/items`, async (c) => {
        if ((c.args as { i: number }).i === 0) throw new AppError('validation', 'item 0 is bad');
        const stopped = await Promise.race([responders.whenCanceled(c.key).then(() => true), sleep(5_000)]);
        if (stopped) throw new AppError('canceled', 'stopped by its caller');
        return { i: (c.args as { i: number }).i };
      });
      const id = await start({
        id: `fe_${onError}`,
        version: 1,
        name: 'fe',
        steps: [
          {
            id: 'fe',
            uses: `mcp:${server}/items`,
            for_each: { items: '[0, 1, 2, 3]', concurrency: 4 },
            on_error: onError,
            with: { i: '${{ item }}' },
            timeout_ms: 10_000,
          },
        ],
        outputs: { fe: '${{ steps.fe.status }}' },
      });
      const state = await waitForExecution(store, id, 4_000);
      assert.equal(state.status, onError === 'continue' ? 'completed' : 'failed', reasonOf(state));
      assert.ok(state.status === 'completed' || state.status === 'failed');
      assert.deepEqual(
        state.steps['fe']!.units.map((u) => u?.phase),
        ['failed', 'canceled', 'canceled', 'canceled'],
      );
      // Each item still running was told to stop, by its key.
      await until('items told to stop', () =>
        [1, 2, 3].every((i) => responders.cancels.some((c) => c.key === `${id}:fe[${i}]:1`)),
      );
      // The read model shows them so, not `dispatched` forever.
      await engine.readModelCaughtUp();
      const view = await getExecutionView(pool, id);
      const fe = view?.steps.find((s) => s.step_id === 'fe');
      assert.deepEqual(
        fe?.attempt_history.map((a) => [a.item_index, a.status]),
        [
          [0, 'failed'],
          [1, 'canceled'],
          [2, 'canceled'],
          [3, 'canceled'],
        ],
      );
      assert.equal(fe?.status, 'failed');
    });
  }
});

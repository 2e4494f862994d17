/**
 * Sub-workflow bounds over real PostgreSQL and nats-server: two definitions that start each other
 * end at WORKFLOW_MAX_SUBWORKFLOW_DEPTH, a fan-out stops at WORKFLOW_MAX_EXECUTIONS_PER_ROOT, and
 * a cancel of the root reaches every execution of its tree.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import {
  defaultWorkflowLimits,
  workflowLimits,
  type ToolCatalog,
  type WorkflowDefinitionInput,
} from '@switchyard/domain';
import { WorkflowEngine } from './engine.js';
import {
  cancelExecution,
  executionEvents,
  startExecution,
  waitForExecution,
  isTerminal,
  loadExecution,
  applyWorkflowLimits,
  WORKFLOW_SCHEMA,
} from '@switchyard/workflow-executions';
import { Responders, TEST_ENGINE_TIMINGS } from './test-responders.js';

const logger = createLogger('workflow-limits-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sub-workflow limits over real PostgreSQL and nats-server', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let responders: Responders;
  let engine: WorkflowEngine;
  const server = `l${newId().slice(0, 6)}`;
  const subjects = {
    mcpPrefix: `test.wfl.${server}.mcp`,
    tasks: `test.wfl.${server}.tasks.execute`,
    tasksCancel: `test.wfl.${server}.tasks.cancel`,
  };
  const known: string[] = [];
  const catalog = (): ToolCatalog => ({
    servers: [{ name: server, tools: ['slow', 'big'] }],
    taskTypes: [],
    definitions: [...known],
  });
  const register = async (d: WorkflowDefinitionInput) => {
    await engine.definitions.register(d, catalog());
    known.push(d.id);
  };
  /** `a` and `b` start each other: a v1 is a placeholder so that b can name it, a v2 closes the loop. */
  const mutual = async (a: string, b: string, slowFirst: boolean) => {
    const slow = { id: 'wait', uses: `mcp:${server}/slow`, timeout_ms: 10_000 };
    await register({ id: a, version: 1, name: a, steps: [slow] });
    const stepsTo = (other: string) =>
      slowFirst
        ? [slow, { id: 'next', uses: `workflow:${other}`, needs: ['wait'] }]
        : [{ id: 'next', uses: `workflow:${other}` }];
    await register({ id: b, version: 1, name: b, steps: stepsTo(a) });
    await register({ id: a, version: 2, name: a, steps: stepsTo(b) });
  };
  const tree = async (root: string) =>
    (
      await pool.query<{ execution_id: string; depth: number }>(
        `select execution_id, depth from ${WORKFLOW_SCHEMA}.execution_tree where root_id = $1 order by depth`,
        [root],
      )
    ).rows;

  before(async () => {
    const url = await freshDatabase('wf_limits');
    pool = new pg.Pool({ connectionString: url, max: 10 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    nc = await connect({ servers: await testNatsUrl() });
    responders = await new Responders(nc, logger).start([server], {
      queue: `q-${server}`,
      mcpPrefix: subjects.mcpPrefix,
      tasksSubject: subjects.tasks,
      tasksCancelSubject: subjects.tasksCancel,
    });
    responders.behaviours.set(`${server}/slow`, () => sleep(300).then(() => ({ ok: true })));
    // About 200 KB of JSON per call: a page a fetch step might bring back.
    responders.behaviours.set(`${server}/big`, () => Promise.resolve({ page: 'p'.repeat(200_000) }));
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
    applyWorkflowLimits({
      maxSubworkflowDepth: defaultWorkflowLimits.maxSubworkflowDepth,
      maxExecutionsPerRoot: defaultWorkflowLimits.maxExecutionsPerRoot,
    });
    await engine?.stop();
    await responders?.stop();
    await nc?.close();
    await store?.close();
    await pool?.end();
  });

  it('two definitions that start each other end at the depth limit, with a clear error code', async () => {
    assert.equal(workflowLimits().maxSubworkflowDepth, 10);
    await mutual('ping_d', 'pong_d', false);
    const { executionId: root } = await startExecution(store, {
      definition: (await engine.definitions.get('ping_d')).definition,
      input: {},
      correlationId: newId(),
    });
    const state = await waitForExecution(store, root, 30_000);
    assert.equal(state.status, 'failed');
    const members = await tree(root);
    assert.equal(members.length, 10, 'one execution per level, depth 1..10');
    assert.deepEqual(
      members.map((m) => m.depth),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    // The deepest one could not start its child: its step failed with the depth code.
    const deepest = members[9]!.execution_id;
    const failed = (await executionEvents(store, deepest)).find((e) => e.type === 'StepFailed');
    const error = (failed?.data as { error?: { code: string; message: string } } | undefined)?.error;
    assert.equal(error?.code, 'subworkflow_depth_exceeded');
    assert.match(error.message, /depth 11; at most 10 \(WORKFLOW_MAX_SUBWORKFLOW_DEPTH\)/);
    // Its WorkflowStarted carries the lineage.
    const started = (await executionEvents(store, deepest)).find((e) => e.type === 'WorkflowStarted');
    assert.deepEqual((started?.data as { lineage?: unknown }).lineage, {
      rootExecutionId: root,
      parentExecutionId: members[8]!.execution_id,
      depth: 10,
    });
    // Every execution of the tree ended.
    for (const m of members)
      assert.ok(isTerminal((await loadExecution(store, m.execution_id)).state), `${m.execution_id} ended`);
  });

  it('cancelling the root cancels its whole tree, and it converges', async () => {
    // No depth limit to speak of, and children start as fast as the engine can: only the cancel
    // can stop this tree before the per-root cap (which would end it failed, not canceled).
    applyWorkflowLimits({ maxSubworkflowDepth: 1_000, maxExecutionsPerRoot: 300 });
    await mutual('ping_c', 'pong_c', false);
    const { executionId: root } = await startExecution(store, {
      definition: (await engine.definitions.get('ping_c')).definition,
      input: {},
      correlationId: newId(),
    });
    await until('the tree is three deep', async () => (await tree(root)).some((m) => m.depth >= 3), 20_000);
    await cancelExecution(store, root, { reason: 'stop the bomb', correlationId: newId() });
    const running = async () => {
      const ids = [root, ...(await tree(root)).map((m) => m.execution_id)];
      const states = await Promise.all(ids.map(async (id) => (await loadExecution(store, id)).state));
      return {
        total: ids.length,
        running: states.filter((s) => s.status !== 'not_started' && !isTerminal(s)).length,
        states,
      };
    };
    await until('no execution of the tree is running', async () => (await running()).running === 0, 30_000);
    const before = await running();
    // Converged: nothing new starts afterwards.
    await sleep(1_500);
    const after = await running();
    assert.equal(after.total, before.total, 'no execution was added to the tree after it stopped');
    assert.equal(after.running, 0);
    assert.equal((await loadExecution(store, root)).state.status, 'canceled');
    // The cancel ended it, not the cap: every execution of the tree ended canceled.
    assert.ok(after.total < 300, `the cancel caught the tree before the cap (${after.total} executions)`);
    assert.deepEqual([...new Set(after.states.map((s) => s.status))], ['canceled']);
    applyWorkflowLimits({
      maxSubworkflowDepth: defaultWorkflowLimits.maxSubworkflowDepth,
      maxExecutionsPerRoot: defaultWorkflowLimits.maxExecutionsPerRoot,
    });
  });

  it('a fan-out of sub-workflows stops at the executions-per-root limit', async () => {
    applyWorkflowLimits({ maxExecutionsPerRoot: 3 });
    await register({
      id: 'leaf_f',
      version: 1,
      name: 'leaf',
      steps: [{ id: 'wait', uses: `mcp:${server}/slow`, timeout_ms: 10_000 }],
    });
    const { executionId: root } = await startExecution(store, {
      definition: {
        id: 'fan_f',
        version: 1,
        name: 'fan',
        steps: [{ id: 'each', uses: 'workflow:leaf_f', for_each: { items: '[1, 2, 3, 4, 5]', concurrency: 5 } }],
      },
      input: {},
      correlationId: newId(),
    });
    const state = await waitForExecution(store, root, 20_000);
    assert.equal(state.status, 'failed');
    assert.equal((await tree(root)).length, 3);
    const codes = (await executionEvents(store, root))
      .filter((e) => e.type === 'StepFailed')
      .map((e) => (e.data as { error: { code: string } }).error.code);
    assert.ok(codes.includes('subworkflow_limit_exceeded'), JSON.stringify(codes));
    applyWorkflowLimits({ maxExecutionsPerRoot: defaultWorkflowLimits.maxExecutionsPerRoot });
  });

  it('a for_each of large results stops at WORKFLOW_MAX_OUTPUT_BYTES: the execution fails, what it stored stays bounded', async () => {
    applyWorkflowLimits({ maxOutputChars: 1_000_000 });
    try {
      const { executionId } = await startExecution(store, {
        definition: {
          id: 'fan_big',
          version: 1,
          name: 'fan of large results',
          steps: [
            {
              id: 'each',
              uses: `mcp:${server}/big`,
              for_each: {
                items: '[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]',
                concurrency: 1,
              },
            },
          ],
        },
        input: {},
        correlationId: newId(),
      });
      const state = await waitForExecution(store, executionId, 20_000);
      assert.equal(state.status, 'failed');
      const events = await executionEvents(store, executionId);
      const stored = events.filter((e) => e.type === 'StepSucceeded').length;
      const failed = events
        .filter((e) => e.type === 'StepFailed')
        .map((e) => (e.data as { error: { code: string; message: string } }).error);
      assert.equal(failed[0]?.code, 'output_limit_exceeded', JSON.stringify(failed));
      assert.match(failed[0].message, /WORKFLOW_MAX_OUTPUT_BYTES/);
      // 4 results of ~200 KB fit under 1 MB; the fifth is refused and nothing after it runs.
      assert.equal(stored, 4);
      const bytes = events.reduce((n, e) => n + JSON.stringify(e.data).length, 0);
      assert.ok(bytes < 1_100_000, `the execution's events hold ${bytes} characters`);
    } finally {
      applyWorkflowLimits({ maxOutputChars: defaultWorkflowLimits.maxOutputChars });
    }
  });
});

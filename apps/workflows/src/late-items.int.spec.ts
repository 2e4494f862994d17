/**
 * A for_each item its step's failure stopped while its call was with its server, whose worker let
 * that call finish (as the connectors do with an effectful call): through the real engine
 * (PostgreSQL, nats-server), its late success is recorded and a later cancel undoes it with the
 * items that had succeeded before.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import type { WorkflowEvent } from '@switchyard/domain';
import { cancelExecution, startExecution, waitForExecution } from '@switchyard/workflow-executions';
import { getExecutionView } from '@switchyard/read-models';
import { WorkflowEngine } from './engine.js';
import { Responders, TEST_ENGINE_TIMINGS } from './test-responders.js';

const logger = createLogger('workflow-late-items-int', process.env.LOG_LEVEL ?? 'silent');
/** A wait that does not keep the process alive once the test is done. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

describe('late item results: an item stopped by its step failure that finishes anyway is undone on cancel (real engine)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let responders: Responders;
  let engine: WorkflowEngine;
  const server = `s${newId().slice(0, 6)}`;
  const subjects = {
    mcpPrefix: `test.wflate.${server}.mcp`,
    tasks: `test.wflate.${server}.tasks.execute`,
    tasksCancel: `test.wflate.${server}.tasks.cancel`,
  };

  before(async () => {
    const url = await freshDatabase('wf_late_items');
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

  it('item 2 fails while items 1 and 3 are with their server: their late successes are recorded, and a cancel undoes items 0, 1 and 3', async () => {
    // Item 0 makes its schedule at once; item 2 fails once items 1 and 3 are with their server;
    // those two finish their call even when told to stop (an effect already under way).
    const started = new Set<number>();
    responders.behaviours.set(`${server}/make`, async (c) => {
      const i = (c.args as { i: number }).i;
      started.add(i);
      if (i === 2) {
        await until('items 1 and 3 with their server', () => started.has(1) && started.has(3));
        throw new AppError('validation', 'item 2 is bad');
      }
      if (i !== 0) await responders.whenCanceled(c.key);
      return { id: `s${i}` };
    });
    // `hold` keeps the execution running until the cancel stops it.
    responders.behaviours.set(`${server}/hold`, async (c) => {
      await Promise.race([responders.whenCanceled(c.key), sleep(20_000)]);
      throw new AppError('canceled', 'stopped by its caller');
    });
    responders.behaviours.set(`${server}/unmake`, (c) => ({ deleted: (c.args as { id: string }).id }));
    const id = (
      await startExecution(store, {
        definition: {
          id: 'late_items',
          version: 1,
          name: 'late items',
          steps: [
            {
              id: 'make',
              uses: `mcp:${server}/make`,
              for_each: { items: '[0, 1, 2, 3]', concurrency: 4, compensate: 'unmake' },
              on_error: 'continue',
              with: { i: '${{ item }}' },
              timeout_ms: 10_000,
            },
            { id: 'hold', uses: `mcp:${server}/hold`, timeout_ms: 30_000 },
            { id: 'unmake', uses: `mcp:${server}/unmake`, with: { id: '${{ output.id }}' } },
          ],
        },
        input: {},
        correlationId: newId(),
      })
    ).executionId;
    const events = async () =>
      (await store.readStream(`workflow_execution-${id}`)).map((e) => e as unknown as WorkflowEvent);
    const lateItems = async () =>
      (await events())
        .filter((e) => e.type === 'StepSucceeded' && e.data.late === true)
        .map((e) => (e.data as { itemIndex?: number }).itemIndex)
        .sort();
    await until('the late successes of items 1 and 3 are recorded', async () => (await lateItems()).length === 2);
    assert.deepEqual(await lateItems(), [1, 3]);

    await cancelExecution(store, id, { reason: 'customer withdrew', correlationId: newId() });
    const end = await waitForExecution(store, id, 10_000);
    assert.equal(end.status, 'canceled');
    assert.equal(end.steps['make']!.status, 'failed');
    assert.deepEqual(
      Object.values(end.compensations)
        .map((c) => [c.itemIndex, c.status, c.idempotencyKey])
        .sort(),
      [
        [0, 'succeeded', `${id}:compensate:unmake[0]:1`],
        [1, 'succeeded', `${id}:compensate:unmake[1]:1`],
        [3, 'succeeded', `${id}:compensate:unmake[3]:1`],
      ],
    );
    assert.deepEqual(
      responders.calls
        .filter((c) => c.tool === `${server}/unmake`)
        .map((c) => (c.args as { id: string }).id)
        .sort(),
      ['s0', 's1', 's3'],
    );
    // The read model: the items' attempts succeeded (item 2's failed), the step failed.
    await engine.readModelCaughtUp();
    const make = (await getExecutionView(pool, id))?.steps.find((s) => s.step_id === 'make');
    assert.equal(make?.status, 'failed');
    assert.deepEqual(
      make?.attempt_history.map((a) => [a.item_index, a.status, a.error === null]),
      [
        [0, 'succeeded', true],
        [1, 'succeeded', true],
        [2, 'failed', false],
        [3, 'succeeded', true],
      ],
    );
  });
});

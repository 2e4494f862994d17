import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, overriding, testNatsUrl } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { WorkflowEngine } from './engine.js';
import { TEST_ENGINE_TIMINGS } from './test-responders.js';
import { executionEvents, startExecution, waitForExecution } from '@switchyard/workflow-executions';

const logger = createLogger('workflow-take-up-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * An engine that takes up a partition while the database is coming back can fail to list the
 * partition's running executions. It tries that again at once rather than leaving them to the
 * periodic pass (a minute here): the unit a dead engine had sent is re-sent, with its
 * StepRedispatched (the take-up's mark), and the execution completes. Real nats-server and
 * PostgreSQL; the listing's failure is injected in front of the real pool.
 */
describe('a partition whose take-up fails on a lost connection is taken up again, not left to the periodic pass', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let url: string;
  const engines: WorkflowEngine[] = [];
  const id = `t${newId().slice(0, 6)}`;
  const subjects = {
    mcpPrefix: `test.takeup.${id}.mcp`,
    tasks: `test.takeup.${id}.tasks.execute`,
    tasksCancel: `test.takeup.${id}.tasks.cancel`,
  };

  before(async () => {
    url = await freshDatabase('wf_take_up');
    pool = new pg.Pool({ connectionString: url, max: 8 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    nc = await connect({ servers: await testNatsUrl() });
  });

  after(async () => {
    for (const e of engines) await e.stop().catch(() => undefined);
    await nc?.close();
    await store?.close();
    await pool?.end();
  });

  const engine = async (enginePool: pg.Pool): Promise<WorkflowEngine> => {
    const e = new WorkflowEngine({
      store,
      pool: enginePool,
      nats: nc,
      logger,
      databaseUrl: url,
      ...TEST_ENGINE_TIMINGS,
      partitions: 1,
      recoveryIntervalMs: 60_000,
      subjects,
    });
    engines.push(e);
    await e.start();
    return e;
  };

  it('the listing fails twice with a lost connection: the unit is re-sent within seconds and completes', async () => {
    const definition: WorkflowDefinitionInput = {
      id: `take-up-${id}`,
      version: 1,
      name: 'take-up',
      steps: [
        { id: 'answer', uses: 'agent:support_response', with: { query: 'where is my order' }, timeout_ms: 30_000 },
      ],
      outputs: { answer: '${{ steps.answer.output.text }}' },
    };
    // The task worker: holds the first request without answering (its engine dies meanwhile), answers the next.
    const requests: string[] = [];
    let held!: () => void;
    const firstHeld = new Promise<void>((r) => (held = r));
    const sub: Subscription = nc.subscribe(subjects.tasks, {
      callback: (_err, msg) => {
        const key = msg.json<{ idempotency_key: string }>().idempotency_key;
        requests.push(key);
        if (requests.length === 1) return held();
        msg.respond(JSON.stringify({ task_id: `task-of-${key}`, status: 'completed', result: { text: 'answered' } }));
      },
    });
    try {
      const first = await engine(pool);
      const { executionId } = await startExecution(store, { definition, input: {}, correlationId: newId() });
      await firstHeld;
      await first.stop();

      // The next engine's pool: the partition listing fails twice as if the connection dropped.
      let failures = 0;
      const query = (...args: unknown[]): unknown => {
        const sql = typeof args[0] === 'string' ? args[0] : '';
        if (sql.includes('active_executions where partition') && failures < 2) {
          failures++;
          return Promise.reject(new Error('Connection terminated unexpectedly'));
        }
        return (pool.query as (...a: unknown[]) => unknown).apply(pool, args);
      };
      const flaky = overriding<pg.Pool>(pool, { query: query as pg.Pool['query'] });
      const t0 = Date.now();
      await engine(flaky);
      const state = await waitForExecution(store, executionId, 20_000);
      const took = Date.now() - t0;
      assert.equal(state.status, 'completed', JSON.stringify(state));
      assert.equal(failures, 2, 'the listing failed twice');
      assert.equal(requests.length, 2, `sent by the first engine, re-sent by the second: ${requests.length}`);
      assert.equal(requests[1], requests[0], 'the re-sent call carries the same key');
      const types = (await executionEvents(store, executionId)).map((e) => e.type);
      assert.ok(types.includes('StepRedispatched'), `the take-up re-sent it (StepRedispatched): ${types.join(', ')}`);
      assert.ok(took < 15_000, `completed ${took} ms after the second engine started, not after the periodic pass`);
    } finally {
      sub.unsubscribe();
    }
  });
});

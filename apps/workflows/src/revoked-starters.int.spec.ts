/**
 * Revoking an API key ends the workflow executions it left running (real engine, PostgreSQL,
 * nats-server): those it started and those started for it, including one started after the
 * revocation (a trigger recorded before it); another key's go on.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { loadExecution, startExecution, waitForExecution } from '@switchyard/workflow-executions';
import { WorkflowEngine } from './engine.js';
import { Responders, TEST_ENGINE_TIMINGS } from './test-responders.js';
import { REVOCATION_ACTOR, RevokedStarterSweep } from './revoked-starters.js';

const logger = createLogger('workflow-revoked-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('revoking a key cancels the executions it left running (real engine)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let responders: Responders;
  let engine: WorkflowEngine;
  let newEngine: () => WorkflowEngine;
  const server = `s${newId().slice(0, 6)}`;
  const subjects = {
    mcpPrefix: `test.wfrevoke.${server}.mcp`,
    tasks: `test.wfrevoke.${server}.tasks.execute`,
    tasksCancel: `test.wfrevoke.${server}.tasks.cancel`,
  };
  const waiting: WorkflowDefinitionInput = {
    id: 'waits_then_acts',
    version: 1,
    name: 'waits, then acts',
    steps: [
      { id: 'gate', wait: { signal: 'go', timeout_ms: 2_592_000_000 } },
      { id: 'act', uses: `mcp:${server}/effect`, needs: ['gate'] },
    ],
  };

  before(async () => {
    const url = await freshDatabase('wf_revoked');
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
    newEngine = () =>
      new WorkflowEngine({
        store,
        pool,
        nats: nc,
        logger,
        databaseUrl: url,
        ...TEST_ENGINE_TIMINGS,
        recoveryIntervalMs: 60_000,
        revocationSweepMs: 100,
        subjects,
      });
    engine = newEngine();
    await engine.start();
  });

  after(async () => {
    await engine?.stop();
    await responders?.stop();
    await nc?.close();
    await store?.close();
    await pool?.end();
  });

  const start = async (who: { actor: string; onBehalfOf?: string }) =>
    (await startExecution(store, { definition: waiting, input: {}, correlationId: newId(), ...who })).executionId;
  const statusOf = async (id: string) => (await loadExecution(store, id)).state.status;
  const revoke = (keyId: string, correlationId: string) =>
    store.append(`apikey-${keyId}`, [
      {
        type: 'ApiKeyRevoked',
        data: { id: keyId },
        metadata: { correlationId, actor: 'apikey:the-admin', timestamp: new Date().toISOString() },
      },
    ]);

  it("its own executions and those started for it end canceled, with the reason; another key's go on", async () => {
    const own = await start({ actor: 'apikey:leaked' });
    const forIt = await start({ actor: 'automation:trigger', onBehalfOf: 'apikey:leaked' });
    const other = await start({ actor: 'apikey:other' });
    for (const id of [own, forIt, other])
      await until(`${id} waiting`, async () => (await statusOf(id)) === 'running', 10_000);

    await revoke('leaked', 'revoke-corr');
    for (const id of [own, forIt]) {
      const end = await waitForExecution(store, id, 15_000);
      assert.equal(end.status, 'canceled', id);
      assert.match(end.status === 'canceled' ? end.reason : '', /API key was revoked \(apikey:leaked\)/);
      const cancel = (await store.readStream(`workflow_execution-${id}`)).find(
        (e) => e.type === 'ExecutionCancelRequested',
      );
      assert.ok(cancel, 'the cancel is an event of the execution');
      assert.equal(cancel.metadata.actor, REVOCATION_ACTOR);
      assert.equal(cancel.metadata.correlationId, 'revoke-corr', "the revocation's correlation id links them");
    }
    await sleep(500); // five sweeps
    assert.equal(await statusOf(other), 'running', "another key's execution goes on");
    assert.equal(
      responders.calls.filter((c) => c.tool === `${server}/effect`).length,
      0,
      'no step acted after the revocation',
    );
  });

  it('an execution started for the key after its revocation (a trigger recorded before it) is canceled too', async () => {
    const late = await start({ actor: 'automation:trigger', onBehalfOf: 'apikey:leaked' });
    const end = await waitForExecution(store, late, 15_000);
    assert.equal(end.status, 'canceled');
  });

  it("an execution that ended while still listed as active is passed over (its 409), not the sweep's failure", async () => {
    responders.behaviours.set(`${server}/bad`, () => Promise.reject(new AppError('validation', 'refused', {}, false)));
    const failing: WorkflowDefinitionInput = {
      id: 'fails_at_once',
      version: 1,
      name: 'fails at once',
      steps: [{ id: 'bad', uses: `mcp:${server}/bad` }],
    };
    const { executionId } = await startExecution(store, {
      definition: failing,
      input: {},
      correlationId: newId(),
      actor: 'apikey:other',
    });
    assert.equal((await waitForExecution(store, executionId, 15_000)).status, 'failed');
    // As the engine's row of it would stand a moment after it ended, for the revoked starter.
    await pool.query(
      `insert into workflows.active_executions (execution_id, partition, started_by) values ($1, 0, 'apikey:leaked')
       on conflict (execution_id) do update set started_by = excluded.started_by, partition = 0`,
      [executionId],
    );
    try {
      const sweep = new RevokedStarterSweep({ store, pool, logger, owned: () => [0, 1, 2, 3] });
      assert.equal(await sweep.sweep(), 0, 'nothing to cancel, and no error');
    } finally {
      await pool.query(`delete from workflows.active_executions where execution_id = $1`, [executionId]);
    }
  });

  it('the list of revoked starters is rebuilt from the log', async () => {
    const rows = await pool.query<{ actor: string; correlation_id: string }>(
      `select actor, correlation_id from workflows.revoked_starters`,
    );
    assert.deepEqual(rows.rows, [{ actor: 'apikey:leaked', correlation_id: 'revoke-corr' }]);
  });

  it('an execution listed without its starter (by a release that kept none) gets it back at recovery, and its revoked key ends it', async () => {
    const old = await start({ actor: 'apikey:before-upgrade' });
    await until(`${old} waiting`, async () => (await statusOf(old)) === 'running', 10_000);
    // The engine stops, its row stands as an older release left it, the new engine takes the partitions.
    await engine.stop();
    await pool.query(`update workflows.active_executions set started_by = null where execution_id = $1`, [old]);
    engine = newEngine();
    await engine.start();
    await until(
      'the starter written back',
      async () =>
        (
          await pool.query<{ started_by: string | null }>(
            `select started_by from workflows.active_executions where execution_id = $1`,
            [old],
          )
        ).rows[0]?.started_by === 'apikey:before-upgrade',
      10_000,
    );
    await revoke('before-upgrade', 'revoke-old');
    const end = await waitForExecution(store, old, 15_000);
    assert.equal(end.status, 'canceled');
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLogger, createPgPool, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { startReplicatedPostgres, testNatsUrl, until, type ReplicatedPostgres } from '@switchyard/testing';
import { WorkflowEngine } from '@switchyard/workflows';
import type pg from 'pg';
import { createGateway, type Gateway } from '../../index.js';
import { WorkflowsFeatureModule } from './index.js';

const logger = createLogger('workflows-replica-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * Reads from a real streaming replica (a primary and a replica started by the harness): a start
 * answers with its position; a query given that position reads the replica once its read model
 * there has it, and the primary when the replica has not replayed it within the wait.
 */
describe('workflow queries from a streaming replica, with read-your-writes by position', () => {
  let r: ReplicatedPostgres;
  let primary: pg.Pool;
  let replica: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let engine: WorkflowEngine;
  let gw: Gateway;
  let base: string;
  const tag = newId().slice(0, 6);

  before(async () => {
    r = await startReplicatedPostgres();
    const db = await r.database('wf_replica');
    primary = createPgPool({ connectionString: db.primary, max: 8 }, { name: 'primary' });
    replica = createPgPool({ connectionString: db.replica, max: 4 }, { name: 'replica' });
    store = new PostgresEventStore({ pool: primary, logger, safetyIntervalMs: 500 });
    await store.init();
    nc = await connect({ servers: await testNatsUrl() });
    gw = await createGateway(
      {
        eventStore: store,
        pgPool: primary,
        readPool: replica,
        nats: nc,
        logger,
        config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' },
      },
      { modules: [WorkflowsFeatureModule], readReplica: { waitMs: 1_000, primaryWaitMs: 1_000 } },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
    // The engine runs the executions' read model (its steps find no agents here; that is fine: the reads are the point).
    engine = new WorkflowEngine({
      store,
      pool: primary,
      nats: nc,
      logger,
      databaseUrl: db.primary,
      partitions: 2,
      leaseTickMs: 200,
      timerPollMs: 50,
      subjects: { tasks: `test.wfrep.${tag}.tasks.execute`, mcpPrefix: `test.wfrep.${tag}.mcp` },
    });
    await engine.start();
  });

  after(async () => {
    await gw?.close();
    await engine?.stop();
    await nc?.close();
    await store?.close();
    await primary?.end();
    await replica?.end();
    await r?.stop();
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, { headers });
    return {
      status: res.status,
      source: res.headers.get('x-switchyard-read-source'),
      body: (await res.json()) as Record<string, unknown>,
    };
  };
  const start = async () => {
    const res = await fetch(`${base}/api/v1/workflows/start/revenue_analysis`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ timeframe: '30d' }),
    });
    assert.equal(res.status, 202);
    return (await res.json()) as { execution_id: string; position: number };
  };
  const replicaCheckpoint = async () =>
    Number(
      (
        await replica.query<{ position: string }>(
          `select position from read_models.checkpoints where name = 'workflow_executions'`,
        )
      ).rows[0]?.position ?? -1,
    );

  it('a start answers 202 with its position; given it, detail and list read the replica once it has replayed it', async () => {
    const started = await start();
    assert.equal(typeof started.position, 'number');
    const t0 = Date.now();
    const detail = await get(`/api/v1/workflows/executions/${started.execution_id}`, {
      'x-switchyard-min-position': String(started.position),
    });
    assert.equal(detail.status, 200);
    assert.equal(detail.body.execution_id, started.execution_id);
    assert.equal(detail.source, 'replica');
    console.log(
      `# detail from the replica ${Date.now() - t0} ms after the 202 (replica checkpoint ${await replicaCheckpoint()} >= position ${started.position})`,
    );
    const list = await get(`/api/v1/workflows/executions?min_position=${started.position}`);
    assert.equal(list.status, 200);
    assert.equal(list.source, 'replica');
    assert.ok((list.body.items as { execution_id: string }[]).some((x) => x.execution_id === started.execution_id));
  });

  it('the replica paused: a query given a newer position waits its bound, then reads the primary and still sees the write', async () => {
    await r.pauseReplay();
    try {
      const started = await start();
      const list = await get(`/api/v1/workflows/executions?min_position=${started.position}`);
      assert.equal(list.source, 'primary');
      assert.ok(
        (list.body.items as { execution_id: string }[]).some((x) => x.execution_id === started.execution_id),
        'the primary has the new execution',
      );
      // The replica really is behind: it does not have it.
      assert.ok((await replicaCheckpoint()) < started.position);
      const detail = await get(`/api/v1/workflows/executions/${started.execution_id}`, {
        'x-switchyard-min-position': String(started.position),
      });
      assert.equal(detail.status, 200);
      assert.equal(detail.source, 'primary');
      assert.equal(detail.body.execution_id, started.execution_id);
      // Without a position the list reads the replica, stale as it is.
      const stale = await get('/api/v1/workflows/executions');
      assert.equal(stale.source, 'replica');
      assert.ok(
        !(stale.body.items as { execution_id: string }[]).some((x) => x.execution_id === started.execution_id),
        'the paused replica lacks the new execution',
      );
      await r.resumeReplay();
      await until('the replica replays the start', async () => (await replicaCheckpoint()) >= started.position, 15_000);
      const caught = await get(`/api/v1/workflows/executions?min_position=${started.position}`);
      assert.equal(caught.source, 'replica');
      assert.ok((caught.body.items as { execution_id: string }[]).some((x) => x.execution_id === started.execution_id));
    } finally {
      await r.resumeReplay().catch(() => undefined);
    }
  });

  it('a position neither read model reaches within its wait: the primary answers the page it has, marked stale', async () => {
    const started = await start();
    const beyond = (await store.headPosition()) + 1_000_000;
    const res = await fetch(`${base}/api/v1/workflows/executions?min_position=${beyond}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-switchyard-read-source'), 'primary');
    assert.equal(res.headers.get('x-switchyard-read-stale'), 'true');
    const at = Number(res.headers.get('x-switchyard-read-checkpoint'));
    assert.ok(at >= -1 && at < beyond, `checkpoint ${at}`);
    await until(
      'the primary read model has the start',
      async () =>
        (
          (await (await fetch(`${base}/api/v1/workflows/executions?min_position=${started.position}`)).json()) as {
            items: { execution_id: string }[];
          }
        ).items.some((x) => x.execution_id === started.execution_id),
      15_000,
    );
  });

  it('200 queries waiting for the replica share one reader of its checkpoint', async () => {
    await r.pauseReplay();
    const original = replica.query.bind(replica) as (...args: unknown[]) => unknown;
    let checkpointReads = 0;
    (replica as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      if (String(args[0]).includes('.checkpoints')) checkpointReads++;
      return original(...args);
    };
    try {
      const started = await start();
      const t0 = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 200 }, () =>
          get(`/api/v1/workflows/executions/${started.execution_id}`, {
            'x-switchyard-min-position': String(started.position),
          }),
        ),
      );
      const waited = Date.now() - t0;
      assert.ok(
        answers.every(
          (a) => a.status === 200 && a.source === 'primary' && a.body.execution_id === started.execution_id,
        ),
      );
      // One read every 25 ms while they wait (1 s here): about 40, where a reader per request made 200 times that.
      console.log(`# 200 waiting queries: ${checkpointReads} checkpoint reads on the replica in ${waited} ms`);
      assert.ok(checkpointReads <= Math.ceil(waited / 25) + 5, `checkpoint reads: ${checkpointReads} in ${waited} ms`);
    } finally {
      (replica as unknown as { query: unknown }).query = original;
      await r.resumeReplay().catch(() => undefined);
    }
  });

  it('a malformed position is a 400 naming the header', async () => {
    const res = await fetch(`${base}/api/v1/workflows/executions`, {
      headers: { 'x-switchyard-min-position': 'soon' },
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /x-switchyard-min-position/);
  });
});

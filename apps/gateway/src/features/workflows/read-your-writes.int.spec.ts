/**
 * Read your writes without a replica: the primary's executions read model is a projection that
 * lags the event log, so a list given a start's position waits until that read model has applied
 * it, and one whose read model does not get there within the wait says the page is stale. The
 * read model is held behind by running its projection here, stopped and started at will (the
 * engine runs without it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@switchyard/platform';
import { ProjectionRunner, workflowExecutionsProjection } from '@switchyard/read-models';
import { startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('workflows-read-your-writes-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PRIMARY_WAIT_MS = 3_000;

describe('a list given a position reads the primary read model once it has applied it', () => {
  let f: WorkflowGateway;
  let projection: ProjectionRunner | undefined;

  const startProjection = async () => {
    projection = new ProjectionRunner({
      store: f.store,
      db: { pool: f.pool },
      projections: [workflowExecutionsProjection],
      logger,
    });
    await projection.start();
  };
  const stopProjection = async () => {
    await projection?.stop();
    projection = undefined;
  };
  const checkpoint = async () =>
    Number(
      (
        await f.pool.query<{ position: string }>(
          `select position from read_models.checkpoints where name = 'workflow_executions'`,
        )
      ).rows[0]!.position,
    );
  const start = async () => {
    const r = await f.http('POST', '/api/v1/workflows/start/revenue_analysis', { timeframe: '30d' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body as { execution_id: string; position: number };
  };
  const ids = (body: { items: { execution_id: string }[] }) => body.items.map((x) => x.execution_id);

  before(async () => {
    f = await startWorkflowGateway({
      name: 'wf_ryw',
      logger,
      engine: { readModel: false },
      gateway: { readReplica: { primaryWaitMs: PRIMARY_WAIT_MS } },
    });
    // Its tables and checkpoint row, then held behind.
    await startProjection();
    await stopProjection();
  });

  after(async () => {
    await stopProjection();
    await f?.close();
  });

  it('the read model behind: the list waits until it has applied the position, then shows the write', async () => {
    const started = await start();
    assert.ok((await checkpoint()) < started.position, 'the read model has not applied the start');
    let answeredAt: number | undefined;
    const listing = f
      .http('GET', `/api/v1/workflows/executions?limit=5&min_position=${started.position}`)
      .finally(() => (answeredAt = Date.now()));
    await sleep(500);
    assert.equal(answeredAt, undefined, 'the list answered before its read model had applied the position');
    const resumedAt = Date.now();
    await startProjection();
    const list = await listing;
    assert.equal(list.status, 200);
    assert.ok(answeredAt! >= resumedAt);
    assert.equal(list.headers.get('x-switchyard-read-source'), 'primary');
    assert.equal(list.headers.get('x-switchyard-read-stale'), null);
    assert.ok(ids(list.body).includes(started.execution_id), JSON.stringify(list.body));
  });

  it('a position the read model does not reach within the wait: the page it has, marked stale with its checkpoint', async () => {
    if (!projection) await startProjection();
    const applied = await start();
    await projection!.waitFor(applied.position, workflowExecutionsProjection.name);
    await stopProjection();
    const started = await start();
    const t0 = Date.now();
    const list = await f.http('GET', '/api/v1/workflows/executions?limit=5', undefined, {
      'x-switchyard-min-position': String(started.position),
    });
    const waited = Date.now() - t0;
    assert.equal(list.status, 200);
    console.log(`# a position not applied in time: answered stale after ${waited} ms (wait ${PRIMARY_WAIT_MS} ms)`);
    assert.ok(waited >= PRIMARY_WAIT_MS - 50, `answered after ${waited} ms, before the wait ended`);
    assert.equal(list.headers.get('x-switchyard-read-source'), 'primary');
    assert.equal(list.headers.get('x-switchyard-read-stale'), 'true');
    const at = Number(list.headers.get('x-switchyard-read-checkpoint'));
    assert.ok(at >= applied.position && at < started.position, `checkpoint ${at}`);
    assert.ok(ids(list.body).includes(applied.execution_id));
    assert.ok(!ids(list.body).includes(started.execution_id));
    await startProjection();
    await projection!.waitFor(started.position, workflowExecutionsProjection.name);
    // Given a position it has applied, the same list is not stale and does not wait for it.
    const fresh = await f.http('GET', `/api/v1/workflows/executions?limit=5&min_position=${started.position}`);
    assert.equal(fresh.headers.get('x-switchyard-read-stale'), null);
    assert.ok(ids(fresh.body).includes(started.execution_id));
  });

  it('a position past the log’s head (never answered by a command) waits for nothing: the page, stale', async () => {
    if (!projection) await startProjection();
    const started = await start();
    await projection!.waitFor(started.position, workflowExecutionsProjection.name);
    const beyond = (await f.store.headPosition()) + 1_000_000;
    const t0 = Date.now();
    const [list, detail] = await Promise.all([
      f.http('GET', '/api/v1/workflows/executions?limit=5', undefined, {
        'x-switchyard-min-position': String(beyond),
      }),
      f.http('GET', `/api/v1/workflows/executions/${started.execution_id}?min_position=${beyond}`),
    ]);
    const waited = Date.now() - t0;
    console.log(`# a position past the head: answered after ${waited} ms (the wait is ${PRIMARY_WAIT_MS} ms)`);
    assert.ok(waited < PRIMARY_WAIT_MS, `answered after ${waited} ms: it waited for a position never issued`);
    assert.equal(list.status, 200);
    assert.equal(list.headers.get('x-switchyard-read-stale'), 'true');
    const at = Number(list.headers.get('x-switchyard-read-checkpoint'));
    assert.ok(at >= started.position && at < beyond, `checkpoint ${at}`);
    assert.ok(ids(list.body).includes(started.execution_id));
    assert.equal(detail.status, 200, JSON.stringify(detail.body));
    assert.equal((detail.body as { execution_id: string }).execution_id, started.execution_id);
  });
});

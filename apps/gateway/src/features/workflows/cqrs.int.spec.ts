/**
 * The workflow feature behind the CQRS buses, over real HTTP, PostgreSQL, nats-server and the
 * engine: one schema for an execution's detail whichever path answers (read model or stream
 * fold), the same schema as the OpenAPI component; `?wait=true` waiting on the event store's
 * live subscription (no re-reads of the stream while it waits) and timing out cleanly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { createLogger, newId } from '@switchyard/platform';
import type { EventStore } from '@switchyard/event-store';
import { overriding, until } from '@switchyard/testing';
import { executionIdForKey } from '../../idempotency/keys.js';
import { jsonSchemaOf } from '../../openapi/registry.js';
import { EXECUTION_DETAIL_COMPONENT, executionDetailResponse } from './execution-detail.js';
import { ExecutionWaits } from './execution-waits.js';
import { echoTasks, startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('workflows-cqrs-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('workflows through the CQRS buses: one detail schema, waits on a live subscription', () => {
  let f: WorkflowGateway;
  const tag = newId().slice(0, 6);
  // Reads of each stream by the gateway (the engine has a store of its own).
  const reads = new Map<string, number>();

  /** prepare (an agent task) -> hold (waits for `release`). */
  const gated = {
    id: 'gated',
    version: 1,
    name: 'gated',
    steps: [
      { id: 'prepare', uses: 'agent:customer_segmentation', with: { n: 1 } },
      { id: 'hold', needs: ['prepare'], wait: { signal: 'release', timeout_ms: 600_000 } },
    ],
    outputs: { released: '${{ steps.hold.output.ok }}' },
  };

  before(async () => {
    f = await startWorkflowGateway({
      name: 'wf_cqrs',
      logger,
      serve: echoTasks(logger),
      gatewayStore: (store) =>
        overriding<EventStore>(store, {
          readStream: (streamId, options) => {
            reads.set(streamId, (reads.get(streamId) ?? 0) + 1);
            return store.readStream(streamId, options);
          },
        }),
    });
    const r = await http('POST', '/api/v1/workflows/definitions', gated);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  });

  after(async () => f?.close());

  const http = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    f.http(method, path, body, headers);
  const streamOf = (id: string) => `workflow_execution-${id}`;
  const waitingAt = async (id: string) =>
    until(`execution ${id} waiting for its signal`, async () => {
      const d = await http('GET', `/api/v1/workflows/executions/${id}`);
      return (
        d.body?.steps?.find((s: { step_id: string; status: string }) => s.step_id === 'hold')?.status === 'running'
      );
    });

  it('one schema for the detail: the read model and the stream fold both answer it, and the OpenAPI component is it', async () => {
    // A finished execution, answered by the read model once it caught up.
    const started = await http('POST', '/api/v1/workflows/start/gated', {});
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const id: string = started.body.execution_id;
    await waitingAt(id);
    assert.equal((await http('POST', `/api/v1/workflows/executions/${id}/signals/release`, { ok: true })).status, 202);
    await until(
      'the execution completed',
      async () => (await http('GET', `/api/v1/workflows/executions/${id}`)).body.status === 'completed',
    );
    await f.engine.readModelCaughtUp();
    const fromReadModel = await http('GET', `/api/v1/workflows/executions/${id}`);
    assert.equal(fromReadModel.status, 200);
    assert.equal(fromReadModel.body.source, 'read_model');
    const rm = executionDetailResponse.parse(fromReadModel.body);

    // The same execution folded from its stream (time travel to its last revision).
    const lastRevision = (await f.store.readStream(streamOf(id))).length - 1;
    const fromStream = await http('GET', `/api/v1/workflows/executions/${id}?at=${lastRevision}`);
    assert.equal(fromStream.status, 200, JSON.stringify(fromStream.body));
    assert.equal(fromStream.body.source, 'stream');
    const st = executionDetailResponse.parse(fromStream.body);
    // The answers, for the documentation (docs/cqrs.md shows them).
    console.log(`# GET .../executions/${id} -> ${JSON.stringify(fromReadModel.body)}`);
    console.log(`# GET .../executions/${id}?at=${lastRevision} -> ${JSON.stringify(fromStream.body)}`);
    // Same execution, same facts where both know them.
    for (const k of [
      'execution_id',
      'definition_id',
      'definition_version',
      'definition_name',
      'status',
      'correlation_id',
    ] as const) {
      assert.deepEqual(st[k], rm[k], k);
    }
    assert.equal(Date.parse(st.started_at), Date.parse(rm.started_at));
    assert.deepEqual(st.output, rm.output);
    assert.deepEqual(
      st.steps.map((s) => [s.step_id, s.uses, s.kind, s.status]),
      rm.steps.map((s) => [s.step_id, s.uses, s.kind, s.status]),
    );

    // A read model held back: the fallback fold answers, in the same schema.
    const blocker = await f.pool.connect();
    let held: unknown;
    try {
      await blocker.query('begin');
      await blocker.query('lock table read_models.workflow_executions in share mode');
      const again = await http('POST', '/api/v1/workflows/start/gated', {});
      assert.equal(again.status, 202);
      const d = await http('GET', `/api/v1/workflows/executions/${again.body.execution_id}`);
      assert.equal(d.status, 200, JSON.stringify(d.body));
      assert.equal(d.body.source, 'stream');
      held = d.body;
      executionDetailResponse.parse(d.body);
    } finally {
      await blocker.query('commit').catch(() => undefined);
      blocker.release();
    }

    // The document names the component on the route, and the component is this schema.
    const doc = (await http('GET', '/docs/openapi.json')).body;
    const route =
      doc.paths['/api/v1/workflows/executions/{execution_id}'].get.responses['200'].content['application/json'];
    assert.deepEqual(route.schema, { $ref: `#/components/schemas/${EXECUTION_DETAIL_COMPONENT}` });
    assert.deepEqual(
      doc.components.schemas[EXECUTION_DETAIL_COMPONENT],
      jsonSchemaOf(executionDetailResponse, 'output'),
    );
    // And every answer above conforms to the document too (checked by ajv, as a client would).
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = ajv.compile(doc.components.schemas[EXECUTION_DETAIL_COMPONENT]);
    for (const [name, body] of [
      ['read model', fromReadModel.body],
      ['stream', fromStream.body],
      ['held back', held],
    ] as const) {
      assert.ok(validate(body), `${name}: ${JSON.stringify(validate.errors)}`);
    }
  });

  it(
    '?wait=true waits on the live subscription: no read of the stream while it waits; the end event ends it',
    { timeout: 60_000 },
    async () => {
      const key = `cqrs-wait-${tag}`;
      const id = executionIdForKey(key);
      const waits = f.gw.app.get(ExecutionWaits);
      const answer = http(
        'POST',
        '/api/v1/workflows/start/gated?wait=true&wait_ms=30000',
        {},
        { 'idempotency-key': key },
      );
      await until('the start is waiting', () => waits.waiting === 1);
      await waitingAt(id);
      // The wait has read the state once; from here nothing in the gateway reads the stream until the end event.
      const before = reads.get(streamOf(id)) ?? 0;
      await sleep(1_500); // a polling wait (20 ms doubling to 500 ms) would read the stream several times here
      assert.equal(reads.get(streamOf(id)) ?? 0, before, 'the waiting request read the stream while nothing happened');
      const signal = await http('POST', `/api/v1/workflows/executions/${id}/signals/release`, { ok: true });
      assert.equal(signal.status, 202, JSON.stringify(signal.body));
      const afterSignal = reads.get(streamOf(id)) ?? 0;
      const r = await answer;
      console.log(`# POST .../start/gated?wait=true&wait_ms=30000 -> ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.execution_id, id);
      assert.equal(r.body.status, 'completed');
      assert.deepEqual(r.body.output, { released: true });
      // Woken once by WorkflowCompleted: at most one read of the final state after the signal's answer.
      assert.ok((reads.get(streamOf(id)) ?? 0) - afterSignal <= 1);
      assert.equal(waits.waiting, 0);
    },
  );

  it('100 detail reads waiting for a held-back read model share one reader of its checkpoint', async () => {
    const original = f.pool.query.bind(f.pool) as (...args: unknown[]) => unknown;
    let readModelLooks = 0;
    (f.pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const text = String(args[0]);
      const params = args[1];
      const looksAtCheckpoint =
        text.includes('.checkpoints where name') && Array.isArray(params) && params[0] === 'workflow_executions';
      if (looksAtCheckpoint || text.includes('select last_position from')) readModelLooks++;
      return original(...args);
    };
    const blocker = await f.pool.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table read_models.workflow_executions in share mode');
      const started = await http('POST', '/api/v1/workflows/start/gated', {});
      assert.equal(started.status, 202);
      const t0 = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 100 }, () => http('GET', `/api/v1/workflows/executions/${started.body.execution_id}`)),
      );
      const waited = Date.now() - t0;
      // Each waited its 250 ms for the read model, then folded the stream.
      assert.ok(answers.every((a) => a.status === 200 && a.body.source === 'stream'));
      console.log(`# 100 detail reads of a held-back read model: ${readModelLooks} looks at it in ${waited} ms`);
      // One look every 20 ms while they wait, where each request made its own (about 1,300 here).
      assert.ok(readModelLooks <= Math.ceil(waited / 20) + 5, `looks at the read model: ${readModelLooks}`);
    } finally {
      (f.pool as unknown as { query: unknown }).query = original;
      await blocker.query('commit').catch(() => undefined);
      blocker.release();
    }
  });

  it('?wait=true times out cleanly: 202 with the execution running, no waiter left behind', async () => {
    const waits = f.gw.app.get(ExecutionWaits);
    const r = await http('POST', '/api/v1/workflows/start/gated?wait=true&wait_ms=300', {});
    console.log(`# POST .../start/gated?wait=true&wait_ms=300 -> ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.status, 'running');
    assert.equal(waits.waiting, 0);
    const c = await http('POST', `/api/v1/workflows/executions/${r.body.execution_id}/cancel`, { reason: 'test done' });
    assert.equal(c.status, 202);
    // A wait for an unknown execution is a 404, not a hang (the same query the start uses).
    await assert.rejects(waits.waitForEnd('no-such-execution', 1_000), /not found/);
    assert.equal(waits.waiting, 0);
  });
});

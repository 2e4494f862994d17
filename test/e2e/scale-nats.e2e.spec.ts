/**
 * The system on a 3-node NATS cluster (JetStream, the relay's stream with 3 replicas); one node
 * SIGKILLed while workflows and MCP calls run, then started again.
 *
 * Processes: the cluster (libs/testing startNatsCluster: routes and stores of their own, free ports);
 *   A = `relay gateway` (owns PostgreSQL; NATS_URL = the three nodes, NATS_STREAM_REPLICAS=3)
 *   B = `mcp-servers connectors agents dispatcher workflows monitor` (same NATS_URL)
 * SCALE_NATS_WORKFLOWS workflows (a one-step definition: a database query) and SCALE_NATS_CALLS
 * MCP calls (default 150 each here; `npm run scale:nats` runs 1,000 + 1,000) go through the gateway
 * in waves; after a third, node n2 is SIGKILLed, and started again 5 s later.
 *
 * Checked: every workflow start answered 202 (asked again with its Idempotency-Key when refused)
 * ends, completed; every MCP call answered 200 has its McpToolSucceeded event (by correlation id),
 * and the ones answered with an error are counted; the relay's JetStream stream holds every
 * event of the store exactly once (message ids = event ids), with 3 replicas.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort } from '@switchyard/platform';
import { embeddedDatabaseUrl, startNatsCluster, type NatsCluster, scratchDataDir } from '@switchyard/testing';
import { gatewayRequest } from './support.js';
import { newAdminKey, Proc, sleep, systemEnv, waitMcpServerUp, waitReady } from './launcher.js';

const WORKFLOWS = Number(process.env.SCALE_NATS_WORKFLOWS ?? 150);
const CALLS = Number(process.env.SCALE_NATS_CALLS ?? 150);
const STREAM = 'SWITCHYARD_EVENTS';

describe(`NATS cluster: ${WORKFLOWS} workflows and ${CALLS} MCP calls, one of 3 nodes SIGKILLed and restarted`, () => {
  const adminKey = newAdminKey();
  const auth = { authorization: `Bearer ${adminKey}` };
  let dataDir: string;
  let base: string;
  let databaseUrl: string;
  let cluster: NatsCluster;
  let a: Proc;
  let b: Proc;

  const http = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) =>
    gatewayRequest(base, { ...auth, ...headers }, method, url, body).catch((e: unknown) => ({
      status: 0,
      body: String(e),
    }));

  before(async () => {
    const t0 = Date.now();
    dataDir = scratchDataDir('e2e-scale-nats-');
    cluster = await startNatsCluster({ dir: path.join(dataDir, 'nats-cluster'), nodes: 3 });
    const gatewayPort = await freePort();
    const pgPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    databaseUrl = embeddedDatabaseUrl(dataDir, pgPort);
    const common = await systemEnv(dataDir, adminKey, {
      RATE_LIMIT_ENABLED: 'false',
      MCP_AUTH_TOKEN: randomBytes(24).toString('hex'),
      AI_AGENT_AUTH_TOKEN: randomBytes(24).toString('hex'),
      NATS_URL: cluster.url,
      NATS_STREAM_REPLICAS: '3',
    });
    a = new Proc('A (relay gateway)', ['relay', 'gateway'], {
      ...common,
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(pgPort),
    });
    b = new Proc('B (the other roles)', ['mcp-servers', 'connectors', 'agents', 'dispatcher', 'workflows', 'monitor'], {
      ...common,
      DATABASE_URL: databaseUrl,
    });
    a.start();
    await a.waitUp(120_000);
    b.start();
    await b.waitUp(150_000);
    await waitReady(base, a);
    await waitMcpServerUp(base, auth, 'database');
    console.log(`# scale-nats: cluster ${cluster.url}; system up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await cluster?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('every workflow accepted ends, every call answered 200 is done, the relay stream has every event once', async () => {
    const tag = randomBytes(3).toString('hex');
    const definitionId = `nats-${tag}`;
    const reg = await http('POST', '/api/v1/workflows/definitions', {
      id: definitionId,
      version: 1,
      name: 'nats cluster',
      input: { type: 'object', properties: { n: { type: 'string' } }, required: ['n'] },
      steps: [
        {
          id: 'q',
          uses: 'mcp:database/query',
          with: { sql: 'select $1::text as n', params: ['${{ input.n }}'] },
          retry: { attempts: 20, backoff: { initialMs: 200, factor: 2, maxMs: 2_000, jitter: 0.2 } },
          timeout_ms: 5_000,
        },
      ],
      outputs: { n: '${{ input.n }}' },
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));

    // 1. Waves of starts and calls; n2 is killed after a third, restarted 5 s later.
    const executions = new Map<string, string>();
    let startRefusals = 0;
    const startWorkflow = async (n: string) => {
      for (let attempt = 0; ; attempt++) {
        const r = await http(
          'POST',
          `/api/v1/workflows/start/${definitionId}`,
          { n },
          { 'idempotency-key': `wf-${n}` },
        );
        if (r.status === 202 || r.status === 200) return void executions.set(r.body.execution_id, n);
        startRefusals++;
        if (attempt > 150) assert.fail(`start ${n}: ${r.status} ${JSON.stringify(r.body)}`);
        await sleep(200);
      }
    };
    const okCalls: string[] = [];
    const failedCalls = new Map<number, number>();
    const call = async (k: number) => {
      const cid = randomUUID();
      const r = await http(
        'POST',
        '/api/v1/integration/mcp/call',
        { server: 'database', tool: 'query', arguments: { sql: `select ${k} as k` } },
        { 'x-correlation-id': cid },
      );
      if (r.status === 200) okCalls.push(cid);
      else failedCalls.set(r.status, (failedCalls.get(r.status) ?? 0) + 1);
    };
    const t0 = Date.now();
    const n2 = cluster.nodes[1]!;
    let restart: Promise<void> | undefined;
    let killedAt = 0;
    let healthyAt = 0;
    const wave = 25;
    const waves = Math.ceil(Math.max(WORKFLOWS, CALLS) / wave);
    for (let i = 0; i < waves; i++) {
      const jobs: Promise<void>[] = [];
      for (let k = i * wave; k < Math.min(WORKFLOWS, (i + 1) * wave); k++) jobs.push(startWorkflow(`${tag}-${k}`));
      for (let k = i * wave; k < Math.min(CALLS, (i + 1) * wave); k++) jobs.push(call(k));
      if (!restart && i >= waves / 3) {
        killedAt = Date.now();
        restart = n2.kill().then(async () => {
          await sleep(5_000);
          await n2.restart();
          healthyAt = Date.now();
        });
      }
      await Promise.all(jobs);
    }
    await restart;
    const submittedMs = Date.now() - t0;
    const restartedMs = healthyAt - killedAt;
    assert.equal(executions.size, WORKFLOWS);

    const db = new pg.Client({ connectionString: databaseUrl });
    db.on('error', () => undefined);
    await db.connect();
    const nc = await connect({ servers: cluster.nodes.map((n) => n.url) });
    try {
      // 2. Every accepted workflow ends.
      const streams = [...executions.keys()].map((id) => `workflow_execution-${id}`);
      const ended = async () =>
        (
          await db.query<{ type: string; n: string }>(
            `select type, count(*) as n from eventstore.events where type in ('WorkflowCompleted','WorkflowFailed','WorkflowCanceled') and stream_id = any($1::text[]) group by type`,
            [streams],
          )
        ).rows;
      for (let last = -1, lastMoved = Date.now(); ;) {
        const n = (await ended()).reduce((s, r) => s + Number(r.n), 0);
        if (n >= WORKFLOWS) break;
        if (n !== last) [last, lastMoved] = [n, Date.now()];
        if (Date.now() - lastMoved > 60_000) assert.fail(`${n}/${WORKFLOWS} workflows ended, none for 60 s`);
        await sleep(500);
      }
      const outcome = Object.fromEntries((await ended()).map((r) => [r.type, Number(r.n)]));
      assert.equal(outcome.WorkflowCompleted, WORKFLOWS, `every workflow completed: ${JSON.stringify(outcome)}`);

      // 3. Every call answered 200 was done: its success is recorded (the connectors report their
      //    events to the store asynchronously, one stream at a time: wait while the count moves).
      const succeeded = async () =>
        (
          await db.query<{ c: string }>(
            `select distinct metadata->>'correlationId' as c from eventstore.events where type = 'McpToolSucceeded' and metadata->>'correlationId' = any($1::text[])`,
            [okCalls],
          )
        ).rowCount ?? 0;
      for (let last = -1, lastMoved = Date.now(); ;) {
        const n = await succeeded();
        if (n >= okCalls.length) break;
        if (n !== last) [last, lastMoved] = [n, Date.now()];
        if (Date.now() - lastMoved > 30_000)
          assert.fail(`${n} of ${okCalls.length} calls answered 200 have their McpToolSucceeded, none more for 30 s`);
        await sleep(500);
      }

      // 4. The relay's stream: 3 replicas, every event of the store exactly once (waits for the relay to catch up).
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(STREAM);
      assert.equal(info.config.num_replicas, 3);
      const head = Number((await db.query<{ n: string }>('select count(*) as n from eventstore.events')).rows[0]!.n);
      for (let i = 0; ; i++) {
        const s = await jsm.streams.info(STREAM);
        if (s.state.messages >= head) break;
        if (i > 240) assert.fail(`the relay's stream has ${s.state.messages} of ${head} events`);
        await sleep(250);
      }
      const ids = new Map<string, number>();
      const consumer = await jetstream(nc).consumers.get(STREAM);
      const last = (await jsm.streams.info(STREAM)).state.last_seq;
      const msgs = await consumer.consume({ max_messages: 1_000 });
      for await (const m of msgs) {
        const id = m.headers?.get('Nats-Msg-Id') ?? '';
        ids.set(id, (ids.get(id) ?? 0) + 1);
        if (m.seq >= last) break;
      }
      const stored = await db.query<{ event_id: string }>(
        'select event_id from eventstore.events where position < $1',
        [head],
      );
      const dupes = [...ids.values()].filter((n) => n > 1).length;
      assert.equal(dupes, 0, 'no event twice in the stream');
      const missing = stored.rows.filter((r) => !ids.has(r.event_id)).length;
      assert.equal(missing, 0, 'every event of the store is in the stream');
      console.log(
        `# scale-nats: ${WORKFLOWS} workflows (${startRefusals} start refusals asked again) all completed; ${CALLS} MCP calls: ${okCalls.length} answered 200, all done, ` +
          `told failed ${JSON.stringify(Object.fromEntries(failedCalls))}; n2 SIGKILLed at ${Math.round((killedAt - t0) / 1000)} s, restarted 5 s later, healthy ${restartedMs} ms after the kill; submitted in ${submittedMs} ms; ` +
          `stream R${info.config.num_replicas}: ${ids.size} messages for ${stored.rowCount} events, 0 duplicates, 0 missing; whole run ${Date.now() - t0} ms`,
      );
    } finally {
      await nc.close().catch(() => undefined);
      await db.end().catch(() => undefined);
    }
  });
});

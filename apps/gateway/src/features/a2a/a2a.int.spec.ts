import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import express from 'express';
import type { AgentCard, Message, SendMessageRequest, StreamResponse, Task } from '@a2a-js/sdk';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore, type AgentExecutor } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  type Client,
} from '@a2a-js/sdk/client';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { a2aRevenueRequest, freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { loadDemoData, startAgents, type AgentsHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { startWorkflowEngine, type WorkflowEngine } from '@switchyard/workflows';
import { createGateway, REDACTED_PAYLOAD, type Gateway } from '../../index.js';
import { parseKey } from '../../security/keys.js';
import { AgentsFeatureModule } from '../agents/index.js';
import { WorkflowsFeatureModule } from '../workflows/index.js';
import { A2aFeatureModule, A2aPeer, DIRECTORY_EXTENSION_URI } from './index.js';

/**
 * The A2A peer through the official SDK's client, against the gateway on real PostgreSQL (demo
 * data), a nats-server of this suite's own, the six agents and the dispatcher. Auth is on:
 * keys of each role are made through the admin API.
 */
const logger = createLogger('a2a-int', process.env.LOG_LEVEL ?? 'silent');

const STATE = { submitted: 1, working: 2, completed: 3, failed: 4, canceled: 5 } as const;

function userMessage(parts: Message['parts']): Message {
  return {
    messageId: randomUUID(),
    contextId: '',
    taskId: '',
    role: 1,
    parts,
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}
/** The gateway's share of long-lived streams per caller in this spec (A2A streams count it apart from event streams). */
const STREAMS_PER_CALLER = 3;
/** Calls answered on their own request (a blocking message/send) one key may have in flight. */
const HELD_PER_CALLER = 4;
const dataMsg = (value: unknown) =>
  userMessage([
    { content: { $case: 'data', value }, mediaType: 'application/json', filename: '', metadata: undefined },
  ]);
const textMsg = (value: string) =>
  userMessage([{ content: { $case: 'text', value }, mediaType: 'text/plain', filename: '', metadata: undefined }]);
function send(
  message: Message,
  configuration: Partial<NonNullable<SendMessageRequest['configuration']>> = {},
): SendMessageRequest {
  return {
    tenant: '',
    message,
    configuration: {
      acceptedOutputModes: [],
      taskPushNotificationConfig: undefined,
      returnImmediately: false,
      ...configuration,
    },
    metadata: undefined,
  };
}
/** A task as a viewer key reads it: its state, with every artifact and history part redacted. */
function assertRedactedForViewer(t: Task): void {
  const parts = [...t.artifacts.flatMap((a) => a.parts), ...t.history.flatMap((m) => m.parts)];
  assert.ok(parts.length > 0, 'the task has artifacts or history');
  for (const p of parts) assert.deepEqual(p.content, { $case: 'text', value: REDACTED_PAYLOAD });
  assert.ok(!JSON.stringify(t).includes('SECRETMETA'), "a message's metadata is redacted too");
}

const resultOf = (t: Task): unknown => {
  const p = t.artifacts[0]?.parts[0]?.content;
  return p?.$case === 'data' ? p.value : undefined;
};

describe('A2A peer: SDK client -> gateway -> dispatcher -> agents', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let engine: WorkflowEngine;
  let gw: Gateway;
  let base: string;
  let admin: string;
  let operator: string;
  let viewer: string;

  const makeGateway = async () => {
    gw = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      {
        modules: [
          AgentsFeatureModule,
          WorkflowsFeatureModule,
          A2aFeatureModule.withOptions({ egress: { allowHosts: ['127.0.0.1'] }, push: { backoffMs: 50 } }),
        ],
        auth: { enabled: true, ...(admin ? { adminKey: admin } : { printAdminKey: (k: string) => void (admin = k) }) },
        eventStreams: { perCaller: STREAMS_PER_CALLER, total: 100 },
        heldCalls: { perCaller: HELD_PER_CALLER, total: 100 },
      },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
  };
  const makeKey = async (role: string) => {
    const res = await fetch(`${base}/api/v1/admin/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `a2a-${role}`, role }),
    });
    assert.equal(res.status, 201);
    return ((await res.json()) as { key: string }).key;
  };
  const client = async (agent: string, key: string): Promise<Client> => {
    const fetchImpl: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${key}`);
      return fetch(input, { ...init, headers });
    };
    const factory = new ClientFactory(
      ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
        transports: [new JsonRpcTransportFactory({ fetchImpl })],
        cardResolver: new DefaultAgentCardResolver({ fetchImpl: fetch }),
      }),
    );
    return factory.createFromUrl(`${base}/a2a/${agent}/`);
  };
  const rpc = async (agent: string, body: unknown, key?: string) => {
    const res = await fetch(`${base}/a2a/${agent}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  // The delegation's status from its events (works while no gateway serves).
  const request = async (url: string) => {
    const id = url.split('/').pop()!;
    const evs = await store.readStream(taskStreamId(id));
    return evs.some((e) => e.type === 'TaskCompleted') ? 'completed' : 'running';
  };
  const rest = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${admin}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'a2a-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'a2a-test', logger });
    const databaseUrl = await freshDatabase('a2a');
    pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
    await loadDemoData(pool);
    store = new PostgresEventStore({ pool });
    await store.init();
    agents = await startAgents({ nats: nc, pool, logger, http: false, noop: true, instancePrefix: 'a2a' });
    dispatcher = await startDispatcher({
      store,
      nats: nc,
      pool,
      logger,
      egress: { allowHosts: ['127.0.0.1'] },
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    engine = await startWorkflowEngine({
      store,
      pool,
      nats: nc,
      logger,
      databaseUrl,
      partitions: 2,
      leaseTickMs: 200,
      timerPollMs: 50,
    });
    admin = '';
    await makeGateway();
    operator = await makeKey('operator');
    viewer = await makeKey('viewer');
    // The dispatcher knows all six agents before the first card is built.
    await until(
      'six agents known',
      async () =>
        (await rest('GET', '/api/v1/integration/agents/capabilities')).body.agents?.filter(
          (a: any) => a.kind === 'nats',
        ).length === 6,
      20_000,
    );
  });

  after(async () => {
    await gw?.close();
    await engine?.stop();
    await dispatcher?.stop();
    await agents?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('serves public cards: one per agent with a skill per task type, and the Switchyard directory', async () => {
    const res = await fetch(`${base}/a2a/data_analyst/.well-known/agent-card.json`);
    assert.equal(res.status, 200);
    const card = (await res.json()) as any;
    assert.equal(card.name, 'data_analyst');
    assert.equal(card.url, `${base}/a2a/data_analyst`);
    assert.equal(card.protocolVersion, '0.3');
    assert.deepEqual([card.capabilities.streaming, card.capabilities.pushNotifications], [true, true]);
    assert.equal(card.securitySchemes.bearer.scheme, 'bearer');
    const skill = card.skills.find((s: any) => s.id === 'revenue_analysis');
    assert.ok(skill, JSON.stringify(card.skills.map((s: any) => s.id)));
    assert.ok(skill.examples.some((e: string) => e.includes('"task_type":"revenue_analysis"')));

    const dir = (await (await fetch(`${base}/.well-known/agent-card.json`)).json()) as any;
    assert.equal(dir.name, 'Switchyard');
    assert.deepEqual(dir.skills.map((s: any) => s.id).sort(), [
      'customer_onboarding',
      'customer_support',
      'revenue_analysis',
    ]);
    const ext = dir.capabilities.extensions.find((e: any) => e.uri === DIRECTORY_EXTENSION_URI);
    assert.equal(ext.params.agents.length, 7);
    const da = ext.params.agents.find((a: any) => a.name === 'data_analyst');
    assert.equal(da.card_url, `${base}/a2a/data_analyst/.well-known/agent-card.json`);
    assert.equal((await fetch(`${base}/a2a/nobody/.well-known/agent-card.json`)).status, 404);

    // A 1.0 client asking for the 1.0 card gets it in the protocol's JSON form.
    const v1 = (await (
      await fetch(`${base}/a2a/data_analyst/.well-known/agent-card.json`, { headers: { 'A2A-Version': '1.0' } })
    ).json()) as any;
    assert.equal(v1.supportedInterfaces[0].url, `${base}/a2a/data_analyst`);
    assert.equal(v1.securitySchemes.bearer.httpAuthSecurityScheme.scheme, 'bearer');
    // The SDK's client reads the card too.
    const c = await client('data_analyst', operator);
    assert.equal((await c.getAgentCard()).name, 'data_analyst');
  });

  it("message/send revenue_analysis: completed, the artifact equals a REST delegation's result; tasks/get reads it, also after a gateway restart", async () => {
    const c = await client('data_analyst', operator);
    const input = { timeframe: '12m', topN: 3 };
    // Metadata beside the parts: the client's, which a viewer does not read either.
    const message = { ...dataMsg({ task_type: 'revenue_analysis', input }), metadata: { secret_meta: 'SECRETMETA' } };
    const r = (await c.sendMessage(send(message))) as Task;
    assert.equal(r.status?.state, STATE.completed, JSON.stringify(r.status));
    const ourId = r.metadata?.switchyard_task_id as string;
    assert.ok(ourId);
    const viaRest = await rest('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'revenue_analysis',
      context: input,
      priority: 'normal',
    });
    assert.equal(viaRest.status, 200);
    assert.deepEqual(resultOf(r), viaRest.body.result);
    // The delegation is a real task of ours, on data_analyst.
    const t = await rest('GET', `/api/v1/integration/agents/tasks/${ourId}`);
    assert.deepEqual(
      [t.body.status, t.body.agent, t.body.task_type],
      ['completed', 'data_analyst', 'revenue_analysis'],
    );

    const got = await (
      await client('data_analyst', operator)
    ).getTask({ tenant: '', id: r.id, historyLength: undefined });
    assert.equal(got.status?.state, STATE.completed);
    assert.deepEqual(resultOf(got), viaRest.body.result);
    assert.ok(JSON.stringify(got).includes('SECRETMETA'), "an operator reads the message's metadata");
    // A viewer reads the task's state, not its data (as a REST viewer reads a task's result redacted).
    assertRedactedForViewer(
      await (await client('data_analyst', viewer)).getTask({ tenant: '', id: r.id, historyLength: undefined }),
    );
    const listed = await (
      await client('data_analyst', viewer)
    ).listTasks({
      tenant: '',
      contextId: '',
      status: 0,
      pageSize: 100,
      pageToken: '',
      historyLength: undefined,
      statusTimestampAfter: undefined,
      includeArtifacts: true,
    });
    const inList = listed.tasks.find((x) => x.id === r.id);
    assert.ok(inList, 'the task is listed');
    assertRedactedForViewer(inList);

    await gw.close();
    await makeGateway();
    const again = await (
      await client('data_analyst', operator)
    ).getTask({ tenant: '', id: r.id, historyLength: undefined });
    assert.equal(again.status?.state, STATE.completed);
    assert.deepEqual(resultOf(again), viaRest.body.result);
  });

  it('message/stream sees submitted, working, the artifact, then completed; a text message naming the skill works', async () => {
    const c = await client('data_analyst', operator);
    const seen: string[] = [];
    let artifact: unknown;
    for await (const ev of c.sendMessageStream(send(textMsg('customer_segmentation')))) {
      const p = ev.payload!;
      if (p.$case === 'task') seen.push(`task:${p.value.status?.state}`);
      else if (p.$case === 'statusUpdate') seen.push(`status:${p.value.status?.state}`);
      else if (p.$case === 'artifactUpdate') {
        seen.push('artifact');
        const part = p.value.artifact?.parts[0]?.content;
        artifact = part?.$case === 'data' ? part.value : undefined;
      }
    }
    assert.deepEqual(seen, [
      `task:${STATE.submitted}`,
      `status:${STATE.working}`,
      'artifact',
      `status:${STATE.completed}`,
    ]);
    assert.ok(artifact && typeof artifact === 'object');
  });

  it('tasks/cancel of a long task ends canceled, and the delegation is canceled in Switchyard', async () => {
    const c = await client('data_analyst', operator);
    const started = (await c.sendMessage(
      send(dataMsg({ task_type: 'noop', input: { sleep_ms: 30_000 } }), { returnImmediately: true }),
    )) as Task;
    const ourId = started.metadata?.switchyard_task_id as string;
    await until(
      'the noop task working',
      async () => (await rest('GET', `/api/v1/integration/agents/tasks/${ourId}`)).body.status === 'working',
      10_000,
    );
    const canceled = await c.cancelTask({ tenant: '', id: started.id, metadata: undefined });
    assert.equal(canceled.status?.state, STATE.canceled);
    assert.equal((await rest('GET', `/api/v1/integration/agents/tasks/${ourId}`)).body.status, 'canceled');
    assert.ok((await store.readStream(taskStreamId(ourId))).some((e) => e.type === 'TaskCanceled'));
    assert.equal(
      (await c.getTask({ tenant: '', id: started.id, historyLength: undefined })).status?.state,
      STATE.canceled,
    );
  });

  it('tasks/resubscribe follows a running task to its end; a task left running by a stopped gateway is brought up to date by the next read', async () => {
    const c = await client('data_analyst', operator);
    const started = (await c.sendMessage(
      send(dataMsg({ task_type: 'noop', input: { sleep_ms: 1_000, echo: 'again' } }), { returnImmediately: true }),
    )) as Task;
    const states: number[] = [];
    for await (const ev of c.resubscribeTask({ tenant: '', id: started.id })) {
      const p = ev.payload!;
      if (p.$case === 'statusUpdate') states.push(p.value.status!.state);
    }
    assert.equal(states.at(-1), STATE.completed);
    // A viewer resubscribing to another key's running task follows it to its end too, without the data.
    const followed = (await c.sendMessage(
      send(dataMsg({ task_type: 'noop', input: { sleep_ms: 800, echo: 'secret-echo' } }), { returnImmediately: true }),
    )) as Task;
    const seen: StreamResponse[] = [];
    for await (const ev of (await client('data_analyst', viewer)).resubscribeTask({ tenant: '', id: followed.id }))
      seen.push(ev);
    assert.ok(seen.length > 0);
    for (const ev of seen) if (ev.payload?.$case === 'task') assertRedactedForViewer(ev.payload.value);
    assert.ok(!JSON.stringify(seen).includes('secret-echo'), JSON.stringify(seen).slice(0, 500));
    const viewerStates = seen.flatMap((ev) =>
      ev.payload?.$case === 'statusUpdate' ? [ev.payload.value.status!.state] : [],
    );
    assert.equal(viewerStates.at(-1), STATE.completed, `the viewer saw the end: ${JSON.stringify(viewerStates)}`);

    const left = (await c.sendMessage(
      send(dataMsg({ task_type: 'noop', input: { sleep_ms: 1_500, echo: 'left' } }), { returnImmediately: true }),
    )) as Task;
    const ourId = left.metadata?.switchyard_task_id as string;
    await gw.close(); // the executor stops following it; the delegation goes on
    await until(
      'the delegation completed',
      async () => (await request(`/api/v1/integration/agents/tasks/${ourId}`)) === 'completed',
      15_000,
    );
    const stored = await pool.query(`select task->'status'->>'state' as state from gateway.a2a_tasks where id = $1`, [
      left.id,
    ]);
    assert.notEqual(stored.rows[0].state, 'TASK_STATE_COMPLETED');
    await makeGateway();
    const got = await (
      await client('data_analyst', viewer)
    ).getTask({ tenant: '', id: left.id, historyLength: undefined });
    assert.equal(got.status?.state, STATE.completed);
    assertRedactedForViewer(got);
    const asOperator = await client('data_analyst', operator);
    const full = await asOperator.getTask({ tenant: '', id: left.id, historyLength: undefined });
    assert.deepEqual(resultOf(full), { echo: 'left', slept_ms: 1_500 });
  });

  it("open message/stream answers hold the caller's share of streams: past it 429 with Retry-After; a closed one frees its slot", async () => {
    const streamBody = (i: number) => ({
      jsonrpc: '2.0',
      id: i,
      method: 'message/stream',
      params: {
        message: {
          kind: 'message',
          role: 'user',
          messageId: `stream-share-${i}-${Date.now()}`,
          parts: [{ kind: 'data', data: { task_type: 'noop', input: { sleep_ms: 2_000 } } }],
        },
      },
    });
    const open = async (i: number) => {
      const ctl = new AbortController();
      const res = await fetch(`${base}/a2a/data_analyst`, {
        method: 'POST',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
        body: JSON.stringify(streamBody(i)),
        signal: ctl.signal,
      });
      return { res, close: () => ctl.abort() };
    };
    const streams = [];
    for (let i = 0; i < STREAMS_PER_CALLER; i++) streams.push(await open(i));
    try {
      assert.deepEqual(
        streams.map((x) => x.res.status),
        Array.from({ length: STREAMS_PER_CALLER }, () => 200),
      );
      const over = await open(99);
      assert.equal(over.res.status, 429);
      assert.equal(over.res.headers.get('retry-after'), '1');
      const body = (await over.res.json()) as { error: { code: number; message: string } };
      assert.match(body.error.message, /A2A streams.*GATEWAY_EVENT_STREAMS_PER_CALLER/);
      // A read is not a stream: it is answered while the share is full.
      const c = await client('data_analyst', operator);
      assert.ok(
        (await c
          .getTask({ tenant: '', id: 'no-such-task', historyLength: undefined })
          .catch((e: Error) => e)) instanceof Error,
      );
      // Closing one frees its slot.
      streams.shift()!.close();
      await until(
        'the slot freed',
        async () => {
          const again = await open(100);
          if (again.res.status === 200) {
            streams.push(again);
            return true;
          }
          await again.res.body?.cancel();
          return false;
        },
        10_000,
      );
    } finally {
      for (const x of streams) x.close();
    }
  });

  it("blocking message/send answers hold the caller's share of calls in flight: past it 429, another key is answered", async () => {
    const send = (key: string, i: number) =>
      fetch(`${base}/a2a/data_analyst`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: i,
          method: 'message/send',
          params: {
            message: {
              kind: 'message',
              role: 'user',
              messageId: `held-${i}-${Date.now()}`,
              parts: [{ kind: 'data', data: { task_type: 'noop', input: { sleep_ms: 6_000 } } }],
            },
          },
        }),
      });
    const held = Array.from({ length: HELD_PER_CALLER }, (_, i) => send(operator, i));
    // The held ones are admitted before the next is sent (each takes its slot as it arrives; a
    // slow machine gets time: they hold for 6 s).
    await sleep(2_000);
    const over = await send(operator, 99);
    assert.equal(over.status, 429);
    assert.equal(over.headers.get('retry-after'), '1');
    assert.match(((await over.json()) as any).error.message, /A2A requests in flight.*GATEWAY_HELD_CALLS_PER_CALLER/);
    // Another key is answered meanwhile.
    const other = await send(admin, 100);
    assert.equal(other.status, 200, await other.clone().text());
    await other.body?.cancel();
    const answers = await Promise.all(held);
    assert.deepEqual(
      answers.map((r) => r.status),
      Array.from({ length: HELD_PER_CALLER }, () => 200),
    );
    for (const r of answers) await r.body?.cancel();
    // Their slots are free again.
    const again = await send(operator, 101);
    assert.equal(again.status, 200);
    await again.body?.cancel();
  });

  it("a message/send retried with its messageId (answer lost) finds the task the first made (one task); another key's is its own", async () => {
    const messageId = `retried-${Date.now()}`;
    const send = (key = operator) => rpc('data_analyst', a2aRevenueRequest(messageId), key);
    // Three at once (within this spec's share of calls held per key) and one later, as a client retrying would.
    const answers = [...(await Promise.all([1, 2, 3].map(() => send()))), await send()];
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    const ids = new Set(answers.map((a) => a.body.result.id as string));
    assert.equal(ids.size, 1, `one task: ${[...ids].join(', ')}`);
    const rows = await pool.query(`select 1 from gateway.a2a_tasks where origin_message_id = $1`, [messageId]);
    assert.equal(rows.rowCount, 1);
    // Another key's message with the same messageId is its own.
    const other = await send(await makeKey('operator'));
    assert.equal(other.status, 200, JSON.stringify(other.body));
    assert.notEqual(other.body.result.id, [...ids][0]);
  });

  it('the same new-task message sent to two gateways at once makes one task (a claim in PostgreSQL, not a turn in one process)', async () => {
    const second = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      {
        modules: [
          AgentsFeatureModule,
          WorkflowsFeatureModule,
          A2aFeatureModule.withOptions({ egress: { allowHosts: ['127.0.0.1'] } }),
        ],
        auth: { enabled: true, adminKey: admin },
        heldCalls: { perCaller: HELD_PER_CALLER, total: 100 },
      },
    );
    try {
      const secondBase = (await second.listen(0, '127.0.0.1')).url;
      const bases = [base, secondBase];
      const sendTo = async (at: string, messageId: string, stream: boolean) => {
        const res = await fetch(`${at}/a2a/data_analyst`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${operator}` },
          body: JSON.stringify(a2aRevenueRequest(messageId, stream ? 'message/stream' : 'message/send')),
        });
        assert.equal(res.status, 200);
        if (!stream) {
          const body = (await res.json()) as any;
          assert.ok(body.result?.id, JSON.stringify(body));
          return body.result.id as string;
        }
        // The first event of a stream names its task; the rest is let go.
        const text = await res.text();
        const id = /"(?:id|taskId)":"([0-9a-f-]{36})"/.exec(text)?.[1];
        assert.ok(id, text.slice(0, 500));
        return id;
      };
      for (let round = 0; round < 6; round++) {
        const messageId = `two-gateways-${round}-${randomUUID()}`;
        const stream = round % 2 === 1;
        const ids = await Promise.all([0, 1, 0, 1].map((i) => sendTo(bases[i]!, messageId, stream)));
        assert.equal(
          new Set(ids).size,
          1,
          `round ${round} (${stream ? 'stream' : 'send'}): one task, got ${ids.join(', ')}`,
        );
        const rows = await pool.query(`select id from gateway.a2a_tasks where origin_message_id = $1`, [messageId]);
        assert.equal(rows.rowCount, 1, `round ${round}: one stored task`);
        const work = await pool.query(
          `select count(distinct backend_id)::int as n from gateway.a2a_tasks where origin_message_id = $1`,
          [messageId],
        );
        assert.equal(work.rows[0].n, 1, `round ${round}: one delegation`);
        const claims = await pool.query(`select 1 from gateway.a2a_origin_claims where message_id = $1`, [messageId]);
        assert.equal(claims.rowCount, 0, `round ${round}: the claim is let go once the task is made`);
      }
      // A claim its gateway stopped refreshing (it died before making the task) is taken over.
      const orphan = `two-gateways-orphan-${randomUUID()}`;
      await pool.query(
        `insert into gateway.a2a_origin_claims (endpoint, owner, message_id, claimed_at)
         values ('data_analyst', $1, $2, now() - interval '31 seconds')`,
        [
          (await pool.query(`select owner from gateway.a2a_tasks where origin_message_id like 'two-gateways-0-%'`))
            .rows[0].owner,
          orphan,
        ],
      );
      const startedAt = Date.now();
      await sendTo(secondBase, orphan, false);
      assert.ok(
        Date.now() - startedAt < 5_000,
        `a stale claim does not hold the message (${Date.now() - startedAt} ms)`,
      );
      const made = await pool.query(`select 1 from gateway.a2a_tasks where origin_message_id = $1`, [orphan]);
      assert.equal(made.rowCount, 1);
    } finally {
      await second.close();
    }
  });

  it('auth: no key 401, a viewer may read but not send (403); a bad message is JSON-RPC -32602', async () => {
    const msg = {
      jsonrpc: '2.0',
      id: 1,
      method: 'message/send',
      params: {
        message: {
          kind: 'message',
          role: 'user',
          messageId: 'm1',
          parts: [{ kind: 'data', data: { task_type: 'revenue_analysis', input: { timeframe: '30d' } } }],
        },
      },
    };
    const none = await rpc('data_analyst', msg);
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, -32000);
    assert.equal(
      (await rpc('data_analyst', msg, 'sy_0000000000000000_wrongwrongwrongwrongwrongwrongwrong')).status,
      401,
    );
    const asViewer = await rpc('data_analyst', msg, viewer);
    assert.equal(asViewer.status, 403);
    assert.equal(asViewer.body.error.data.required_role, 'operator');
    // A2A 0.3 method names work (the compat layer): send as operator, read as viewer.
    const ok = await rpc('data_analyst', msg, operator);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.result.kind, 'task');
    assert.equal(ok.body.result.status.state, 'completed', JSON.stringify(ok.body));
    const read = await rpc(
      'data_analyst',
      { jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { id: ok.body.result.id } },
      viewer,
    );
    assert.equal(read.status, 200);
    assert.equal(read.body.result.status.state, 'completed');
    // The viewer reads the state; the result is the operator's to read.
    assert.equal(read.body.result.artifacts[0].parts[0].kind, 'text');
    assert.equal(read.body.result.artifacts[0].parts[0].text, REDACTED_PAYLOAD);
    const readAsOperator = await rpc(
      'data_analyst',
      { jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { id: ok.body.result.id } },
      operator,
    );
    assert.equal(readAsOperator.body.result.artifacts[0].parts[0].kind, 'data');
    const cancelAsViewer = await rpc(
      'data_analyst',
      { jsonrpc: '2.0', id: 3, method: 'tasks/cancel', params: { id: ok.body.result.id } },
      viewer,
    );
    assert.equal(cancelAsViewer.status, 403);
    // An id is a name: a 100 KB one is refused, not echoed back in a "not found".
    const longId = await rpc(
      'data_analyst',
      { jsonrpc: '2.0', id: 4, method: 'tasks/get', params: { id: 'x'.repeat(100_000) } },
      viewer,
    );
    assert.equal(longId.status, 400);
    assert.equal(longId.body.error.code, -32602);
    assert.ok(JSON.stringify(longId.body).length < 1_000);
    const longTaskId = await rpc(
      'data_analyst',
      {
        jsonrpc: '2.0',
        id: 5,
        method: 'message/send',
        params: { message: { ...msg.params.message, taskId: 'y'.repeat(100_000) } },
      },
      operator,
    );
    assert.equal(longTaskId.status, 400);
    assert.match(longTaskId.body.error.message, /params\.message\.taskId/);

    const bad = await rpc(
      'data_analyst',
      {
        ...msg,
        params: {
          message: { ...msg.params.message, parts: [{ kind: 'data', data: { task_type: 'write_blog_post' } }] },
        },
      },
      operator,
    );
    assert.equal(bad.body.error.code, -32602, JSON.stringify(bad.body));
    assert.match(bad.body.error.message, /unknown skill/);
    const noParts = await rpc(
      'data_analyst',
      {
        ...msg,
        params: { message: { ...msg.params.message, parts: [{ kind: 'file', file: { uri: 'http://x/y' } }] } },
      },
      operator,
    );
    assert.equal(noParts.body.error.code, -32602, JSON.stringify(noParts.body));
    assert.equal((await rpc('nobody', msg, operator)).status, 404);
    // A push URL the egress guard refuses is refused with the message, before any task exists.
    const metadataUrl = await rpc(
      'data_analyst',
      {
        ...msg,
        params: { ...msg.params, configuration: { pushNotificationConfig: { url: 'http://169.254.169.254/latest' } } },
      },
      operator,
    );
    assert.equal(metadataUrl.body.error.code, -32602, JSON.stringify(metadataUrl.body));
    assert.match(metadataUrl.body.error.message, /refused/);
  });

  it('an input the skill does not take is refused -32602 naming the field before a task exists, as /delegate refuses it (400)', async () => {
    const tasks = async () =>
      Number((await pool.query<{ n: string }>('select count(*) as n from gateway.a2a_tasks')).rows[0]!.n);
    const submitted = async () =>
      (await store.readAll({ maxCount: 100_000 })).filter((e) => e.type === 'TaskSubmitted').length;
    const send = async (agent: string, method: string, data: unknown) => {
      const res = await fetch(`${base}/a2a/${agent}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 9,
          method,
          params: {
            message: { kind: 'message', role: 'user', messageId: `bad-${Date.now()}`, parts: [{ kind: 'data', data }] },
          },
        }),
      });
      const text = await res.text();
      return JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? text) as { error?: { code: number; message: string } };
    };
    const [tasksBefore, submittedBefore] = [await tasks(), await submitted()];
    const cases: [unknown, RegExp][] = [
      [
        { task_type: 'revenue_analysis', input: { timeframe: '30d', colour: 'red' } },
        /context\.colour is not a field of revenue_analysis/,
      ],
      [{ task_type: 'revenue_analysis', input: { timeframe: 30 } }, /context\.timeframe \(.*expected string/],
      [
        { task_type: 'analyze_revenue', input: { timeframe: 'thirty days' } },
        /context\.timeframe \(expected <n>d or <n>m/,
      ],
    ];
    for (const method of ['message/send', 'message/stream'])
      for (const [data, message] of cases) {
        const answer = await send('data_analyst', method, data);
        const what = `${method} ${JSON.stringify(data)}: ${JSON.stringify(answer)}`;
        assert.equal(answer.error?.code, -32602, what);
        assert.match(answer.error.message, /invalid context for revenue_analysis: /, what);
        assert.match(answer.error.message, message, what);
      }
    // The same words /delegate answers with, its 400 before any task.
    const rest400 = await rest('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'revenue_analysis',
      agent: 'data_analyst',
      context: { timeframe: '30d', colour: 'red' },
    });
    assert.equal(rest400.status, 400);
    const viaA2a = await send('data_analyst', 'message/send', {
      task_type: 'revenue_analysis',
      input: { timeframe: '30d', colour: 'red' },
    });
    assert.ok(
      String(rest400.body.detail).includes(viaA2a.error!.message),
      `${rest400.body.detail} / ${viaA2a.error!.message}`,
    );
    // A workflow's input is held to its definition's input schema the same way.
    const wf = await send('workflows', 'message/send', { task_type: 'revenue_analysis', input: { nonsense: true } });
    assert.equal(wf.error?.code, -32602, JSON.stringify(wf));
    assert.match(wf.error.message, /^invalid workflow input: .*nonsense/);
    assert.equal(await tasks(), tasksBefore, 'no A2A task was created');
    assert.equal(await submitted(), submittedBefore, 'no delegation was submitted');
    // A good input still starts its task.
    const ok = await send('data_analyst', 'message/send', {
      task_type: 'revenue_analysis',
      input: { timeframe: '30d' },
    });
    assert.equal(ok.error, undefined, JSON.stringify(ok));
  });

  it('/a2a/workflows: a message starts a workflow by its id; the outputs are the artifact; cancel cancels the execution', async () => {
    // Real agent steps: one segmentation, or one per item of a long list (to have something to cancel).
    const def = {
      id: 'a2a_segments',
      version: 1,
      name: 'A2A segments',
      description: 'Customer segmentation, once per item',
      input: { type: 'object', properties: { items: { type: 'array', default: [0] } } },
      steps: [{ id: 'seg', uses: 'agent:customer_segmentation', for_each: { items: 'input.items', concurrency: 1 } }],
      outputs: { runs: '${{ size(steps.seg.output) }}' },
    };
    const reg = await rest('POST', '/api/v1/workflows/definitions', def);
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const c = await client('workflows', operator);
    // A registered definition is an operator's: the public card does not list it (nor its
    // default), the extended card a key holder's client asks for does, as read at most a second ago.
    await until('the extended card lists the new definition', async () => {
      const skill = (await c.getAgentCard()).skills.find((s) => s.id === 'a2a_segments');
      return skill?.examples.some((e) => e.includes('"items":[0]')) || undefined;
    });
    const publicCard = JSON.stringify(await (await fetch(`${base}/a2a/workflows/.well-known/agent-card.json`)).json());
    assert.ok(!publicCard.includes('a2a_segments'), publicCard);
    const viewerCard = await (await client('workflows', viewer)).getAgentCard();
    const viewerSkill = viewerCard.skills.find((s) => s.id === 'a2a_segments');
    assert.ok(viewerSkill, 'a viewer reads the registered definitions in the extended card');
    assert.ok(!JSON.stringify(viewerSkill).includes('[0]'), "without the definition's default values");
    const done = (await c.sendMessage(send(dataMsg({ task_type: 'a2a_segments', input: { items: [1, 2] } })))) as Task;
    assert.equal(done.status?.state, STATE.completed, JSON.stringify(done.status));
    const executionId = done.metadata?.switchyard_execution_id as string;
    const detail = await rest('GET', `/api/v1/workflows/executions/${executionId}`);
    assert.equal(detail.body.status, 'completed');
    assert.deepEqual(resultOf(done), detail.body.output);
    assert.deepEqual(resultOf(done), { runs: 2 });

    const long = (await c.sendMessage(
      send(dataMsg({ task_type: 'a2a_segments', input: { items: Array.from({ length: 500 }, (_, i) => i) } }), {
        returnImmediately: true,
      }),
    )) as Task;
    const longId = long.metadata?.switchyard_execution_id as string;
    assert.equal((await c.cancelTask({ tenant: '', id: long.id, metadata: undefined })).status?.state, STATE.canceled);
    await until(
      'the execution canceled',
      async () => (await rest('GET', `/api/v1/workflows/executions/${longId}`)).body.status === 'canceled',
      30_000,
    );
  });

  it('a message naming many skills costs one read of the definitions, not one per name', async () => {
    const listed: string[] = [];
    const query = pool.query.bind(pool) as (...a: unknown[]) => unknown;
    (pool as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
      const text = typeof a[0] === 'string' ? a[0] : (a[0] as { text?: string } | undefined)?.text;
      // A read of the list, or of the stamp that says whether the copy at hand is current.
      if (text?.includes('distinct on (id) definition') || text?.includes('as stamp from')) listed.push(text);
      return query(...a);
    };
    try {
      // 2,000 data parts, each naming a skill the endpoint lacks: refused, one name looked up.
      const parts = Array.from({ length: 2_000 }, (_, i) => ({ kind: 'data', data: { skill: `nope_${i}` } }));
      const r = await rpc(
        'workflows',
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'message/send',
          params: { message: { kind: 'message', role: 'user', messageId: 'many', parts } },
        },
        operator,
      );
      assert.equal(r.body.error?.code, -32602, JSON.stringify(r.body).slice(0, 400));
      assert.match(r.body.error.message, /unknown skill "nope_0"/);
      // The copy at hand, then once more for the name it lacked (the stamp, and the list if it changed).
      assert.ok(listed.length >= 1 && listed.length <= 4, `${listed.length} reads of the definitions`);
    } finally {
      (pool as unknown as { query: unknown }).query = query;
    }
  });

  it('an external A2A agent registered by its card URL takes its skills as task types; a delegated task goes to it with message/send', async () => {
    // A small A2A agent built with the SDK's server side: doubles `n`, and wants a bearer token.
    const seen: { auth: string | undefined; data: any }[] = [];
    const app = express();
    const port = await freePort();
    const extUrl = `http://127.0.0.1:${port}`;
    const card: AgentCard = {
      name: 'doubler',
      description: 'Doubles numbers',
      supportedInterfaces: [{ url: `${extUrl}/rpc`, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '1.0' }],
      provider: undefined,
      version: '1.0.0',
      capabilities: { streaming: false, pushNotifications: false, extensions: [] },
      securitySchemes: {},
      securityRequirements: [],
      defaultInputModes: ['application/json'],
      defaultOutputModes: ['application/json'],
      skills: ['double_it', 'revenue_analysis', 'analyze_revenue'].map((id) => ({
        // The built-in task type and its alias are the card's claim, not taken (see below).
        id,
        name: id.replaceAll('_', ' '),
        description: id === 'double_it' ? 'n * 2' : 'takes over revenue analysis',
        tags: [],
        examples: [],
        inputModes: [],
        outputModes: [],
        securityRequirements: [],
      })),
      signatures: [],
    };
    const executor: AgentExecutor = {
      execute: async (ctx, bus) => {
        const part = ctx.userMessage.parts.find((p) => p.content?.$case === 'data');
        const data = part?.content?.$case === 'data' ? part.content.value : {};
        seen[seen.length - 1]!.data = data;
        const { taskId, contextId } = ctx;
        bus.publish(
          AgentEvent.task({
            id: taskId,
            contextId,
            status: { state: 1, message: undefined, timestamp: new Date().toISOString() },
            artifacts: [],
            history: [ctx.userMessage],
            metadata: undefined,
          }),
        );
        bus.publish(
          AgentEvent.artifactUpdate({
            taskId,
            contextId,
            artifact: {
              artifactId: 'a',
              name: 'answer',
              description: '',
              parts: [
                {
                  content: { $case: 'data', value: { doubled: data.input.n * 2 } },
                  mediaType: 'application/json',
                  filename: '',
                  metadata: undefined,
                },
              ],
              metadata: undefined,
              extensions: [],
            },
            append: false,
            lastChunk: true,
            metadata: undefined,
          }),
        );
        bus.publish(
          AgentEvent.statusUpdate({
            taskId,
            contextId,
            status: { state: 3, message: undefined, timestamp: new Date().toISOString() },
            metadata: undefined,
          }),
        );
      },
      cancelTask: async () => undefined,
    };
    const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), executor);
    app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: handler }));
    app.use(
      '/rpc',
      (req, res, next) => {
        seen.push({ auth: req.headers.authorization, data: undefined });
        if (req.headers.authorization !== 'Bearer ext-token') return void res.status(401).end();
        next();
      },
      jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }),
    );
    const server = await new Promise<http.Server>((resolve) => {
      const s = app.listen(port, '127.0.0.1', () => resolve(s));
    });
    try {
      const reg = await rest('POST', '/api/v1/integration/agents/external', {
        name: 'doubler',
        a2a_card_url: `${extUrl}/.well-known/agent-card.json`,
        token: 'ext-token',
      });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      assert.deepEqual(reg.body.task_types, ['double_it']);
      // A card that lists built-in task types does not take their delegations from the built-in agents.
      assert.deepEqual(reg.body.task_types_left_out, ['revenue_analysis', 'analyze_revenue']);
      const builtin = await rest('POST', '/api/v1/integration/agents/delegate?wait=true', {
        task_type: 'revenue_analysis',
        context: {},
        priority: 'normal',
      });
      assert.equal(builtin.body.agent, 'data_analyst', JSON.stringify(builtin.body));
      const caps = await rest('GET', '/api/v1/integration/agents/capabilities');
      assert.equal(caps.body.agents.find((a: any) => a.agent === 'doubler').description, 'Doubles numbers');
      const ev = (await store.readStream('external_agent-doubler')).find((e) => e.type === 'ExternalAgentRegistered');
      assert.equal((ev?.data as any).a2a_card_url, `${extUrl}/.well-known/agent-card.json`);
      assert.equal((ev?.data as any).url, `${extUrl}/rpc`);

      const r = await rest('POST', '/api/v1/integration/agents/delegate?wait=true', {
        task_type: 'double_it',
        context: { n: 21 },
        priority: 'normal',
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual([r.body.status, r.body.agent], ['completed', 'doubler']);
      assert.deepEqual(r.body.result, { doubled: 42 });
      const call = seen.find((x) => x.data !== undefined);
      assert.equal(call?.auth, 'Bearer ext-token');
      assert.deepEqual(call?.data, { task_type: 'double_it', input: { n: 21 } });

      // Its task type is a step's too: a definition using it validates, registers and runs on it.
      const definition = {
        id: 'uses_doubler',
        version: 1,
        name: 'uses the external agent',
        input: { type: 'object', properties: { n: { type: 'integer' } } },
        steps: [{ id: 'double', uses: 'agent:double_it', with: { n: '${{ input.n }}' } }],
        outputs: { doubled: '${{ steps.double.output.doubled }}' },
      };
      const valid = await rest('POST', '/api/v1/workflows/definitions/validate', definition);
      assert.equal(valid.status, 200, JSON.stringify(valid.body));
      assert.equal((await rest('POST', '/api/v1/workflows/definitions', definition)).status, 201);
      const ran = await rest('POST', '/api/v1/workflows/start/uses_doubler?wait=true', { n: 4 });
      assert.equal(ran.status, 200, JSON.stringify(ran.body));
      assert.deepEqual(ran.body.output, { doubled: 8 });

      // A card URL that answers nothing useful is refused at registration.
      const bad = await rest('POST', '/api/v1/integration/agents/external', {
        name: 'nocard',
        a2a_card_url: `${extUrl}/nothing-here`,
      });
      assert.ok(bad.status >= 400 && bad.status < 600 && bad.status !== 500, JSON.stringify(bad.body));
      assert.equal((await rest('POST', '/api/v1/integration/agents/external', { name: 'neither' })).status, 400);
    } finally {
      await rest('DELETE', '/api/v1/integration/agents/external/doubler');
      server.close();
    }
  });

  it('an open message/stream ends when its API key is revoked (the task itself goes on)', async () => {
    const key = await makeKey('operator');
    const res = await fetch(`${base}/a2a/data_analyst`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'message/stream',
        params: {
          message: {
            kind: 'message',
            role: 'user',
            messageId: `revoked-stream-${Date.now()}`,
            parts: [{ kind: 'data', data: { task_type: 'noop', input: { sleep_ms: 30_000 } } }],
          },
        },
      }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.equal(first.done, false, 'the stream is open: its first update came');
    const t0 = Date.now();
    const revoked = await fetch(`${base}/api/v1/admin/api-keys/${parseKey(key)!.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(revoked.status, 200);
    // Read on until the stream ends: an error (the connection cut) or done; never the task's 30 s.
    const ended = await (async () => {
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true }) as const);
        if (r.done) return Date.now() - t0;
      }
    })();
    assert.ok(ended < 10_000, `the stream ended ${ended} ms after the revocation`);
  });

  it("a stream whose client left stops following the task at once: dropped resubscribes and message/streams hold no listener on the task's bus", async () => {
    const peer = gw.app.get(A2aPeer);
    const listeners = (taskId: string) => peer.taskListeners('data_analyst', taskId);
    /** Opens a stream, reads its first event (the task), and keeps the connection or drops it. */
    const open = async (key: string, method: string, params: unknown) => {
      const ctl = new AbortController();
      const res = await until(`${method} answered 200`, async () => {
        const r = await fetch(`${base}/a2a/data_analyst`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'text/event-stream' },
          body: JSON.stringify({ jsonrpc: '2.0', id: randomUUID(), method, params }),
          signal: ctl.signal,
        });
        if (r.status === 200) return r;
        // A dropped stream's slot of the caller's share is freed once the gateway saw it close.
        assert.equal(r.status, 429);
        await r.body?.cancel();
        return undefined;
      });
      const reader = res.body!.getReader();
      let text = '';
      while (!text.includes('\n\n')) {
        const chunk = await reader.read();
        assert.equal(chunk.done, false, `the stream ended before its first event: ${text}`);
        text += Buffer.from(chunk.value).toString('utf8');
      }
      const first = JSON.parse(text.slice(text.indexOf('data: ') + 6, text.indexOf('\n\n'))) as {
        result: { kind: string; id: string };
      };
      assert.equal(first.result.kind, 'task');
      return { taskId: first.result.id, drop: () => ctl.abort() };
    };

    // A long task an operator started; viewers resubscribe to it, read the task and go away, over and over.
    const c = await client('data_analyst', operator);
    const waiting = (await c.sendMessage(
      send(dataMsg({ task_type: 'noop', input: { sleep_ms: 60_000 } }), { returnImmediately: true }),
    )) as Task;
    const alone = listeners(waiting.id);
    assert.ok(alone > 0, 'the task has a bus while it runs');
    const kept = await open(viewer, 'tasks/resubscribe', { id: waiting.id });
    assert.equal(listeners(waiting.id), alone + 1, 'an open stream listens on the bus');
    const DROPPED = 3 * STREAMS_PER_CALLER + 3;
    for (let i = 0; i < DROPPED; i++) (await open(viewer, 'tasks/resubscribe', { id: waiting.id })).drop();
    await until('every dropped resubscribe let go of the bus', () => listeners(waiting.id) === alone + 1, 10_000);
    kept.drop();
    await until('the kept one too, once dropped', () => listeners(waiting.id) === alone, 10_000);

    // message/stream: a dropped one's task goes on (its updates still reach the task store); the
    // same message sent again (a client that lost the answer) is a resubscribe, and dropping it lets go.
    const messageId = `dropped-stream-${randomUUID()}`;
    const streamParams = (sleepMs: number, id = messageId) => ({
      message: {
        kind: 'message',
        role: 'user',
        messageId: id,
        parts: [{ kind: 'data', data: { task_type: 'noop', input: { sleep_ms: sleepMs } } }],
      },
    });
    const first = await open(operator, 'message/stream', streamParams(60_000));
    first.drop();
    const followed = listeners(first.taskId);
    assert.ok(followed > 0);
    for (let i = 0; i < DROPPED; i++) {
      const again = await open(operator, 'message/stream', streamParams(60_000));
      assert.equal(again.taskId, first.taskId, 'the same message finds the task the first made');
      again.drop();
    }
    await until('every dropped re-send let go of the bus', () => listeners(first.taskId) === followed, 10_000);

    const short = await open(operator, 'message/stream', streamParams(300, `dropped-short-${randomUUID()}`));
    short.drop();
    await until(
      'the task a dropped message/stream started is stored completed without anyone reading it',
      async () =>
        (
          await pool.query(`select task->'status'->>'state' as state from gateway.a2a_tasks where id = $1`, [
            short.taskId,
          ])
        ).rows[0]?.state === 'TASK_STATE_COMPLETED',
      15_000,
    );
    await until('an ended task has no bus', () => listeners(short.taskId) === 0, 10_000);

    for (const id of [waiting.id, first.taskId]) await c.cancelTask({ tenant: '', id, metadata: undefined });
  });

  it('ended tasks older than the retention go with their push configs; tasks under way and recent ones stay', async () => {
    const c = await client('data_analyst', operator);
    const send1 = () =>
      c.sendMessage(send(dataMsg({ task_type: 'revenue_analysis', input: { timeframe: '12m', topN: 1 } })));
    const old = (await send1()) as Task;
    const recent = (await send1()) as Task;
    assert.equal(old.status?.state, STATE.completed);
    // A task under way as the store keeps it (its gateway stopped), untouched as long.
    const working = `a2a-working-${Date.now()}`;
    await pool.query(
      `insert into gateway.a2a_tasks (id, endpoint, owner, task) values ($1, 'data_analyst', 'test', $2)`,
      [working, JSON.stringify({ id: working, contextId: 'c', status: { state: 'TASK_STATE_WORKING' } })],
    );
    await pool.query(
      `insert into gateway.a2a_push_configs (task_id, id, config, wire_version) values ($1, 'p1', '{}', '1.0'), ($2, 'p2', '{}', '1.0')`,
      [old.id, recent.id],
    );
    await pool.query(`update gateway.a2a_tasks set updated_at = now() - interval '31 days' where id = any($1)`, [
      [old.id, working],
    ]);
    // A claim on a message whose gateway died before making the task, and one being made now.
    const abandoned = `abandoned-${randomUUID()}`;
    const making = `making-${randomUUID()}`;
    await pool.query(
      `insert into gateway.a2a_origin_claims (endpoint, owner, message_id, claimed_at)
       values ('data_analyst', 'test', $1, now() - interval '2 hours'), ('data_analyst', 'test', $2, now())`,
      [abandoned, making],
    );
    const peer = gw.app.get(A2aPeer);
    assert.deepEqual(await peer.purgeEndedTasks(new Date()), { tasks: 1, push_configs: 1, claims: 1 });
    const claimsLeft = await pool.query<{ message_id: string }>(
      `select message_id from gateway.a2a_origin_claims where message_id = any($1)`,
      [[abandoned, making]],
    );
    assert.deepEqual(
      claimsLeft.rows.map((r) => r.message_id),
      [making],
    );
    await pool.query(`delete from gateway.a2a_origin_claims where message_id = $1`, [making]);
    const left = await pool.query<{ id: string }>(`select id from gateway.a2a_tasks where id = any($1) order by id`, [
      [old.id, recent.id, working],
    ]);
    assert.deepEqual(left.rows.map((r) => r.id).sort(), [recent.id, working].sort());
    const configs = await pool.query<{ task_id: string }>(
      `select task_id from gateway.a2a_push_configs where task_id = any($1)`,
      [[old.id, recent.id]],
    );
    assert.deepEqual(
      configs.rows.map((r) => r.task_id),
      [recent.id],
    );
    // The client asking for the purged task is told it is not found; the recent one is read as before.
    await assert.rejects(c.getTask({ tenant: '', id: old.id, historyLength: undefined }), /not found/i);
    assert.equal(
      (await c.getTask({ tenant: '', id: recent.id, historyLength: undefined })).status?.state,
      STATE.completed,
    );
    // The delegation it stood for is still in Switchyard.
    const t = await rest('GET', `/api/v1/integration/agents/tasks/${old.metadata?.switchyard_task_id as string}`);
    assert.equal(t.body.status, 'completed');
    assert.deepEqual(
      await peer.purgeEndedTasks(new Date()),
      { tasks: 0, push_configs: 0, claims: 0 },
      'a second round finds nothing',
    );
    await pool.query(`delete from gateway.a2a_tasks where id = $1`, [working]);
  });

  it('the peer is one provider of the gateway', () => {
    assert.ok(gw.app.get(A2aPeer));
  });
});

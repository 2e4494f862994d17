import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { StreamResponse, type Message, type SendMessageRequest, type Task } from '@a2a-js/sdk';
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  type Client,
} from '@a2a-js/sdk/client';
import { parseServerConfig, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { runMcpServer, type RunningMcpServer } from '@switchyard/mcp-servers';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { loadDemoData, startAgents, type AgentsHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { createGateway, REDACTED_PAYLOAD, type Gateway } from '../../index.js';
import { AgentsFeatureModule } from '../agents/index.js';
import { McpFeatureModule } from '../mcp/index.js';
import { WorkflowsFeatureModule } from '../workflows/index.js';
import { A2aFeatureModule, NOTIFICATION_TOKEN_HEADER } from './index.js';
import { MAX_PUSH_CONFIGS_PER_KEY, MAX_PUSH_CONFIGS_PER_TASK } from './store.js';

/**
 * A2A push notifications delivered by the automation server: the SDK's client -> the gateway
 * (A2A peer) -> NATS -> the connectors -> the automation MCP server (its own process-like
 * runtime, as the launcher runs it) -> a local receiver. Real PostgreSQL, nats-server, agents
 * and dispatcher; the receiver is a plain HTTP server of this test.
 */
const logger = createLogger('a2a-push-int', process.env.LOG_LEVEL ?? 'silent');

interface Received {
  readonly at: number;
  readonly path: string;
  readonly token: string | undefined;
  readonly authorization: string | undefined;
  readonly type: string | undefined;
  readonly key: string;
  readonly status: number;
  readonly body: any;
}

/** A receiver whose answer per request is decided by `answer` (default 200). */
async function receiver(answer: (key: string, n: number) => number = () => 200) {
  const received: Received[] = [];
  const perKey = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      const key = String(req.headers['idempotency-key'] ?? '');
      const n = (perKey.get(key) ?? 0) + 1;
      perKey.set(key, n);
      const status = answer(key, n);
      received.push({
        at: Date.now(),
        path: req.url ?? '',
        token: req.headers[NOTIFICATION_TOKEN_HEADER.toLowerCase()] as string | undefined,
        authorization: req.headers.authorization,
        type: req.headers['content-type'],
        key,
        status,
        body: JSON.parse(data),
      });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    url,
    received,
    delivered: () => received.filter((r) => r.status < 300),
    close: () => new Promise<void>((r) => (server.close(() => r()), server.closeAllConnections())),
  };
}

const STATES = ['', 'SUBMITTED', 'WORKING', 'COMPLETED', 'FAILED', 'CANCELED'];
/** `task:SUBMITTED`, `status:WORKING`, `artifact`, `status:COMPLETED`... of a 1.0 body (StreamResponse JSON). */
function what(body: any): string {
  const sr = StreamResponse.fromJSON(body);
  const p = sr.payload!;
  if (p.$case === 'task') return `task:${STATES[p.value.status!.state]}`;
  if (p.$case === 'statusUpdate') return `status:${STATES[p.value.status!.state]}`;
  if (p.$case === 'artifactUpdate') return 'artifact';
  return p.$case;
}

function dataMsg(value: unknown): Message {
  return {
    messageId: randomUUID(),
    contextId: '',
    taskId: '',
    role: 1,
    parts: [{ content: { $case: 'data', value }, mediaType: 'application/json', filename: '', metadata: undefined }],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}
function send(
  message: Message,
  push: { url: string; token?: string; authentication?: { scheme: string; credentials: string } },
  returnImmediately = false,
): SendMessageRequest {
  return {
    tenant: '',
    message,
    configuration: {
      acceptedOutputModes: [],
      returnImmediately,
      taskPushNotificationConfig: {
        tenant: '',
        id: '',
        taskId: '',
        url: push.url,
        token: push.token ?? '',
        authentication: push.authentication,
      },
    },
    metadata: undefined,
  };
}

describe('A2A push notifications through the automation server (SDK client -> gateway -> connectors -> automation -> receiver)', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let automation: RunningMcpServer;
  let connectors: RunningConnectors;
  let gw: Gateway | undefined;
  let base: string;
  let admin = '';
  let operator: string;

  const makeGateway = async () => {
    gw = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      {
        modules: [
          AgentsFeatureModule,
          WorkflowsFeatureModule,
          McpFeatureModule,
          A2aFeatureModule.withOptions({ egress: { allowHosts: ['127.0.0.1'] }, push: { backoffMs: 100 } }),
        ],
        auth: { enabled: true, ...(admin ? { adminKey: admin } : { printAdminKey: (k: string) => void (admin = k) }) },
      },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
  };
  const client = async (key: string): Promise<Client> => {
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
    return factory.createFromUrl(`${base}/a2a/data_analyst/`);
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
  /** The automation server's records of a task's deliveries, through the gateway's MCP call endpoint. */
  const deliveriesOf = async (taskId: string) => {
    const r = await rest('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'list_queued_deliveries',
      arguments: { limit: 500 },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body.result.deliveries as any[]).filter((d) => d.ordering_key.startsWith(`a2a:${taskId}:`));
  };

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'a2a-push-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'a2a-push-test', logger });
    const databaseUrl = await freshDatabase('a2a_push');
    pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
    await loadDemoData(pool);
    store = new PostgresEventStore({ pool });
    await store.init();
    agents = await startAgents({ nats: nc, pool, logger, http: false, noop: true, instancePrefix: 'a2apush' });
    dispatcher = await startDispatcher({
      store,
      nats: nc,
      pool,
      logger,
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    // The automation server as the launcher runs it, loopback receivers allowed, a short wait before a round is sent again.
    automation = await runMcpServer('automation', {
      port: await freePort(),
      logger,
      env: {
        DATABASE_URL: databaseUrl,
        LOG_LEVEL: 'silent',
        MCP_AUTH_DISABLED: 'true',
        WEBHOOK_ALLOW_LOOPBACK: 'true',
        SCHEDULER_INTERVAL_MS: '100',
        WEBHOOK_RETRY_FIRST_MS: '200',
        WEBHOOK_RETRY_MAX_MS: '400',
      },
    });
    const fast = {
      timeouts: { connect_ms: 5_000, call_ms: 10_000 },
      retry: { max_attempts: 2, initial_delay_ms: 50, max_delay_ms: 100 },
      reconnect: { initial_delay_ms: 100, max_delay_ms: 500 },
    };
    connectors = await startConnectors({
      nats: nc,
      registry: [
        parseServerConfig({
          name: 'automation',
          role: 'automation',
          transport: { kind: 'http', url: automation.url! },
          ...fast,
        }),
      ],
      logger,
      sharedCalls: false,
    });
    await makeGateway();
    const res = await fetch(`${base}/api/v1/admin/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'push-operator', role: 'operator' }),
    });
    operator = ((await res.json()) as { key: string }).key;
    await until(
      'the agents known',
      async () =>
        (await rest('GET', '/api/v1/integration/agents/capabilities')).body.agents?.some(
          (a: any) => a.agent === 'data_analyst',
        ),
      20_000,
    );
    await until(
      'the automation server connected',
      async () =>
        (await rest('GET', '/api/v1/integration/mcp/health')).body.servers?.every((s: any) => s.state === 'up'),
      20_000,
    );
  });

  after(async () => {
    await gw?.close();
    await connectors?.stop();
    await automation?.close();
    await dispatcher?.stop();
    await agents?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('pushes each event of the task in order, once, with the token header, Authorization and the A2A 1.0 body; the deliveries are listed by the automation server', async () => {
    const rx = await receiver();
    try {
      const c = await client(operator);
      const task = (await c.sendMessage(
        send(dataMsg({ task_type: 'noop', input: { sleep_ms: 200 } }), {
          url: rx.url,
          token: 'tok-1',
          authentication: { scheme: 'Bearer', credentials: 'cred-1' },
        }),
      )) as Task;
      await until(
        'the completed notification',
        () => rx.delivered().some((r) => what(r.body) === 'status:COMPLETED'),
        15_000,
      );
      assert.deepEqual(
        rx.delivered().map((r) => what(r.body)),
        ['task:SUBMITTED', 'status:WORKING', 'artifact', 'status:COMPLETED'],
      );
      for (const r of rx.received) {
        assert.equal(r.token, 'tok-1');
        assert.equal(r.authorization, 'Bearer cred-1');
        assert.equal(r.type, 'application/a2a+json');
      }
      // One POST per event: each key once (the receiver answered 200 every time).
      assert.equal(new Set(rx.received.map((r) => r.key)).size, rx.received.length);
      const final = StreamResponse.fromJSON(rx.received.at(-1)!.body).payload!;
      assert.equal(final.$case, 'statusUpdate');
      assert.equal(final.$case === 'statusUpdate' && final.value.taskId, task.id);
      // The receiver's answer is recorded just after it was sent.
      let listed: any[] = [];
      await until(
        'the four deliveries recorded delivered',
        async () =>
          (listed = await deliveriesOf(task.id)).length === 4 && listed.every((d) => d.status === 'delivered'),
        10_000,
      );
      assert.ok(listed.every((d) => d.response_status === 200 && d.format === 'a2a' && d.token === undefined));
      // The config reads back with where it goes, never its token or credentials (while the
      // deliveries above carried both).
      const configs = await c.listTaskPushNotificationConfig({
        tenant: '',
        taskId: task.id,
        pageSize: 0,
        pageToken: '',
      });
      assert.equal(configs.configs.length, 1);
      const [config] = configs.configs;
      assert.equal(config!.url, rx.url);
      assert.equal(config!.token, REDACTED_PAYLOAD);
      assert.deepEqual(config!.authentication, { scheme: 'Bearer', credentials: REDACTED_PAYLOAD });
      const one = await c.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: config!.id });
      assert.equal(one.url, rx.url);
      assert.equal(one.token, REDACTED_PAYLOAD);
      assert.equal(one.authentication?.credentials, REDACTED_PAYLOAD);
      assert.ok(
        !JSON.stringify([configs, one]).includes('tok-1') && !JSON.stringify([configs, one]).includes('cred-1'),
      );
      // A viewer sees where it goes, not the receiver's path or query (which can be its credential).
      const made = await fetch(`${base}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'push-viewer', role: 'viewer' }),
      });
      const asViewer = await client(((await made.json()) as { key: string }).key);
      const seen = await asViewer.listTaskPushNotificationConfig({
        tenant: '',
        taskId: task.id,
        pageSize: 0,
        pageToken: '',
      });
      const origin = new URL(rx.url).origin;
      assert.equal(seen.configs[0]!.url, `${origin}/${REDACTED_PAYLOAD}`);
      const seenOne = await asViewer.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: config!.id });
      assert.equal(seenOne.url, `${origin}/${REDACTED_PAYLOAD}`);
    } finally {
      await rx.close();
    }
  });

  it("a config's sends are its key's (their owner at the automation server); once the key is revoked its configs get nothing more", async () => {
    const rx = await receiver();
    try {
      const made = await fetch(`${base}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'push-revoked', role: 'operator' }),
      });
      const { key, id } = (await made.json()) as { key: string; id: string };
      const task = (await (
        await client(key)
      ).sendMessage(send(dataMsg({ task_type: 'noop', input: { sleep_ms: 3_000 } }), { url: rx.url }, true))) as Task;
      await until('the first notification', () => rx.delivered().length > 0, 15_000);
      const owners = await pool.query<{ owner: string | null }>(
        `select owner from automation.scheduled_deliveries where ordering_key like $1`,
        [`a2a:${task.id}:%`],
      );
      assert.ok(owners.rows.length > 0);
      assert.ok(
        owners.rows.every((r) => r.owner === `apikey:${id}`),
        JSON.stringify(owners.rows),
      );
      const revoked = await fetch(`${base}/api/v1/admin/api-keys/${id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${admin}` },
      });
      assert.equal(revoked.status, 200);
      // The task goes on and completes; its config, set by a revoked key, hears nothing of that (what
      // was handed off before the revocation, the working status, may still arrive).
      const asOperator = await client(operator);
      await until(
        'the task completed',
        async () =>
          (await asOperator.getTask({ tenant: '', id: task.id, historyLength: undefined })).status?.state === 3,
        15_000,
      );
      await new Promise((r) => setTimeout(r, 1_000));
      const heard = rx.delivered().map((r) => what(r.body));
      assert.ok(!heard.includes('artifact') && !heard.includes('status:COMPLETED'), JSON.stringify(heard));
    } finally {
      await rx.close();
    }
  });

  it('a 0.3 client (no A2A-Version) gets the task object as the body, application/json', async () => {
    const rx = await receiver();
    try {
      const res = await fetch(`${base}/a2a/data_analyst`, {
        method: 'POST',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'message/send',
          params: {
            configuration: { blocking: true, pushNotificationConfig: { url: rx.url, token: 'tok-03' } },
            message: {
              kind: 'message',
              role: 'user',
              messageId: randomUUID(),
              parts: [{ kind: 'data', data: { task_type: 'noop', input: { sleep_ms: 100 } } }],
            },
          },
        }),
      });
      assert.equal(res.status, 200);
      await until('the completed task', () => rx.delivered().some((r) => r.body.status?.state === 'completed'), 15_000);
      assert.ok(
        rx.received.every((r) => r.body.kind === 'task' && r.token === 'tok-03' && r.type === 'application/json'),
      );
      assert.equal(rx.delivered().at(-1)!.body.status.state, 'completed');
    } finally {
      await rx.close();
    }
  });

  it('a receiver that fails twice gets the notification on a retry, once', async () => {
    let failures = 0;
    const rx = await receiver(() => (failures++ < 2 ? 503 : 200));
    try {
      const c = await client(operator);
      const task = (await c.sendMessage(
        send(dataMsg({ task_type: 'noop', input: { sleep_ms: 100 } }), { url: rx.url, token: 'tok-2' }),
      )) as Task;
      await until(
        'the completed notification',
        () => rx.delivered().some((r) => what(r.body) === 'status:COMPLETED'),
        15_000,
      );
      assert.deepEqual(
        rx.delivered().map((r) => what(r.body)),
        ['task:SUBMITTED', 'status:WORKING', 'artifact', 'status:COMPLETED'],
      );
      // The first event took three sends (two 503s), each later one a single send.
      assert.deepEqual(
        rx.received.map((r) => r.status),
        [503, 503, 200, 200, 200, 200],
      );
      assert.equal(new Set(rx.received.map((r) => r.key)).size, 4);
      await until(
        'the deliveries recorded delivered',
        async () => (await deliveriesOf(task.id)).every((d) => d.status === 'delivered'),
        10_000,
      );
    } finally {
      await rx.close();
    }
  });

  it('refuses a push URL the egress guard refuses (-32602), before anything is queued', async () => {
    const c = await client(operator);
    await assert.rejects(
      () =>
        c.sendMessage(
          send(dataMsg({ task_type: 'noop', input: {} }), {
            url: 'http://169.254.169.254/latest/meta-data',
            token: 'x',
          }),
        ),
      (err: Error) => /refused|egress|linkLocal/i.test(err.message),
    );
    const r = await rest('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'list_queued_deliveries',
      arguments: {},
    });
    assert.ok((r.body.result.deliveries as any[]).every((d) => !d.url.includes('169.254')));
  });

  it('one key sets at most MAX_PUSH_CONFIGS_PER_KEY push configs on a task, even sent at once; a replaced one does not count twice', async () => {
    const rx = await receiver();
    try {
      const c = await client(operator);
      const task = (await c.sendMessage(
        send(dataMsg({ task_type: 'noop', input: {} }), { url: rx.url }, true),
      )) as Task;
      const config = (id: string) => ({
        tenant: '',
        id,
        taskId: task.id,
        url: rx.url,
        token: id,
        authentication: undefined,
      });
      // 1 from the send; 20 more at once: 9 of them fit.
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => c.createTaskPushNotificationConfig(config(`extra-${i}`))),
      );
      const refused = results.filter((r) => r.status === 'rejected');
      assert.equal(results.length - refused.length, MAX_PUSH_CONFIGS_PER_KEY - 1);
      for (const r of refused)
        assert.match(String(r.reason), new RegExp(`at most ${MAX_PUSH_CONFIGS_PER_KEY} from one key`));
      const listed = await c.listTaskPushNotificationConfig({
        tenant: '',
        taskId: task.id,
        pageSize: 100,
        pageToken: '',
      });
      assert.equal(listed.configs.length, MAX_PUSH_CONFIGS_PER_KEY);
      // Replacing one that is there is not a new one.
      const kept = listed.configs.find((x) => x.id.startsWith('extra-'))!;
      await c.createTaskPushNotificationConfig({ ...config(kept.id), token: 'replaced' });
      const again = await c.listTaskPushNotificationConfig({
        tenant: '',
        taskId: task.id,
        pageSize: 100,
        pageToken: '',
      });
      assert.equal(again.configs.length, MAX_PUSH_CONFIGS_PER_KEY);
    } finally {
      await rx.close();
    }
  });

  it("another key neither replaces nor deletes a key's push config, reads its URL cut to the origin, and keeps room of its own", async () => {
    const rx = await receiver();
    try {
      const made = await fetch(`${base}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'push-other-operator', role: 'operator' }),
      });
      const other = await client(((await made.json()) as { key: string }).key);
      const owner = await client(operator);
      const task = (await owner.sendMessage(
        send(dataMsg({ task_type: 'noop', input: {} }), { url: rx.url }, true),
      )) as Task;
      const config = (id: string, url: string) => ({
        tenant: '',
        id,
        taskId: task.id,
        url,
        token: `tok-${id}`,
        authentication: undefined,
      });
      const ownerUrl = `${rx.url}?k=OWNERSECRET`;
      await owner.createTaskPushNotificationConfig(config('cfg1', ownerUrl));
      const list = async (c: Client) =>
        (await c.listTaskPushNotificationConfig({ tenant: '', taskId: task.id, pageSize: 100, pageToken: '' })).configs;
      await assert.rejects(
        () => other.createTaskPushNotificationConfig(config('cfg1', `${rx.url}/stolen`)),
        /set by another key/,
      );
      await assert.rejects(
        () => other.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg1' }),
        /set by another key/,
      );
      assert.equal(
        (await list(owner)).find((c) => c.id === 'cfg1')?.url,
        ownerUrl,
        'the owner reads its config as it set it',
      );
      const origin = new URL(rx.url).origin;
      const seen = await list(other);
      assert.equal(seen.length, 2, 'the one sent with the message, and cfg1');
      for (const c of seen) assert.equal(c.url, `${origin}/${REDACTED_PAYLOAD}`, c.id);
      const one = await other.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg1' });
      assert.equal(one.url, `${origin}/${REDACTED_PAYLOAD}`);
      // Its own ten fill only its own share: the owner still sets one, and the task's total bound holds.
      for (let i = 0; i < MAX_PUSH_CONFIGS_PER_KEY; i++)
        await other.createTaskPushNotificationConfig(config(`other-${i}`, rx.url));
      await assert.rejects(() => other.createTaskPushNotificationConfig(config('other-x', rx.url)), /from one key/);
      await owner.createTaskPushNotificationConfig(config('cfg2', ownerUrl));
      assert.ok(MAX_PUSH_CONFIGS_PER_TASK >= 2 * MAX_PUSH_CONFIGS_PER_KEY);
      // An admin replaces and deletes any key's.
      const asAdmin = await client(admin);
      await asAdmin.createTaskPushNotificationConfig(config('cfg2', `${rx.url}/by-admin`));
      await asAdmin.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg1' });
      const left = await list(asAdmin);
      assert.ok(!left.some((c) => c.id === 'cfg1'), 'the admin deleted it');
      assert.equal(
        left.find((c) => c.id === 'cfg2')?.url,
        `${rx.url}/by-admin`,
        'the admin replaced it, and reads it whole',
      );
    } finally {
      await rx.close();
    }
  });

  it('a task that ended while no gateway followed it: the next read pushes its artifact and final status, once', async () => {
    const rx = await receiver();
    try {
      const c = await client(operator);
      const started = (await c.sendMessage(
        send(dataMsg({ task_type: 'noop', input: { sleep_ms: 3000 } }), { url: rx.url, token: 'tok-4' }, true),
      )) as Task;
      // Stopped at once: the notifications handed over so far are drained, the task's end is seen by no gateway.
      await gw!.close();
      gw = undefined;
      const ourTask = String((started.metadata as Record<string, unknown>).switchyard_task_id);
      await until(
        'the delegation completed with no gateway',
        async () => (await store.readStream(taskStreamId(ourTask))).some((e) => e.type === 'TaskCompleted'),
        20_000,
      );
      const before = rx.delivered().map((r) => what(r.body));
      assert.ok(!before.includes('status:COMPLETED'));
      await makeGateway();
      const c2 = await client(operator);
      const read = await c2.getTask({ tenant: '', id: started.id, historyLength: 0 });
      assert.equal(read.status?.state, 3);
      await until(
        'the completed notification after the read',
        () => rx.delivered().some((r) => what(r.body) === 'status:COMPLETED'),
        15_000,
      );
      // A second read finds the task ended: nothing more is pushed.
      await c2.getTask({ tenant: '', id: started.id, historyLength: 0 });
      await until(
        'the deliveries recorded delivered',
        async () => (await deliveriesOf(started.id)).every((d) => d.status === 'delivered'),
        10_000,
      );
      const seen = rx.delivered().map((r) => what(r.body));
      assert.equal(seen.filter((w) => w === 'status:COMPLETED').length, 1);
      assert.equal(seen.filter((w) => w === 'artifact').length, 1);
      assert.deepEqual(seen.slice(-2), ['artifact', 'status:COMPLETED']);
      assert.equal(new Set(rx.received.map((r) => r.key)).size, rx.received.length);
    } finally {
      await rx.close();
      if (!gw) await makeGateway();
    }
  });

  it('the gateway stopped right after the task completes: the receiver still gets its final notification, from the automation server', async () => {
    let gatewayUp = true;
    // Down while the gateway runs: every notification is still owed when the gateway has stopped.
    const rx = await receiver(() => (gatewayUp ? 503 : 200));
    try {
      const c = await client(operator);
      const task = (await c.sendMessage(
        send(dataMsg({ task_type: 'noop', input: { sleep_ms: 100 } }), { url: rx.url, token: 'tok-3' }),
      )) as Task;
      assert.equal(task.status?.state, 3);
      await gw!.close();
      gw = undefined;
      gatewayUp = false;
      const stoppedAt = Date.now();
      await until(
        'the completed notification after the gateway stopped',
        () => rx.delivered().some((r) => what(r.body) === 'status:COMPLETED'),
        20_000,
      );
      assert.deepEqual(
        rx.delivered().map((r) => what(r.body)),
        ['task:SUBMITTED', 'status:WORKING', 'artifact', 'status:COMPLETED'],
      );
      assert.ok(rx.delivered().every((r) => r.at >= stoppedAt && r.token === 'tok-3'));
      const completedKey = rx.delivered().at(-1)!.key;
      assert.equal(rx.delivered().filter((r) => r.key === completedKey).length, 1);
      const rows = async () =>
        (
          await pool.query(`select status from automation.scheduled_deliveries where ordering_key like $1`, [
            `a2a:${task.id}:%`,
          ])
        ).rows;
      await until(
        'the four deliveries recorded delivered',
        async () => {
          const r = await rows();
          return r.length === 4 && r.every((x) => x.status === 'delivered');
        },
        10_000,
      );
    } finally {
      await rx.close();
      if (!gw) await makeGateway();
    }
  });
});

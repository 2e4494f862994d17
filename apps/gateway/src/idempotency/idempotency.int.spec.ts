/**
 * Idempotency-Key on every command route, through the real back ends: PostgreSQL, a
 * nats-server of this suite's own, the dispatcher with the six agents (and noop), the workflow
 * engine, the monitor, the connectors with the project's analytics MCP server, and the gateway
 * with auth on. Each command is sent, then sent again with the same key and body: the same
 * status and body come back marked `Idempotent-Replayed: true`, and the events or rows that
 * prove the effect are counted before and after (nothing made twice). Another body with the
 * key is a 422. Then: another route (422), the same key from two API keys (two independent runs,
 * each replayed to its own caller), bad keys (400), a key in flight (409),
 * a gateway restart (the answers are in PostgreSQL), expiry and purge, the OpenAPI header.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { loadDemoData, startAgents, type AgentsHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { WorkflowEngine } from '@switchyard/workflows';
import { parseServerConfig, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { runMcpServer, type RunningMcpServer } from '@switchyard/mcp-servers';
import { startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import { createGateway, type Gateway } from '../gateway.js';
import { AgentsFeatureModule } from '../features/agents/index.js';
import { McpFeatureModule } from '../features/mcp/index.js';
import { SystemFeatureModule } from '../features/system/index.js';
import { WorkflowsFeatureModule } from '../features/workflows/index.js';
import { IdempotencyStore, resolveIdempotencyOptions, SHOWN_ONCE } from './index.js';

const logger = createLogger('idempotency-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  status: number;
  text: string;
  body: any;
  type: string;
  replayed: string | null;
}

describe('Idempotency-Key on every command route', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let dbUrl: string;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let engine: WorkflowEngine;
  let analytics: RunningMcpServer;
  let fetchServer: RunningMcpServer;
  let slowServer: http.Server;
  let slowUrl: string;
  let slowHits = 0;
  let bigHits = 0;
  let connectors: RunningConnectors;
  let monitoring: RunningMonitoring;
  let gw: Gateway;
  let base: string;
  let admin: string;
  let operator: string;
  const run = Date.now().toString(36);

  const startGateway = async (requestTimeoutMs?: number) => {
    const printed: string[] = [];
    const g = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      {
        ...(requestTimeoutMs !== undefined ? { requestTimeoutMs } : {}),
        auth: { enabled: true, printAdminKey: (k) => printed.push(k) },
        modules: [
          AgentsFeatureModule,
          WorkflowsFeatureModule,
          McpFeatureModule,
          SystemFeatureModule.forRoot({ timeoutMs: 5_000 }),
        ],
      },
    );
    const url = (await g.listen(0, '127.0.0.1')).url;
    return { g, url, printed };
  };

  const call = async (
    method: string,
    url: string,
    body: unknown,
    opts: { key?: string; as?: string } = {},
  ): Promise<Answer> => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${opts.as ?? admin}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(opts.key !== undefined ? { 'idempotency-key': opts.key } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      text,
      body: text ? JSON.parse(text) : undefined,
      type: res.headers.get('content-type') ?? '',
      replayed: res.headers.get('idempotent-replayed'),
    };
  };
  const countEvents = async (...types: string[]) => (await store.readAll({ types })).length;
  const one = async <T = any>(sql: string, params: unknown[] = []): Promise<T> =>
    (await pool.query(sql, params)).rows[0] as T;

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'idem-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'idempotency-test', logger });
    dbUrl = await freshDatabase('idempotency');
    pool = new pg.Pool({ connectionString: dbUrl, max: 12 });
    await loadDemoData(pool);
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    // All agents but the financial advisor: its tasks wait in the queue, which keeps an execution running to cancel.
    agents = await startAgents({
      nats: nc,
      pool,
      logger,
      http: false,
      noop: true,
      instancePrefix: 'idem',
      agents: ['automation_specialist', 'content_creator', 'customer_success', 'data_analyst', 'operations_manager'],
    });
    // External agents in this suite are local receivers: allow loopback past the egress guard.
    dispatcher = await startDispatcher({
      store,
      nats: nc,
      pool,
      logger,
      egress: { allowCidrs: ['127.0.0.0/8'] },
      pollIntervalMs: 100,
      healthIntervalMs: 300,
      discoveryIntervalMs: 500,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    engine = new WorkflowEngine({
      store,
      pool,
      nats: nc,
      logger,
      databaseUrl: dbUrl,
      partitions: 4,
      leaseTickMs: 200,
      timerPollMs: 50,
    });
    await engine.start();
    analytics = await runMcpServer('analytics', {
      port: await freePort(),
      logger,
      env: { MCP_AUTH_DISABLED: 'true', DATABASE_URL: dbUrl, LOG_LEVEL: 'silent' },
    });
    const fast = {
      timeouts: { connect_ms: 5_000, call_ms: 5_000 },
      retry: { max_attempts: 1, initial_delay_ms: 50, max_delay_ms: 100 },
      breaker: { consecutive_failures: 5, half_open_after_ms: 500 },
      reconnect: { initial_delay_ms: 100, max_delay_ms: 500 },
    };
    // The fetch server reaches the suite's own slow receiver on loopback (allow-listed), which
    // gives a command whose handler outlives a short request timeout.
    slowServer = http.createServer((req, res) => {
      if (req.url === '/big') {
        bigHits += 1;
        res.writeHead(200, { 'content-type': 'text/plain' }).end('b'.repeat(200_000));
        return;
      }
      slowHits += 1;
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('late answer'), 1_500);
    });
    await new Promise<void>((r) => slowServer.listen(0, '127.0.0.1', () => r()));
    slowUrl = `http://127.0.0.1:${(slowServer.address() as { port: number }).port}/slow`;
    fetchServer = await runMcpServer('fetch', {
      port: await freePort(),
      logger,
      env: { MCP_AUTH_DISABLED: 'true', FETCH_ALLOW_CIDRS: '127.0.0.0/8', LOG_LEVEL: 'silent' },
    });
    connectors = await startConnectors({
      nats: nc,
      logger,
      registry: [
        parseServerConfig({
          name: 'analytics',
          role: 'analytics',
          transport: { kind: 'http', url: analytics.url! },
          ...fast,
        }),
        parseServerConfig({
          name: 'fetch',
          role: 'fetch',
          transport: { kind: 'http', url: fetchServer.url! },
          ...fast,
        }),
        // One call at a time and none waiting: a second call while one runs is refused 429.
        parseServerConfig({
          name: 'fetch_narrow',
          role: 'fetch',
          transport: { kind: 'http', url: fetchServer.url! },
          ...fast,
          bulkhead: { max_concurrent: 1, max_queue: 0 },
        }),
      ],
    });
    monitoring = await startMonitoring({
      pool,
      nats: nc,
      eventStore: store,
      logger,
      env: {},
      settings: { sampleIntervalMs: 500, probeIntervalMs: 60_000, maintenanceIntervalMs: 60_000, rules: [] },
      wiring: { webhooks: [], discoveryIntervalMs: 60_000 },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
    const started = await startGateway();
    gw = started.g;
    base = started.url;
    admin = started.printed[0]!;
    operator = (await call('POST', '/api/v1/admin/api-keys', { name: 'idem-operator', role: 'operator' })).body.key;
    await until(
      'MCP analytics up',
      async () =>
        (await call('GET', '/api/v1/integration/mcp/health', undefined)).body?.servers?.every(
          (s: { state: string }) => s.state === 'up',
        ),
      20_000,
    );
    await until(
      'agents discovered',
      async () =>
        (await call('GET', '/api/v1/integration/agents/capabilities', undefined)).body?.task_types?.includes('noop'),
      20_000,
    );
  });

  after(async () => {
    await gw?.close();
    await monitoring?.stop();
    await connectors?.stop();
    await analytics?.close();
    await fetchServer?.close();
    await new Promise((r) => (slowServer ? slowServer.close(r) : r(undefined)));
    await engine?.stop();
    await dispatcher?.stop();
    await agents?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  /**
   * One command, retried: the first answer (status `status`), the evidence of its effect
   * (`evidence()` must move from `before` to `after`), the replay (same status and bytes,
   * replayed header, evidence unchanged), and the key with another body (422).
   */
  const retried = async (c: {
    name: string;
    method: string;
    url: string;
    body: unknown;
    other: unknown;
    status: number;
    evidence: () => Promise<unknown>;
    changed: (before: any, after: any) => boolean;
    as?: string;
    /** The first answer as a replay shows it (default: the same bytes). */
    replayedAs?: (first: Answer) => string;
  }): Promise<Answer> => {
    const key = `idem-${run}-${c.name}`;
    const as = c.as ?? admin;
    const before = await c.evidence();
    const first = await call(c.method, c.url, c.body, { key, as });
    assert.equal(first.status, c.status, `${c.name}: ${first.text}`);
    assert.equal(first.replayed, null, `${c.name}: a first answer is not a replay`);
    const effect = await until(
      `${c.name}: effect recorded`,
      async () => {
        const now = await c.evidence();
        return c.changed(before, now) ? { now } : undefined;
      },
      10_000,
    );
    const again = await call(c.method, c.url, c.body, { key, as });
    assert.equal(again.status, first.status, `${c.name}: replay status`);
    assert.equal(again.text, c.replayedAs ? c.replayedAs(first) : first.text, `${c.name}: replay body`);
    assert.equal(again.replayed, 'true', `${c.name}: replay header`);
    assert.equal(again.type.split(';')[0], first.type.split(';')[0], `${c.name}: replay content type`);
    await sleep(300); // a second effect, were there one, would be asynchronous at most this late
    assert.deepEqual(await c.evidence(), effect.now, `${c.name}: nothing done twice`);
    const reused = await call(c.method, c.url, c.other, { key, as });
    assert.equal(reused.status, 422, `${c.name}: another body: ${reused.text}`);
    assert.equal(reused.body.code, 'idempotency_key_reused');
    assert.equal(reused.body.idempotency_key, key);
    assert.ok(reused.body.detail.includes(key), 'the problem names the key');
    assert.equal(reused.type.split(';')[0], 'application/problem+json');
    assert.deepEqual(await c.evidence(), effect.now, `${c.name}: the refused request did nothing`);
    return first;
  };
  const more = (before: number, after: number) => after === before + 1;

  const definition = {
    id: `idem_support_${run}`,
    version: 1,
    name: 'idempotency test',
    description: 'one support answer',
    input: { type: 'object', properties: { query: { type: 'string' } } },
    steps: [{ id: 'answer', uses: 'agent:support_response', with: { query: '${{ input.query }}' } }],
  };
  // No financial advisor runs here: its step waits in the queue until the execution is canceled.
  const stuck = {
    ...definition,
    id: `idem_stuck_${run}`,
    input: { type: 'object', properties: {} },
    steps: [{ id: 'costs', uses: 'agent:cost_optimization', with: {} }],
  };

  it('definitions: registered once', async () => {
    await retried({
      name: 'definition',
      method: 'POST',
      url: '/api/v1/workflows/definitions',
      body: definition,
      other: { ...definition, description: 'another' },
      status: 201,
      evidence: async () =>
        (
          await one<{ n: number }>(`select count(*)::int as n from workflows.definitions where id = $1`, [
            definition.id,
          ])
        )?.n ?? 0,
      changed: more,
    });
    assert.equal((await call('POST', '/api/v1/workflows/definitions', stuck)).status, 201);
  });

  it('delegate and a quick action: one task each', async () => {
    await retried({
      name: 'delegate',
      method: 'POST',
      url: '/api/v1/integration/agents/delegate',
      body: { task_type: 'noop', context: { echo: 1 } },
      other: { task_type: 'noop', context: { echo: 2 } },
      status: 202,
      evidence: () => countEvents('TaskSubmitted'),
      changed: more,
      as: operator,
    });
    await retried({
      name: 'quick',
      method: 'POST',
      url: '/api/v1/integration/quick/customer-support',
      body: { query: 'where is my invoice?' },
      other: { query: 'where is my parcel?' },
      status: 202,
      evidence: () => countEvents('TaskSubmitted'),
      changed: more,
      as: operator,
    });
  });

  it('workflow start, start ?wait=true and an ad-hoc workflow: one execution each', async () => {
    const started = await retried({
      name: 'start',
      method: 'POST',
      url: `/api/v1/workflows/start/${definition.id}`,
      body: { query: 'where is my invoice?' },
      other: { query: 'where is my parcel?' },
      status: 202,
      evidence: () => countEvents('WorkflowStarted'),
      changed: more,
      as: operator,
    });
    assert.ok(started.body.execution_id);
    const waited = await retried({
      name: 'start-wait',
      method: 'POST',
      url: `/api/v1/workflows/start/${definition.id}?wait=true&wait_ms=20000`,
      body: { query: 'where is my invoice?' },
      other: { query: 'where is my refund?' },
      status: 200,
      evidence: () => countEvents('WorkflowStarted'),
      changed: more,
      as: operator,
    });
    assert.equal(waited.body.status, 'completed', waited.text);
    await retried({
      name: 'adhoc',
      method: 'POST',
      url: '/api/v1/integration/agents/workflow',
      body: { definition: { ...definition, id: `adhoc_${run}` }, input: { query: 'where is my invoice?' } },
      other: { definition: { ...definition, id: `adhoc_${run}` }, input: { query: 'where is my order?' } },
      status: 202,
      evidence: () => countEvents('WorkflowStarted'),
      changed: more,
      as: operator,
    });
  });

  it('workflow cancel and task cancel: canceled once', async () => {
    const ex = await call('POST', `/api/v1/workflows/start/${stuck.id}`, {}, { as: operator });
    assert.equal(ex.status, 202, ex.text);
    await retried({
      name: 'wf-cancel',
      method: 'POST',
      url: `/api/v1/workflows/executions/${ex.body.execution_id}/cancel`,
      body: { reason: 'test' },
      other: { reason: 'other' },
      status: 202,
      evidence: () => countEvents('ExecutionCancelRequested'),
      changed: more,
      as: operator,
    });
    const task = await call(
      'POST',
      '/api/v1/integration/agents/delegate',
      { task_type: 'noop', context: { sleep_ms: 30_000 } },
      { as: operator },
    );
    assert.equal(task.status, 202, task.text);
    await retried({
      name: 'task-cancel',
      method: 'POST',
      url: `/api/v1/integration/agents/tasks/${task.body.task_id}/cancel`,
      body: { reason: 'test' },
      other: { reason: 'other' },
      status: 200,
      evidence: () => countEvents('TaskCanceled'),
      changed: more,
      as: operator,
    });
  });

  it('external agents: registered and removed once', async () => {
    const agent = {
      name: `idem-ext-${run}`,
      url: 'http://127.0.0.1:9/agent',
      task_types: ['idem_type'],
      max_concurrency: 1,
      description: 'unreachable on purpose',
    };
    await retried({
      name: 'ext-register',
      method: 'POST',
      url: '/api/v1/integration/agents/external',
      body: agent,
      other: { ...agent, max_concurrency: 2 },
      status: 201,
      evidence: () => countEvents('ExternalAgentRegistered'),
      changed: more,
    });
    await retried({
      name: 'ext-remove',
      method: 'DELETE',
      url: `/api/v1/integration/agents/external/${agent.name}`,
      body: undefined,
      other: {},
      status: 200,
      evidence: () => countEvents('ExternalAgentRemoved'),
      changed: more,
    });
  });

  it('an MCP tool call: the tool runs once (one row)', async () => {
    const metric = `idem.${run}`;
    await retried({
      name: 'mcp',
      method: 'POST',
      url: '/api/v1/integration/mcp/call',
      body: { server: 'analytics', tool: 'record_metric', arguments: { name: metric, value: 1 } },
      other: { server: 'analytics', tool: 'record_metric', arguments: { name: metric, value: 2 } },
      status: 200,
      evidence: async () =>
        (await one<{ n: number }>(`select count(*)::int as n from analytics.metrics where name = $1`, [metric])).n,
      changed: more,
      as: operator,
    });
  });

  it('silences, alert rules (put, delete) and an alert resolve: once each', async () => {
    await retried({
      name: 'silence',
      method: 'POST',
      url: '/api/v1/system/alerts/silences',
      body: { matchers: [{ name: 'alertname', value: `idem-${run}` }], duration_ms: 60_000 },
      other: { matchers: [{ name: 'alertname', value: `other-${run}` }], duration_ms: 60_000 },
      status: 201,
      evidence: async () => (await one<{ n: number }>(`select count(*)::int as n from monitoring.silences`)).n,
      changed: more,
      as: operator,
    });
    // A rule that fires at once (memory in use > 0), so there is an alert to resolve.
    const rule = {
      id: `idem_${run}`,
      name: `Idem ${run}`,
      metric: 'system_memory_used_bytes',
      comparator: '>',
      threshold: 0,
      for_ms: 0,
      severity: 'warning',
    };
    await retried({
      name: 'rules-put',
      method: 'PUT',
      url: '/api/v1/system/alert-rules',
      body: rule,
      other: { ...rule, threshold: 1 },
      status: 200,
      evidence: async () =>
        (
          await one<{ at: Date } | undefined>(`select updated_at as at from monitoring.alert_rules where id = $1`, [
            rule.id,
          ])
        )?.at?.toISOString() ?? null,
      changed: (b, a) => b === null && a !== null,
    });
    const alert = await until(
      'the rule fires',
      async () => {
        const r = await call('GET', '/api/v1/system/alerts?state=firing', undefined);
        return r.body?.alerts?.find((a: { ruleId: string }) => a.ruleId === rule.id);
      },
      15_000,
    );
    await retried({
      name: 'resolve',
      method: 'POST',
      url: `/api/v1/system/alerts/${alert.id}/resolve`,
      body: { reason: 'handled' },
      other: { reason: 'other' },
      status: 200,
      evidence: async () =>
        (await store.readStream(`alert-${alert.id}`)).filter((e) => e.type === 'AlertResolved').length,
      changed: more,
      as: operator,
    });
    await retried({
      name: 'rules-delete',
      method: 'DELETE',
      url: `/api/v1/system/alert-rules?id=${rule.id}`,
      body: undefined,
      other: {},
      status: 200,
      evidence: async () =>
        (
          await one<{ deleted: boolean } | undefined>(
            `select rule is null as deleted from monitoring.alert_rules where id = $1`,
            [rule.id],
          )
        )?.deleted ?? false,
      changed: (b, a) => b === false && a === true,
    });
  });

  it('API keys: created and revoked once; a replayed creation does not show the secret again', async () => {
    const created = await retried({
      name: 'key-create',
      method: 'POST',
      url: '/api/v1/admin/api-keys',
      body: { name: `idem-${run}`, role: 'viewer' },
      other: { name: `idem-${run}`, role: 'operator' },
      status: 201,
      evidence: () => countEvents('ApiKeyCreated'),
      changed: more,
      // Everything but the secret: the first answer showed it, the stored one (so a replay) does not.
      replayedAs: (first) => JSON.stringify({ ...first.body, key: SHOWN_ONCE }),
    });
    assert.match(created.body.key, /^sy_/);
    const stored = await one<{ body: string }>(`select body from gateway.idempotency_keys where key = $1`, [
      `idem-${run}-key-create`,
    ]);
    assert.ok(!stored.body.includes(created.body.key), 'the secret is not in the key table');
    await retried({
      name: 'key-revoke',
      method: 'DELETE',
      url: `/api/v1/admin/api-keys/${created.body.id}`,
      body: undefined,
      other: {},
      status: 200,
      evidence: () => countEvents('ApiKeyRevoked'),
      changed: more,
    });
  });

  it('another route with a used key: 422, nothing done', async () => {
    const key = `idem-${run}-delegate`;
    const before = await countEvents('TaskSubmitted');
    const otherRoute = await call(
      'POST',
      '/api/v1/integration/quick/customer-support',
      { query: 'where is my invoice?' },
      { key, as: operator },
    );
    assert.equal(otherRoute.status, 422, otherRoute.text);
    assert.equal(otherRoute.body.mismatch, 'route');
    assert.equal(await countEvents('TaskSubmitted'), before);
  });

  it('each API key has its own keys: the same key from two API keys runs twice, independently, and each repeat replays its own first answer', async () => {
    // Before, a key one API key had used answered 422 to every other one for 24 h: whether a value
    // was used could be probed, and another client's predictable keys taken ahead of it.
    const key = `idem-${run}-shared`;
    const start = `/api/v1/workflows/start/${definition.id}`;
    const startedBefore = await countEvents('WorkflowStarted');
    const byOperator = await call('POST', start, { query: 'the operator asks' }, { key, as: operator });
    const byAdmin = await call('POST', start, { query: 'the admin asks' }, { key, as: admin });
    assert.equal(byOperator.status, 202, byOperator.text);
    assert.equal(byAdmin.status, 202, byAdmin.text);
    assert.equal(byAdmin.replayed, null, "not the operator's answer");
    assert.notEqual(byAdmin.body.execution_id, byOperator.body.execution_id, 'two executions');
    await until('both started', async () => (await countEvents('WorkflowStarted')) === startedBefore + 2, 10_000);
    // Each its own input: the admin's body did not meet the operator's under the key.
    const inputOf = async (id: string) =>
      ((await store.readAll({ types: ['WorkflowStarted'] })).find(
        (e) => (e.data as { executionId?: string }).executionId === id,
      )?.data ?? {}) as { input?: unknown };
    assert.deepEqual((await inputOf(byOperator.body.execution_id)).input, { query: 'the operator asks' });
    assert.deepEqual((await inputOf(byAdmin.body.execution_id)).input, { query: 'the admin asks' });
    // A repeat by each: its own first answer, and nothing started again.
    const operatorAgain = await call('POST', start, { query: 'the operator asks' }, { key, as: operator });
    const adminAgain = await call('POST', start, { query: 'the admin asks' }, { key, as: admin });
    assert.equal(operatorAgain.replayed, 'true');
    assert.equal(operatorAgain.text, byOperator.text);
    assert.equal(adminAgain.replayed, 'true');
    assert.equal(adminAgain.text, byAdmin.text);
    // Another body from one of them is still that key's mismatch, the other's untouched.
    const adminOther = await call('POST', start, { query: 'something else' }, { key, as: admin });
    assert.equal(adminOther.status, 422, adminOther.text);
    assert.equal(adminOther.body.mismatch, 'body');
    await sleep(300);
    assert.equal(await countEvents('WorkflowStarted'), startedBefore + 2);

    // The same for delegations: two tasks, each repeat its own task id.
    const submittedBefore = await countEvents('TaskSubmitted');
    const delegate = '/api/v1/integration/agents/delegate';
    const t1 = await call('POST', delegate, { task_type: 'noop', context: { who: 'operator' } }, { key, as: operator });
    const t2 = await call(
      'POST',
      delegate,
      { task_type: 'noop', context: { who: 'admin' } },
      { key: `${key}-d`, as: admin },
    );
    const t3 = await call(
      'POST',
      delegate,
      { task_type: 'noop', context: { who: 'admin' } },
      { key: `${key}-d`, as: operator },
    );
    assert.equal(t1.status, 422, 'the operator used the key on another route already');
    assert.equal(t2.status, 202, t2.text);
    assert.equal(t3.status, 202, t3.text);
    assert.equal(t3.replayed, null);
    assert.notEqual(t3.body.task_id, t2.body.task_id, 'two tasks');
    const t2Again = await call(
      'POST',
      delegate,
      { task_type: 'noop', context: { who: 'admin' } },
      { key: `${key}-d`, as: admin },
    );
    const t3Again = await call(
      'POST',
      delegate,
      { task_type: 'noop', context: { who: 'admin' } },
      { key: `${key}-d`, as: operator },
    );
    assert.equal(t2Again.text, t2.text);
    assert.equal(t3Again.text, t3.text);
    assert.equal(t3Again.replayed, 'true');
    await sleep(300);
    assert.equal(await countEvents('TaskSubmitted'), submittedBefore + 2);
  });

  it("once a key's record is gone (expired), another caller's request with it starts its own work, not the first caller's", async () => {
    const key = `idem-${run}-expired-other`;
    const first = await call(
      'POST',
      `/api/v1/workflows/start/${definition.id}`,
      { query: 'first' },
      { key, as: operator },
    );
    assert.equal(first.status, 202, first.text);
    // What the 24 h purge does.
    await pool.query(`delete from gateway.idempotency_keys where key = $1`, [key]);
    const second = await call(
      'POST',
      `/api/v1/workflows/start/${definition.id}`,
      { query: 'second' },
      { key, as: admin },
    );
    assert.equal(second.status, 202, second.text);
    assert.notEqual(second.body.execution_id, first.body.execution_id, 'a new execution, with its own input');
    // The same for a delegation: its own task.
    const dkey = `idem-${run}-expired-task`;
    const t1 = await call(
      'POST',
      '/api/v1/integration/agents/delegate',
      { task_type: 'noop', context: { n: 1 } },
      { key: dkey, as: operator },
    );
    await pool.query(`delete from gateway.idempotency_keys where key = $1`, [dkey]);
    const t2 = await call(
      'POST',
      '/api/v1/integration/agents/delegate',
      { task_type: 'noop', context: { n: 2 } },
      { key: dkey, as: admin },
    );
    assert.equal(t1.status, t2.status, t2.text);
    assert.notEqual(t2.body.task_id, t1.body.task_id);
  });

  it('a malformed key: 400 naming the header', async () => {
    for (const bad of ['x'.repeat(256), 'has space', 'quote"d']) {
      const r = await call(
        'POST',
        '/api/v1/integration/agents/delegate',
        { task_type: 'noop', context: {} },
        { key: bad, as: operator },
      );
      assert.equal(r.status, 400, `${bad.slice(0, 20)}: ${r.text}`);
      assert.equal(r.body.errors[0].path, 'idempotency-key');
      assert.equal(r.body.errors[0].in, 'headers');
    }
  });

  it('a refused body (400) does not bind the key: the corrected request goes through with it', async () => {
    const key = `idem-${run}-fixed`;
    const bad = await call(
      'POST',
      '/api/v1/integration/agents/delegate',
      { task_type: 'noop', context: {}, priority: 'urgent' },
      { key, as: operator },
    );
    assert.equal(bad.status, 400, bad.text);
    const good = await call(
      'POST',
      '/api/v1/integration/agents/delegate',
      { task_type: 'noop', context: {} },
      { key, as: operator },
    );
    assert.equal(good.status, 202, good.text);
    assert.equal(good.replayed, null);
  });

  it('a key still in flight: 409 (no waiting), then the first answer', async () => {
    const key = `idem-${run}-inflight`;
    const body = { task_type: 'noop', context: { sleep_ms: 1_500 } };
    const first = call('POST', '/api/v1/integration/agents/delegate?wait=true', body, { key, as: operator });
    await sleep(300);
    const during = await call('POST', '/api/v1/integration/agents/delegate?wait=true', body, { key, as: operator });
    assert.equal(during.status, 409, during.text);
    assert.equal(during.body.in_flight, true);
    const done = await first;
    assert.equal(done.status, 200, done.text);
    const later = await call('POST', '/api/v1/integration/agents/delegate?wait=true', body, { key, as: operator });
    assert.equal(later.status, 200);
    assert.equal(later.text, done.text);
    assert.equal(later.replayed, 'true');
  });

  it('keys survive a gateway restart (the answers are in PostgreSQL)', async () => {
    const key = `idem-${run}-delegate`;
    const body = { task_type: 'noop', context: { echo: 1 } };
    const beforeRestart = await call('POST', '/api/v1/integration/agents/delegate', body, { key, as: operator });
    assert.equal(beforeRestart.replayed, 'true');
    const submitted = await countEvents('TaskSubmitted');
    await gw.close();
    const started = await startGateway();
    gw = started.g;
    base = started.url;
    const afterRestart = await call('POST', '/api/v1/integration/agents/delegate', body, { key, as: operator });
    assert.equal(afterRestart.status, beforeRestart.status);
    assert.equal(afterRestart.text, beforeRestart.text);
    assert.equal(afterRestart.replayed, 'true');
    assert.equal(await countEvents('TaskSubmitted'), submitted);
  });

  it('a request that timed out (504) is answered on retry with what its handler did, not run again', async () => {
    // A gateway whose request timeout (400 ms) is shorter than the work: an MCP fetch of a
    // receiver that answers after 1.5 s.
    const short = await startGateway(400);
    const key = `idem-${run}-timedout`;
    const body = { url: slowUrl };
    const send = async () => {
      const res = await fetch(`${short.url}/api/v1/integration/mcp/fetch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
      return { status: res.status, text: await res.text(), replayed: res.headers.get('idempotent-replayed') };
    };
    try {
      const hitsBefore = slowHits;
      const first = await send();
      assert.equal(first.status, 504, first.text);
      // The handler still runs: a retry now is told so (409), not run again.
      const during = await send();
      assert.equal(during.status, 409, during.text);
      const answer = await until(
        'the handler answered',
        async () => {
          const r = await send();
          return r.status === 409 ? undefined : r;
        },
        15_000,
      );
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.replayed, 'true');
      assert.match(answer.text, /late answer/);
      assert.equal(slowHits, hitsBefore + 1, 'the receiver was called once');
    } finally {
      await short.g.close();
    }
  });

  it('a claim that outlasts the request timeout (the key table locked) runs nothing and frees the key: a retry runs once, not a 504 replayed for a day', async () => {
    const short = await startGateway(400);
    const key = `idem-${run}-late-claim`;
    const send = async () => {
      const res = await fetch(`${short.url}/api/v1/integration/agents/delegate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ task_type: 'noop', context: { late: true } }),
      });
      return { status: res.status, text: await res.text(), replayed: res.headers.get('idempotent-replayed') };
    };
    const locker = await pool.connect();
    try {
      const submitted = await countEvents('TaskSubmitted');
      // The claim waits for the lock past the gateway's 400 ms.
      await locker.query('begin');
      await locker.query('lock table gateway.idempotency_keys in access exclusive mode');
      const first = await send();
      assert.equal(first.status, 504, first.text);
      await locker.query('commit');
      await until(
        'the late claim freed its key',
        async () =>
          ((await pool.query(`select 1 from gateway.idempotency_keys where key = $1`, [key])).rowCount ?? 0) === 0
            ? true
            : undefined,
        10_000,
      );
      assert.equal(await countEvents('TaskSubmitted'), submitted, 'nothing ran for the answered request');
      const retry = await send();
      assert.equal(retry.status, 202, retry.text);
      assert.equal(retry.replayed, null, 'run, not replayed');
      const again = await send();
      assert.equal(again.status, 202, again.text);
      assert.equal(again.replayed, 'true');
      assert.equal(await countEvents('TaskSubmitted'), submitted + 1);
    } finally {
      await locker.query('rollback').catch(() => undefined);
      locker.release();
      await short.g.close();
    }
  });

  it('a refusal to try again later (429) does not bind the key: the same request with it goes through once there is room', async () => {
    const narrow = (key?: string) =>
      call(
        'POST',
        '/api/v1/integration/mcp/call',
        { server: 'fetch_narrow', tool: 'http_request', arguments: { url: slowUrl } },
        { ...(key ? { key } : {}), as: operator },
      );
    const key = `idem-${run}-busy`;
    const holding = narrow(); // takes the one slot for 1.5 s
    await sleep(200);
    const refused = await narrow(key);
    assert.equal(refused.status, 429, refused.text);
    assert.equal((await holding).status, 200);
    const hitsBefore = slowHits;
    const accepted = await narrow(key);
    assert.equal(accepted.status, 200, accepted.text);
    assert.equal(accepted.replayed, null, 'run, not a replay of the refusal');
    const again = await narrow(key);
    assert.equal(again.status, 200);
    assert.equal(again.replayed, 'true', 'the answer that ran is what the key keeps');
    assert.equal(slowHits, hitsBefore + 1, 'the receiver was called once under the key');
  });

  it('an answer over 64 KiB is not kept: a repeat is told it was handled (409, its status), and runs nothing', async () => {
    const key = `idem-${run}-big`;
    const body = { url: slowUrl.replace(/\/slow$/, '/big') };
    const before = bigHits;
    const first = await call('POST', '/api/v1/integration/mcp/fetch', body, { key, as: operator });
    assert.equal(first.status, 200, first.text.slice(0, 300));
    assert.ok(first.text.length > 64 * 1024, `a large answer (${first.text.length} bytes)`);
    const kept = await one<{ content_type: string; body: string }>(
      'select content_type, body from gateway.idempotency_keys where key = $1',
      [key],
    );
    assert.equal(kept.content_type, 'application/x-switchyard-answer-not-kept');
    assert.equal(Number(kept.body), Buffer.byteLength(first.text), 'its size is all that is kept');
    const again = await call('POST', '/api/v1/integration/mcp/fetch', body, { key, as: operator });
    assert.equal(again.status, 409, again.text);
    assert.equal(again.body.code, 'idempotent_answer_not_kept');
    assert.equal(again.body.first_status, 200);
    assert.equal(again.replayed, 'true');
    assert.equal(bigHits, before + 1, 'the page was fetched once');
  });

  it('a long query string is kept as its start and a hash (a padded number made 3.8 KB rows), and still tells requests apart', async () => {
    const key = `idem-${run}-padded`;
    const padded = `/api/v1/workflows/start/no_such_template?wait_ms=${'0'.repeat(8_000)}1`;
    const first = await call('POST', padded, {}, { key, as: operator });
    assert.equal(first.status, 404, first.text.slice(0, 300));
    const row = await one<{ path: string }>('select path from gateway.idempotency_keys where key = $1', [key]);
    assert.ok(row.path.length < 600, `${row.path.length} characters kept`);
    assert.match(row.path, /#sha256:[0-9a-f]{64}$/);
    const again = await call('POST', padded, {}, { key, as: operator });
    assert.equal(again.status, 404);
    assert.equal(again.replayed, 'true');
    const other = await call('POST', padded.replace(/1$/, '2'), {}, { key, as: operator });
    assert.equal(other.status, 422, 'another query under the key is another request');
  });

  it('a query route keeps nothing under a key (definitions/validate: a viewer could fill the disk with its echoes)', async () => {
    const key = `idem-${run}-validate`;
    const r = await call(
      'POST',
      '/api/v1/workflows/definitions/validate',
      { id: 'v', version: 1, name: 'v', steps: [{ id: 's', uses: 'mcp:analytics/record_metric', with: {} }] },
      { key },
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.replayed, null);
    const n = await one<{ n: number }>('select count(*)::int as n from gateway.idempotency_keys where key = $1', [key]);
    assert.equal(n.n, 0);
  });

  it('the OpenAPI document declares the header on every command route', async () => {
    const doc = (await call('GET', '/docs/openapi.json', undefined)).body as {
      paths: Record<
        string,
        Record<string, { parameters?: { name: string; in: string }[]; responses: Record<string, unknown> }>
      >;
    };
    const commands = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.entries(ops)
        .filter(([m]) => ['post', 'put', 'patch', 'delete'].includes(m))
        .map(([m, op]) => ({ where: `${m} ${p}`, op })),
    );
    assert.ok(commands.length >= 20, `${commands.length} command routes`);
    // A query posted (its body is the question) takes no key.
    const validate = commands.find((c) => c.where === 'post /api/v1/workflows/definitions/validate');
    assert.ok(validate && !validate.op.parameters?.some((p) => p.name === 'idempotency-key'), 'validate takes no key');
    for (const { where, op } of commands.filter((c) => c !== validate)) {
      assert.ok(
        op.parameters?.some((p) => p.name === 'idempotency-key' && p.in === 'header'),
        `${where} lacks the header`,
      );
      assert.ok(op.responses['422'] && op.responses['409'], `${where} lacks 409/422`);
    }
  });

  it('expired keys are purged and can be used again', async () => {
    const short = new IdempotencyStore(
      pool,
      logger,
      resolveIdempotencyOptions({ ttlMs: 200, purgeIntervalMs: 3_600_000 }),
    );
    const req = { key: `idem-${run}-expiring`, owner: 'test', fingerprint: 'f1', method: 'POST', path: '/x' };
    const claim = await short.claim(req);
    assert.equal(claim.kind, 'claimed');
    if (claim.kind !== 'claimed') return;
    await short.complete(
      { key: req.key, owner: req.owner, token: claim.token },
      { status: 202, contentType: 'application/json', body: '{}' },
    );
    assert.equal((await short.claim(req)).kind, 'replay');
    await sleep(400);
    assert.ok((await short.purge()) >= 1);
    assert.equal(await one(`select 1 from gateway.idempotency_keys where key = $1`, [req.key]), undefined);
    assert.equal((await short.claim({ ...req, fingerprint: 'f2' })).kind, 'claimed');
    short.close();
  });
});

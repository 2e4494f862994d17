/**
 * What a viewer reads of a failure, through a real gateway (auth on) on PostgreSQL with the demo
 * data, a nats-server of this suite's own, the dispatcher and the agents, the workflow engine and
 * the database MCP server behind the connectors. An operator sends work that fails on a value the
 * viewer may not see (a task's context, a step's SQL); the viewer reads the failure wherever it is
 * shown (the task, the event log and its live stream, A2A `tasks/get`, the execution) and finds
 * which error it was, not the value.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { loadDemoData, startAgents, type AgentsHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { startWorkflowEngine, type WorkflowEngine } from '@switchyard/workflows';
import { parseServerConfig, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { runMcpServer, type RunningMcpServer } from '@switchyard/mcp-servers';
import { mcpEventMetadata, mcpServerStreamId } from '@switchyard/contracts';
import { createGateway, REDACTED_PAYLOAD, type Gateway } from '../index.js';
import { AgentsFeatureModule } from '../features/agents/index.js';
import { McpFeatureModule } from '../features/mcp/index.js';
import { WorkflowsFeatureModule } from '../features/workflows/index.js';
import { A2aFeatureModule } from '../features/a2a/index.js';

const logger = createLogger('viewer-errors-int', process.env.LOG_LEVEL ?? 'silent');

describe('a viewer reads which error work had, not the values it failed on', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let engine: WorkflowEngine;
  let database: RunningMcpServer;
  let connectors: RunningConnectors;
  let gw: Gateway;
  let base: string;
  let admin = '';
  let operator: string;
  let viewer: string;

  const call = async (method: string, url: string, key: string, body?: unknown) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : undefined };
  };
  /** The live event stream as `key` reads it from the start, until `done` holds of what came (or 15 s). */
  const sse = async (key: string, query: string, done: (text: string) => boolean): Promise<string> => {
    const ac = new AbortController();
    const res = await fetch(`${base}/api/v1/events/stream?after=-1&${query}`, {
      headers: { authorization: `Bearer ${key}` },
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const timer = setTimeout(() => ac.abort(), 15_000);
    try {
      while (!done(text)) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      // aborted at the time limit: the assertions say what was missing
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    return text;
  };
  const failedTask = async (taskId: string) =>
    until(
      `task ${taskId} failed`,
      async () => {
        const r = await call('GET', `/api/v1/integration/agents/tasks/${taskId}`, operator);
        return r.body?.status === 'failed' ? r.body : undefined;
      },
      20_000,
    );

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'viewer-errors-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'viewer-errors-test', logger });
    const databaseUrl = await freshDatabase('viewer_errors');
    pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
    await loadDemoData(pool);
    store = new PostgresEventStore({ pool });
    await store.init();
    agents = await startAgents({ nats: nc, pool, logger, http: false, instancePrefix: 'verr' });
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
    database = await runMcpServer('database', {
      port: await freePort(),
      logger,
      env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent', MCP_AUTH_DISABLED: 'true' },
    });
    connectors = await startConnectors({
      nats: nc,
      logger,
      // As the launcher wires it: every call's events to the store (McpToolFailed with its error text).
      onEvent: (e) => {
        const m = mcpEventMetadata(e);
        void store.append(mcpServerStreamId(e.data.server), [
          {
            type: e.type,
            data: e.data,
            metadata: { correlationId: m.correlationId ?? 'none', actor: m.actor, timestamp: new Date().toISOString() },
          },
        ]);
      },
      registry: [
        parseServerConfig({
          name: 'database',
          role: 'database',
          transport: { kind: 'http', url: database.url! },
          timeouts: { connect_ms: 5_000, call_ms: 5_000 },
          retry: { max_attempts: 1, initial_delay_ms: 50, max_delay_ms: 100 },
        }),
      ],
    });
    gw = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      {
        modules: [AgentsFeatureModule, WorkflowsFeatureModule, McpFeatureModule, A2aFeatureModule],
        auth: { enabled: true, printAdminKey: (k: string) => void (admin = k) },
      },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
    operator = (await call('POST', '/api/v1/admin/api-keys', admin, { name: 'verr-operator', role: 'operator' })).body
      .key;
    viewer = (await call('POST', '/api/v1/admin/api-keys', admin, { name: 'verr-viewer', role: 'viewer' })).body.key;
    await until(
      'the content creator known and the database server up',
      async () => {
        const caps = await call('GET', '/api/v1/integration/agents/capabilities', admin);
        const mcp = await call('GET', '/api/v1/integration/mcp/health', admin);
        return (
          caps.body?.task_types?.includes('generate_proposal') &&
          mcp.body?.servers?.some((s: { server: string; state: string }) => s.state === 'up')
        );
      },
      20_000,
    );
  });

  after(async () => {
    await gw?.close();
    await connectors?.stop();
    await database?.close();
    await engine?.stop();
    await dispatcher?.stop();
    await agents?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it("a failed task: the task view, its events and the live stream keep the code and the wording, not the context's value", async () => {
    const sent = await call('POST', '/api/v1/integration/agents/delegate', operator, {
      task_type: 'generate_proposal',
      context: { customerId: 987654321 },
    });
    assert.equal(sent.status, 202, sent.text);
    const taskId = String(sent.body.task_id);
    const asOperator = await failedTask(taskId);
    // The operator reads the value where it belongs: in the details, not in the message.
    assert.equal(asOperator.error.code, 'not_found');
    assert.equal(asOperator.error.details.customerId, 987654321);
    assert.doesNotMatch(asOperator.error.message, /987654321/);

    const task = await call('GET', `/api/v1/integration/agents/tasks/${taskId}`, viewer);
    assert.equal(task.status, 200, task.text);
    assert.doesNotMatch(task.text, /987654321/);
    assert.equal(task.body.error.code, 'not_found');
    assert.match(task.body.error.message, /customer.*not found/);
    assert.equal(task.body.error.details.customerId, REDACTED_PAYLOAD);

    const events = await call('GET', `/api/v1/events?stream=task-${taskId}`, viewer);
    assert.equal(events.status, 200, events.text);
    const failed = events.body.events.find((e: { type: string }) => e.type === 'TaskFailed');
    assert.ok(failed, events.text);
    assert.equal(failed.data.error.code, 'not_found');
    assert.equal(failed.data.error.details.customerId, REDACTED_PAYLOAD);
    assert.doesNotMatch(events.text, /987654321/);

    const live = await sse(viewer, `stream_prefix=task-${taskId}`, (t) => t.includes('TaskFailed'));
    assert.match(live, /TaskFailed/);
    assert.doesNotMatch(live, /987654321/);
    // The same stream as the operator carries the value: the masking is the viewer's.
    const liveOperator = await sse(operator, `stream_prefix=task-${taskId}`, (t) => t.includes('TaskFailed'));
    assert.match(liveOperator, /987654321/);
  });

  it("an A2A task that failed: tasks/get as a viewer says which error, not the context's value", async () => {
    const rpc = async (body: unknown, key: string) => {
      const res = await fetch(`${base}/a2a/content_creator`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, text, body: JSON.parse(text) };
    };
    const sent = await rpc(
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'message/send',
        params: {
          configuration: { blocking: true },
          message: {
            kind: 'message',
            role: 'user',
            messageId: 'verr-1',
            parts: [{ kind: 'data', data: { task_type: 'generate_proposal', input: { customerId: 987654322 } } }],
          },
        },
      },
      operator,
    );
    assert.equal(sent.status, 200, sent.text);
    const id = String(sent.body.result.id);
    const read = await until(
      'the A2A task failed',
      async () => {
        const r = await rpc({ jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { id } }, viewer);
        return r.body.result?.status?.state === 'failed' ? r : undefined;
      },
      20_000,
    );
    assert.doesNotMatch(read.text, /987654322/);
    const parts = read.body.result.status.message.parts as { kind: string; text?: string; data?: any }[];
    const text = parts.find((p) => p.kind === 'text')?.text ?? '';
    assert.match(text, /^not_found/);
    const data = parts.find((p) => p.kind === 'data')?.data;
    assert.equal(data.error.code, 'not_found');
    assert.match(data.error.message, /customer.*not found/);
    if (data.error.details) assert.equal(data.error.details.customerId, REDACTED_PAYLOAD);
  });

  it('a failed SQL call and a failed SQL step: the events and the execution say which error, not the identifier the SQL named', async () => {
    const direct = await call('POST', '/api/v1/integration/mcp/database/query', operator, {
      query: 'select 1 from business.customers c where c.markerdirect_col = 1',
    });
    assert.ok(direct.status >= 400 && direct.status < 500, direct.text);
    const run = await call('POST', '/api/v1/integration/agents/workflow', operator, {
      definition: {
        id: 'verr_sql',
        steps: [
          {
            id: 'q',
            uses: 'mcp:database/query',
            with: { sql: 'select 1 from business.customers c where c.markerstep_col = 1' },
          },
        ],
      },
      input: {},
    });
    assert.equal(run.status, 202, run.text);
    const executionId = String(run.body.execution_id);
    await until(
      'the execution failed',
      async () =>
        (await call('GET', `/api/v1/workflows/executions/${executionId}`, operator)).body?.status === 'failed',
      20_000,
    );
    const asOperator = await call('GET', `/api/v1/workflows/executions/${executionId}`, operator);
    assert.match(asOperator.text, /markerstep_col/, `the operator reads the whole error: ${asOperator.text}`);

    const detail = await call('GET', `/api/v1/workflows/executions/${executionId}`, viewer);
    assert.equal(detail.status, 200, detail.text);
    assert.doesNotMatch(detail.text, /marker/);
    assert.match(
      detail.text,
      /does not exist/,
      `the viewer still reads what kind of failure it was (the operator: ${asOperator.text})`,
    );
    for (const url of [
      `/api/v1/workflows/executions/${executionId}/events`,
      `/api/v1/workflows/executions/${executionId}/history`,
    ]) {
      const r = await call('GET', url, viewer);
      assert.equal(r.status, 200, `${url}: ${r.text}`);
      assert.doesNotMatch(r.text, /marker/, url);
    }
    const failures = await until(
      'both failures recorded',
      async () => {
        const r = await call('GET', '/api/v1/events?type=McpToolFailed', viewer);
        return r.body.events.length >= 2 ? r : undefined;
      },
      10_000,
    );
    assert.doesNotMatch(failures.text, /marker/);
    assert.ok(
      failures.body.events.every((e: any) => /column … does not exist/.test(String(e.data.error_message))),
      failures.text,
    );
    const live = await sse(viewer, 'type=McpToolFailed', (t) => (t.match(/McpToolFailed/g) ?? []).length >= 2);
    assert.match(live, /McpToolFailed/);
    assert.doesNotMatch(live, /marker/);
  });
});

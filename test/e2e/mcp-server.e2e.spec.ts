/**
 * The gateway as an MCP server, end to end: one launcher (its own PostgreSQL and nats-server, MCP
 * servers, connectors, agents, dispatcher, workflow engine, gateway with auth) plus two upstream
 * servers added through MCP_SERVERS_FILE: the official server-everything over stdio
 * (`everything`) and another server-everything over Streamable HTTP (`flaky`) that this spec
 * starts and kills. Driven by the official SDK Client (Streamable HTTP and legacy SSE), the
 * official Inspector CLI, and plain fetch for the HTTP-level answers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { REDACTED_PAYLOAD } from '@switchyard/gateway';
import { freePort } from '@switchyard/platform';
import { newAdminKey, Proc, root, sleep, systemEnv, waitReady } from './launcher.js';
import { gatewayRequest } from './support.js';
import { scratchDataDir } from '@switchyard/testing';

const run = promisify(execFile);
const adminKey = newAdminKey();
const admin = { authorization: `Bearer ${adminKey}` };
const everythingBin = path.join(root, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const inspectorBin = path.join(
  root,
  'node_modules',
  '@modelcontextprotocol',
  'inspector',
  'clients',
  'launcher',
  'build',
  'index.js',
);

/** server-everything in its Streamable HTTP mode on `port` (path /mcp). */
async function startEverythingHttp(port: number): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [everythingBin, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(
      () => reject(new Error(`server-everything HTTP did not start: ${err.slice(-300)}`)),
      20_000,
    );
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on port')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`server-everything HTTP exited with ${code}: ${err.slice(-300)}`)));
  });
  return proc;
}

async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  return assert.fail(`${what}: not within ${ms} ms ${last ? String(last) : ''}`);
}

describe('the gateway as an MCP server (/mcp)', () => {
  let sys: Proc;
  let base: string;
  let dataDir: string;
  let flaky: ChildProcess | undefined;
  let operatorKey: string;
  let viewerKey: string;
  const clients: Client[] = [];

  const request = (method: string, url: string, body?: unknown, headers: Record<string, string> = admin) =>
    gatewayRequest(base, headers, method, url, body);
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  async function connect(key: string, opts: { path?: string; sse?: boolean } = {}): Promise<Client> {
    const client = new Client({ name: 'e2e', version: '1.0.0' });
    const url = new URL(`${base}${opts.path ?? '/mcp'}${opts.sse ? '/sse' : ''}`);
    const headers = bearer(key);
    const transport = opts.sse
      ? new SSEClientTransport(url, {
          requestInit: { headers },
          eventSourceInit: {
            fetch: (u, init) =>
              fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }),
          },
        })
      : new StreamableHTTPClientTransport(url, { requestInit: { headers } });
    await client.connect(transport);
    clients.push(client);
    return client;
  }
  const makeKey = async (role: string) => {
    const r = await request('POST', '/api/v1/admin/api-keys', { name: `mcp-${role}`, role });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.key as string;
  };
  const textOf = (r: Record<string, unknown>) =>
    ((r.content as { type: string; text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('\n');

  before(async () => {
    dataDir = scratchDataDir('e2e-mcp-server-');
    const flakyPort = await freePort();
    flaky = await startEverythingHttp(flakyPort);
    const fast = {
      retry: { max_attempts: 1 },
      breaker: { consecutive_failures: 2, half_open_after_ms: 120_000 },
      timeouts: { connect_ms: 5_000, call_ms: 8_000 },
    };
    const serversFile = path.join(dataDir, 'mcp-servers.json');
    writeFileSync(
      serversFile,
      JSON.stringify([
        {
          name: 'everything',
          role: 'other',
          transport: { kind: 'stdio', command: process.execPath, args: [everythingBin] },
        },
        {
          name: 'flaky',
          role: 'other',
          transport: { kind: 'http', url: `http://127.0.0.1:${flakyPort}/mcp` },
          ...fast,
        },
      ]),
    );
    const port = await freePort();
    const env = await systemEnv(dataDir, adminKey, {
      GATEWAY_PORT: String(port),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_NATS_PORT: String(await freePort()),
      RATE_LIMIT_ENABLED: 'false',
      MCP_SERVERS_FILE: serversFile,
      MCP_SERVER_CATALOG_REFRESH_MS: '1000',
    });
    sys = new Proc('system', [], env);
    sys.start();
    await sys.waitUp(150_000);
    base = `http://127.0.0.1:${port}`;
    await waitReady(base, sys);
    operatorKey = await makeKey('operator');
    viewerKey = await makeKey('viewer');
    // Both added servers connected (stdio spawns take a moment).
    await until('everything and flaky up', 60_000, async () => {
      const h = await request('GET', '/api/v1/integration/mcp/health');
      const up = (n: string) =>
        h.body.servers?.find((s: { server: string; state: string }) => s.server === n)?.state === 'up';
      return up('everything') && up('flaky');
    });
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    flaky?.kill('SIGKILL');
    await sys?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('Streamable HTTP: tools of every kind, echo, resources, templates, prompts', async () => {
    const c = await connect(operatorKey);
    const { tools } = await c.listTools();
    const names = tools.map((t) => t.name);
    for (const n of [
      'everything__echo',
      'everything__get-sum',
      'flaky__echo',
      'workflow__revenue_analysis',
      'workflow__customer_onboarding',
      'agent__revenue_analysis',
      'database__query',
    ]) {
      assert.ok(names.includes(n), `${n} listed: ${names.join(', ')}`);
    }
    // The writer server is the REST route's policy too: admin and DATABASE_ALLOW_WRITES (off here).
    assert.ok(!names.includes('database_writer__query'), 'the writer is not offered');
    await assert.rejects(
      c.callTool({ name: 'database_writer__query', arguments: { query: 'select 1' } }),
      /forbidden.*DATABASE_ALLOW_WRITES|admin role/,
    );
    const echo = tools.find((t) => t.name === 'everything__echo')!;
    assert.equal(echo.inputSchema.type, 'object');
    assert.ok((echo.inputSchema.properties as Record<string, unknown>).message, 'the upstream schema passes through');
    assert.ok(echo.description && echo.description.length > 0);
    const wf = tools.find((t) => t.name === 'workflow__revenue_analysis')!;
    assert.ok((wf.inputSchema.properties as Record<string, unknown>).timeframe, 'the definition input schema');

    const r = await c.callTool({ name: 'everything__echo', arguments: { message: 'hello through switchyard' } });
    assert.ok(!r.isError, JSON.stringify(r));
    assert.match(textOf(r), /hello through switchyard/);

    const { resources } = await c.listResources();
    assert.ok(resources.some((x) => x.uri === 'switchyard://system/status'));
    const { resourceTemplates } = await c.listResourceTemplates();
    assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate).sort(), [
      'switchyard://executions/{id}',
      'switchyard://executions/{id}/history',
      'switchyard://reports/{name}',
    ]);
    const status = await c.readResource({ uri: 'switchyard://system/status' });
    assert.ok(
      ['healthy', 'degraded', 'unhealthy'].includes(JSON.parse((status.contents[0] as { text: string }).text).status),
    );
    const health = await c.readResource({ uri: 'switchyard://system/health-report' });
    assert.ok(JSON.parse((health.contents[0] as { text: string }).text).status);

    const { prompts } = await c.listPrompts();
    assert.ok(
      prompts.some((p) => p.name === 'everything__simple-prompt'),
      prompts.map((p) => p.name).join(', '),
    );
    const got = await c.getPrompt({ name: 'everything__simple-prompt', arguments: {} });
    assert.ok(got.messages.length > 0);
  });

  it('legacy SSE transport: list, call, resources, prompts', async () => {
    const c = await connect(operatorKey, { sse: true });
    const { tools } = await c.listTools();
    assert.ok(tools.some((t) => t.name === 'everything__echo'));
    const r = await c.callTool({ name: 'everything__echo', arguments: { message: 'over sse' } });
    assert.match(textOf(r), /over sse/);
    const { resources } = await c.listResources();
    assert.ok(resources.some((x) => x.uri === 'switchyard://system/health-report'));
    const { prompts } = await c.listPrompts();
    assert.ok(prompts.length > 0);
  });

  it('a workflow tool runs with progress per step, its execution readable as a resource; wait=false answers the id', async () => {
    const c = await connect(operatorKey);
    const progress: string[] = [];
    const r = await c.callTool(
      { name: 'workflow__revenue_analysis', arguments: { timeframe: '30d', include_forecasts: false } },
      undefined,
      { onprogress: (p) => void progress.push(String(p.message)), timeout: 120_000 },
    );
    assert.ok(!r.isError, textOf(r));
    const out = r.structuredContent as { status: string; execution_id: string };
    assert.equal(out.status, 'completed');
    assert.ok(
      progress.some((m) => / succeeded$/.test(m)),
      `progress per step: ${progress.join(' | ')}`,
    );
    const exec = JSON.parse(
      ((await c.readResource({ uri: `switchyard://executions/${out.execution_id}` })).contents[0] as { text: string })
        .text,
    );
    assert.equal(exec.status, 'completed');
    assert.ok(exec.steps.length > 0);
    const readHistory = async (uri: string) =>
      JSON.parse(((await c.readResource({ uri })).contents[0] as { text: string }).text);
    const historyPage = await readHistory(`switchyard://executions/${out.execution_id}/history`);
    const history = historyPage.events;
    assert.equal(history[0].type, 'WorkflowStarted');
    // One page holds this short run whole; `?after=` reads the rest after a revision.
    assert.equal(historyPage.next, null);
    assert.equal(historyPage.last_revision, history.at(-1).revision);
    const rest = await readHistory(`switchyard://executions/${out.execution_id}/history?after=1`);
    assert.deepEqual(
      rest.events.map((e: { revision: number }) => e.revision),
      history.slice(2).map((e: { revision: number }) => e.revision),
    );

    // The report the run wrote (the sandbox's reports/ folder, a file of the execution's own, named
    // by its report_file output) is a resource: listed, readable by an operator (its text is the
    // run's), refused to a viewer, and a missing one is an error.
    assert.match(
      exec.output.report_file,
      new RegExp(`^\\./reports/revenue-analysis-[0-9T.]+Z-${out.execution_id}\\.md$`),
    );
    const reportUri = `switchyard://reports/${path.basename(exec.output.report_file)}`;
    assert.ok(
      (await c.listResources()).resources.some((x) => x.uri === reportUri),
      'the report is listed',
    );
    assert.ok(
      (await c.listResourceTemplates()).resourceTemplates.some((t) => t.uriTemplate === 'switchyard://reports/{name}'),
    );
    const report = (await c.readResource({ uri: reportUri })).contents[0] as { text: string; mimeType: string };
    assert.equal(report.mimeType, 'text/markdown');
    assert.match(report.text, /^# Revenue analysis: last 30d/);
    const analyzed = exec.steps.find((x: { step_id: string }) => x.step_id === 'analyze');
    assert.ok(report.text.includes(`| Orders | ${analyzed.output.orderCount} |`), report.text.slice(0, 400));
    await assert.rejects(c.readResource({ uri: 'switchyard://reports/no-such-report.md' }), /no such report/);
    await assert.rejects(c.readResource({ uri: 'switchyard://reports/../secrets' }), /unknown resource/);
    const viewer = await connect(viewerKey);
    await assert.rejects(viewer.readResource({ uri: reportUri }), /403|forbidden|operator/i);

    // A viewer reads the execution and its history for what happened, with the data redacted
    // (as on the REST routes): no input, no step output, no event payload.
    const readJson = async (uri: string) =>
      JSON.parse(((await viewer.readResource({ uri })).contents[0] as { text: string }).text);
    const seen = await readJson(`switchyard://executions/${out.execution_id}`);
    assert.equal(seen.status, 'completed');
    assert.deepEqual(
      seen.steps.map((x: { step_id: string; status: string }) => [x.step_id, x.status]),
      exec.steps.map((x: { step_id: string; status: string }) => [x.step_id, x.status]),
    );
    assert.equal(seen.input, REDACTED_PAYLOAD);
    assert.ok(exec.steps.some((x: { output: unknown }) => x.output !== null && x.output !== REDACTED_PAYLOAD));
    assert.ok(
      seen.steps.every((x: { output: unknown }) => x.output === null || x.output === REDACTED_PAYLOAD),
      JSON.stringify(seen.steps).slice(0, 400),
    );
    const seenHistory: { type: string; data: Record<string, unknown> }[] = (
      await readJson(`switchyard://executions/${out.execution_id}/history`)
    ).events;
    assert.equal(seenHistory.length, history.length);
    assert.equal(seenHistory[0]!.data.input, REDACTED_PAYLOAD);
    const succeeded = seenHistory.filter((e) => e.type === 'StepSucceeded');
    assert.ok(succeeded.length > 0 && succeeded.every((e) => e.data.output === REDACTED_PAYLOAD));
    assert.notEqual(history.find((e: { type: string }) => e.type === 'StepSucceeded').data.output, REDACTED_PAYLOAD);
    // The REST list says the same to a viewer (its detail is redacted as above); an operator reads it whole.
    const rowIn = async (key: string) => {
      const listed = await request('GET', '/api/v1/workflows/executions?limit=100', undefined, bearer(key));
      assert.equal(listed.status, 200);
      return (listed.body as { items: { execution_id: string; input: unknown; output: unknown }[] }).items.find(
        (x) => x.execution_id === out.execution_id,
      )!;
    };
    const asViewer = await rowIn(viewerKey);
    assert.deepEqual([asViewer.input, asViewer.output], [REDACTED_PAYLOAD, REDACTED_PAYLOAD]);
    const asOperator = await rowIn(operatorKey);
    assert.deepEqual(asOperator.input, exec.input);
    assert.deepEqual(asOperator.output, exec.output);
    assert.notEqual(asOperator.output, REDACTED_PAYLOAD);

    // A large execution's detail is not one JSON text here: its steps and statuses without the
    // payloads, and where to read them (streamed at the REST route, paged as history).
    // 700 KB of input, in the start and again in the step's input: its events are over 1 MiB of JSON.
    const blob = randomBytes(525_000).toString('base64');
    const big = await request('POST', '/api/v1/integration/agents/workflow?wait=true', {
      definition: {
        id: 'e2e_large',
        version: 1,
        name: 'large input',
        input: { type: 'object', properties: { blob: { type: 'string' } } },
        steps: [
          {
            id: 'q',
            uses: 'mcp:database/query',
            with: { sql: 'select length($1::text) as n', params: ['${{ input.blob }}'] },
          },
        ],
      },
      input: { blob },
    });
    assert.equal(big.status, 200, JSON.stringify(big.body).slice(0, 300));
    const bigId = big.body.execution_id as string;
    const large = JSON.parse(
      ((await c.readResource({ uri: `switchyard://executions/${bigId}` })).contents[0] as { text: string }).text,
    );
    assert.equal(large.status, 'completed');
    assert.deepEqual(
      large.steps.map((x: { step_id: string; status: string }) => [x.step_id, x.status]),
      [['q', 'succeeded']],
    );
    assert.equal(large.input, REDACTED_PAYLOAD, 'the input is not in it');
    assert.match(large.payloads_omitted, new RegExp(`GET /api/v1/workflows/executions/${bigId}`));
    const whole = await request('GET', `/api/v1/workflows/executions/${bigId}`, undefined, bearer(operatorKey));
    assert.equal(whole.body.input.blob, blob, 'the REST route has it');

    // wait=false: the id at once; a subscription to it hears each step.
    const updates: string[] = [];
    c.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    const quick = await c.callTool({
      name: 'workflow__revenue_analysis',
      arguments: { timeframe: '30d', wait: false },
    });
    const id = (quick.structuredContent as { execution_id: string; status: string }).execution_id;
    assert.equal((quick.structuredContent as { status: string }).status, 'running');
    await c.subscribeResource({ uri: `switchyard://executions/${id}` });
    await until(
      'resources/updated for the execution',
      60_000,
      async () => updates.filter((u) => u === `switchyard://executions/${id}`).length >= 2,
    );
  });

  it('an agent tool delegates and waits for the result', async () => {
    const c = await connect(operatorKey);
    const r = await c.callTool({ name: 'agent__revenue_analysis', arguments: { timeframe: '30d' } }, undefined, {
      timeout: 120_000,
    });
    assert.ok(!r.isError, textOf(r));
    const out = r.structuredContent as { status: string; task_id: string; agent: string };
    assert.equal(out.status, 'completed');
    assert.equal(out.agent, 'data_analyst');
    const task = await request('GET', `/api/v1/integration/agents/tasks/${out.task_id}`);
    assert.equal(task.body.status, 'completed');
  });

  it("an idempotency key names the same work for its own API key only: not another key's over /mcp, not a REST caller's", async () => {
    const otherOperator = await makeKey('operator');
    const [mine, other] = [await connect(operatorKey), await connect(otherOperator)];
    const key = `shared-${Date.now()}`;
    const start = async (c: Client) => {
      const r = await c.callTool({
        name: 'workflow__revenue_analysis',
        arguments: { timeframe: '30d', wait: false },
        _meta: { idempotency_key: key },
      });
      assert.ok(!r.isError, textOf(r));
      return (r.structuredContent as { execution_id: string }).execution_id;
    };
    const first = await start(mine);
    assert.equal(await start(mine), first, 'the same key and API key: the same execution');
    assert.notEqual(await start(other), first, "another API key's call with the same key starts its own");
    const rest = await request(
      'POST',
      '/api/v1/workflows/start/revenue_analysis',
      { timeframe: '30d' },
      { ...bearer(otherOperator), 'idempotency-key': key },
    );
    assert.equal(rest.status, 202, JSON.stringify(rest.body));
    assert.notEqual(rest.body.execution_id, first, 'a REST start with the key is not the /mcp execution');

    // A REST key belongs to the first API key that sends it: a fresh one for the tasks.
    const taskKey = `${key}-task`;
    const delegate = async (c: Client) => {
      const r = await c.callTool(
        { name: 'agent__revenue_analysis', arguments: { timeframe: '7d' }, _meta: { idempotency_key: taskKey } },
        undefined,
        { timeout: 120_000 },
      );
      assert.ok(!r.isError, textOf(r));
      return (r.structuredContent as { task_id: string }).task_id;
    };
    const task = await delegate(mine);
    assert.equal(await delegate(mine), task);
    assert.notEqual(await delegate(other), task);
    const restTask = await request(
      'POST',
      '/api/v1/integration/agents/delegate',
      { task_type: 'support_response', context: { query: 'hello' }, priority: 'normal' },
      { ...bearer(otherOperator), 'idempotency-key': taskKey },
    );
    assert.ok([200, 202].includes(restTask.status), JSON.stringify(restTask.body));
    assert.notEqual(restTask.body.task_id, task, "a REST delegation with the key does not get the /mcp caller's task");
  });

  it('a workflow call cancelled by the client ends its execution canceled', async () => {
    const def = await request('POST', '/api/v1/workflows/definitions', {
      id: 'mcp_slow',
      version: 1,
      name: 'slow for cancel',
      steps: [
        { id: 'hello', uses: 'mcp:everything/echo', with: { message: 'start' } },
        {
          id: 'slow',
          uses: 'mcp:everything/trigger-long-running-operation',
          needs: ['hello'],
          with: { duration: 30, steps: 30 },
          timeout_ms: 60_000,
        },
      ],
    });
    assert.equal(def.status, 201, JSON.stringify(def.body));
    const c = await connect(operatorKey);
    await until('workflow__mcp_slow listed', 10_000, async () =>
      (await c.listTools()).tools.some((t) => t.name === 'workflow__mcp_slow'),
    );
    const ac = new AbortController();
    const progress: string[] = [];
    const call = c.callTool({ name: 'workflow__mcp_slow', arguments: {} }, undefined, {
      signal: ac.signal,
      timeout: 120_000,
      onprogress: (p) => {
        progress.push(String(p.message));
        if (p.message === 'hello succeeded') ac.abort('the user changed their mind');
      },
    });
    await assert.rejects(call, /abort|cancel|changed their mind/i);
    // The call's events name the execution it started.
    const started = await until('the McpToolCalled/McpToolFailed pair', 30_000, async () => {
      const ev = await request('GET', '/api/v1/events?type=McpToolFailed&stream_prefix=mcpgw_call-&limit=100');
      return (ev.body.events as { data: { tool: string; execution_id?: string } }[]).find(
        (e) => e.data.tool === 'workflow__mcp_slow',
      );
    });
    const execId = started.data.execution_id!;
    const ended = await until('the execution canceled', 60_000, async () => {
      const e = await request('GET', `/api/v1/workflows/executions/${execId}`);
      return ['canceled', 'completed', 'failed'].includes(e.body.status) ? e.body : undefined;
    });
    assert.equal(ended.status, 'canceled', JSON.stringify(ended).slice(0, 500));
  });

  it('every call is in the event log with the key id and the MCP session id', async () => {
    const c = await connect(operatorKey);
    await c.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 40 } });
    const sessionId = (c.transport as StreamableHTTPClientTransport).sessionId;
    assert.ok(sessionId);
    const called = await until('McpToolCalled of the call', 10_000, async () => {
      const ev = await request('GET', '/api/v1/events?type=McpToolCalled&stream_prefix=mcpgw_call-&limit=500');
      return (ev.body.events as { data: Record<string, unknown>; metadata: Record<string, unknown> }[]).find(
        (e) => e.data.session_id === sessionId,
      );
    });
    assert.equal(called.data.tool, 'everything__get-sum');
    assert.equal(called.data.transport, 'streamable-http');
    assert.match(String(called.data.key_id), /^[0-9a-f]{16}$/);
    assert.equal(called.metadata.actor, `apikey:${String(called.data.key_id)}`);
    // The upstream hop is the connector's own McpTool* events, named by the same key.
    const upstream = await request(
      'GET',
      '/api/v1/events?type=McpToolSucceeded&stream_prefix=mcpserver-everything&limit=500',
    );
    assert.ok(
      (upstream.body.events as { metadata: { actor?: string } }[]).some(
        (e) => e.metadata.actor === `apikey:${String(called.data.key_id)}`,
      ),
    );
  });

  it('auth: 401 with the RFC 9728 pointer without a key; a viewer lists but cannot call', async () => {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
    assert.equal(res.status, 401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer /);
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)?.[1];
    assert.equal(metadataUrl, `${base}/.well-known/oauth-protected-resource/mcp`);
    const meta = await fetch(metadataUrl);
    assert.equal(meta.status, 200);
    const body = (await meta.json()) as { resource: string; bearer_methods_supported: string[] };
    assert.equal(body.resource, `${base}/mcp`);
    assert.deepEqual(body.bearer_methods_supported, ['header']);

    // A registered workflow's input schema is an operator's: a viewer reads it without its
    // defaults, as on REST; a built-in template's is the project's and reads whole.
    const reg = await request('POST', '/api/v1/workflows/definitions', {
      id: 'mcp_viewer_shape',
      version: 1,
      name: 'shape for viewers',
      input: { type: 'object', properties: { hook: { type: 'string', default: 'https://h.example/T0/SECRET' } } },
      steps: [{ id: 'hello', uses: 'mcp:everything/echo', with: { message: 'hi' } }],
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const viewer = await connect(viewerKey);
    let viewerTools = (await viewer.listTools()).tools;
    await until('workflow__mcp_viewer_shape listed', 10_000, async () => {
      viewerTools = (await viewer.listTools()).tools;
      return viewerTools.some((t) => t.name === 'workflow__mcp_viewer_shape');
    });
    const propsOf = (tools: typeof viewerTools, name: string) =>
      tools.find((t) => t.name === name)!.inputSchema.properties as any;
    assert.equal(propsOf(viewerTools, 'workflow__mcp_viewer_shape').hook.default, '[redacted: operator role needed]');
    assert.equal(propsOf(viewerTools, 'workflow__mcp_viewer_shape').wait.default, true, "the gateway's own wait");
    assert.equal(propsOf(viewerTools, 'workflow__revenue_analysis').timeframe.default, '12m');
    const operatorTools = (await (await connect(operatorKey)).listTools()).tools;
    assert.equal(propsOf(operatorTools, 'workflow__mcp_viewer_shape').hook.default, 'https://h.example/T0/SECRET');
    // A prompt is rendered by the upstream server from the caller's arguments, as a tool runs: operator.
    assert.ok((await viewer.listPrompts()).prompts.length > 0);
    await assert.rejects(
      viewer.getPrompt({ name: 'everything__simple-prompt', arguments: {} }),
      /403|forbidden|operator/i,
    );
    await assert.rejects(
      viewer.callTool({ name: 'everything__echo', arguments: { message: 'no' } }),
      /403|forbidden|operator/i,
    );
  });

  it('virtual servers: CRUD validated, and /mcp/v/<name> serves only its subset', async () => {
    for (const bad of [
      { name: 'Bad Name!', tools: ['everything__echo'] },
      { name: 'empty', tools: [] },
      { name: 'spaces', tools: ['a b'] },
      { name: 'extra', tools: ['everything__echo'], unknown: 1 },
    ]) {
      const r = await request('POST', '/api/v1/integration/mcp/virtual-servers', bad);
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(r.body)}`);
    }
    assert.equal(
      (
        await request(
          'POST',
          '/api/v1/integration/mcp/virtual-servers',
          { name: 'x', tools: ['everything__echo'] },
          bearer(operatorKey),
        )
      ).status,
      403,
    );
    assert.equal((await request('DELETE', '/api/v1/integration/mcp/virtual-servers/nope')).status, 404);
    const created = await request('POST', '/api/v1/integration/mcp/virtual-servers', {
      name: 'echo-only',
      description: 'just echo',
      tools: ['everything__echo', 'workflow__revenue*'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.url, '/mcp/v/echo-only');
    const replaced = await request('PUT', '/api/v1/integration/mcp/virtual-servers/echo-only', {
      description: 'just echo',
      tools: ['everything__echo'],
    });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.body.version, 2);
    // Two identical creations at once: the log records one, and the answers say so (one 201, one 200).
    const twins = await Promise.all(
      [1, 2].map(() =>
        request('POST', '/api/v1/integration/mcp/virtual-servers', {
          name: 'twins',
          description: 'same twice',
          tools: ['everything__echo'],
        }),
      ),
    );
    assert.deepEqual(twins.map((t) => t.status).sort(), [200, 201], JSON.stringify(twins.map((t) => t.body)));
    assert.deepEqual(
      twins.map((t) => t.body.version),
      [1, 1],
    );
    assert.equal((await request('DELETE', '/api/v1/integration/mcp/virtual-servers/twins')).status, 200);
    const again = await request('POST', '/api/v1/integration/mcp/virtual-servers', {
      name: 'twins',
      description: 'same twice',
      tools: ['everything__echo'],
    });
    assert.equal(again.status, 201, 'after its removal, defining it again is a creation');
    assert.equal((await request('DELETE', '/api/v1/integration/mcp/virtual-servers/twins')).status, 200);
    const list = await request('GET', '/api/v1/integration/mcp/virtual-servers', undefined, bearer(viewerKey));
    assert.deepEqual(
      list.body.virtual_servers.map((v: { name: string }) => v.name),
      ['echo-only'],
    );

    const v = await connect(operatorKey, { path: '/mcp/v/echo-only' });
    assert.deepEqual(
      (await v.listTools()).tools.map((t) => t.name),
      ['everything__echo'],
    );
    assert.match(textOf(await v.callTool({ name: 'everything__echo', arguments: { message: 'subset' } })), /subset/);
    await assert.rejects(v.callTool({ name: 'everything__get-sum', arguments: { a: 1, b: 2 } }), /unknown tool/);
    const sse = await connect(operatorKey, { path: '/mcp/v/echo-only', sse: true });
    assert.deepEqual(
      (await sse.listTools()).tools.map((t) => t.name),
      ['everything__echo'],
    );

    assert.equal((await request('DELETE', '/api/v1/integration/mcp/virtual-servers/echo-only')).status, 200);
    const gone = await fetch(`${base}/mcp/v/echo-only`, {
      method: 'POST',
      headers: { ...bearer(operatorKey), 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(gone.status, 404);
  });

  it('the official Inspector CLI lists and calls tools over Streamable HTTP', async () => {
    const cli = (args: string[]) =>
      run(
        process.execPath,
        [
          inspectorBin,
          '--cli',
          `${base}/mcp`,
          '--transport',
          'http',
          '--header',
          `Authorization: Bearer ${operatorKey}`,
          ...args,
        ],
        { cwd: dataDir, timeout: 60_000, env: { ...process.env, HOME: dataDir } },
      );
    const list = await cli(['--method', 'tools/list']);
    assert.match(list.stdout, /everything__echo/);
    const called = await cli([
      '--method',
      'tools/call',
      '--tool-name',
      'everything__echo',
      '--tool-arg',
      'message=from the inspector',
    ]);
    assert.match(called.stdout, /from the inspector/);
  });

  it('an upstream server killed mid-call: a clean MCP error, the breaker opens, tools/list_changed is sent', async () => {
    const c = await connect(operatorKey);
    let listChanged = 0;
    c.setNotificationHandler(ToolListChangedNotificationSchema, () => void listChanged++);
    assert.ok((await c.listTools()).tools.some((t) => t.name === 'flaky__echo'));
    const call = c.callTool(
      { name: 'flaky__trigger-long-running-operation', arguments: { duration: 6, steps: 6 } },
      undefined,
      { timeout: 60_000 },
    );
    await sleep(1_500);
    flaky!.kill('SIGKILL');
    const t0 = Date.now();
    const r = await call;
    assert.equal(r.isError, true, JSON.stringify(r));
    assert.ok(textOf(r).length > 0, 'the error says what happened');
    assert.ok(Date.now() - t0 < 30_000, 'answered, not hung');
    // A second failure trips the breaker (consecutive_failures: 2); the health shows it open. The
    // calls go by the REST route to the server itself.
    const opened = await until('flaky breaker open', 30_000, async () => {
      const h = await request('GET', '/api/v1/integration/mcp/health');
      const s = h.body.servers.find((x: { server: string }) => x.server === 'flaky');
      if (s.breaker === 'open') return s;
      await request('POST', '/api/v1/integration/mcp/call', {
        server: 'flaky',
        tool: 'echo',
        arguments: { message: 'x' },
      });
      return undefined;
    });
    assert.equal(opened.breaker, 'open');
    await until('tools/list_changed after flaky went away', 20_000, async () => listChanged > 0);
    assert.ok(!(await c.listTools()).tools.some((t) => t.name.startsWith('flaky__')), 'its tools are no longer listed');
    // Out of the listing, a call to it is still an error result saying the server is unavailable
    // (a client retrying through the outage), not "unknown tool".
    const down = await c.callTool({ name: 'flaky__echo', arguments: { message: 'still there?' } });
    assert.equal(down.isError, true, JSON.stringify(down));
    assert.match(textOf(down), /unavailable/, JSON.stringify(down));
    await assert.rejects(c.callTool({ name: 'flaky__no-such-tool', arguments: {} }), /unknown tool/);
  });
});

/**
 * The MCP endpoint in stateless mode (MCP_SERVER_STATELESS): a gateway with auth, the connectors
 * and the official server-everything over stdio, on the real test PostgreSQL and nats-server.
 * (The stateful transports, workflows, agents and faults run in test/e2e/mcp-server.e2e.spec.ts.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseServerConfig, resolvePackageBin, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { createLogger } from '@switchyard/platform';
import { until } from '@switchyard/testing';
import { startSecuredGateway, type SecuredGateway } from '../../security/test-support.js';
import { McpEndpoint } from './mcp-endpoint.js';
import { McpServerFeatureModule } from './mcp-server.module.js';

const logger = createLogger('mcp-server-test', process.env.LOG_LEVEL ?? 'silent');
/** The official server-everything over stdio, as the connectors' only server. */
const everythingRegistry = () => [
  parseServerConfig({
    name: 'everything',
    role: 'other',
    transport: {
      kind: 'stdio',
      command: process.execPath,
      args: [resolvePackageBin('@modelcontextprotocol/server-everything')],
    },
  }),
];
/** Requests one key may have waiting on their answers at once here. */
const HELD_PER_CALLER = 3;

describe('MCP endpoint, stateless mode', () => {
  let g: SecuredGateway;
  let connectors: RunningConnectors;
  let operator: string;
  /** What the connectors recorded of the calls they ran. */
  const connectorEvents: { type: string; data: Record<string, unknown> }[] = [];

  before(async () => {
    g = await startSecuredGateway('mcp_stateless', {
      modules: [McpServerFeatureModule.withOptions({ stateless: true, catalogRefreshMs: 500 })],
      heldCalls: { perCaller: HELD_PER_CALLER, total: 100 },
    });
    connectors = await startConnectors({
      nats: g.nats,
      registry: everythingRegistry(),
      logger,
      onEvent: (e) => void connectorEvents.push(e),
    });
    operator = (await g.makeKey('operator')).key;
  });

  after(async () => {
    await connectors?.stop();
    await g?.close();
  });

  const post = (body: unknown, key = operator) =>
    fetch(`${g.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify(body),
    });

  it('answers initialize without a session id, and GET with 405', async () => {
    const res = await post({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('mcp-session-id'), null);
    const text = await res.text();
    assert.match(text, /"name":"switchyard"/);
    // No server-sent notifications without a session: not advertised.
    assert.match(text, /"tools":\{"listChanged":false\}/);
    const get = await fetch(`${g.url}/mcp`, {
      headers: { authorization: `Bearer ${operator}`, accept: 'text/event-stream' },
    });
    assert.equal(get.status, 405);
  });

  /** One JSON-RPC request's answer, from the JSON or the event stream the transport chose. */
  const rpc = async (method: string, params: unknown) => {
    const res = await post({ jsonrpc: '2.0', id: 7, method, params });
    const text = await res.text();
    const data = /^data: (.*)$/m.exec(text)?.[1] ?? text;
    return JSON.parse(data) as { result?: unknown; error?: { code: number; message: string } };
  };

  it('answers a request with bad params -32602 Invalid params naming the field, on one line', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['tools/call', {}, /^MCP error -32602: invalid tools\/call params: params\.name: .*expected string/],
      ['tools/call', { name: 'everything__echo', arguments: [1, 2] }, /params\.arguments: .*expected record/],
      ['tools/call', { name: 'everything__echo', arguments: 'x' }, /params\.arguments: .*expected record/],
      ['prompts/get', { arguments: {} }, /^MCP error -32602: invalid prompts\/get params: params\.name/],
      ['prompts/get', { name: 'p', arguments: { a: 1 } }, /params\.arguments\.a: .*expected string/],
      ['resources/read', {}, /^MCP error -32602: invalid resources\/read params: params\.uri/],
      ['resources/read', { uri: 5 }, /params\.uri: .*expected string/],
      ['resources/subscribe', { uri: null }, /^MCP error -32602: invalid resources\/subscribe params: params\.uri/],
      ['resources/unsubscribe', {}, /^MCP error -32602: invalid resources\/unsubscribe params: params\.uri/],
      ['tools/list', { cursor: 5 }, /^MCP error -32602: invalid tools\/list params: params\.cursor/],
    ];
    for (const [method, params, message] of cases) {
      const answer = await rpc(method, params);
      const what = `${method} ${JSON.stringify(params)}: ${JSON.stringify(answer)}`;
      assert.equal(answer.error?.code, -32602, what);
      assert.match(answer.error.message, message, what);
      assert.doesNotMatch(answer.error.message, /\n/, what);
    }
    // Good params still reach the handler (its own -32602 for an unknown name).
    const unknown = await rpc('tools/call', { name: 'nope__tool', arguments: {} });
    assert.equal(unknown.error?.code, -32602);
    assert.match(unknown.error.message, /unknown tool "nope__tool"/);
  });

  it('the SDK client lists and calls upstream tools with no session', async () => {
    const client = new Client({ name: 'stateless-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${g.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${operator}` } },
    });
    await client.connect(transport);
    try {
      assert.equal(transport.sessionId, undefined);
      let names: string[] = [];
      for (let i = 0; i < 100 && !names.includes('everything__echo'); i++) {
        names = (await client.listTools()).tools.map((t) => t.name);
        if (!names.includes('everything__echo')) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(names.includes('everything__echo'), names.join(', '));
      // The built-in templates are tools too (no engine needed to list them).
      assert.ok(names.includes('workflow__revenue_analysis'), names.join(', '));
      const r = await client.callTool({ name: 'everything__get-sum', arguments: { a: 19, b: 23 } });
      assert.ok(!r.isError, JSON.stringify(r));
      assert.match(JSON.stringify(r.content), /42/);
      const unknown = await client.callTool({ name: 'nope__tool', arguments: {} }).catch((e: Error) => e);
      assert.ok(unknown instanceof Error && /unknown tool/.test(unknown.message));
      // A stream of unknown names: each answered at once, and the catalog is read again (the
      // connectors' registry over NATS) about once a second, not once per name.
      const request = g.nats.request.bind(g.nats);
      let requests = 0;
      (g.nats as { request: typeof request }).request = (...a: Parameters<typeof request>) => {
        requests++;
        return request(...a);
      };
      try {
        const t0 = Date.now();
        for (let i = 0; i < 40; i++) {
          const e = await client.callTool({ name: `nope__tool_${i}`, arguments: {} }).catch((x: Error) => x);
          assert.ok(e instanceof Error && /unknown tool/.test(e.message));
        }
        const seconds = (Date.now() - t0) / 1000;
        assert.ok(requests <= 2 * (Math.ceil(seconds) + 1), `${requests} NATS requests in ${seconds.toFixed(1)} s`);
      } finally {
        (g.nats as { request: typeof request }).request = request;
      }
      // A definition registered right after a refresh is a tool at once: a workflow name the
      // catalog lacks is looked up in the store before the once-a-second rule applies.
      await client.listTools();
      const registered = await fetch(`${g.url}/api/v1/workflows/definitions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${g.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          id: 'fresh_echo',
          version: 1,
          name: 'fresh echo',
          steps: [{ id: 'say', uses: 'mcp:everything/echo', with: { message: 'hi' } }],
        }),
      });
      assert.equal(registered.status, 201, await registered.text());
      const started = await client.callTool({ name: 'workflow__fresh_echo', arguments: { wait: false } });
      assert.ok(!started.isError, JSON.stringify(started));
      assert.ok((started.structuredContent as { execution_id?: string }).execution_id);
    } finally {
      await client.close();
    }
  });

  it('refuses a tools/call idempotency key the REST header would refuse (-32602 naming the rule), and honours one it takes', async () => {
    const registered = await fetch(`${g.url}/api/v1/workflows/definitions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        id: 'keyed_echo',
        version: 1,
        name: 'keyed echo',
        steps: [{ id: 'say', uses: 'mcp:everything/echo', with: { message: 'hi' } }],
      }),
    });
    assert.equal(registered.status, 201, await registered.text());
    const call = (meta: Record<string, unknown>) =>
      rpc('tools/call', { name: 'workflow__keyed_echo', arguments: { wait: false }, _meta: meta });
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ idempotency_key: { a: 1 } }, /params\._meta\.idempotency_key must be a string, not object/],
      [{ idempotency_key: 5 }, /params\._meta\.idempotency_key must be a string, not number/],
      [{ idempotency_key: null }, /must be a string, not null/],
      [{ idempotency_key: 'k'.repeat(256) }, /params\._meta\.idempotency_key is longer than 255 characters/],
      [{ idempotency_key: 'k'.repeat(100_000) }, /is longer than 255 characters/],
      [{ idempotency_key: '' }, /must match/],
      [{ idempotency_key: 'has space' }, /params\._meta\.idempotency_key must match/],
      [{ 'switchyard/idempotency-key': 'a|b' }, /params\._meta\.switchyard\/idempotency-key must match/],
      [{ idempotency_key: 'one', 'switchyard/idempotency-key': 'two' }, /differs from the other idempotency key/],
    ];
    for (const [meta, message] of refused) {
      const answer = await call(meta);
      const what = `${JSON.stringify(meta).slice(0, 80)}: ${JSON.stringify(answer).slice(0, 300)}`;
      assert.equal(answer.error?.code, -32602, what);
      assert.match(answer.error.message, message, what);
    }
    // The header's whole alphabet and length are taken; the same key names the same execution.
    const key = `order-42:retry~+/=@.${'k'.repeat(235)}`;
    assert.equal(key.length, 255);
    const first = await call({ idempotency_key: key });
    const again = await call({ 'switchyard/idempotency-key': key });
    const idOf = (a: { result?: unknown }) =>
      (a.result as { structuredContent?: { execution_id?: string } } | undefined)?.structuredContent?.execution_id;
    assert.ok(idOf(first), JSON.stringify(first));
    assert.equal(idOf(again), idOf(first));
    const other = await call({ idempotency_key: 'another-key' });
    assert.ok(idOf(other) && idOf(other) !== idOf(first), JSON.stringify(other));
  });

  it('an upstream tool called with an idempotency key runs once however often it is sent; unkeyed, each time', async () => {
    const ran = (message: string) =>
      connectorEvents.filter(
        (e) =>
          e.type === 'McpToolCalled' &&
          (e.data['arguments'] as { value?: { message?: string } } | undefined)?.value?.message === message,
      ).length;
    const call = (message: string, meta?: Record<string, unknown>) =>
      rpc('tools/call', { name: 'everything__echo', arguments: { message }, ...(meta ? { _meta: meta } : {}) });
    const keyed = await Promise.all([1, 2, 3].map(() => call('keyed echo', { idempotency_key: 'echo-once' })));
    for (const a of keyed) assert.match(JSON.stringify(a.result), /keyed echo/, JSON.stringify(a));
    assert.equal(await call('keyed echo', { idempotency_key: 'echo-once' }).then(() => ran('keyed echo')), 1);
    // The same key with other arguments is another call, not answered with the first one's result.
    const other = await call('other echo', { idempotency_key: 'echo-once' });
    assert.match(JSON.stringify(other.result), /other echo/);
    await call('unkeyed echo');
    await call('unkeyed echo');
    assert.equal(ran('unkeyed echo'), 2);
  });

  it('with no session open, the catalog reads nothing on its own (it refreshes when a listing finds it aged)', async () => {
    const request = g.nats.request.bind(g.nats);
    const subjects: string[] = [];
    (g.nats as { request: typeof request }).request = (...a: Parameters<typeof request>) => {
      subjects.push(a[0]);
      return request(...a);
    };
    try {
      // Three refresh intervals (500 ms here) with nobody listening.
      await new Promise((r) => setTimeout(r, 1_600));
      assert.deepEqual(subjects, []);
    } finally {
      (g.nats as { request: typeof request }).request = request;
    }
  });

  it('records each call in the event store before the answer: a quick one in one append, a slow one as it starts', async () => {
    const client = new Client({ name: 'audit-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${g.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${operator}` } },
      }),
    );
    const callEvents = async (tool: string) => {
      const all = await g.store.readAll({ streamPrefixes: ['mcpgw_call-'], maxCount: 10_000 });
      const called = all.find((e) => e.type === 'McpToolCalled' && (e.data as { tool: string }).tool === tool);
      return called ? all.filter((e) => e.streamId === called.streamId) : [];
    };
    try {
      // Quick: both events, one stream, in order, named by the key; present when the answer is.
      const r = await client.callTool({ name: 'everything__get-sum', arguments: { a: 1, b: 2 } });
      assert.ok(!r.isError, JSON.stringify(r));
      const quick = await callEvents('everything__get-sum');
      assert.deepEqual(
        quick.map((e) => [e.type, e.revision]),
        [
          ['McpToolCalled', 0],
          ['McpToolSucceeded', 1],
        ],
      );
      assert.match(String((quick[0]!.data as { key_id: string }).key_id), /^[0-9a-f]{16}$/);
      assert.equal(quick[1]!.metadata.actor, quick[0]!.metadata.actor);
      // Slow (about 1 s upstream): McpToolCalled is in the store while the call still runs.
      const slow = client.callTool(
        { name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 1 } },
        undefined,
        { timeout: 20_000 },
      );
      let whileRunning: string[] = [];
      for (let i = 0; i < 100 && whileRunning.length === 0; i++) {
        await new Promise((res) => setTimeout(res, 50));
        whileRunning = (await callEvents('everything__trigger-long-running-operation')).map((e) => e.type);
      }
      const answer = await slow;
      assert.ok(!answer.isError, JSON.stringify(answer));
      assert.deepEqual(whileRunning, ['McpToolCalled'], 'McpToolCalled alone while the call ran');
      assert.deepEqual(
        (await callEvents('everything__trigger-long-running-operation')).map((e) => e.type),
        ['McpToolCalled', 'McpToolSucceeded'],
      );
    } finally {
      await client.close();
    }
  });

  it("tool calls waiting on their answers hold the key's share: past it 429, another key is answered", async () => {
    const slow = (key: string, id: number) =>
      post(
        {
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'everything__trigger-long-running-operation', arguments: { duration: 5, steps: 1 } },
        },
        key,
      );
    await until('the catalog lists the slow tool', async () => {
      const r = await post({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
      return (await r.text()).includes('trigger-long-running-operation') || undefined;
    });
    const held = Array.from({ length: HELD_PER_CALLER }, (_, i) => slow(operator, i));
    // Each takes its slot as it arrives; a slow machine gets time (they hold for 5 s).
    await new Promise((r) => setTimeout(r, 2_000));
    const over = await slow(operator, 99);
    assert.equal(over.status, 429, await over.clone().text());
    assert.equal(over.headers.get('retry-after'), '1');
    assert.match(await over.text(), /MCP requests in flight.*GATEWAY_HELD_CALLS_PER_CALLER/);
    const other = await post({ jsonrpc: '2.0', id: 100, method: 'tools/list' }, (await g.makeKey('viewer')).key);
    assert.equal(other.status, 200);
    await other.body?.cancel();
    const answers = await Promise.all(held);
    assert.deepEqual(
      answers.map((r) => r.status),
      Array.from({ length: HELD_PER_CALLER }, () => 200),
    );
    for (const r of answers) assert.doesNotMatch(await r.text(), /"isError":true/);
    const again = await slow(operator, 101);
    assert.equal(again.status, 200);
    await again.text();
  });
});

describe('MCP endpoint: names from an upstream server', () => {
  let g: SecuredGateway;
  let connectors: RunningConnectors;

  before(async () => {
    g = await startSecuredGateway('mcp_names', {
      modules: [McpServerFeatureModule.withOptions({ catalogRefreshMs: 500 })],
    });
    const registry = [
      parseServerConfig({
        name: 'odd',
        role: 'other',
        transport: {
          kind: 'stdio',
          command: process.execPath,
          args: [path.join(import.meta.dirname, 'testing', 'odd-names-main.js')],
        },
      }),
    ];
    connectors = await startConnectors({ nats: g.nats, registry, logger });
  });

  after(async () => {
    await connectors?.stop();
    await g?.close();
  });

  it('passes names an MCP client takes and leaves out the others (a space, control characters, over 128)', async () => {
    const client = new Client({ name: 'names-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${g.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${g.adminKey}` } },
      }),
    );
    try {
      let names: string[] = [];
      for (let i = 0; i < 100 && !names.includes('odd__plain'); i++) {
        names = (await client.listTools()).tools.map((t) => t.name);
        if (!names.includes('odd__plain')) await new Promise((r) => setTimeout(r, 200));
      }
      const odd = names.filter((n) => n.startsWith('odd__')).sort();
      assert.deepEqual(odd, ['odd__dotted.name-1', 'odd__ent__query', 'odd__plain']);
      const prompts = (await client.listPrompts()).prompts.map((p) => p.name).sort();
      assert.deepEqual(prompts, ['odd__dotted.name-1', 'odd__ent__query', 'odd__plain']);
      const called = await client.callTool({ name: 'odd__ent__query', arguments: {} });
      assert.deepEqual(called.content, [{ type: 'text', text: 'called ent__query' }]);
    } finally {
      await client.close();
    }
  });

  it("refuses server names that would let one server name another server's tools", () => {
    const config = (name: string) => () =>
      parseServerConfig({ name, role: 'other', transport: { kind: 'stdio', command: 'x', args: [] } });
    // The ZodError's message is its issues as JSON (the quotes escaped).
    assert.throws(config('gh__ent'), /no \\"__\\" in the name/);
    assert.throws(config('gh_'), /no \\"__\\" in the name and no \\"_\\" at its end/);
    assert.doesNotThrow(config('database_writer'));
  });
});

describe('MCP endpoint: a legacy SSE session whose client does not read its event stream', () => {
  let g: SecuredGateway;
  let connectors: RunningConnectors;

  before(async () => {
    g = await startSecuredGateway('mcp_sse_stall', {
      modules: [McpServerFeatureModule.withOptions({ catalogRefreshMs: 500 })],
      rateLimit: false,
    });
    connectors = await startConnectors({ nats: g.nats, registry: everythingRegistry(), logger });
  });

  after(async () => {
    await connectors?.stop();
    await g?.close();
  });

  /**
   * A legacy SSE session of a new operator key whose client reads the stream's first event (where
   * to post) and then nothing more: `post` sends it a JSON-RPC message, `stop` drops the stream.
   */
  const unreadSession = async () => {
    const key = (await g.makeKey('operator')).key;
    const { endpoint, stop } = await new Promise<{ endpoint: string; stop: () => void }>((resolve, reject) => {
      const req = http.get(
        new URL(`${g.url}/mcp/sse`),
        { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' } },
        (res) => {
          let text = '';
          const onData = (d: Buffer) => {
            text += d.toString();
            const m = /event: endpoint\ndata: (\S+)/.exec(text);
            if (!m) return;
            res.off('data', onData);
            res.pause();
            resolve({ endpoint: m[1]!, stop: () => req.destroy() });
          };
          res.on('data', onData);
        },
      );
      req.on('error', reject);
    });
    const post = (id: number, body: object) =>
      fetch(new URL(endpoint, g.url), {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id, ...body }),
      });
    return { post, stop };
  };

  it('a request id reused in a session while its request runs is refused -32600; the first answer still comes, and the id is free again after it', async () => {
    const key = (await g.makeKey('operator')).key;
    let sessionId = '';
    const send = (body: object) =>
      fetch(`${g.url}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(sessionId ? { 'mcp-session-id': sessionId } : {}),
        },
        body: JSON.stringify({ jsonrpc: '2.0', ...body }),
      });
    const init = await send({
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'dup-id', version: '1' } },
    });
    assert.equal(init.status, 200);
    sessionId = init.headers.get('mcp-session-id')!;
    await init.text();
    assert.equal((await send({ method: 'notifications/initialized' })).status, 202);
    await until('the catalog lists the slow tool', async () => {
      const r = await send({ id: 'list', method: 'tools/list' });
      return (await r.text()).includes('trigger-long-running-operation') || undefined;
    });
    const slowCall = {
      method: 'tools/call',
      params: { name: 'everything__trigger-long-running-operation', arguments: { duration: 2, steps: 1 } },
    };
    const first = send({ id: 1, ...slowCall });
    await new Promise((r) => setTimeout(r, 500));
    const reused = await send({ id: 1, method: 'tools/list' });
    assert.equal(reused.status, 400);
    const refusal = (await reused.json()) as { id: unknown; error: { code: number; message: string } };
    assert.equal(refusal.id, 1);
    assert.equal(refusal.error.code, -32600);
    assert.match(refusal.error.message, /already in flight/);
    // The first call's answer reaches its own POST, for id 1.
    const answer = await first;
    assert.equal(answer.status, 200);
    const text = await answer.text();
    assert.match(text, /"id":1/);
    assert.match(text, /"result"/);
    // Answered: the id names a new request again.
    const again = await send({ id: 1, method: 'tools/list' });
    assert.equal(again.status, 200);
    assert.match(await again.text(), /"id":1/);
  });

  it("a session ends with its API key: revoking it closes the key's legacy SSE stream and its Streamable HTTP session", async () => {
    const made = await g.makeKey('operator');
    const endpoint = g.gateway.app.get(McpEndpoint);
    const before = endpoint.sessionCount();
    // A legacy SSE session whose client reads on, and a Streamable HTTP one through the SDK client.
    const ended = new Promise<void>((resolve, reject) => {
      const req = http.get(
        new URL(`${g.url}/mcp/sse`),
        { headers: { authorization: `Bearer ${made.key}`, accept: 'text/event-stream' } },
        (res) => {
          res.on('data', () => undefined);
          res.on('end', resolve);
          res.on('close', resolve);
        },
      );
      req.on('error', reject);
    });
    const client = new Client({ name: 'revoked-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${g.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${made.key}` } },
      }),
    );
    await until('both sessions open', () => endpoint.sessionCount() === before + 2);
    const revoked = await fetch(`${g.url}/api/v1/admin/api-keys/${made.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${g.adminKey}` },
    });
    assert.equal(revoked.status, 200);
    await until('both sessions closed', () => endpoint.sessionCount() === before, 5_000);
    await ended;
    await client.close().catch(() => undefined);
  });

  it('refuses its messages once 2 MiB wait for the client, and closes it when they do not drain', async () => {
    const { post, stop } = await unreadSession();
    try {
      assert.equal(
        (
          await post(0, {
            method: 'initialize',
            params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'stall', version: '1' } },
          })
        ).status,
        202,
      );
      // Each answer (~300 KB) goes to the unread stream: the kernel's buffers fill, then the gateway's.
      const message = 'x'.repeat(300_000);
      let refused: { at: number; body: string } | undefined;
      for (let i = 1; i <= 300 && !refused; i++) {
        const res = await post(i, {
          method: 'tools/call',
          params: { name: 'everything__echo', arguments: { message } },
        });
        if (res.status === 429) refused = { at: i, body: await res.text() };
        else assert.equal(res.status, 202, await res.text());
      }
      assert.ok(refused, 'a session whose stream is not read stops taking messages');
      assert.match(refused.body, /event stream is not being read/);
      // Not drained within 10 s: the session is closed, and its memory with it.
      await new Promise((r) => setTimeout(r, 11_000));
      const after = await post(999, { method: 'ping' });
      assert.equal(after.status, 404, 'the session is gone');
      assert.equal((await fetch(`${g.url}/livez`)).status, 200);
    } finally {
      stop();
    }
  });

  it('closes at once a session whose admitted messages pile answers past twice the bound (no waiting out the stall)', async () => {
    const { post, stop } = await unreadSession();
    try {
      await post(0, {
        method: 'initialize',
        params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'pile', version: '1' } },
      });
      // All sent at once, before any answer is written: each is admitted, their answers (300 KB each) pile up.
      const message = 'x'.repeat(300_000);
      const sent = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          post(i + 1, { method: 'tools/call', params: { name: 'everything__echo', arguments: { message } } }),
        ),
      );
      assert.ok(sent.filter((r) => r.status === 202).length > 20, 'most were admitted');
      const gone = await until(
        'the session is closed',
        async () => ((await post(999, { method: 'ping' })).status === 404 ? true : undefined),
        5_000,
      );
      assert.equal(gone, true);
    } finally {
      stop();
    }
  });
});

describe("MCP endpoint: a caller's calls in flight share one bound on both transports", () => {
  let g: SecuredGateway;
  let connectors: RunningConnectors;

  before(async () => {
    g = await startSecuredGateway('mcp_held_calls', {
      modules: [McpServerFeatureModule.withOptions({ catalogRefreshMs: 500 })],
      heldCalls: { perCaller: 2, total: 100 },
    });
    connectors = await startConnectors({ nats: g.nats, registry: everythingRegistry(), logger });
  });

  after(async () => {
    await connectors?.stop();
    await g?.close();
  });

  it('a legacy SSE session answers its POSTs at once, yet its running calls take the same share: past it the call is refused', async () => {
    const key = (await g.makeKey('operator')).key;
    const client = new Client({ name: 'held-sse', version: '1.0.0' });
    const headers = { authorization: `Bearer ${key}` };
    await client.connect(
      new SSEClientTransport(new URL(`${g.url}/mcp/sse`), {
        requestInit: { headers },
        eventSourceInit: {
          fetch: (u, init) =>
            fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }),
        },
      }),
    );
    try {
      await until('the catalog lists the slow tool', async () =>
        (await client.listTools()).tools.some((t) => t.name === 'everything__trigger-long-running-operation')
          ? true
          : undefined,
      );
      const slow = () =>
        client
          .callTool(
            { name: 'everything__trigger-long-running-operation', arguments: { duration: 2, steps: 1 } },
            undefined,
            {
              timeout: 20_000,
            },
          )
          .then(
            (r) => (r.isError ? 'error' : 'ok'),
            (e: Error) => e.message,
          );
      const outcomes = await Promise.all([slow(), slow(), slow()]);
      assert.equal(outcomes.filter((o) => o === 'ok').length, 2, outcomes.join(' | '));
      assert.ok(
        outcomes.some((o) => /GATEWAY_HELD_CALLS_PER_CALLER/.test(o)),
        outcomes.join(' | '),
      );
      // Ended calls free their slots.
      assert.equal(await slow(), 'ok');
    } finally {
      await client.close();
    }
  });

  it('an initialize of more than 64 KiB is refused: a session keeps what its client said of itself', async () => {
    const key = (await g.makeKey('viewer')).key;
    const res = await fetch(`${g.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'big', version: '1', description: 'x'.repeat(100_000) },
        },
      }),
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /at most 65536 characters/);
  });
});

describe('MCP endpoint: tools/list in pages', () => {
  let g: SecuredGateway;
  let connectors: RunningConnectors;
  let operator: string;

  before(async () => {
    g = await startSecuredGateway('mcp_pages', {
      modules: [McpServerFeatureModule.withOptions({ stateless: true, catalogRefreshMs: 500, toolsPageSize: 5 })],
    });
    connectors = await startConnectors({ nats: g.nats, registry: everythingRegistry(), logger });
    operator = (await g.makeKey('operator')).key;
  });

  after(async () => {
    await connectors?.stop();
    await g?.close();
  });

  it('answers pages of the page size with nextCursor; the SDK client follows them to every tool once; a forged cursor is -32602', async () => {
    const client = new Client({ name: 'pages-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${g.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${operator}` } },
    });
    await client.connect(transport);
    try {
      const all = async () => {
        const names: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await client.listTools(cursor ? { cursor } : {});
          assert.ok(page.tools.length <= 5, `a page of ${page.tools.length}`);
          names.push(...page.tools.map((t) => t.name));
          cursor = page.nextCursor;
          pages++;
        } while (cursor);
        return { names, pages };
      };
      let listed = await all();
      for (let i = 0; i < 100 && !listed.names.includes('everything__echo'); i++) {
        await new Promise((r) => setTimeout(r, 200));
        listed = await all();
      }
      assert.ok(listed.names.includes('everything__echo'), listed.names.join(', '));
      assert.ok(listed.pages > 2, `${listed.pages} pages`);
      assert.equal(new Set(listed.names).size, listed.names.length, 'no tool twice');
      assert.deepEqual(listed.names, [...listed.names].sort(), 'in name order');
      await assert.rejects(client.listTools({ cursor: 'not-ours' }), /cursor/);
    } finally {
      await client.close();
    }
  });
});

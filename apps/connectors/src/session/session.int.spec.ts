import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AppError } from '@switchyard/platform';
import { parseServerConfig } from '../registry/schema.js';
import { McpSession } from './mcp-session.js';
import { EventRecorder, startSdkHttpServer, testLogger, waitFor, type SdkHttpServer } from '../spec-support.js';

/**
 * A real MCP server built with the SDK (stateful Streamable HTTP, bearer auth), in
 * this process so the test can change its tool list while the session is connected.
 */
describe('McpSession against an SDK server with bearer auth and a changing tool list', () => {
  let sdk: SdkHttpServer;
  let url: string;
  const servers: McpServer[] = [];
  const seenAuth: (string | undefined)[] = [];
  /** Every JSON-RPC method the server received, in order. */
  const methods: string[] = [];

  before(async () => {
    sdk = await startSdkHttpServer(
      () => {
        const server = new McpServer(
          { name: 'changing', version: '1.0.0' },
          { capabilities: { tools: { listChanged: true } } },
        );
        server.registerTool(
          'first',
          { description: 'the first tool', inputSchema: { x: z.number() } },
          async ({ x }) => ({
            content: [{ type: 'text', text: `first ${x}` }],
          }),
        );
        servers.push(server);
        return server;
      },
      {
        bearer: 's3cret',
        onRequest: (req) => void seenAuth.push(req.headers.authorization),
        onMessage: (m) => {
          if (m.method) methods.push(m.method);
        },
      },
    );
    url = sdk.url;
  });

  after(async () => {
    await sdk?.close();
  });

  const session = (token?: string, rec?: EventRecorder) =>
    new McpSession({
      ...(rec && { onEvent: rec.sink }),
      config: parseServerConfig({
        name: 'changing',
        role: 'other',
        transport: { kind: 'http', url },
        ...(token && { auth_token: token }),
        timeouts: { connect_ms: 5_000, call_ms: 5_000 },
        reconnect: { initial_delay_ms: 10_000, max_delay_ms: 10_000 },
        health: { ping_interval_ms: 0 },
      }),
      logger: testLogger(),
    });

  it('sends the bearer token and re-lists tools when the server says the list changed', async () => {
    const s = session('s3cret');
    try {
      await s.start();
      assert.equal(s.health().state, 'up');
      assert.ok(seenAuth.includes('Bearer s3cret'));
      assert.deepEqual(
        s.tools.map((t) => t.name),
        ['first'],
      );
      // Registering a tool on a connected McpServer sends notifications/tools/list_changed.
      servers.at(-1)!.registerTool('second', { description: 'added later' }, async () => ({
        content: [{ type: 'text', text: 'second' }],
      }));
      await waitFor(
        () => s.tools.some((t) => t.name === 'second'),
        'the session to re-list after list_changed',
        10_000,
      );
      const r = await s.callTool('second', {});
      assert.deepEqual(r.content, [{ type: 'text', text: 'second' }]);
      const ms = await s.ping();
      assert.ok(ms >= 0);
      assert.equal(s.health().response_ms, ms);
    } finally {
      await s.close();
    }
  });

  it('a flood of list_changed notices makes one re-list at a time, at most one a second, and the list ends current', async () => {
    const s = session('s3cret');
    try {
      await s.start();
      const from = methods.length;
      const t0 = performance.now();
      // 300 notices over about 1.5 s (each registration sends one), as a server in a loop sends them:
      // each listing answered before the next notice came made one more listing before.
      for (let i = 0; i < 300; i++) {
        servers.at(-1)!.registerTool(`flood_${i}`, { description: `flood ${i}` }, async () => ({
          content: [{ type: 'text', text: String(i) }],
        }));
        if (i % 2 === 1) await new Promise((r) => setTimeout(r, 10));
      }
      await waitFor(() => s.tools.some((t) => t.name === 'flood_299'), 'the last tool to be listed', 10_000);
      const lists = methods.slice(from).filter((m) => m === 'tools/list').length;
      const seconds = (performance.now() - t0) / 1000;
      // Before, one listing after another while notices came (dozens); now at most one a second.
      assert.ok(
        lists >= 1 && lists <= Math.ceil(seconds) + 2,
        `${lists} listings for 300 notices in ${seconds.toFixed(1)} s`,
      );
      assert.equal(s.tools.filter((t) => t.name.startsWith('flood_')).length, 300);
    } finally {
      await s.close();
    }
  });

  it('aborting a call tells the server (notifications/cancelled): the tool sees its signal aborted', async () => {
    const s = session('s3cret');
    let sawAbort: () => void = () => undefined;
    const serverSawAbort = new Promise<void>((r) => (sawAbort = r));
    let running: () => void = () => undefined;
    const toolRunning = new Promise<void>((r) => (running = r));
    try {
      await s.start();
      servers.at(-1)!.registerTool('wait_for_cancel', { description: 'runs until canceled' }, async (extra) => {
        running();
        await new Promise<void>((resolve) => {
          if (extra.signal.aborted) resolve();
          extra.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        sawAbort();
        return { content: [{ type: 'text', text: 'stopped' }] };
      });
      await waitFor(() => s.tools.some((t) => t.name === 'wait_for_cancel'), 'the session to list the tool', 10_000);
      const stop = new AbortController();
      const call = s.callTool('wait_for_cancel', {}, { signal: stop.signal });
      await toolRunning;
      stop.abort(new Error('workflow canceled'));
      await assert.rejects(call);
      await serverSawAbort;
    } finally {
      await s.close();
    }
  });

  it('server forgot the session (404): a new session at once, the call succeeds, no outage reported', async () => {
    const rec = new EventRecorder();
    const s = session('s3cret', rec);
    try {
      await s.start();
      const first = await s.callTool('first', { x: 1 });
      assert.deepEqual(first.content, [{ type: 'text', text: 'first 1' }]);
      sdk.forgetSessions(); // as after a server restart: every session id is unknown now
      const [a, b] = await Promise.all([s.callTool('first', { x: 2 }), s.callTool('first', { x: 3 })]);
      assert.deepEqual(
        [a.content, b.content],
        [[{ type: 'text', text: 'first 2' }], [{ type: 'text', text: 'first 3' }]],
      );
      assert.equal(s.health().state, 'up');
      assert.equal(rec.count('McpServerWentDown'), 0);
    } finally {
      await s.close();
    }
  });

  it('a wrong token: the session stays down with an unauthorized error, calls fail fast', async () => {
    const s = session('wrong');
    try {
      await s.start();
      const h = s.health();
      assert.equal(h.state, 'down');
      assert.match(h.last_error ?? '', /401|unauthori/i);
      await assert.rejects(
        s.callTool('first', { x: 1 }),
        (e: unknown) => e instanceof AppError && e.code === 'unavailable' && e.details.fail_fast === true,
      );
    } finally {
      await s.close();
    }
  });
});

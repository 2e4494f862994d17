import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CreateMessageResultSchema, ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { parseServerConfig } from '../registry/schema.js';
import { McpSession } from './mcp-session.js';
import { MAX_SERVER_REQUESTS_PER_SECOND } from './unasked-traffic.js';
import { EventRecorder, startSdkHttpServer, testLogger, waitFor, type SdkHttpServer } from '../spec-support.js';

/**
 * Real SDK servers (Streamable HTTP, in this process) that send the client requests it never
 * offered. Each answer is a POST: a server sending them in a loop must cost a bounded number.
 */
describe('McpSession: requests a server sends that the connectors never offered', () => {
  let flooder: SdkHttpServer;
  let plain: SdkHttpServer;
  const floodServers: McpServer[] = [];
  /** What the flooding server does once a session's event stream is open. */
  let onStream: (server: McpServer) => void = () => undefined;
  let posts = 0;
  const initializedAt: number[] = [];

  const withEcho = (name: string): McpServer => {
    const server = new McpServer({ name, version: '1.0.0' }, { capabilities: { tools: {} } });
    server.registerTool('echo', { description: 'echo', inputSchema: { text: z.string() } }, async ({ text }) => ({
      content: [{ type: 'text', text }],
    }));
    return server;
  };

  const sampling = (server: McpServer) =>
    server.server
      .request(
        {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 1 },
        },
        CreateMessageResultSchema,
        { timeout: 2_000 },
      )
      .catch(() => undefined);

  before(async () => {
    flooder = await startSdkHttpServer(
      () => {
        const server = withEcho('flooder');
        floodServers.push(server);
        return server;
      },
      {
        onRequest: (req) => {
          if (req.method === 'POST') posts++;
          // The event stream (GET) is where a server's own requests go: once it is open, go.
          if (req.method === 'GET' && req.headers['mcp-session-id']) {
            const server = floodServers.at(-1)!;
            setTimeout(() => onStream(server), 100).unref();
          }
        },
        onMessage: (m) => {
          if (m.method === 'initialize') initializedAt.push(performance.now());
        },
      },
    );
    plain = await startSdkHttpServer(() => withEcho('plain'));
  });

  after(async () => {
    await flooder?.close();
    await plain?.close();
  });

  const session = (name: string, url: string, rec?: EventRecorder, initialDelay = 10_000) =>
    new McpSession({
      ...(rec && { onEvent: rec.sink }),
      config: parseServerConfig({
        name,
        role: 'other',
        transport: { kind: 'http', url },
        timeouts: { connect_ms: 5_000, call_ms: 5_000 },
        reconnect: { initial_delay_ms: initialDelay, max_delay_ms: 20_000 },
        health: { ping_interval_ms: 0 },
      }),
      logger: testLogger(),
    });

  it('500 sampling requests in a loop: the session goes down naming them, the answers stay bounded, another server stays fast', async () => {
    const rec = new EventRecorder();
    const bad = session('flooder', flooder.url, rec);
    const good = session('plain', plain.url);
    let postsAtFlood = -1;
    let flooded: () => void = () => undefined;
    const floodSent = new Promise<void>((r) => (flooded = r));
    onStream = (server) => {
      postsAtFlood = posts;
      for (let i = 0; i < 500; i++) void sampling(server);
      flooded();
    };
    try {
      await good.start();
      await bad.start();
      await floodSent;
      // A call to another server in the same process meanwhile answers as usual.
      const slowest = { ms: 0 };
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        const r = await good.callTool('echo', { text: `x${i}` });
        assert.deepEqual(r.content, [{ type: 'text', text: `x${i}` }]);
        slowest.ms = Math.max(slowest.ms, performance.now() - t0);
      }
      await waitFor(() => bad.health().state === 'down', 'the flooding server to be reported down', 10_000);
      const h = bad.health();
      assert.match(
        h.last_error ?? '',
        /sent 21 requests in 1 s, more than 20 .*: sampling\/createMessage 21/,
        h.last_error,
      );
      await rec.waitFor('McpServerWentDown');
      assert.match(rec.of('McpServerWentDown')[0]!.data.error, /sampling\/createMessage/);
      // Let whatever was still on its way arrive, then count: at most the budget's answers were posted.
      await new Promise((r) => setTimeout(r, 500));
      const answers = posts - postsAtFlood;
      assert.ok(answers <= MAX_SERVER_REQUESTS_PER_SECOND, `${answers} POSTs answered 500 requests`);
      assert.ok(slowest.ms < 2_000, `a call to the other server took ${Math.round(slowest.ms)} ms`);
      assert.equal(good.health().state, 'up');
      // Down: calls fail at once instead of waiting on it (no reconnect within the 10 s backoff).
      await assert.rejects(bad.callTool('echo', { text: 'y' }), /down/);
    } finally {
      onStream = () => undefined;
      await bad.close();
      await good.close();
    }
  });

  it('a server that floods again on every connection waits longer each time before the next', async () => {
    const bad = session('flooder', flooder.url, undefined, 300);
    onStream = (server) => {
      for (let i = 0; i < 50; i++) void sampling(server);
    };
    const from = initializedAt.length;
    try {
      await bad.start();
      await waitFor(() => initializedAt.length - from >= 4, 'four connections of the flooding server', 20_000);
      const t = initializedAt.slice(from, from + 4);
      const gaps = [t[1]! - t[0]!, t[2]! - t[1]!, t[3]! - t[2]!];
      // Backoffs of 150-300, 300-600 and 600-1,200 ms (equal jitter): a successful connect in
      // between does not start them over, so the third gap is longer than the first.
      assert.ok(gaps[2]! > gaps[0]!, `gaps ${gaps.map((g) => Math.round(g)).join(', ')} ms`);
      assert.ok(gaps[2]! >= 600, `gaps ${gaps.map((g) => Math.round(g)).join(', ')} ms`);
    } finally {
      onStream = () => undefined;
      await bad.close();
    }
  });

  it('a roots/list now and then is answered "method not found" and the session stays up', async () => {
    const s = session('flooder', flooder.url);
    const codes: unknown[] = [];
    let done: () => void = () => undefined;
    const asked = new Promise<void>((r) => (done = r));
    onStream = (server) => {
      void (async () => {
        for (let i = 0; i < 5; i++) {
          await server.server.listRoots(undefined, { timeout: 2_000 }).then(
            () => codes.push('answered'),
            (e: unknown) => codes.push(e instanceof McpError ? e.code : String(e)),
          );
          await new Promise((r) => setTimeout(r, 100));
        }
        done();
      })();
    };
    try {
      await s.start();
      await asked;
      assert.deepEqual(codes, Array(5).fill(ErrorCode.MethodNotFound));
      assert.equal(s.health().state, 'up');
      const r = await s.callTool('echo', { text: 'still here' });
      assert.deepEqual(r.content, [{ type: 'text', text: 'still here' }]);
    } finally {
      onStream = () => undefined;
      await s.close();
    }
  });
});

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { parseServerConfig } from '../registry/schema.js';
import { McpSession } from './mcp-session.js';
import { MAX_LISTED_ITEM_DEPTH } from './listed-depth.js';
import { startSdkHttpServer, type SdkHttpServer } from '../spec-support.js';

/** A JSON Schema of objects nested `levels` deep (two JSON levels each: the schema and its `properties`). */
const nestedSchema = (levels: number): Record<string, unknown> => {
  let s: Record<string, unknown> = { type: 'object' };
  for (let i = 0; i < levels; i++) s = { type: 'object', properties: { a: s } };
  return s;
};

describe('McpSession: a listed tool nested too deep is left out, the server stays up', () => {
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (l: string) => void warnings.push(l) });
  const session = (name: string, url: string) =>
    new McpSession({
      config: parseServerConfig({
        name,
        role: 'other',
        transport: { kind: 'http', url },
        timeouts: { connect_ms: 5_000, call_ms: 5_000 },
        reconnect: { initial_delay_ms: 10_000, max_delay_ms: 10_000 },
        health: { ping_interval_ms: 0 },
      }),
      logger,
    });

  /**
   * A server that answers its listing as written text, as any server may: a 5,000-level schema
   * cannot be written by JSON.stringify (nor so by an SDK server), only read by JSON.parse.
   */
  let raw: HttpServer;
  let rawUrl: string;
  let sdk: SdkHttpServer;

  before(async () => {
    const deepText = '{"type":"object","properties":{"a":'.repeat(5_000) + '{}' + '}}'.repeat(5_000);
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- a test server: an error fails the client's request and so the test
    raw = createServer(async (req, res) => {
      if (req.method !== 'POST') return void res.writeHead(405).end();
      let body = '';
      for await (const c of req) body += String(c);
      const m = JSON.parse(body) as { id?: number; method: string; params?: { protocolVersion?: string } };
      if (m.id === undefined) return void res.writeHead(202).end();
      const answer = (result: unknown, text?: string) =>
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(text ?? JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
      if (m.method === 'initialize')
        return answer({
          protocolVersion: m.params?.protocolVersion,
          capabilities: { tools: {} },
          serverInfo: { name: 'deep', version: '1' },
        });
      if (m.method === 'tools/list') {
        const tools = [
          { name: 'ok', inputSchema: { type: 'object' } },
          { name: 'deep', inputSchema: '<deep>' },
        ];
        return answer(
          undefined,
          JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { tools } }).replace('"<deep>"', deepText),
        );
      }
      if (m.method === 'tools/call') return answer({ content: [{ type: 'text', text: 'ok' }] });
      return answer({});
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    rawUrl = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/mcp`;

    sdk = await startSdkHttpServer(() => {
      const server = new Server({ name: 'nested', version: '1' }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, () => ({
        tools: [
          // The tool is level 1, its schema 2, each nested object two more: 64 levels, the deepest
          // allowed, then 66.
          { name: 'at_limit', inputSchema: nestedSchema(31) as { type: 'object' } },
          { name: 'past_limit', inputSchema: nestedSchema(32) as { type: 'object' } },
          { name: 'plain', inputSchema: { type: 'object' } },
        ],
      }));
      server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: 'text', text: 'plain' }] }));
      return server;
    });
  });

  after(async () => {
    raw?.closeAllConnections();
    await new Promise((r) => raw?.close(r));
    await sdk?.close();
  });

  it('a tool whose input schema nests 5,000 levels: left out with a warning naming it and the limit, the other tool served', async () => {
    warnings.length = 0;
    const s = session('deep', rawUrl);
    try {
      await s.start();
      const h = s.health();
      assert.equal(h.state, 'up', h.last_error);
      assert.deepEqual(
        s.tools.map((t) => t.name),
        ['ok'],
      );
      const r = await s.callTool('ok', {});
      assert.deepEqual(r.content, [{ type: 'text', text: 'ok' }]);
      const warned = warnings.map((l) => JSON.parse(l) as { msg: string; max_depth?: number; left_out?: string[] });
      const w = warned.find((l) => l.left_out !== undefined);
      assert.ok(w, warnings.join('\n'));
      assert.deepEqual(w.left_out, ['deep']);
      assert.equal(w.max_depth, MAX_LISTED_ITEM_DEPTH);
      assert.match(w.msg, /1 tools nested deeper than 64 levels, left out: deep/);
    } finally {
      await s.close();
    }
  });

  it('a tool at the limit is served, one past it is not (an SDK server)', async () => {
    warnings.length = 0;
    const s = session('nested', sdk.url);
    try {
      await s.start();
      assert.equal(s.health().state, 'up');
      assert.deepEqual(
        s.tools.map((t) => t.name),
        ['at_limit', 'plain'],
      );
      assert.ok(
        warnings.some((l) => l.includes('left out: past_limit')),
        warnings.join('\n'),
      );
    } finally {
      await s.close();
    }
  });
});

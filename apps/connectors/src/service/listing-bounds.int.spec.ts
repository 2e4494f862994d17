import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { pino } from 'pino';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ListPromptsRequestSchema,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { closeNats, connectNats, maxReplyBytes, request, type NatsConnection } from '@switchyard/messaging';
import { testNatsUrl } from '@switchyard/testing';
import {
  callToolReplySchema,
  listPromptsReplySchema,
  listToolsReplySchema,
  mcpRegistryListSubject,
  mcpSubject as baseSubject,
  registryListReplySchema,
  serverHealthSchema,
} from '@switchyard/contracts';
import { parseServerConfig } from '../registry/schema.js';
import { startSdkHttpServer, waitFor, type SdkHttpServer } from '../spec-support.js';
import { startConnectors, type RunningConnectors } from './connector-service.js';

const prefix = `switchyard.svc.mcpbounds${process.pid}.v1`;
const subject = (server: string, endpoint: Parameters<typeof baseSubject>[1]) => baseSubject(server, endpoint, prefix);
const TOOLS = 100_000;
const PROMPTS = 1_500;

/**
 * A real SDK server listing 100,000 tools (about 5 MB, under its max_response_bytes) beside a
 * well-behaved one: what the connectors serve of it stays within max_tools / max_prompts and
 * every reply within NATS's payload limit, so the other server's listing and calls are untouched.
 */
describe('listings bounded per server and per reply', () => {
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (l: string) => void warnings.push(l) });
  let many: SdkHttpServer;
  let plain: SdkHttpServer;
  let nc: NatsConnection;
  let client: NatsConnection;
  let running: RunningConnectors;
  let limit: number;

  before(async () => {
    const tools = Array.from({ length: TOOLS }, (_, i) => ({
      name: `tool_${String(i).padStart(6, '0')}`,
      inputSchema: { type: 'object' as const },
    }));
    const prompts = Array.from({ length: PROMPTS }, (_, i) => ({ name: `prompt_${i}` }));
    many = await startSdkHttpServer(() => {
      const s = new Server({ name: 'many', version: '1.0.0' }, { capabilities: { tools: {}, prompts: {} } });
      s.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
      s.setRequestHandler(ListPromptsRequestSchema, () => ({ prompts }));
      s.setRequestHandler(CallToolRequestSchema, (req) => ({
        content: [{ type: 'text', text: `ran ${req.params.name}` }],
      }));
      return s;
    });
    plain = await startSdkHttpServer(() => {
      const s = new McpServer({ name: 'plain', version: '1.0.0' });
      s.registerTool('echo', { inputSchema: { message: z.string() } }, ({ message }) => ({
        content: [{ type: 'text', text: message }],
      }));
      return s;
    });
    const slow = { timeouts: { connect_ms: 60_000, call_ms: 60_000 }, health: { ping_interval_ms: 0 } };
    const registry = [
      parseServerConfig({ name: 'many', role: 'other', transport: { kind: 'http', url: many.url }, ...slow }),
      // An admin who lets every tool through: the names still fit in the replies.
      parseServerConfig({
        name: 'manyall',
        role: 'other',
        transport: { kind: 'http', url: many.url },
        max_tools: TOOLS,
        ...slow,
      }),
      parseServerConfig({ name: 'plain', role: 'other', transport: { kind: 'http', url: plain.url }, ...slow }),
    ];
    const url = await testNatsUrl();
    nc = await connectNats({ url, name: 'connectors', logger });
    client = await connectNats({ url, name: 'client', logger });
    limit = maxReplyBytes(nc);
    running = await startConnectors({ nats: nc, registry, logger, subjectPrefix: prefix, sharedCalls: false });
    await waitFor(() => running.connectors.all().every((c) => c.health().state === 'up'), 'every server up', 60_000);
  });

  after(async () => {
    await running?.stop();
    await many?.close();
    await plain?.close();
    await closeNats(client);
    await closeNats(nc);
  });

  it('answers the registry under the payload limit, with counts, what was left out and the names cut', async () => {
    const reply = await request(
      client,
      mcpRegistryListSubject(prefix),
      {},
      {
        schema: registryListReplySchema,
        timeoutMs: 10_000,
      },
    );
    assert.ok(Buffer.byteLength(JSON.stringify(reply)) < limit);
    const by = new Map(reply.servers.map((s) => [s.server, s]));
    assert.deepEqual(by.get('plain')?.tools, ['echo']);
    assert.equal(by.get('plain')?.tools_truncated, undefined);
    assert.equal(by.get('plain')?.left_out, undefined);
    const m = by.get('many')!;
    assert.equal(m.tools_count, 1_000);
    assert.deepEqual(m.left_out, { tools: TOOLS - 1_000, prompts: PROMPTS - 1_000 });
    assert.equal(m.tools[0], 'tool_000000');
    const all = by.get('manyall')!;
    assert.equal(all.tools_count, TOOLS);
    assert.equal(all.tools_truncated, true);
    assert.ok(all.tools.length > 1_000 && all.tools.length < TOOLS, String(all.tools.length));
    assert.equal(all.left_out?.tools, undefined);
  });

  it("answers one server's health, tools and prompts within the bounds", async () => {
    const h = await request(
      client,
      subject('many', 'health'),
      { probe: true },
      {
        schema: serverHealthSchema,
        timeoutMs: 10_000,
      },
    );
    assert.equal(h.tools.length, 1_000);
    assert.equal(h.tools_truncated, undefined);
    assert.equal(h.left_out?.tools, TOOLS - 1_000);
    const tools = await request(
      client,
      subject('many', 'list_tools'),
      {},
      {
        schema: listToolsReplySchema,
        timeoutMs: 30_000,
      },
    );
    assert.equal(tools.tools.length, 1_000);
    assert.equal(tools.left_out, TOOLS - 1_000);
    const prompts = await request(
      client,
      subject('many', 'list_prompts'),
      {},
      {
        schema: listPromptsReplySchema,
        timeoutMs: 30_000,
      },
    );
    assert.equal(prompts.prompts.length, 1_000);
    assert.equal(prompts.left_out, PROMPTS - 1_000);
    // max_tools at 100,000: as many tools as one reply holds, the rest counted.
    const allTools = await request(
      client,
      subject('manyall', 'list_tools'),
      {},
      {
        schema: listToolsReplySchema,
        timeoutMs: 30_000,
      },
    );
    assert.ok(allTools.tools.length > 1_000);
    assert.equal(allTools.tools.length + (allTools.left_out ?? 0), TOOLS);
    const allHealth = await request(
      client,
      subject('manyall', 'health'),
      {},
      {
        schema: serverHealthSchema,
        timeoutMs: 10_000,
      },
    );
    assert.equal(allHealth.tools_truncated, true);
    assert.equal(allHealth.tools_count, TOOLS);
  });

  it('calls the other server, and the big one, as before', async () => {
    const echo = await request(
      client,
      subject('plain', 'call_tool'),
      { tool: 'echo', arguments: { message: 'hi' } },
      {
        schema: callToolReplySchema,
        timeoutMs: 30_000,
      },
    );
    assert.deepEqual(echo.content, [{ type: 'text', text: 'hi' }]);
    const ran = await request(
      client,
      subject('many', 'call_tool'),
      { tool: 'tool_000001', arguments: {} },
      {
        schema: callToolReplySchema,
        timeoutMs: 30_000,
      },
    );
    assert.deepEqual(ran.content, [{ type: 'text', text: 'ran tool_000001' }]);
  });

  it('tells once per server and kind what was left out, naming the setting', () => {
    const told = warnings
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((w) => w.server === 'many' && w.left_out !== undefined);
    assert.deepEqual(
      told.map((w) => [w.kind, w.listed, w.left_out, w.setting]),
      [
        ['tools', TOOLS, TOOLS - 1_000, 'max_tools'],
        ['prompts', PROMPTS, PROMPTS - 1_000, 'max_prompts'],
      ],
    );
  });
});

/**
 * One MCP server listing 100,000 tools (about 5 MB, under its max_response_bytes) beside a
 * well-behaved one and the project's database server, through the gateway's REST routes: the
 * others' calls and the health listing answer as usual, the big server's health says what was
 * left out, and a call reads only its own server's entry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { parseServerConfig, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { startSdkHttpServer, type SdkHttpServer } from '@switchyard/connectors/spec-support';
import { MCP_REGISTRY_LIST_SUBJECT } from '@switchyard/contracts';
import { PostgresEventStore } from '@switchyard/event-store';
import { runMcpServer, type RunningMcpServer } from '@switchyard/mcp-servers';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort } from '@switchyard/platform';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { createGateway, type Gateway } from '../../gateway.js';
import { McpFeatureModule } from './mcp.module.js';

const logger = createLogger('mcp-listing-bounds-test', process.env.LOG_LEVEL ?? 'silent');
const TOOLS = 100_000;

describe('an MCP server listing 100,000 tools through the gateway', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let connectors: RunningConnectors;
  let database: RunningMcpServer;
  let many: SdkHttpServer;
  let plain: SdkHttpServer;
  let gateway: Gateway;
  let base: string;

  const post = async (p: string, body: unknown) => {
    const res = await fetch(`${base}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const get = async (p: string) => {
    const res = await fetch(`${base}${p}`);
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  before(async () => {
    const dbUrl = await freshDatabase('mcp_listing_bounds');
    pool = new pg.Pool({ connectionString: dbUrl, max: 5 });
    await pool.query(`create table customers (id int primary key, name text not null);
      insert into customers values (1, 'Acme'), (2, 'Globex');`);
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'mcp-listing-bounds-test', logger });
    database = await runMcpServer('database', {
      port: await freePort(),
      logger,
      env: { DATABASE_URL: dbUrl, LOG_LEVEL: 'silent', MCP_AUTH_DISABLED: 'true' },
    });
    const tools = Array.from({ length: TOOLS }, (_, i) => ({
      name: `tool_${String(i).padStart(6, '0')}`,
      inputSchema: { type: 'object' as const },
    }));
    many = await startSdkHttpServer(() => {
      const s = new Server({ name: 'many', version: '1.0.0' }, { capabilities: { tools: {} } });
      s.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
      s.setRequestHandler(CallToolRequestSchema, (req) => ({ content: [{ type: 'text', text: req.params.name }] }));
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
    connectors = await startConnectors({
      nats: nc,
      logger,
      sharedCalls: false,
      registry: [
        parseServerConfig({ name: 'many', role: 'other', transport: { kind: 'http', url: many.url }, ...slow }),
        parseServerConfig({ name: 'plain', role: 'other', transport: { kind: 'http', url: plain.url }, ...slow }),
        // All 100,000 served: more names than one health reply holds (tools_truncated).
        parseServerConfig({
          name: 'manyall',
          role: 'other',
          transport: { kind: 'http', url: many.url },
          max_tools: 100_000,
          ...slow,
        }),
        parseServerConfig({
          name: 'database',
          role: 'database',
          transport: { kind: 'http', url: database.url },
          ...slow,
        }),
      ],
    });
    gateway = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      { modules: [McpFeatureModule] },
    );
    base = (await gateway.listen(0, '127.0.0.1')).url;
    for (let i = 0; i < 600; i++) {
      const h = await get('/api/v1/integration/mcp/health');
      if (h.status === 200 && h.body.servers.every((s: { state: string }) => s.state === 'up')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    await gateway?.close();
    await connectors?.stop();
    await database?.close();
    await many?.close();
    await plain?.close();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
  });

  it("lists every server's health with the big one's count and what was left out", async () => {
    const r = await get('/api/v1/integration/mcp/health');
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
    assert.equal(r.body.status, 'healthy');
    const m = r.body.servers.find((s: { server: string }) => s.server === 'many');
    assert.equal(m.tools_count, 1_000);
    assert.equal(m.tools.length, 1_000);
    assert.deepEqual(m.left_out, { tools: TOOLS - 1_000 });
    const p = r.body.servers.find((s: { server: string }) => s.server === 'plain');
    assert.deepEqual(p.tools, ['echo']);
    const one = await get('/api/v1/integration/mcp/health/many');
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.left_out, { tools: TOOLS - 1_000 });
    const listed = await get('/api/v1/integration/mcp/tools/many');
    assert.equal(listed.status, 200);
    assert.equal(listed.body.tools.length, 1_000);
  });

  it('calls the other servers: the REST call route and the database query route answer 200', async () => {
    const echo = await post('/api/v1/integration/mcp/call', {
      server: 'plain',
      tool: 'echo',
      arguments: { message: 'hello' },
    });
    assert.equal(echo.status, 200, JSON.stringify(echo.body));
    assert.deepEqual(echo.body.content, [{ type: 'text', text: 'hello' }]);
    const q = await post('/api/v1/integration/mcp/database/query', {
      query: 'select count(*)::int as n from customers',
      params: [],
    });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.deepEqual(q.body.result.rows, [{ n: 2 }]);
    const big = await post('/api/v1/integration/mcp/call', { server: 'many', tool: 'tool_000007', arguments: {} });
    assert.equal(big.status, 200, JSON.stringify(big.body));
    // A tool past the cut of the health reply's names is the connector's to judge, not a 404 of the gateway's.
    const pastCut = await post('/api/v1/integration/mcp/call', {
      server: 'manyall',
      tool: 'tool_099999',
      arguments: {},
    });
    assert.equal(pastCut.status, 200, JSON.stringify(pastCut.body).slice(0, 300));
    // A 404 for an unknown tool names at most 100 of the server's (1,000 names made it large).
    const unknown = await post('/api/v1/integration/mcp/call', { server: 'many', tool: 'nope', arguments: {} });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.valid.length, 100);
    assert.equal(unknown.body.more_tools, 900);
  });

  it('reads only the called server, never the registry listing, and the listing only for an unknown name', async () => {
    const seen: string[] = [];
    // A plain subscription sees every request on the subject, beside the connectors' queue group.
    const sub = nc.subscribe(MCP_REGISTRY_LIST_SUBJECT, { callback: (_e, m) => void seen.push(m.subject) });
    await nc.flush();
    await new Promise((r) => setTimeout(r, 2_100)); // past the gateway's cache of entries and listing
    for (let i = 0; i < 3; i++) {
      const r = await post('/api/v1/integration/mcp/call', {
        server: 'plain',
        tool: 'echo',
        arguments: { message: 'x' },
      });
      assert.equal(r.status, 200);
    }
    await nc.flush();
    assert.equal(seen.length, 0);
    const missing = await get('/api/v1/integration/mcp/health/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual([...missing.body.valid].sort(), ['database', 'many', 'manyall', 'plain']);
    await nc.flush();
    assert.equal(seen.length, 1);
    sub.unsubscribe();
  });
});

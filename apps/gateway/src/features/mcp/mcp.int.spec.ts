/**
 * The seed's MCP endpoints end to end: HTTP -> gateway -> NATS -> connector -> real MCP
 * servers (the official server-filesystem and server-everything over stdio, the project's
 * own database and fetch servers over Streamable HTTP).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, realpathSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { parseServerConfig, resolvePackageBin, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { type McpEvent } from '@switchyard/contracts';
import { PostgresEventStore } from '@switchyard/event-store';
import { runMcpServer, type RunningMcpServer } from '@switchyard/mcp-servers';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort } from '@switchyard/platform';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { createGateway, type Gateway } from '../../gateway.js';
import { McpFeatureModule } from './mcp.module.js';

const logger = createLogger('mcp-gateway-test', process.env.LOG_LEVEL ?? 'silent');

/** The official server-everything in its Streamable HTTP mode (`index.js streamableHttp`, PORT, path /mcp). */
async function startEverythingHttp(port: number): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    [resolvePackageBin('@modelcontextprotocol/server-everything'), 'streamableHttp'],
    {
      env: { ...process.env, PORT: String(port) },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
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

describe('MCP endpoints through gateway, NATS and the connectors', () => {
  let dbUrl: string;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let connectors: RunningConnectors;
  let database: RunningMcpServer;
  let fetchServer: RunningMcpServer;
  let databasePort: number;
  let gateway: Gateway;
  let base: string;
  let root: string;
  let everythingHttp: ChildProcess;
  const events: McpEvent[] = [];

  const post = async (p: string, body: unknown) => {
    const res = await fetch(`${base}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: (await res.json()) as Record<string, any>,
    };
  };
  const get = async (p: string) => {
    const res = await fetch(`${base}${p}`);
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const startDatabase = (port: number) =>
    runMcpServer('database', {
      port,
      logger,
      env: { DATABASE_URL: dbUrl, LOG_LEVEL: 'silent', MCP_AUTH_DISABLED: 'true' },
    });

  before(async () => {
    dbUrl = await freshDatabase('mcp_gateway');
    pool = new pg.Pool({ connectionString: dbUrl, max: 5 });
    await pool.query(`create table customers (id int primary key, name text not null, revenue numeric not null);
      insert into customers values (1, 'Acme', 1200.50), (2, 'Globex', 800), (3, 'Initech', 99.5);`);
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'mcp-gateway-test', logger });

    root = mkdtempSync(path.join(path.resolve('.tmp'), 'fs-root-'));
    mkdirSync(path.join(root, 'docs'));
    writeFileSync(path.join(root, 'docs', 'hello.txt'), 'hello from the sandbox');
    const outside = mkdtempSync(path.join(path.resolve('.tmp'), 'outside-'));
    writeFileSync(path.join(outside, 'secret.txt'), 'top secret');
    symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'escape.txt'));

    databasePort = await freePort();
    database = await startDatabase(databasePort);
    fetchServer = await runMcpServer('fetch', {
      port: await freePort(),
      logger,
      env: { LOG_LEVEL: 'silent', MCP_AUTH_DISABLED: 'true' },
    });

    const everythingPort = await freePort();
    everythingHttp = await startEverythingHttp(everythingPort);
    const fast = {
      timeouts: { connect_ms: 5_000, call_ms: 5_000 },
      retry: { max_attempts: 2, initial_delay_ms: 50, max_delay_ms: 100 },
      breaker: { consecutive_failures: 3, half_open_after_ms: 500 },
      reconnect: { initial_delay_ms: 100, max_delay_ms: 500 },
    };
    const registry = [
      parseServerConfig({
        name: 'filesystem',
        role: 'filesystem',
        transport: {
          kind: 'stdio',
          command: process.execPath,
          args: [resolvePackageBin('@modelcontextprotocol/server-filesystem'), realpathSync(root)],
        },
        ...fast,
      }),
      parseServerConfig({
        name: 'everything',
        role: 'other',
        transport: {
          kind: 'stdio',
          command: process.execPath,
          args: [resolvePackageBin('@modelcontextprotocol/server-everything')],
        },
        ...fast,
      }),
      parseServerConfig({
        name: 'everything-http',
        role: 'other',
        transport: { kind: 'http', url: `http://127.0.0.1:${everythingPort}/mcp` },
        ...fast,
      }),
      parseServerConfig({
        name: 'database',
        role: 'database',
        transport: { kind: 'http', url: `${database.url}` },
        ...fast,
      }),
      parseServerConfig({
        name: 'fetch',
        role: 'fetch',
        transport: { kind: 'http', url: `${fetchServer.url}` },
        ...fast,
      }),
    ];
    connectors = await startConnectors({ nats: nc, registry, logger, onEvent: (e) => void events.push(e) });
    gateway = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      { modules: [McpFeatureModule] },
    );
    base = (await gateway.listen(0, '127.0.0.1')).url;
    // Every server connected (bounded wait; stdio servers take a moment to spawn).
    for (let i = 0; i < 200; i++) {
      const h = await get('/api/v1/integration/mcp/health');
      if (h.body.servers?.every((s: { state: string }) => s.state === 'up')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    await gateway?.close();
    await connectors?.stop();
    await database?.close();
    await fetchServer?.close();
    everythingHttp?.kill('SIGKILL');
    await closeNats(nc);
    await store?.close();
    await pool?.end();
  });

  it('lists every server with its state, breaker and tools', async () => {
    const r = await get('/api/v1/integration/mcp/health');
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'healthy');
    const names = r.body.servers.map((s: { server: string }) => s.server).sort();
    assert.deepEqual(names, ['database', 'everything', 'everything-http', 'fetch', 'filesystem']);
    const fs = r.body.servers.find((s: { server: string }) => s.server === 'filesystem');
    assert.equal(fs.breaker, 'closed');
    assert.ok(fs.tools.includes('read_text_file') || fs.tools.includes('read_file'));
  });

  it('probes one server and answers 404 with the valid names for an unknown one', async () => {
    const ok = await get('/api/v1/integration/mcp/health/everything');
    assert.equal(ok.status, 200);
    assert.equal(ok.body.state, 'up');
    const missing = await get('/api/v1/integration/mcp/health/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual([...missing.body.valid].sort(), [
      'database',
      'everything',
      'everything-http',
      'fetch',
      'filesystem',
    ]);
  });

  it("lists one server's tools with their input schemas; 404 with the valid names for an unknown server", async () => {
    const r = await get('/api/v1/integration/mcp/tools/database');
    assert.equal(r.status, 200);
    assert.equal(r.body.server, 'database');
    const query = r.body.tools.find((t: { name: string }) => t.name === 'query');
    assert.equal(query.input_schema.type, 'object');
    assert.ok(query.input_schema.properties.sql, JSON.stringify(query.input_schema));
    assert.deepEqual(query.input_schema.required, ['sql']);
    const missing = await get('/api/v1/integration/mcp/tools/nope');
    assert.equal(missing.status, 404);
    assert.ok(missing.body.valid.includes('database'));
  });

  it('calls the official server-everything over stdio', async () => {
    const r = await post('/api/v1/integration/mcp/call', {
      server: 'everything',
      tool: 'echo',
      arguments: { message: 'ping through NATS' },
    });
    assert.equal(r.status, 200);
    assert.match(JSON.stringify(r.body.content), /ping through NATS/);
    // The sum tool is `get-sum` in current server-everything releases (`add` in older ones).
    const tools = (await get('/api/v1/integration/mcp/health/everything')).body.tools as string[];
    const sumTool = tools.includes('get-sum') ? 'get-sum' : 'add';
    const add = await post('/api/v1/integration/mcp/call', {
      server: 'everything',
      tool: sumTool,
      arguments: { a: 2, b: 40 },
    });
    assert.equal(add.status, 200);
    assert.match(JSON.stringify(add.body.content), /42/);
  });

  it('a call with an Idempotency-Key goes keyed to the connectors, bound to the call; without one, unkeyed', async () => {
    const call = async (message: string, key?: string) => {
      const res = await fetch(`${base}/api/v1/integration/mcp/call`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify({ server: 'everything', tool: 'echo', arguments: { message } }),
      });
      assert.equal(res.status, 200, await res.text());
      const called = events.filter(
        (e) =>
          e.type === 'McpToolCalled' &&
          (e.data as { arguments?: { value?: { message?: string } } }).arguments?.value?.message === message,
      );
      assert.equal(called.length, 1, message);
      return (called[0]!.data as { idempotency_key?: string }).idempotency_key;
    };
    const first = await call('keyed one', 'key-a');
    assert.match(first ?? '', /^call#[0-9a-f]{64}$/, 'the connector gets a key of at most 200 characters');
    const other = await call('keyed two', 'key-b');
    assert.notEqual(other, first);
    assert.equal(await call('unkeyed'), undefined);
  });

  it('calls the official server-everything over Streamable HTTP', async () => {
    const r = await post('/api/v1/integration/mcp/call', {
      server: 'everything-http',
      tool: 'echo',
      arguments: { message: 'over streamable http' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(JSON.stringify(r.body.content), /over streamable http/);
  });

  it('answers 404 listing the tools for an unknown tool or operation', async () => {
    const r = await post('/api/v1/integration/mcp/call', { server: 'everything', tool: 'no_such_tool', arguments: {} });
    assert.equal(r.status, 404);
    assert.ok(Array.isArray(r.body.valid) && r.body.valid.includes('echo'));
    const op = await post('/api/v1/integration/mcp/filesystem/format_disk', {});
    assert.equal(op.status, 404);
    assert.ok(op.body.valid.includes('list_directory'));
    const server = await post('/api/v1/integration/mcp/call', { server: 'nope', tool: 'x', arguments: {} });
    assert.equal(server.status, 404);
  });

  it('does file operations inside the sandbox and refuses traversal and symlinks out of it', async () => {
    const w = await post('/api/v1/integration/mcp/filesystem/write_file', {
      path: path.join(realpathSync(root), 'docs', 'new.md'),
      content: '# written via the gateway',
    });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const read = await post('/api/v1/integration/mcp/filesystem/read_text_file', {
      path: path.join(realpathSync(root), 'docs', 'new.md'),
    });
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.match(JSON.stringify(read.body.content), /written via the gateway/);
    const list = await post('/api/v1/integration/mcp/filesystem/list_directory', {
      path: path.join(realpathSync(root), 'docs'),
    });
    assert.match(JSON.stringify(list.body.content), /hello\.txt/);

    const before = events.filter((e) => e.type === 'McpToolFailed').length;
    for (const p of [
      path.join(realpathSync(root), '..', '..', 'etc', 'passwd'),
      path.join(realpathSync(root), 'escape.txt'),
    ]) {
      const r = await post('/api/v1/integration/mcp/filesystem/read_text_file', { path: p });
      assert.ok(r.status >= 400 && r.status < 500, `${p}: ${r.status}`);
      assert.match(r.type, /problem\+json/);
      assert.match(String(r.body.detail), /denied|outside|not allowed/i);
      assert.doesNotMatch(JSON.stringify(r.body), /top secret|root:x:/);
    }
    assert.ok(
      events.filter((e) => e.type === 'McpToolFailed').length >= before + 2,
      'each refusal is recorded as McpToolFailed',
    );
  });

  it('runs parameterized SQL with named or positional params, and injection through params is inert', async () => {
    const named = await post('/api/v1/integration/mcp/database/query', {
      query: 'select name, revenue::float8 as revenue from customers where revenue > :min order by id',
      params: { min: 100 },
    });
    assert.equal(named.status, 200, JSON.stringify(named.body));
    const expected = await pool.query(
      'select name, revenue::float8 as revenue from customers where revenue > $1 order by id',
      [100],
    );
    assert.deepEqual(named.body.result.rows, expected.rows);
    const positional = await post('/api/v1/integration/mcp/database/query', {
      query: 'select count(*)::int as n from customers where name = $1',
      params: ["Acme' or '1'='1"],
    });
    assert.equal(positional.status, 200);
    assert.deepEqual(positional.body.result.rows, [{ n: 0 }]);
    const still = await pool.query('select count(*)::int as n from customers');
    assert.equal(still.rows[0].n, 3);
  });

  it('refuses SQL writes without the flag and records the refusal', async () => {
    const r = await post('/api/v1/integration/mcp/database/query', {
      query: 'delete from customers where id = :id',
      params: { id: 1 },
    });
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.match(r.body.detail, /not allowed/i);
    assert.equal((await pool.query('select count(*)::int as n from customers')).rows[0].n, 3);
    assert.ok(events.some((e) => e.type === 'McpToolFailed' && (e.data as { server: string }).server === 'database'));
  });

  it('answers 400 naming the field for a bad body and for a missing named parameter', async () => {
    const r = await post('/api/v1/integration/mcp/database/query', { params: {} });
    assert.equal(r.status, 400);
    assert.ok(r.body.errors.some((e: { path: string }) => e.path === 'query'));
    const m = await post('/api/v1/integration/mcp/database/query', { query: 'select :a::int', params: {} });
    assert.equal(m.status, 400);
    assert.match(m.body.detail, /:a/);
  });

  it('refuses SSRF to loopback, link-local metadata and private ranges, and records each refusal', async () => {
    const before = events.filter((e) => e.type === 'McpToolFailed' && e.data.server === 'fetch').length;
    for (const url of ['http://127.0.0.1:1/', 'http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/']) {
      const r = await post('/api/v1/integration/mcp/fetch', { url });
      assert.ok(r.status >= 400 && r.status < 500, `${url}: ${r.status} ${JSON.stringify(r.body)}`);
      assert.match(r.type, /problem\+json/);
    }
    assert.equal(events.filter((e) => e.type === 'McpToolFailed' && e.data.server === 'fetch').length, before + 3);
  });

  it('fails fast with 503 and the breaker state while a server is down, and recovers by itself', async () => {
    await database.close();
    const statuses: number[] = [];
    let last: Record<string, any> = {};
    for (let i = 0; i < 8; i++) {
      const r = await post('/api/v1/integration/mcp/database/query', { query: 'select 1 as one', params: [] });
      statuses.push(r.status);
      last = r.body;
    }
    assert.ok(
      statuses.every((s) => s === 503),
      `statuses ${statuses.join(',')}`,
    );
    assert.equal(last.breaker, 'open', JSON.stringify(last));
    assert.ok(events.some((e) => e.type === 'McpCircuitOpened'));

    database = await startDatabase(databasePort);
    let recovered = false;
    for (let i = 0; i < 100 && !recovered; i++) {
      const r = await post('/api/v1/integration/mcp/database/query', { query: 'select 1 as one', params: [] });
      recovered = r.status === 200;
      if (!recovered) await new Promise((res) => setTimeout(res, 200));
    }
    assert.ok(recovered, 'the connector reconnected and the breaker closed');
    assert.ok(events.some((e) => e.type === 'McpCircuitClosed'));
  });
});

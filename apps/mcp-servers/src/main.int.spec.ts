import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { freePort, waitForPort } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from './common/http.js';
import { EgressGuard } from './fetch/egress-guard.js';
import { createFetchServer } from './fetch/server.js';
import { httpClient, ok, silentLogger } from './test-helpers.js';
import { runMcpServer } from './runtime.js';
import { mcpServerKinds } from './config.js';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';

const mainJs = fileURLToPath(new URL('./main.js', import.meta.url));

describe('HTTP hosting: bearer token, health, methods', () => {
  let http: McpHttpServerHandle;
  const token = 'test-token-123';
  const rpc = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} };
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

  before(async () => {
    http = await startMcpHttpServer({
      name: 'fetch',
      serverFactory: () => createFetchServer({ guard: new EgressGuard(), logger: silentLogger }),
      port: 0,
      token,
      logger: silentLogger,
      maxBodyBytes: 10_000,
    });
  });
  after(() => http?.close());

  it('answers 401 without the bearer token or with a wrong one', async () => {
    const none = await fetch(http.url, { method: 'POST', headers, body: JSON.stringify(rpc) });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    const wrong = await fetch(http.url, {
      method: 'POST',
      headers: { ...headers, authorization: 'Bearer nope' },
      body: JSON.stringify(rpc),
    });
    assert.equal(wrong.status, 401);
    await assert.rejects(httpClient(http.url), 'an SDK client without the token cannot connect');
  });

  it('serves an SDK client that sends the token', async () => {
    const c = await httpClient(http.url, token);
    try {
      const names = (await c.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(names, ['fetch_text', 'http_request']);
    } finally {
      await c.close();
    }
  });

  it('has an open /health, refuses GET /mcp (stateless) and oversized bodies', async () => {
    const h = await fetch(http.url.replace(/\/mcp$/, '/health'));
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok', server: 'fetch' });
    const get = await fetch(http.url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    assert.equal(get.status, 405);
    const big = await fetch(http.url, {
      method: 'POST',
      headers: { ...headers, authorization: `Bearer ${token}` },
      body: JSON.stringify({ ...rpc, params: { pad: 'x'.repeat(20_000) } }),
    });
    assert.equal(big.status, 413);
  });
});

describe('CLI entry (dist/main.js)', () => {
  let databaseUrl: string;
  before(async () => {
    databaseUrl = await freshDatabase('mcp_cli');
  });

  it('serves analytics over stdio to an SDK client', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [mainJs, 'analytics', '--stdio'],
      env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'cli-test', version: '0.0.0' });
    await client.connect(transport);
    try {
      await ok(client, 'record_metric', { name: 'cli.metric', value: 3 });
      await ok(client, 'record_metric', { name: 'cli.metric', value: 5 });
      const r = await ok(client, 'query_metric', { name: 'cli.metric', window: '1h', aggregate: 'sum' });
      assert.equal(r.value, 8);
    } finally {
      await client.close();
    }
  });

  let child: ChildProcess | undefined;
  after(() => {
    child?.kill('SIGTERM');
  });

  it('serves the database server over HTTP on --port with the token from MCP_AUTH_TOKEN', async () => {
    const port = await freePort();
    child = spawn(process.execPath, [mainJs, 'database', '--port', String(port)], {
      env: { ...process.env, DATABASE_URL: databaseUrl, MCP_AUTH_TOKEN: 'cli-token', LOG_LEVEL: 'silent' },
      stdio: 'ignore',
    });
    await waitForPort(port, 20_000);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { database: string }).database, 'ok');
    const unauth = await fetch(`http://127.0.0.1:${port}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(unauth.status, 401);
    const c = await httpClient(`http://127.0.0.1:${port}/mcp`, 'cli-token');
    try {
      const r = await ok(c, 'query', { sql: 'SELECT $1::int + 1 AS n', params: [41] });
      assert.equal(r.rows[0].n, 42);
    } finally {
      await c.close();
    }
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    child = undefined;
  });

  it('fails fast naming a bad variable', async () => {
    const p = spawn(process.execPath, [mainJs, 'database', '--port', '0'], {
      env: { ...process.env, DATABASE_URL: 'mysql://nope', LOG_LEVEL: 'silent' },
    });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => p.once('exit', r));
    assert.equal(code, 1);
    assert.match(err, /DATABASE_URL/);
  });
});

describe('runMcpServer wires every server from its environment', () => {
  it('starts each kind on a free port, healthy and listing its tools', async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    const scratch = mkdtempSync(path.resolve('.tmp', 'runtime-'));
    const env = {
      DATABASE_URL: await freshDatabase('mcp_runtime'),
      FILESYSTEM_ROOT: path.join(scratch, 'files'),
      WEBHOOK_ALLOW_LOOPBACK: 'true',
      LOG_LEVEL: 'silent',
      MCP_AUTH_TOKEN: 'runtime-token',
      GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_dummy_runtime',
    };
    const expected: Record<string, string> = {
      database: 'query',
      fetch: 'http_request',
      automation: 'create_schedule',
      analytics: 'query_metric',
      'filesystem-bridge': 'read_text_file',
      github: 'search_repositories',
    };
    try {
      for (const kind of mcpServerKinds) {
        const running = await runMcpServer(kind, { port: 0, env, logger: silentLogger });
        try {
          const health = await fetch(running.url!.replace(/\/mcp$/, '/health'));
          assert.equal(health.status, 200, kind);
          const c = await httpClient(running.url!, 'runtime-token');
          const names = (await c.listTools()).tools.map((t) => t.name);
          await c.close();
          assert.ok(names.includes(expected[kind]!), `${kind} lists ${expected[kind]}`);
        } finally {
          await running.close();
        }
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

// The listener of the project's MCP servers, attacked the way the security review did:
// no token, a rebound Host, a foreign Origin, malformed params, and who is on record.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { pino } from 'pino';
import { freePort, type Logger } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { runMcpServer, type RunningMcpServer } from './runtime.js';
import type { McpCallAudit } from './common/audit.js';
import { silentLogger } from './test-helpers.js';

interface RawAnswer {
  status: number;
  body: any;
}

/** node:http, not fetch: fetch does not let a caller set `Host`, and that is the header under attack. */
function post(port: number, body: unknown, headers: Record<string, string>): Promise<RawAnswer> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mcp',
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'content-length': Buffer.byteLength(text),
          ...headers,
        },
      },
      (res) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString('utf8')));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: data.startsWith('{') || data.startsWith('[') ? JSON.parse(data) : data,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

/** A non-loopback IPv4 address of this machine, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

const connects = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

describe('MCP server listener: bind, token, Host/Origin, errors, audit', () => {
  const token = 'edge-test-token';
  let server: RunningMcpServer;
  let port: number;
  const calls: McpCallAudit[] = [];
  const auth = { authorization: `Bearer ${token}` };
  const query = {
    jsonrpc: '2.0',
    id: 7,
    method: 'tools/call',
    params: { name: 'query', arguments: { sql: 'SELECT 41 + 1 AS n' } },
  };

  before(async () => {
    port = await freePort();
    server = await runMcpServer('database', {
      port,
      token,
      env: { DATABASE_URL: await freshDatabase('mcp_edge'), LOG_LEVEL: 'silent' },
      logger: silentLogger,
      onCall: (c) => void calls.push(c),
    });
  });
  after(() => server?.close());

  it('refuses to serve over HTTP without a token unless MCP_AUTH_DISABLED says so', async () => {
    await assert.rejects(
      runMcpServer('fetch', { port: 0, env: { LOG_LEVEL: 'silent' }, logger: silentLogger }),
      /MCP_AUTH_TOKEN is required/,
    );
  });

  it("binds 127.0.0.1 by default: not reachable on the machine's other addresses", async (t) => {
    assert.match(server.url!, /^http:\/\/127\.0\.0\.1:/);
    assert.equal(await connects('127.0.0.1', port), true);
    const ext = externalAddress();
    if (!ext) return t.skip('this machine has no non-loopback IPv4 address to try');
    assert.equal(await connects(ext, port), false, `port ${port} answers on ${ext}`);
  });

  it('answers 401 to a call without the bearer token (a query, and pg_read_file, never run)', async () => {
    const r = await post(
      port,
      { ...query, params: { name: 'query', arguments: { sql: "SELECT pg_read_file('/etc/hostname')" } } },
      { host: `127.0.0.1:${port}` },
    );
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, -32001);
    const wrong = await post(port, query, { host: `127.0.0.1:${port}`, authorization: 'Bearer not-the-token' });
    assert.equal(wrong.status, 401);
  });

  it('answers 403 to a rebound Host (DNS rebinding), with or without the token', async () => {
    for (const host of ['attacker.example', `attacker.example:${port}`, `localhost:${port + 1}`]) {
      const r = await post(port, query, { host, ...auth });
      assert.equal(r.status, 403, host);
      assert.match(r.body.error.message, /Host/);
    }
  });

  it('answers 403 to a foreign Origin, and serves loopback origins of its own port', async () => {
    for (const origin of ['http://attacker.example', `http://localhost:${port + 1}`, 'null']) {
      const r = await post(port, query, { host: `localhost:${port}`, origin, ...auth });
      assert.equal(r.status, 403, origin);
      assert.match(r.body.error.message, /Origin/);
    }
    for (const [host, origin] of [
      [`localhost:${port}`, `http://localhost:${port}`],
      [`127.0.0.1:${port}`, `http://127.0.0.1:${port}`],
    ] as const) {
      const r = await post(port, query, { host, origin, ...auth });
      assert.equal(r.status, 200, origin);
      assert.equal(r.body.result.structuredContent.rows[0].n, 42);
    }
  });

  it('answers invalid params with -32602 and a short message, not a zod dump or the raw input', async () => {
    const h = { host: `127.0.0.1:${port}`, ...auth };
    const bad = await post(
      port,
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { arguments: 'not an object' } },
      h,
    );
    assert.equal(bad.body.error.code, -32602);
    assert.match(bad.body.error.message, /^invalid params: /);
    assert.ok(bad.body.error.message.length < 200, bad.body.error.message);
    assert.doesNotMatch(bad.body.error.message, /[[{]\s*"/);
    const missing = await post(
      port,
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'resources/read',
        params: { uri: 'postgres://schema/public/no_such_table_xyz' },
      },
      h,
    );
    assert.equal(missing.body.error.code, -32602);
    assert.doesNotMatch(missing.body.error.message, /no_such_table_xyz/);
  });

  it('advertises no list_changed notification it cannot deliver (stateless: no session, GET /mcp is 405)', async () => {
    const init = await post(
      port,
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'edge-test', version: '0' } },
      },
      { host: `127.0.0.1:${port}`, ...auth },
    );
    assert.equal(init.status, 200);
    const caps = init.body.result.capabilities;
    assert.ok(caps.tools, 'tools are advertised');
    for (const k of ['tools', 'resources', 'prompts']) assert.notEqual(caps[k]?.listChanged, true, `${k}.listChanged`);
    assert.notEqual(caps.resources?.subscribe, true);
    const get = await new Promise<number>((resolve, reject) =>
      http
        .get(
          { host: '127.0.0.1', port, path: '/mcp', headers: { ...auth, accept: 'text/event-stream' } },
          (res) => (res.resume(), resolve(res.statusCode ?? 0)),
        )
        .on('error', reject),
    );
    assert.equal(get, 405);
  });

  it('puts every answered call on record with the caller (actor token:mcp, address, outcome)', async () => {
    calls.length = 0;
    const r = await post(port, query, {
      host: `127.0.0.1:${port}`,
      'x-correlation-id': 'edge-audit-1',
      'user-agent': 'edge-test',
      ...auth,
    });
    assert.equal(r.status, 200);
    const c = calls.find((x) => x.correlation_id === 'edge-audit-1');
    assert.ok(c, `no audit record in ${JSON.stringify(calls)}`);
    assert.equal(c.actor, 'token:mcp');
    assert.equal(c.server, 'database');
    assert.equal(c.method, 'tools/call');
    assert.equal(c.target, 'query');
    assert.deepEqual(c.argument_names, ['sql']);
    assert.equal(c.outcome, 'success');
    assert.equal(c.remote, '127.0.0.1');
    assert.equal(c.user_agent, 'edge-test');
    // Refused requests run nothing and are not "calls" (they are logged as refusals).
    const before = calls.length;
    await post(port, query, { host: 'attacker.example', ...auth });
    assert.equal(calls.length, before);
  });
});

describe('MCP server listener: refused requests in the log', () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }) as unknown as Logger;
  let server: RunningMcpServer;
  let port: number;

  before(async () => {
    port = await freePort();
    server = await runMcpServer('database', {
      port,
      token: 'edge-log-token',
      env: { DATABASE_URL: await freshDatabase('mcp_edge_log'), LOG_LEVEL: 'info' },
      logger,
    });
  });
  after(() => server?.close());

  it('300 requests with wrong tokens: every one refused, one warning line for them (with its count) per interval', async () => {
    for (let i = 0; i < 300; i++) {
      const r = await post(port, {}, { host: `127.0.0.1:${port}`, authorization: `Bearer wrong-${i}` });
      assert.equal(r.status, 401);
    }
    const refused = lines.filter((l) => l['msg'] === 'mcp request refused: missing or wrong bearer token');
    assert.equal(refused.length, 1, 'one line within the interval');
    assert.equal(refused[0]!['refused'], 1, 'the count of refusals the line stands for');
  });
});

// The GitHub role on its seed port (5003 by default; a free port here): the official
// server-github over stdio, bridged to Streamable HTTP, and `unconfigured` without a token.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { freePort } from '@switchyard/platform';
import { defaultPorts } from '../config.js';
import { runMcpServer, type RunningMcpServer } from '../runtime.js';
import { httpClient, silentLogger } from '../test-helpers.js';
import { startGithubBridge } from './bridge.js';

const TOKEN = 'github-bridge-test-token';

/** node:http, so the test can set `Host` (fetch cannot). */
function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const text = body === undefined ? '' : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        headers: {
          ...(body === undefined
            ? {}
            : {
                'content-type': 'application/json',
                accept: 'application/json, text/event-stream',
                'content-length': Buffer.byteLength(text),
              }),
          ...headers,
        },
      },
      (res) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString('utf8')));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: data.startsWith('{') ? JSON.parse(data) : data }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '0' } },
};

describe('github MCP server', () => {
  it('has the seed port 5003', () => {
    assert.equal(defaultPorts.github, 5003);
  });

  describe('without GITHUB_PERSONAL_ACCESS_TOKEN', () => {
    let server: RunningMcpServer;
    let port: number;
    before(async () => {
      port = await freePort();
      // The environment is exactly this: no token, whatever the runner's own environment holds.
      server = await runMcpServer('github', { port, token: TOKEN, logger: silentLogger, env: { LOG_LEVEL: 'silent' } });
    });
    after(async () => server?.close());

    it('answers /health 200 with status unconfigured (not an error)', async () => {
      const res = await raw(port, 'GET', '/health', { host: `127.0.0.1:${port}` });
      assert.equal(res.status, 200);
      assert.equal(res.body.status, 'unconfigured');
      assert.equal(res.body.server, 'github');
      assert.match(res.body.reason, /GITHUB_PERSONAL_ACCESS_TOKEN/);
    });

    it('refuses /mcp with 503 and a JSON-RPC error naming the missing token', async () => {
      const res = await raw(
        port,
        'POST',
        '/mcp',
        { host: `127.0.0.1:${port}`, authorization: `Bearer ${TOKEN}` },
        initialize,
      );
      assert.equal(res.status, 503);
      assert.equal(res.body.jsonrpc, '2.0');
      assert.match(res.body.error.message, /GITHUB_PERSONAL_ACCESS_TOKEN is not set/);
      assert.deepEqual(res.body.error.data, { state: 'unconfigured', missing: ['GITHUB_PERSONAL_ACCESS_TOKEN'] });
      // What an MCP client shows its user: the status and the reason.
      await assert.rejects(
        httpClient(server.url!, TOKEN),
        (err: Error & { code?: number }) =>
          err.code === 503 && /GITHUB_PERSONAL_ACCESS_TOKEN is not set/.test(err.message),
      );
    });

    it('checks the bearer token and Host/Origin like every other server', async () => {
      const noToken = await raw(port, 'POST', '/mcp', { host: `127.0.0.1:${port}` }, initialize);
      assert.equal(noToken.status, 401);
      const rebound = await raw(port, 'GET', '/health', { host: `attacker.example:${port}` });
      assert.equal(rebound.status, 403);
      const foreignOrigin = await raw(
        port,
        'POST',
        '/mcp',
        { host: `127.0.0.1:${port}`, origin: 'http://evil.example', authorization: `Bearer ${TOKEN}` },
        initialize,
      );
      assert.equal(foreignOrigin.status, 403);
    });

    it('refuses to start on stdio, where it could not say why per request', async () => {
      await assert.rejects(
        runMcpServer('github', { stdio: true, logger: silentLogger, env: { LOG_LEVEL: 'silent' } }),
        /GITHUB_PERSONAL_ACCESS_TOKEN/,
      );
    });
  });

  describe('with a token', () => {
    let server: RunningMcpServer;
    let port: number;
    before(async () => {
      port = await freePort();
      // A dummy token: listing tools is local to the official server, nothing reaches GitHub.
      server = await runMcpServer('github', {
        port,
        token: TOKEN,
        logger: silentLogger,
        env: { LOG_LEVEL: 'silent', GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_dummy_for_tests' },
      });
    });
    after(async () => server?.close());

    it('bridges to the official server-github: initialize and tools/list', async () => {
      const health = await raw(port, 'GET', '/health', { host: `127.0.0.1:${port}` });
      assert.equal(health.status, 200);
      assert.equal(health.body.status, 'ok');
      assert.ok(!JSON.stringify(health.body).includes('ghp_dummy'), 'the token never shows in /health');
      const client = await httpClient(server.url!, TOKEN);
      try {
        // Initialize is answered by the bridge, which advertises what the official server advertises.
        assert.equal(client.getServerVersion()?.name, 'switchyard-github-bridge');
        assert.ok(client.getServerCapabilities()?.tools, 'tools capability forwarded');
        const names = (await client.listTools()).tools.map((t) => t.name);
        for (const n of [
          'search_repositories',
          'create_issue',
          'create_pull_request',
          'get_file_contents',
          'list_commits',
        ])
          assert.ok(names.includes(n), `lists ${n}: ${names.join(', ')}`);
      } finally {
        await client.close();
      }
    });
  });

  it("hands the child its token and not the parent's other secrets", async () => {
    process.env.SWITCHYARD_TEST_SECRET = 'must-not-leak';
    const bridge = await startGithubBridge({ token: 'ghp_dummy_env', logger: silentLogger });
    try {
      const pid = bridge.pid;
      assert.ok(pid, 'child running');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      assert.ok(env.includes('GITHUB_PERSONAL_ACCESS_TOKEN=ghp_dummy_env'), 'token in the child environment');
      assert.ok(!env.some((e) => e.startsWith('SWITCHYARD_TEST_SECRET=')), 'no other variable of ours');
    } finally {
      delete process.env.SWITCHYARD_TEST_SECRET;
      await bridge.close();
    }
  });
});

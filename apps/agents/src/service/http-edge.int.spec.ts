// The agents' HTTP contract (6001-6006) attacked the way the security review did: the bind
// address, no token, a rebound Host, a foreign Origin.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { AgentRuntime } from './runtime.js';
import { startAgentHttp, type AgentHttpCallAudit, type AgentHttpHandle } from './http.js';

const logger = createLogger('agent-http-edge', process.env.LOG_LEVEL ?? 'silent');

/** node:http, not fetch: fetch does not let a caller set `Host`. */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          ...(text ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) } : {}),
          ...headers,
        },
      },
      (res) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : undefined }));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

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

describe('agent HTTP contract listener: bind, token, Host/Origin', () => {
  let pool: pg.Pool;
  let agent: AgentHttpHandle;
  const token = 'agent-edge-token';
  const auth = { authorization: `Bearer ${token}` };
  const task = { task_type: 'noop', context: { echo: 'hi' } };
  const calls: AgentHttpCallAudit[] = [];

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('agent_http_edge'), max: 2 });
    const runtime = new AgentRuntime({ agent: 'data_analyst', instanceId: 'edge-1', pool, logger, noop: true });
    // No host given: the default must be loopback.
    agent = await startAgentHttp({ runtime, port: 0, token, logger, onExecute: (c) => void calls.push(c) });
  });
  after(async () => {
    await agent?.close();
    await pool?.end();
  });

  it("binds 127.0.0.1 by default: not reachable on the machine's other addresses", async (t) => {
    assert.match(agent.url, /^http:\/\/127\.0\.0\.1:/);
    assert.equal(await connects('127.0.0.1', agent.port), true);
    const ext = externalAddress();
    if (!ext) return t.skip('this machine has no non-loopback IPv4 address to try');
    assert.equal(await connects(ext, agent.port), false, `port ${agent.port} answers on ${ext}`);
  });

  it('answers 401 to /execute without the bearer token', async () => {
    const r = await send(agent.port, 'POST', '/execute', { host: `127.0.0.1:${agent.port}` }, task);
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'unauthorized');
  });

  it('answers 403 to a rebound Host, token or not, on every route', async () => {
    for (const [method, path] of [
      ['POST', '/execute'],
      ['GET', '/health'],
    ] as const) {
      const r = await send(
        agent.port,
        method,
        path,
        { host: 'attacker.example', ...auth },
        method === 'POST' ? task : undefined,
      );
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(r.body.error.code, 'forbidden');
    }
  });

  it('answers 403 to a foreign Origin, and runs the task for its own origin with the token', async () => {
    const foreign = await send(
      agent.port,
      'POST',
      '/execute',
      { host: `127.0.0.1:${agent.port}`, origin: 'http://attacker.example', ...auth },
      task,
    );
    assert.equal(foreign.status, 403);
    const otherPort = await send(
      agent.port,
      'POST',
      '/execute',
      { host: `127.0.0.1:${agent.port}`, origin: `http://localhost:${agent.port + 1}`, ...auth },
      task,
    );
    assert.equal(otherPort.status, 403);
    const own = await send(
      agent.port,
      'POST',
      '/execute',
      { host: `localhost:${agent.port}`, origin: `http://localhost:${agent.port}`, ...auth },
      task,
    );
    assert.equal(own.status, 200);
    assert.deepEqual(own.body.result, { echo: 'hi', slept_ms: 0 });
  });

  it('puts every /execute it ran on record with the caller, and nothing it refused', async () => {
    calls.length = 0;
    await send(agent.port, 'POST', '/execute', { host: 'attacker.example', ...auth }, task);
    await send(agent.port, 'POST', '/execute', { host: `127.0.0.1:${agent.port}` }, task);
    assert.equal(calls.length, 0);
    const r = await send(
      agent.port,
      'POST',
      '/execute',
      { host: `127.0.0.1:${agent.port}`, 'x-correlation-id': 'agent-audit-1', 'user-agent': 'edge-test', ...auth },
      { ...task, task_id: 't-audit-1' },
    );
    assert.equal(r.status, 200);
    assert.equal(calls.length, 1);
    const c = calls[0]!;
    assert.deepEqual(
      {
        agent: c.agent,
        task_id: c.task_id,
        task_type: c.task_type,
        outcome: c.outcome,
        actor: c.actor,
        remote: c.remote,
        user_agent: c.user_agent,
        correlation_id: c.correlation_id,
      },
      {
        agent: 'data_analyst',
        task_id: 't-audit-1',
        task_type: 'noop',
        outcome: 'completed',
        actor: 'token:agents',
        remote: '127.0.0.1',
        user_agent: 'edge-test',
        correlation_id: 'agent-audit-1',
      },
    );
  });
});

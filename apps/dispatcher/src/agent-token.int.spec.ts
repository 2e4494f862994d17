// The dispatcher hands this system's agent token (AI_AGENT_AUTH_TOKEN, or the launcher's generated
// one) to our own agents' HTTP contract on loopback; a generated one to nobody else. An operator-set
// AI_AGENT_AUTH_TOKEN (externalAgentToken) is the bearer of external agents without a token of their own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase } from '@switchyard/testing';
import { taskExecuteReply, tasksSubject } from '@switchyard/contracts';
import { AgentRuntime, startAgentHttp } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from './index.js';

const logger = createLogger('agent-token-int', process.env.LOG_LEVEL ?? 'silent');
const fast = {
  pollIntervalMs: 100,
  healthIntervalMs: 200,
  discoveryIntervalMs: 300,
  discoveryWaitMs: 150,
  probeTimeoutMs: 500,
};
const TOKEN = 'system-agent-token';

function externalAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

describe('dispatcher: the agent token goes to our own agents on loopback only', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;

  const execute = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('execute'), input, { schema: taskExecuteReply, timeoutMs: 30_000 });
  const register = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('register_agent'), input, { schema: z.unknown() });

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'agent-token-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'agent-token-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('agent_token'), max: 6 });
    store = new PostgresEventStore({ pool });
    await store.init();
    // Both stand-ins are local receivers: allow-list them past the egress guard (loopback, and
    // this machine's own non-loopback address, which may be a private or reserved one).
    const ext = externalAddress();
    const egress = { allowCidrs: ['127.0.0.0/8', ...(ext ? [`${ext}/32`] : [])] };
    d = await startDispatcher({ store, nats: nc, pool, logger, agentToken: TOKEN, egress, ...fast });
  });

  after(async () => {
    await d?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('calls an agent on 127.0.0.1 registered without a token of its own with the system token', async () => {
    const runtime = new AgentRuntime({
      agent: 'automation_specialist',
      instanceId: 'loop-1',
      pool,
      logger,
      noop: true,
    });
    const agent = await startAgentHttp({ runtime, port: 0, token: TOKEN, logger });
    try {
      await register({ name: 'own-http', url: agent.url, task_types: ['noop'] });
      const r = await execute({
        task_type: 'noop',
        context: { echo: 'loopback' },
        agent: 'own-http',
        idempotency_key: 'own-http-1',
      });
      assert.deepEqual(r.result, { echo: 'loopback', slept_ms: 0 });
    } finally {
      await agent.close();
    }
  });

  it('never sends it to an agent elsewhere', async (t) => {
    const ext = externalAddress();
    if (!ext) return t.skip('this machine has no non-loopback IPv4 address to serve a stand-in third-party agent on');
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url === '/health') res.end(JSON.stringify({ status: 'healthy', agent: 'third-party' }));
      else
        res.end(
          JSON.stringify({
            task_id: 'x',
            agent: 'third-party',
            status: 'completed',
            result: { ok: true },
            duration_ms: 1,
          }),
        );
    });
    await new Promise<void>((r) => server.listen(0, ext, () => r()));
    try {
      const url = `http://${ext}:${(server.address() as AddressInfo).port}`;
      await register({ name: 'third-party', url, task_types: ['noop'] });
      const r = await execute({
        task_type: 'noop',
        context: {},
        agent: 'third-party',
        idempotency_key: 'third-party-1',
      });
      assert.deepEqual(r.result, { ok: true });
      assert.ok(seen.length > 0);
      assert.deepEqual(seen.filter(Boolean), [], 'an Authorization header reached a third party');
    } finally {
      await new Promise<void>((r) => (server.close(() => r()), server.closeAllConnections()));
    }
  });
});

describe('dispatcher: an operator-set AI_AGENT_AUTH_TOKEN is the bearer of external agents without their own', () => {
  const OPERATOR_TOKEN = 'operator-set-agent-token';
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;
  let server: http.Server | undefined;
  const seen: { agent: string; authorization: string | undefined }[] = [];

  const execute = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('execute'), input, { schema: taskExecuteReply, timeoutMs: 30_000 });
  const register = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('register_agent'), input, { schema: z.unknown() });

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'agent-token-ext-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'agent-token-ext-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('agent_token_ext'), max: 6 });
    store = new PostgresEventStore({ pool });
    await store.init();
    const ext = externalAddress();
    const egress = { allowCidrs: ['127.0.0.0/8', ...(ext ? [`${ext}/32`] : [])] };
    // As the launcher wires it when the operator sets AI_AGENT_AUTH_TOKEN: the same token both ways.
    d = await startDispatcher({
      store,
      nats: nc,
      pool,
      logger,
      agentToken: OPERATOR_TOKEN,
      externalAgentToken: OPERATOR_TOKEN,
      egress,
      ...fast,
    });
  });

  after(async () => {
    if (server) await new Promise<void>((r) => (server!.close(() => r()), server!.closeAllConnections()));
    await d?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it("sends it to an agent elsewhere registered without a token, and an agent's own token instead of it", async (t) => {
    const ext = externalAddress();
    if (!ext) return t.skip('this machine has no non-loopback IPv4 address to serve a stand-in external agent on');
    // One receiver, two registrations (by path): each request's Authorization is recorded under the agent's name.
    server = http.createServer((req, res) => {
      const agent = (req.url ?? '').split('/')[1] ?? '';
      if (req.url?.endsWith('/execute')) seen.push({ agent, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url?.endsWith('/health')) res.end(JSON.stringify({ status: 'healthy', agent }));
      else res.end(JSON.stringify({ task_id: 'x', agent, status: 'completed', result: { ok: agent }, duration_ms: 1 }));
    });
    await new Promise<void>((r) => server!.listen(0, ext, () => r()));
    const base = `http://${ext}:${(server.address() as AddressInfo).port}`;
    await register({ name: 'ext-no-token', url: `${base}/ext-no-token`, task_types: ['noop'] });
    await register({
      name: 'ext-own-token',
      url: `${base}/ext-own-token`,
      task_types: ['noop'],
      token: 'its-own-token',
    });
    const a = await execute({
      task_type: 'noop',
      context: {},
      agent: 'ext-no-token',
      idempotency_key: 'ext-no-token-1',
    });
    const b = await execute({
      task_type: 'noop',
      context: {},
      agent: 'ext-own-token',
      idempotency_key: 'ext-own-token-1',
    });
    assert.deepEqual([a.result, b.result], [{ ok: 'ext-no-token' }, { ok: 'ext-own-token' }]);
    assert.deepEqual(
      seen.map((s) => [s.agent, s.authorization]),
      [
        ['ext-no-token', `Bearer ${OPERATOR_TOKEN}`],
        ['ext-own-token', 'Bearer its-own-token'],
      ],
    );
  });
});

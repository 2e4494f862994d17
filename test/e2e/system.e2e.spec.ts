/**
 * The whole system as `npm start` runs it: one launcher process that starts a real
 * PostgreSQL and nats-server of its own (no DATABASE_URL / NATS_URL), the relay, the MCP
 * servers, the connectors and the gateway. Driven only through HTTP and NATS, like a user.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { freePort } from '@switchyard/platform';
import { childPids } from './launcher.js';
import pg from 'pg';
import { a2aRevenueRequest, embeddedDatabaseUrl, scratchDataDir } from '@switchyard/testing';

const root = path.resolve(import.meta.dirname, '..', '..', '..');
const nkeyOf = (seed: string) => nkeyAuthenticator(new TextEncoder().encode(seed));
const launcher = path.join(root, 'apps', 'launcher', 'dist', 'main.js');

/** The first admin key, given by env as an operator would (`sy_<16 hex>_<secret>`). */
const adminKey = `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
const auth = { authorization: `Bearer ${adminKey}` };
const agentNames = [
  'DATA_ANALYST',
  'FINANCIAL_ADVISOR',
  'OPERATIONS_MANAGER',
  'AUTOMATION_SPECIALIST',
  'CONTENT_CREATOR',
  'CUSTOMER_SUCCESS',
];

interface Ports {
  agents: Record<string, number>;
  gateway: number;
  pg: number;
  nats: number;
  mcp: Record<
    'FILESYSTEM_BRIDGE' | 'DATABASE' | 'DATABASE_WRITER' | 'GITHUB' | 'FETCH' | 'AUTOMATION' | 'ANALYTICS',
    number
  >;
}

function startSystem(
  dataDir: string,
  ports: Ports,
): { proc: ChildProcess; exited: Promise<number | null>; output: () => string } {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATA_DIR: dataDir,
    GATEWAY_PORT: String(ports.gateway),
    GATEWAY_HOST: '127.0.0.1',
    EMBEDDED_PG_PORT: String(ports.pg),
    EMBEDDED_NATS_PORT: String(ports.nats),
    FILESYSTEM_ROOT: path.join(dataDir, 'files'),
    LOG_LEVEL: 'info',
    SWITCHYARD_ADMIN_KEY: adminKey,
  };
  for (const [name, port] of Object.entries(ports.agents)) env[`AGENT_${name}_PORT`] = String(port);
  // Let the launcher start its own infrastructure, as on a fresh machine.
  delete env.DATABASE_URL;
  delete env.NATS_URL;
  delete env.TEST_DATABASE_URL;
  delete env.TEST_NATS_URL;
  delete env.NATS_TOKEN; // so it makes the token of its data dir
  for (const [kind, port] of Object.entries(ports.mcp)) {
    env[`MCP_${kind}_PORT`] = String(port);
    // The connectors reach the filesystem and GitHub servers over stdio; their HTTP bridges only move ports.
    const name = kind === 'FILESYSTEM_BRIDGE' || kind === 'GITHUB' ? undefined : kind;
    if (name) env[`MCP_${name}_URL`] = `http://127.0.0.1:${port}/mcp`;
  }
  const proc = spawn(process.execPath, [launcher], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, exited, output: () => out };
}

/** The first lines that are not JSON log lines: where a crash says what happened. */
const crashReport = (out: string): string =>
  out
    .split('\n')
    .filter((l) => !l.startsWith('{'))
    .slice(0, 25)
    .join('\n') || out.slice(-1500);

/** What the launcher printed, for a start that failed: its plain lines, then its last warnings and errors. */
const launcherReport = (out: string): string => {
  const lines = out.split('\n');
  const plain = lines.filter((l) => l && !l.startsWith('{')).slice(0, 25);
  const loud = lines.filter((l) => /"level":(40|50|60)/.test(l)).slice(-15);
  return [
    '--- launcher output (plain lines) ---',
    ...plain,
    '--- launcher warnings/errors (last 15) ---',
    ...loud,
    '--- launcher output (tail) ---',
    out.slice(-2000),
  ].join('\n');
};

async function waitReady(
  base: string,
  system: ReturnType<typeof startSystem>,
  timeoutMs = 90_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    // A launcher that died will never be ready: say why now, not after the whole timeout.
    if (system.proc.exitCode !== null || system.proc.signalCode !== null) {
      throw new Error(
        `the launcher exited (${system.proc.exitCode ?? system.proc.signalCode}) before it was ready:\n${launcherReport(system.output())}`,
      );
    }
    try {
      const res = await fetch(`${base}/readyz`);
      const body = (await res.json()) as Record<string, unknown>;
      if (res.status === 200) return body;
      last = JSON.stringify(body);
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`not ready after ${timeoutMs} ms: ${last}\n${launcherReport(system.output())}`);
}

describe('the whole system started like npm start', () => {
  let scratch: string;
  let dataDir: string;
  let ports: Ports;
  let system: ReturnType<typeof startSystem>;
  let base: string;
  let nc: NatsConnection | undefined;

  before(async () => {
    scratch = scratchDataDir('e2e-');
    // DATA_DIR itself is made by the launcher, as on a fresh clone (where a wrong mode once kept
    // the postgres user out of its own data dir).
    dataDir = path.join(scratch, 'data');
    const agents: Record<string, number> = {};
    for (const name of agentNames) agents[name] = await freePort();
    ports = {
      agents,
      gateway: await freePort(),
      pg: await freePort(),
      nats: await freePort(),
      mcp: {
        FILESYSTEM_BRIDGE: await freePort(),
        DATABASE: await freePort(),
        DATABASE_WRITER: await freePort(),
        GITHUB: await freePort(),
        FETCH: await freePort(),
        AUTOMATION: await freePort(),
        ANALYTICS: await freePort(),
      },
    };
    base = `http://127.0.0.1:${ports.gateway}`;
    system = startSystem(dataDir, ports);
  });

  after(async () => {
    await nc?.close();
    if (system.proc.exitCode === null) {
      system.proc.kill('SIGKILL');
      await system.exited;
    }
    rmSync(scratch, { recursive: true, force: true });
    // A cluster the launcher had to keep outside the project (see reachableDataDir) goes too.
    for (const m of system.output().matchAll(/"dataDir":"(\/var\/lib\/switchyard\/[0-9a-f]{16})\/[^"]+"/g)) {
      rmSync(m[1]!, { recursive: true, force: true });
    }
  });

  it('becomes ready: Postgres, NATS and the event store are up', async () => {
    const body = await waitReady(base, system);
    assert.equal(body.status, 'ready');
    const checks = body.checks as Record<string, { status: string }>;
    assert.equal(checks.postgres?.status, 'up');
    assert.equal(checks.nats?.status, 'up');
    assert.equal(checks.eventStore?.status, 'up');
  });

  it('refuses the API without a key (401) and with a bad one', async () => {
    const none = await fetch(`${base}/api/v1/integration/mcp/health`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('content-type') ?? '', /problem\+json/);
    const bad = await fetch(`${base}/api/v1/integration/mcp/health`, {
      headers: { authorization: 'Bearer sy_0000000000000000_nope' },
    });
    assert.equal(bad.status, 401);
  });

  it('serves MCP calls and records each one as events that reach NATS subscribers', async () => {
    let health: { status: string; servers: { server: string; state: string }[] } = { status: '', servers: [] };
    for (let i = 0; i < 120; i++) {
      health = (await (
        await fetch(`${base}/api/v1/integration/mcp/health`, { headers: auth })
      ).json()) as typeof health;
      if (health.servers?.filter((s) => s.server !== 'github').every((s) => s.state === 'up')) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.deepEqual(
      health.servers
        .filter((s) => s.server !== 'github')
        .map((s) => [s.server, s.state])
        .sort(),
      [
        ['analytics', 'up'],
        ['automation', 'up'],
        ['database', 'up'],
        ['database_writer', 'up'],
        ['fetch', 'up'],
        ['filesystem', 'up'],
      ],
    );
    const correlationId = `e2e-${Date.now()}`;
    // Another process following the events live, as the README shows: the read-only user `events`.
    const reader = await connect({
      servers: `nats://127.0.0.1:${ports.nats}`,
      // As an external subscriber does: nkey auth with the seed in DATA_DIR/nats/events-password.
      authenticator: nkeyOf(readFileSync(path.join(dataDir, 'nats', 'events-password'), 'utf8').trim()),
    });
    const liveTypes: string[] = [];
    const live = (async () => {
      for await (const m of reader.subscribe('switchyard.events.>')) {
        const env = m.json<{ type: string; metadata: { correlationId: string } }>();
        if (m.subject.startsWith('switchyard.events.mcpserver.') && env.metadata.correlationId === correlationId)
          liveTypes.push(env.type);
        if (liveTypes.includes('McpToolSucceeded')) break;
      }
    })();
    await reader.flush();
    const res = await fetch(`${base}/api/v1/integration/mcp/database/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-correlation-id': correlationId, ...auth },
      body: JSON.stringify({ query: 'select :a::int + :b::int as sum', params: { a: 40, b: 2 } }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-correlation-id'), correlationId);
    const body = (await res.json()) as { result: { rows: { sum: number }[] } };
    assert.deepEqual(body.result.rows, [{ sum: 42 }]);

    // The audit trail in the event store, by the request's correlation id.
    let mine: { type: string; metadata: { correlationId: string; actor?: string } }[] = [];
    for (let i = 0; i < 40 && mine.length < 2; i++) {
      const page = (await (
        await fetch(`${base}/api/v1/events?stream=mcpserver-database&limit=1000`, { headers: auth })
      ).json()) as { events: typeof mine };
      mine = page.events.filter((e) => e.metadata.correlationId === correlationId);
      if (mine.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(
      mine.map((e) => e.type),
      ['McpToolCalled', 'McpToolSucceeded'],
    );
    // Who asked: the key, not the system.
    assert.deepEqual(
      mine.map((e) => e.metadata.actor),
      [`apikey:${adminKey.split('_')[1]}`, `apikey:${adminKey.split('_')[1]}`],
    );

    // The relay published them: the reader had them live.
    await Promise.race([live, new Promise((r) => setTimeout(r, 10_000))]);
    assert.deepEqual(liveTypes, ['McpToolCalled', 'McpToolSucceeded']);
    await reader.close();
    // And in JetStream, where a process holding the system's nkey seed (DATA_DIR/nats/token) can replay them.
    nc = await connect({
      servers: `nats://127.0.0.1:${ports.nats}`,
      authenticator: nkeyOf(readFileSync(path.join(dataDir, 'nats', 'token'), 'utf8').trim()),
    });
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    let types: string[] = [];
    for (let i = 0; i < 40 && !types.includes('McpToolSucceeded'); i++) {
      // An ordered consumer replays the stream from the start (nats-server 2.9 has no multi-filter consumers).
      const total = (await jsm.streams.info('SWITCHYARD_EVENTS')).state.messages;
      const consumer = await js.consumers.get('SWITCHYARD_EVENTS');
      const batch = await consumer.fetch({ max_messages: total, expires: 2000 });
      types = [];
      for await (const m of batch) {
        const env = m.json<{ type: string; metadata: { correlationId: string } }>();
        if (m.subject.startsWith('switchyard.events.mcpserver.') && env.metadata.correlationId === correlationId)
          types.push(env.type);
      }
      if (!types.includes('McpToolSucceeded')) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(types, ['McpToolCalled', 'McpToolSucceeded']);
  });

  it('its nats-server refuses clients without the nkey of DATA_DIR/nats/token, lets the events user only follow events, and keeps both secrets off command lines and out of child environments', async () => {
    const url = `nats://127.0.0.1:${ports.nats}`;
    const tokenFile = path.join(dataDir, 'nats', 'token');
    const token = readFileSync(tokenFile, 'utf8').trim();
    assert.match(token, /^SU[A-Z2-7]{56}$/, 'an nkey user seed');
    const eventsPassword = readFileSync(path.join(dataDir, 'nats', 'events-password'), 'utf8').trim();
    assert.match(eventsPassword, /^SU[A-Z2-7]{56}$/, 'an nkey user seed');
    // Without its nkey any local process could call every service subject (database_writer's
    // call_tool included); the seed sent in clear is refused too (ours never send it).
    for (const creds of [
      {},
      { token: 'wrong-token' },
      { token },
      { user: 'switchyard', pass: token },
      { user: 'events', pass: eventsPassword },
    ])
      await assert.rejects(
        connect({ servers: url, reconnect: false, timeout: 5_000, ...creds }),
        (e: Error) => e.name === 'AuthorizationError',
        JSON.stringify(Object.keys(creds)),
      );
    const ok = await connect({ servers: url, reconnect: false, authenticator: nkeyOf(token) });
    assert.ok((await ok.rtt()) >= 0);
    await ok.close();
    // The events user may not call a service.
    const reader = await connect({ servers: url, reconnect: false, authenticator: nkeyOf(eventsPassword) });
    await assert.rejects(reader.request('switchyard.svc.mcp.v1.database_writer.call_tool', '{}', { timeout: 2_000 }));
    await reader.close();
    const mode = (f: string) => statSync(f).mode & 0o777;
    assert.equal(mode(path.join(dataDir, 'nats')), 0o700);
    assert.equal(mode(tokenFile), 0o600);
    assert.equal(mode(path.join(dataDir, 'nats', 'events-password')), 0o600);
    assert.equal(mode(path.join(dataDir, 'nats', 'nats-server.conf')), 0o600);
    // Every local user may read a command line; only the user its environment. Neither holds the
    // token: not nats-server's, not the stdio MCP servers' (filesystem) nor PostgreSQL's.
    const children = childPids(system.proc.pid!);
    const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const natsPid = children.find((pid) => comm(pid) === 'nats-server');
    assert.ok(natsPid, `the launcher runs nats-server: ${children.map(comm).join(', ')}`);
    const cmdline = readFileSync(`/proc/${natsPid}/cmdline`, 'utf8').split('\0');
    assert.deepEqual(cmdline.slice(1, 3), ['-c', path.join(dataDir, 'nats', 'nats-server.conf')]);
    assert.ok(children.length >= 2, 'nats-server and at least one more child (postgres, stdio MCP servers)');
    for (const pid of [system.proc.pid!, ...children]) {
      assert.ok(
        !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(token),
        `the token is on ${comm(pid)}'s command line`,
      );
      assert.ok(
        !readFileSync(`/proc/${pid}/environ`, 'utf8').includes(token),
        `the token is in ${comm(pid)}'s environment`,
      );
      for (const where of ['cmdline', 'environ'])
        assert.ok(
          !readFileSync(`/proc/${pid}/${where}`, 'utf8').includes(eventsPassword),
          `the events password is in ${comm(pid)}'s ${where}`,
        );
    }
    // Nor does any child get the launcher's other credentials: the admin key is in the launcher's
    // environment, and PostgreSQL's superuser could read its server's back (pg_read_file).
    for (const pid of children)
      assert.ok(
        !readFileSync(`/proc/${pid}/environ`, 'utf8').includes(adminKey),
        `the admin key is in ${comm(pid)}'s environment`,
      );
    assert.ok(
      children.some((pid) => comm(pid) === 'postgres'),
      `the launcher runs postgres: ${children.map(comm).join(', ')}`,
    );
    assert.ok(!system.output().includes(token), 'the launcher logged the token');
    assert.ok(!system.output().includes(eventsPassword), "the launcher logged the events user's password");
  });

  it('answers on the MCP and agent ports only bearers of the generated tokens from loopback hosts, and audits what the MCP servers answered', async () => {
    // node:http, not fetch: the Host header is part of the attack.
    const post = (port: number, p: string, headers: Record<string, string>, body: unknown) =>
      new Promise<number>((resolve, reject) => {
        const text = JSON.stringify(body);
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            path: p,
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(text);
      });
    const call = {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'query', arguments: { sql: "SELECT pg_read_file('/etc/hostname')" } },
    };
    // No token was configured: the launcher generated one, so nobody outside the process holds it.
    assert.equal(await post(ports.mcp.DATABASE, '/mcp', { host: `127.0.0.1:${ports.mcp.DATABASE}` }, call), 401);
    assert.equal(
      await post(
        ports.mcp.DATABASE,
        '/mcp',
        { host: `127.0.0.1:${ports.mcp.DATABASE}`, authorization: 'Bearer guess' },
        call,
      ),
      401,
    );
    assert.equal(await post(ports.mcp.DATABASE, '/mcp', { host: 'attacker.example' }, call), 403);
    const agentPort = ports.agents.DATA_ANALYST!;
    assert.equal(
      await post(agentPort, '/execute', { host: `127.0.0.1:${agentPort}` }, { task_type: 'noop', context: {} }),
      401,
    );
    assert.equal(
      await post(agentPort, '/execute', { host: 'attacker.example' }, { task_type: 'noop', context: {} }),
      403,
    );
    assert.equal(
      await post(
        ports.gateway,
        '/api/v1/integration/mcp/database/query',
        { host: 'attacker.example', ...auth },
        { query: 'select 1' },
      ),
      403,
    );
    // The database server's own record of a call the gateway makes (through the connectors, with the
    // token), under the gateway request's correlation id.
    const correlationId = `e2e-audit-${Date.now()}`;
    const q = await fetch(`${base}/api/v1/integration/mcp/database/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-correlation-id': correlationId, ...auth },
      body: JSON.stringify({ query: 'select 1 as one' }),
    });
    assert.equal(q.status, 200);
    let entries: { actor: string; streamId: string; type: string; correlationId: string | null }[] = [];
    for (let i = 0; i < 40 && entries.length === 0; i++) {
      const res = await fetch(`${base}/api/v1/audit?actor=token:mcp&type=McpServerCallHandled&limit=50`, {
        headers: auth,
      });
      assert.equal(res.status, 200);
      entries = ((await res.json()) as { entries: typeof entries }).entries.filter(
        (e) => e.correlationId === correlationId,
      );
      if (entries.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(
      entries.map((e) => [e.streamId, e.actor]),
      [['mcpaudit-database', 'token:mcp']],
    );
  });

  it('delegates a task to an agent and records who asked in the task events', async () => {
    const res = await fetch(`${base}/api/v1/integration/agents/delegate?wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ task_type: 'revenue_analysis', context: { timeframe: '12m' }, priority: 'high' }),
    });
    const body = (await res.json()) as { task_id: string; status: string; agent: string; result?: unknown };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.status, 'completed');
    assert.equal(body.agent, 'data_analyst');
    assert.ok(body.result && typeof body.result === 'object');
    const events = (await (
      await fetch(`${base}/api/v1/events?stream=task-${body.task_id}`, { headers: auth })
    ).json()) as {
      events: { type: string; metadata: { actor?: string } }[];
    };
    const submitted = events.events.find((e) => e.type === 'TaskSubmitted');
    assert.equal(submitted?.metadata.actor, `apikey:${adminKey.split('_')[1]}`);
    assert.ok(events.events.some((e) => e.type === 'TaskCompleted'));
  });

  it("an A2A message/send through the gateway's own database login makes its task once; the same message again answers that task", async () => {
    const messageId = `system-a2a-${Date.now()}`;
    const send = async () => {
      const res = await fetch(`${base}/a2a/data_analyst`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify(a2aRevenueRequest(messageId)),
      });
      const body = (await res.json()) as { result?: { id: string }; error?: unknown };
      assert.equal(res.status, 200);
      assert.ok(body.result?.id, `a task, not an error: ${JSON.stringify(body)}`);
      return body.result.id;
    };
    const [a, b] = await Promise.all([send(), send()]);
    assert.equal(a, b, 'two sends at once: one task');
    assert.equal(await send(), a, 'a repeat: the same task');
  });

  it('answers the complete status in one call, from read models', async () => {
    let body:
      | {
          status: string;
          mcp: { available: boolean; servers: { server: string; calls_last_hour?: number }[] };
          infrastructure: { checks: Record<string, { status: string }> };
        }
      | undefined;
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${base}/api/v1/integration/status`, { headers: auth });
      assert.equal(res.status, 200);
      body = (await res.json()) as typeof body;
      if (body!.mcp.available && body!.mcp.servers.some((s) => s.server === 'database')) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(body!.status));
    assert.equal(body!.infrastructure.checks.postgres?.status, 'up');
    assert.ok(
      body!.mcp.servers.some((s) => s.server === 'database'),
      JSON.stringify(body!.mcp),
    );
  });

  /** A request with a key, its answer's JSON. */
  const json = async (method: string, url: string, key: string, body?: unknown) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  /** A new API key of `role`. */
  const keyOf = async (role: string, purpose: string) => {
    const r = await json('POST', '/api/v1/admin/api-keys', adminKey, { name: `${purpose}-${role}`, role });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.key as string;
  };

  it('shows a viewer which error a call had, not the row values the error quotes (events, status, MCP health)', async () => {
    const viewer = await keyOf('viewer', 'errors');
    const operator = await keyOf('operator', 'errors');
    // PostgreSQL quotes the value it could not cast: a customer's e-mail address.
    const failed = await json('POST', '/api/v1/integration/mcp/database/query', operator, {
      query: 'select cast(email as int) from business.customers order by id limit 1',
    });
    assert.equal(failed.status, 400, JSON.stringify(failed.body));
    const email = /"([^"]+@[^"]+)"/.exec(JSON.stringify(failed.body))?.[1];
    assert.ok(email, `the operator's answer names the value: ${JSON.stringify(failed.body)}`);
    const failures = async (key: string) => {
      for (let i = 0; i < 40; i++) {
        const r = await json(
          'GET',
          '/api/v1/events?stream=mcpserver-database&type=McpToolFailed&direction=backwards&limit=20',
          key,
        );
        assert.equal(r.status, 200);
        const f = (r.body.events as any[]).filter((e) => e.type === 'McpToolFailed');
        if (f.length) return f[0].data;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.fail('no McpToolFailed recorded');
    };
    const operatorSees = JSON.stringify(await failures(operator));
    assert.ok(operatorSees.includes(email), 'an operator reads the error whole');
    const viewerSees = await failures(viewer);
    assert.match(viewerSees.error_message, /invalid input syntax for type integer: …/);
    assert.ok(!JSON.stringify(viewerSees).includes(email), JSON.stringify(viewerSees));
    // The same through every read the viewer may make: the status, the servers' health.
    for (const url of ['/api/v1/integration/status', '/api/v1/integration/mcp/health']) {
      const r = await json('GET', url, viewer);
      assert.equal(r.status, 200);
      assert.ok(!JSON.stringify(r.body).includes(email), `${url}: ${JSON.stringify(r.body).slice(0, 500)}`);
    }
  });

  it("keeps an inline workflow's literal arguments from a viewer, in every read of its events", async () => {
    const viewer = await keyOf('viewer', 'inline');
    const operator = await keyOf('operator', 'inline');
    const marker = `private-${Date.now()}@example.com`;
    const started = await json('POST', '/api/v1/integration/agents/workflow?wait=true&wait_ms=20000', operator, {
      definition: {
        id: 'inline_literals',
        steps: [{ id: 'look', uses: 'mcp:database/query', with: { sql: `select '${marker}' as who` } }],
        outputs: { who: marker },
      },
      input: {},
    });
    assert.ok(started.status < 300, JSON.stringify(started.body));
    const id = String(started.body.execution_id);
    for (const url of [`/api/v1/workflows/executions/${id}/events`, `/api/v1/events?stream=workflow_execution-${id}`]) {
      const operatorSees = await json('GET', url, operator);
      assert.equal(operatorSees.status, 200, url);
      assert.ok(JSON.stringify(operatorSees.body).includes(marker), `${url}: an operator reads the definition whole`);
      const viewerSees = await json('GET', url, viewer);
      assert.equal(viewerSees.status, 200, url);
      const startedEvent = (viewerSees.body.events as any[]).find((e) => e.type === 'WorkflowStarted');
      assert.ok(startedEvent, `${url}: ${JSON.stringify(viewerSees.body).slice(0, 300)}`);
      assert.equal(startedEvent.data.definition.steps[0].uses, 'mcp:database/query', 'the shape stays');
      assert.ok(
        !JSON.stringify(viewerSees.body).includes(marker),
        `${url}: ${JSON.stringify(viewerSees.body).slice(0, 800)}`,
      );
    }
  });

  it("keeps a registered definition's arguments and input defaults, analytics figures and a batch's texts from a viewer", async () => {
    const viewer = await keyOf('viewer', 'definitions');
    const operator = await keyOf('operator', 'definitions');
    const marker = `hooks-${Date.now()}.example.com/T000/SECRET`;
    const def = {
      id: 'viewer_sees_shape',
      version: 1,
      name: 'shape only',
      input: { type: 'object', properties: { hook: { type: 'string', default: `https://${marker}` } } },
      steps: [{ id: 'look', uses: 'mcp:database/query', with: { sql: `select '${marker}' as who` } }],
    };
    const reg = await json('POST', '/api/v1/workflows/definitions', adminKey, def);
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const url = '/api/v1/workflows/definitions?id=viewer_sees_shape';
    assert.ok(JSON.stringify((await json('GET', url, operator)).body).includes(marker), 'an operator reads it whole');
    const viewerSees = await json('GET', url, viewer);
    assert.equal(viewerSees.status, 200);
    assert.equal(viewerSees.body.definitions[0].steps[0].uses, 'mcp:database/query', 'the shape stays');
    assert.ok(!JSON.stringify(viewerSees.body).includes(marker), JSON.stringify(viewerSees.body));
    // Nor from the event log: the registration's event reads the same way.
    const registered = await json('GET', '/api/v1/events?stream=workflow_definition-viewer_sees_shape', viewer);
    assert.equal(registered.status, 200);
    assert.equal(registered.body.events[0].type, 'DefinitionRegistered');
    assert.ok(!JSON.stringify(registered.body).includes(marker), JSON.stringify(registered.body));
    // Analytics figures are what workflows recorded from outputs a viewer reads redacted.
    const analytics = '/api/v1/integration/mcp/analytics/revenue.total?window=1h&aggregate=max';
    assert.equal((await json('GET', analytics, viewer)).status, 403);
    assert.equal((await json('GET', analytics, operator)).status, 200);
    // A batch: what it did, not the operator's search text.
    const batch = await json('POST', '/api/v1/workflows/executions/bulk', operator, {
      filter: { error_contains: marker, status: 'failed' },
      action: 'retry',
    });
    assert.equal(batch.status, 202, JSON.stringify(batch.body));
    const batchUrl = `/api/v1/workflows/batches/${batch.body.batch_id}`;
    assert.ok(JSON.stringify((await json('GET', batchUrl, operator)).body).includes(marker));
    const viewerBatch = await json('GET', batchUrl, viewer);
    assert.equal(viewerBatch.status, 200);
    assert.ok(!JSON.stringify(viewerBatch.body).includes(marker), JSON.stringify(viewerBatch.body));
    const batchEvents = await json('GET', `/api/v1/events?stream=workflow_batch-${batch.body.batch_id}`, viewer);
    assert.equal(batchEvents.body.events[0].type, 'BatchStarted');
    assert.ok(!JSON.stringify(batchEvents.body).includes(marker), JSON.stringify(batchEvents.body));
  });

  it('monitors itself: a health report naming every service, and Prometheus metrics', async () => {
    let report: { status: string; services: { service: string; status: string }[] } = { status: '', services: [] };
    for (let i = 0; i < 120; i++) {
      const res = await fetch(`${base}/api/v1/system/health-report`, { headers: auth });
      if (res.status === 200) {
        report = (await res.json()) as typeof report;
        // Probes start as discovery finds services, and a probe under load can be slow once: wait for all up.
        const state = new Map((report.services ?? []).map((s) => [s.service, s.status]));
        if (['postgres', 'nats', 'event-store', 'mcp:database'].every((n) => state.get(n) === 'up')) break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const byName = new Map(report.services.map((s) => [s.service, s.status]));
    for (const name of ['postgres', 'nats', 'event-store', 'mcp:database'])
      assert.equal(byName.get(name), 'up', `${name} in ${JSON.stringify(report)}`);
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(report.status));
    const metrics = await fetch(`${base}/metrics`, { headers: auth });
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /# TYPE /);
  });

  it('read models emptied by hand come back whole from the log with `npm run rebuild -- all`, beside the running system', async () => {
    const list = async () => {
      const r = await fetch(`${base}/api/v1/workflows/executions?limit=200`, { headers: auth });
      const text = await r.text();
      assert.equal(r.status, 200, text.slice(0, 500));
      return (JSON.parse(text) as { items: { execution_id: string; status: string }[] }).items
        .map((x) => `${x.execution_id}:${x.status}`)
        .sort();
    };
    const tasks = async () => (await db.query<{ n: string }>('select count(*) as n from delegation.tasks')).rows[0]!.n;
    const db = new pg.Client({ connectionString: embeddedDatabaseUrl(dataDir, ports.pg) });
    await db.connect();
    try {
      const before = await list();
      const tasksBefore = await tasks();
      assert.ok(before.length > 0 && Number(tasksBefore) > 0, 'the run so far made executions and tasks');
      // What a careless operator does: the rows go (a table dropped, one emptied), the checkpoints stay.
      await db.query(
        'drop table read_models.workflow_step_attempts, read_models.workflow_steps, read_models.workflow_executions cascade; truncate delegation.tasks',
      );
      assert.equal(await tasks(), '0');
      // As a user beside `npm start`: the data dir and its port, no DATABASE_URL.
      const env: Record<string, string | undefined> = {
        ...process.env,
        DATA_DIR: dataDir,
        EMBEDDED_PG_PORT: String(ports.pg),
      };
      delete env.DATABASE_URL;
      const r = spawnSync(process.execPath, [path.join(root, 'apps', 'launcher', 'dist', 'rebuild.js'), 'all'], {
        env,
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /rebuilt \d+ read models from the log in \d+ ms/);
      assert.match(r.stdout, /"read_model":"workflow_executions"/);
      assert.deepEqual(
        await list(),
        before,
        'the same executions, in the same states (the dropped tables back with their grants)',
      );
      assert.equal(await tasks(), tasksBefore);
      const unknown = spawnSync(process.execPath, [path.join(root, 'apps', 'launcher', 'dist', 'rebuild.js'), 'nope'], {
        env,
        encoding: 'utf8',
      });
      assert.equal(unknown.status, 2);
      assert.match(unknown.stderr, /no read model named nope/);
    } finally {
      await db.end();
    }
  });

  it("`npm run verify-log` finds an event edited and one deleted by hand, against the relay's copy; agrees again once they are put back", async () => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: String(ports.pg),
      EMBEDDED_NATS_PORT: String(ports.nats),
    };
    for (const k of ['DATABASE_URL', 'NATS_URL', 'NATS_TOKEN']) delete env[k];
    const verify = () =>
      spawnSync(process.execPath, [path.join(root, 'apps', 'launcher', 'dist', 'verify-log.js')], {
        env,
        encoding: 'utf8',
        timeout: 120_000,
      });
    const clean = verify();
    assert.equal(clean.status, 0, `${clean.stdout}\n${clean.stderr}`);
    assert.match(
      clean.stdout,
      /the log agrees: \d+ events, positions 0-\d+ without a hole, [1-9]\d* checked against the relay's copy/,
    );
    const db = new pg.Client({ connectionString: embeddedDatabaseUrl(dataDir, ports.pg) });
    await db.connect();
    try {
      // Two events the relay published long ago: a task's completion (edited) and an earlier one (deleted).
      const edited = (
        await db.query(`select * from eventstore.events where type = 'TaskCompleted' order by position limit 1`)
      ).rows[0];
      const deleted = (await db.query(`select * from eventstore.events where position = 5`)).rows[0];
      assert.ok(edited && deleted);
      await db.query(
        `update eventstore.events set data = jsonb_set(data, '{result}', '"forged"') where position = $1`,
        [edited.position],
      );
      await db.query('delete from eventstore.events where position = 5');
      try {
        const r = verify();
        assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
        const v = JSON.parse(r.stdout.split('\n')[0]!) as {
          holes: number[];
          differ: { position: number; what: string }[];
        };
        assert.deepEqual(v.holes, [5]);
        assert.ok(
          v.differ.some((d) => d.position === Number(edited.position) && d.what === 'data'),
          r.stdout,
        );
        assert.ok(
          v.differ.some((d) => d.position === 5 && d.what === 'not in the log'),
          r.stdout,
        );
      } finally {
        // Put both back as they were, for the rest of the suite.
        await db.query('update eventstore.events set data = $2 where position = $1', [edited.position, edited.data]);
        await db.query(
          `insert into eventstore.events (position, stream_id, revision, event_id, type, data, metadata, recorded_at, data_bytes)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [
            deleted.position,
            deleted.stream_id,
            deleted.revision,
            deleted.event_id,
            deleted.type,
            deleted.data,
            deleted.metadata,
            deleted.recorded_at,
            deleted.data_bytes,
          ],
        );
      }
      const again = verify();
      assert.equal(again.status, 0, `${again.stdout}\n${again.stderr}`);
    } finally {
      await db.end();
    }
  });

  it('a second launcher on the same data dir refuses in one sentence, and the running one keeps its servers', async () => {
    const t0 = Date.now();
    const second = startSystem(dataDir, ports);
    const code = await Promise.race([second.exited, sleep(30_000).then(() => 'still running' as const)]);
    if (code === 'still running') second.proc.kill('SIGKILL');
    assert.equal(code, 1, `the second launcher exits 1: ${second.output().slice(-2000)}`);
    assert.match(
      second.output(),
      new RegExp(`another switchyard launcher \\(pid ${system.proc.pid}\\) runs on DATA_DIR`),
    );
    assert.doesNotMatch(second.output(), /adopting the (PostgreSQL|NATS) server/, 'it touched nothing');
    console.log(`# the second launcher refused in ${Date.now() - t0} ms`);
    // The first one's servers were not adopted nor stopped: still ready, nothing restarted.
    await sleep(2_000);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.doesNotMatch(system.output(), /embedded (nats-server|PostgreSQL) exited/);
  });

  it('stops cleanly on SIGTERM and keeps its data (and its NATS token) across a restart', async () => {
    const token = readFileSync(path.join(dataDir, 'nats', 'token'), 'utf8');
    const before = (await (await fetch(`${base}/api/v1/events?limit=1000`, { headers: auth })).json()) as {
      events: { id: string }[];
    };
    system.proc.kill('SIGTERM');
    const code = await system.exited;
    assert.equal(code, 0, crashReport(system.output()));

    system = startSystem(dataDir, ports);
    await waitReady(base, system);
    const again = (await (await fetch(`${base}/api/v1/events?limit=1000`, { headers: auth })).json()) as {
      events: { id: string }[];
    };
    const ids = new Set(again.events.map((e) => e.id));
    assert.ok(before.events.length > 0);
    assert.ok(
      before.events.every((e) => ids.has(e.id)),
      'every event from the first run is still there',
    );
    assert.equal(readFileSync(path.join(dataDir, 'nats', 'token'), 'utf8'), token, 'the same token after a restart');
    system.proc.kill('SIGTERM');
    assert.equal(await system.exited, 0);
  });
});

/**
 * The specification against the whole system as `npm start` runs it (one launcher process, all
 * roles, its own PostgreSQL and nats-server, every port free), started once for this file:
 *  - its five "Usage Examples", sent verbatim: the same method, path, headers and body bytes as the
 *    curl commands, plus the Authorization header every route requires;
 *  - a walk over every endpoint of its "API Endpoints" list, in its order, each with a realistic
 *    request; a last test checks the walk covered the whole list.
 * Each must answer 2xx with a real result (checked against the system's own database, files or
 * mailbox where there is one), except GitHub without a token: its documented 503 problem.
 */
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '@switchyard/platform';
import { embeddedDatabaseUrl, until, scratchDataDir } from '@switchyard/testing';
import { newAdminKey, Proc, systemEnv, waitReady } from './launcher.js';

// The bodies exactly as the specification's curl commands send them (`-d '...'`), whitespace included.
const EXAMPLE_2_BODY = `{
    "task_type": "analyze_revenue",
    "context": {"timeframe": "30d"},
    "priority": "high"
  }`;
const EXAMPLE_3_BODY = `{
    "query": "SELECT COUNT(*) FROM customers",
    "params": {}
  }`;
const EXAMPLE_4_BODY = `{
    "timeframe": "30d",
    "include_forecasts": true
  }`;

const round2 = (x: number): number => Math.round(x * 100) / 100;

const adminKey = newAdminKey();
let dataDir: string;
let filesRoot: string;
let base: string;
let system: Proc;
let db: pg.Client;
/** The HTTP receiver the fetch server reaches: `/hello` answers at once, `/slow` when the test releases it. */
let receiver: Server;
let receiverUrl: string;
const slowRequests: ServerResponse[] = [];

/** One request as curl sends it: `-H "Content-Type: application/json"` only with a body, plus the key. */
const curl = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: string) => {
  const headers: Record<string, string> = { accept: '*/*', authorization: `Bearer ${adminKey}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${url}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(90_000),
  });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    text,
    body: text ? JSON.parse(text) : undefined,
  };
};
const get = (url: string) => curl('GET', url);

/** What the demo data says for the 30 days ending at the last order (the window `30d` names). */
const revenue30d = async () => {
  const r = await db.query<{ from_date: string; to_date: string; total: string; orders: number }>(
    `with m as (select max(order_date) as as_of from business.orders)
     select (m.as_of - 29)::text as from_date, m.as_of::text as to_date, sum(o.amount)::text as total, count(*)::int as orders
       from m join business.orders o on o.order_date between m.as_of - 29 and m.as_of group by m.as_of`,
  );
  return r.rows[0]!;
};

before(async () => {
  dataDir = scratchDataDir('e2e-spec-examples-');
  receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith('/slow')) {
      slowRequests.push(res);
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ hello: 'from the receiver', method: req.method, url: req.url }));
  });
  const receiverPort = await freePort();
  await new Promise<void>((r) => receiver.listen(receiverPort, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${receiverPort}`;
  const gatewayPort = await freePort();
  const pgPort = await freePort();
  base = `http://127.0.0.1:${gatewayPort}`;
  const env = await systemEnv(dataDir, adminKey, {
    GATEWAY_PORT: String(gatewayPort),
    EMBEDDED_PG_PORT: String(pgPort),
    EMBEDDED_NATS_PORT: String(await freePort()),
    // The fetch server's SSRF guard refuses loopback unless allowed: the walk's receiver is on 127.0.0.1.
    FETCH_ALLOW_CIDRS: '127.0.0.1/32',
  });
  // GitHub unconfigured (its documented 503); the development mailbox on a free port.
  delete env['GITHUB_PERSONAL_ACCESS_TOKEN'];
  delete env['MAILBOX_SMTP_PORT'];
  filesRoot = env['FILESYSTEM_ROOT']!;
  // No roles: every role in one process, as `npm start` runs it.
  system = new Proc('system (npm start)', [], env);
  system.start();
  await system.waitUp(120_000);
  await waitReady(base, system);
  db = new pg.Client({ connectionString: embeddedDatabaseUrl(dataDir, pgPort) });
  await db.connect();
  // The MCP servers answer through the connectors once they have connected to them.
  await until(
    'the filesystem, database, fetch, automation and analytics MCP servers up',
    async () => {
      const servers: { server: string; state: string }[] =
        (await get('/api/v1/integration/mcp/health')).body?.servers ?? [];
      return ['database', 'fetch', 'automation', 'analytics', 'filesystem'].every((n) =>
        servers.some((s) => s.server === n && s.state === 'up'),
      );
    },
    90_000,
    250,
  );
});

after(async () => {
  for (const res of slowRequests) res.destroy();
  await new Promise((r) => receiver?.close(r));
  await db?.end().catch(() => undefined);
  await system?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("the specification's usage examples, verbatim, against the launcher", () => {
  it('1. GET /api/v1/integration/status: the verdict with the MCP servers and the agents', async () => {
    const r = await get('/api/v1/integration/status');
    assert.equal(r.status, 200, r.text);
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(r.body.status), r.text);
    assert.ok(Array.isArray(r.body.reasons));
    assert.equal(r.body.infrastructure.checks.postgres?.status, 'up', r.text);
    // The read models fill in as the servers and agents report: wait for them, through the same request.
    const full = await until(
      'the status to list the MCP servers and the six agents',
      async () => {
        const s = await get('/api/v1/integration/status');
        const servers: { server: string; health: string }[] = s.body?.mcp?.servers ?? [];
        const agents = (s.body?.agents?.items ?? []).map((x: { agent: string }) => x.agent);
        // A server's row can come (from its first call) before its health event is projected: wait for both.
        return s.status === 200 &&
          servers.some((x) => x.server === 'database' && x.health === 'up') &&
          [
            'data_analyst',
            'financial_advisor',
            'operations_manager',
            'automation_specialist',
            'content_creator',
            'customer_success',
          ].every((a) => agents.includes(a))
          ? s.body
          : undefined;
      },
      90_000,
      500,
    );
    assert.equal(full.mcp.servers.find((s: { server: string }) => s.server === 'database').health, 'up');
    assert.equal(full.agents.available, true);
  });

  it('2. POST /api/v1/integration/agents/delegate with task_type analyze_revenue: accepted, then completed with the revenue of the window', async () => {
    const r = await curl('POST', '/api/v1/integration/agents/delegate', EXAMPLE_2_BODY);
    assert.equal(r.status, 202, r.text);
    assert.match(r.body.task_id, /.+/);
    const done = await until(
      'the delegated task to end',
      async () => {
        const t = await get(`/api/v1/integration/agents/tasks/${r.body.task_id}`);
        return ['completed', 'failed', 'canceled', 'timed_out'].includes(t.body?.status) ? t.body : undefined;
      },
      120_000,
      250,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(
      [done.task_type, done.requested_task_type, done.priority, done.agent],
      ['revenue_analysis', 'analyze_revenue', 'high', 'data_analyst'],
    );
    const want = await revenue30d();
    assert.deepEqual([done.result.window.from, done.result.window.to], [want.from_date, want.to_date]);
    assert.ok(Number(want.total) > 0, 'the demo data has revenue in the window');
    assert.ok(Math.abs(done.result.total - Number(want.total)) < 0.01, `${done.result.total} vs ${want.total}`);
    assert.equal(done.result.orderCount, want.orders);
  });

  it('3. POST /api/v1/integration/mcp/database/query with SELECT COUNT(*) FROM customers: the count of the demo customers', async () => {
    const r = await curl('POST', '/api/v1/integration/mcp/database/query', EXAMPLE_3_BODY);
    assert.equal(r.status, 200, r.text);
    const want = (await db.query<{ n: string }>('select count(*)::text as n from business.customers')).rows[0]!.n;
    assert.ok(Number(want) > 0, 'the demo data has customers');
    assert.deepEqual(r.body.result.rows, [{ count: want }]);
  });

  it("4. POST /api/v1/workflows/start/revenue_analysis: started, then completed with the window's revenue and a forecast", async () => {
    const r = await curl('POST', '/api/v1/workflows/start/revenue_analysis', EXAMPLE_4_BODY);
    assert.ok(r.status === 200 || r.status === 202, r.text);
    assert.match(r.body.execution_id, /.+/);
    const done = await until(
      'the revenue_analysis execution to end',
      async () => {
        const e = await get(`/api/v1/workflows/executions/${r.body.execution_id}`);
        return ['completed', 'failed', 'canceled'].includes(e.body?.status) ? e.body : undefined;
      },
      180_000,
      250,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const want = await revenue30d();
    assert.deepEqual(done.output.window, { from: want.from_date, to: want.to_date, timeframe: '30d' });
    assert.equal(done.output.total_revenue, round2(Number(want.total)));
    assert.equal(done.output.orders, want.orders);
    assert.equal(done.output.forecast_included, true);
    assert.equal(typeof done.output.forecast_total, 'number');
  });

  it('5. GET /api/v1/system/health-report: status, reasons, services, system metrics and alerts', async () => {
    const r = await until(
      'a health report with the probed services',
      async () => {
        const h = await get('/api/v1/system/health-report');
        return h.status === 200 && (h.body?.services ?? []).some((s: { service: string }) => s.service === 'postgres')
          ? h
          : undefined;
      },
      90_000,
      500,
    );
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(r.body.status), r.text);
    assert.ok(Array.isArray(r.body.reasons));
    assert.ok(!Number.isNaN(Date.parse(r.body.at)));
    const services = r.body.services.map((s: { service: string }) => s.service);
    for (const s of ['postgres', 'nats']) assert.ok(services.includes(s), `${s} in ${services.join(', ')}`);
    assert.ok(
      services.some((s: string) => s.startsWith('mcp:')),
      services.join(', '),
    );
    assert.ok(
      services.some((s: string) => s.startsWith('agent:')),
      services.join(', '),
    );
    assert.ok('cpuPercent' in r.body.system && 'memoryPercent' in r.body.system && Array.isArray(r.body.system.disks));
    assert.equal(typeof r.body.alerts.firing, 'number');
    assert.equal(typeof r.body.alerts.pending, 'number');
  });
});

/** The specification's "API Endpoints" list, in its order: 9 MCP, 5 agents, 4 quick actions, status, 5 system, 5 workflows. */
const SPEC_ENDPOINTS = [
  'GET /api/v1/integration/mcp/health',
  'GET /api/v1/integration/mcp/health/{server_name}',
  'POST /api/v1/integration/mcp/call',
  'POST /api/v1/integration/mcp/filesystem/{operation}',
  'POST /api/v1/integration/mcp/database/query',
  'POST /api/v1/integration/mcp/github/{operation}',
  'POST /api/v1/integration/mcp/fetch',
  'POST /api/v1/integration/mcp/automation/trigger',
  'GET /api/v1/integration/mcp/analytics/{metric}',
  'GET /api/v1/integration/agents/health',
  'GET /api/v1/integration/agents/health/{agent_name}',
  'POST /api/v1/integration/agents/delegate',
  'POST /api/v1/integration/agents/workflow',
  'GET /api/v1/integration/agents/capabilities',
  'POST /api/v1/integration/quick/analyze-revenue',
  'POST /api/v1/integration/quick/generate-proposal',
  'POST /api/v1/integration/quick/optimize-schedule',
  'POST /api/v1/integration/quick/customer-support',
  'GET /api/v1/integration/status',
  'GET /api/v1/system/health-report',
  'GET /api/v1/system/performance-trends',
  'GET /api/v1/system/availability',
  'GET /api/v1/system/alerts',
  'POST /api/v1/system/alerts/{alert_id}/resolve',
  'GET /api/v1/workflows/templates',
  'POST /api/v1/workflows/start/{template_id}',
  'GET /api/v1/workflows/executions',
  'GET /api/v1/workflows/executions/{execution_id}',
  'POST /api/v1/workflows/executions/{execution_id}/cancel',
] as const;
type SpecEndpoint = (typeof SPEC_ENDPOINTS)[number];

/** The walk's table: each request it sent, under the specification endpoint it covers. */
const covered = new Map<SpecEndpoint, string[]>();

/** `GET /a/{x}/b` -> a pattern for `GET /a/<one segment>/b` with an optional query. */
const patternOf = (endpoint: string): RegExp =>
  new RegExp(`^${endpoint.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[a-z_]+\}/g, '[^/?]+')}(\\?.*)?$`);

/**
 * One request of the walk, sent for `endpoint` (which it must match) and recorded in the table.
 * `body` is sent as JSON; without one, neither body nor Content-Type is sent (as curl would).
 */
const walk = async (endpoint: SpecEndpoint, method: 'GET' | 'POST', url: string, body?: unknown) => {
  assert.match(`${method} ${url}`, patternOf(endpoint), `${method} ${url} is a request to ${endpoint}`);
  covered.set(endpoint, [...(covered.get(endpoint) ?? []), `${method} ${url}`]);
  const r = await curl(method, url, body === undefined ? undefined : JSON.stringify(body));
  return r;
};

const terminal = ['completed', 'failed', 'canceled'];
const agentsOfSpec = [
  'data_analyst',
  'automation_specialist',
  'content_creator',
  'customer_success',
  'financial_advisor',
  'operations_manager',
];

describe("a walk over the specification's API endpoints, in its order, against the same system", () => {
  const stamp = Date.now().toString(36);
  const metricName = `spec_walk_orders_${stamp}`;
  const onboardingEmail = `ada.${stamp}@example.com`;
  let onboardingExecution: string;
  let firingAlertId: string;
  const alertRuleId = `spec_walk_${stamp}`;

  it('GET mcp/health: every MCP server of the specification, GitHub unconfigured', async () => {
    const r = await walk('GET /api/v1/integration/mcp/health', 'GET', '/api/v1/integration/mcp/health');
    assert.equal(r.status, 200, r.text);
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(r.body.status), r.text);
    const byName = new Map<string, { state: string; role: string }>(
      r.body.servers.map((s: { server: string; state: string; role: string }) => [s.server, s]),
    );
    for (const s of ['filesystem', 'database', 'fetch', 'automation', 'analytics'])
      assert.equal(byName.get(s)?.state, 'up', `${s}: ${r.text}`);
    assert.equal(byName.get('github')?.state, 'unconfigured', r.text);
  });

  it('GET mcp/health/{server_name}: the database server probed now, with its tools', async () => {
    const r = await walk(
      'GET /api/v1/integration/mcp/health/{server_name}',
      'GET',
      '/api/v1/integration/mcp/health/database',
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.server, 'database');
    assert.equal(r.body.state, 'up', r.text);
    assert.ok(r.body.tools.includes('query'), r.text);
    // The specification calls it the "Postgres Server": that name finds it too.
    const bySpecName = await get('/api/v1/integration/mcp/health/postgres');
    assert.equal(bySpecName.status, 200, bySpecName.text);
    assert.equal(bySpecName.body.server, 'database', bySpecName.text);
  });

  it('POST mcp/call: record_metric on the analytics server, stored in analytics.metrics', async () => {
    const r = await walk('POST /api/v1/integration/mcp/call', 'POST', '/api/v1/integration/mcp/call', {
      server: 'analytics',
      tool: 'record_metric',
      arguments: { name: metricName, value: 42, labels: { source: 'spec-walk' } },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      [r.body.server, r.body.tool, r.body.result.name, r.body.result.value],
      ['analytics', 'record_metric', metricName, 42],
    );
    const row = await db.query('select value, labels from analytics.metrics where id = $1', [r.body.result.id]);
    assert.deepEqual(row.rows, [{ value: 42, labels: { source: 'spec-walk' } }]);
  });

  it('POST mcp/filesystem/{operation}: write_file, read_text_file and list_directory in the sandbox', async () => {
    const dir = realpathSync(filesRoot);
    const file = path.join(dir, `spec-walk-${stamp}.md`);
    const w = await walk(
      'POST /api/v1/integration/mcp/filesystem/{operation}',
      'POST',
      '/api/v1/integration/mcp/filesystem/write_file',
      { path: file, content: '# written by the spec walk\n' },
    );
    assert.equal(w.status, 200, w.text);
    assert.equal(readFileSync(file, 'utf8'), '# written by the spec walk\n');
    const read = await walk(
      'POST /api/v1/integration/mcp/filesystem/{operation}',
      'POST',
      '/api/v1/integration/mcp/filesystem/read_text_file',
      { path: file },
    );
    assert.equal(read.status, 200, read.text);
    assert.match(JSON.stringify(read.body.content), /written by the spec walk/);
    const list = await walk(
      'POST /api/v1/integration/mcp/filesystem/{operation}',
      'POST',
      '/api/v1/integration/mcp/filesystem/list_directory',
      { path: dir },
    );
    assert.equal(list.status, 200, list.text);
    assert.ok(JSON.stringify(list.body.content).includes(`spec-walk-${stamp}.md`), list.text);
  });

  it('POST mcp/database/query: named parameters, the rows the database has', async () => {
    const r = await walk(
      'POST /api/v1/integration/mcp/database/query',
      'POST',
      '/api/v1/integration/mcp/database/query',
      {
        query: 'SELECT id, name, email FROM customers WHERE id <= :max ORDER BY id',
        params: { max: 3 },
      },
    );
    assert.equal(r.status, 200, r.text);
    const want = await db.query('select id, name, email from business.customers where id <= 3 order by id');
    assert.equal(want.rows.length, 3);
    assert.deepEqual(r.body.result.rows, want.rows);
  });

  it('POST mcp/github/{operation}: without GITHUB_PERSONAL_ACCESS_TOKEN, the documented 503 problem (not a 500)', async () => {
    const r = await walk(
      'POST /api/v1/integration/mcp/github/{operation}',
      'POST',
      '/api/v1/integration/mcp/github/search_repositories',
      { query: 'switchyard' },
    );
    assert.equal(r.status, 503, r.text);
    assert.match(r.type, /application\/problem\+json/);
    assert.equal(r.body.status, 503, r.text);
    assert.match(r.body.detail, /GITHUB_PERSONAL_ACCESS_TOKEN/);
    // It stays so until the token is set: not retryable, so a client that honours the flag stops.
    assert.equal(r.body.retryable, false, r.text);
    const viaConnectors = await curl(
      'POST',
      '/api/v1/integration/mcp/call',
      JSON.stringify({ server: 'github', tool: 'search_repositories', arguments: { query: 'switchyard' } }),
    );
    assert.equal(viaConnectors.status, 503, viaConnectors.text);
    assert.equal(viaConnectors.body.retryable, false, viaConnectors.text);
  });

  it('POST mcp/fetch: an HTTP request to a local receiver through the fetch server', async () => {
    const r = await walk('POST /api/v1/integration/mcp/fetch', 'POST', '/api/v1/integration/mcp/fetch', {
      url: `${receiverUrl}/hello?from=spec-walk`,
      method: 'GET',
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.tool, 'http_request');
    assert.equal(r.body.result.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.body.result.body), {
      hello: 'from the receiver',
      method: 'GET',
      url: '/hello?from=spec-walk',
    });
  });

  it('POST mcp/automation/trigger: a workflow trigger recorded by the automation server, started by the engine, completed', async () => {
    const r = await walk(
      'POST /api/v1/integration/mcp/automation/trigger',
      'POST',
      '/api/v1/integration/mcp/automation/trigger',
      { template_id: 'revenue_analysis', input: { timeframe: '7d' } },
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.tool, 'trigger_workflow');
    const t = r.body.result.trigger;
    assert.equal(t.status, 'pending', r.text);
    assert.equal(r.body.result.trigger_id, t.id, r.text);
    const executionId: string = r.body.result.execution_id;
    assert.match(executionId, /^[0-9a-f-]{36}$/, r.text);
    assert.equal(t.execution_id, executionId, r.text);
    const row = await db.query('select template_id, input from automation.triggers where id = $1', [t.id]);
    assert.deepEqual(row.rows, [{ template_id: 'revenue_analysis', input: { timeframe: '7d' } }]);
    // The engine's trigger starter starts it (404 until then) and marks the row; the execution runs to its end.
    const done = await until(
      'the triggered revenue_analysis execution to end',
      async () => {
        const e = await get(`/api/v1/workflows/executions/${executionId}`);
        return ['completed', 'failed', 'canceled'].includes(e.body?.status) ? e.body : undefined;
      },
      180_000,
      250,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.definition_id, 'revenue_analysis', JSON.stringify(done));
    assert.equal(done.output.window.timeframe, '7d', JSON.stringify(done.output));
    const marked = await db.query<{ status: string; execution_id: string }>(
      'select status, execution_id from automation.triggers where id = $1',
      [t.id],
    );
    assert.deepEqual(marked.rows, [{ status: 'started', execution_id: executionId }]);
    // The caller can ask how its trigger stands.
    const standing = await get(`/api/v1/integration/mcp/automation/triggers/${t.id}`);
    assert.equal(standing.status, 200, standing.text);
    assert.equal(standing.body.status, 'started', standing.text);
    assert.equal(standing.body.execution_id, executionId, standing.text);
    assert.equal(standing.body.error, null, standing.text);
    const unknown = await get(`/api/v1/integration/mcp/automation/triggers/${randomUUID()}`);
    assert.equal(unknown.status, 404, unknown.text);
    // Started by the trigger, under the request's correlation id, with the trigger as its cause.
    const events = await get(`/api/v1/workflows/executions/${executionId}/events`);
    assert.equal(events.status, 200, events.text);
    const started = events.body.events.find((e: { type: string }) => e.type === 'WorkflowStarted');
    assert.equal(started?.metadata?.actor, 'automation:trigger', events.text);
    assert.equal(started?.metadata?.causationId, t.id, events.text);
    assert.equal(started?.metadata?.correlationId, t.correlation_id, events.text);
  });

  it('POST mcp/automation/trigger refuses at once what the engine would never start: an unknown template, a bad input, a body of neither shape', async () => {
    const before = await db.query<{ n: string }>('select count(*) as n from automation.triggers');
    const trigger = (body: unknown) => curl('POST', '/api/v1/integration/mcp/automation/trigger', JSON.stringify(body));
    const unknown = await trigger({ template_id: 'no_such_template', input: {} });
    assert.equal(unknown.status, 404, unknown.text);
    assert.match(unknown.body.detail, /no_such_template/, unknown.text);
    const bad = await trigger({ template_id: 'revenue_analysis', input: { timeframe: '13w' } });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.body.detail, /timeframe/, bad.text);
    assert.equal(bad.body.errors[0].path, 'timeframe', bad.text);
    const neither = await trigger({});
    assert.equal(neither.status, 400, neither.text);
    assert.match(neither.body.errors[0].message, /template_id.*webhook/, neither.text);
    const half = await trigger({ webhook: 'w' });
    assert.equal(half.status, 400, half.text);
    assert.match(half.body.errors[0].message, /^event: /, half.text);
    const after = await db.query<{ n: string }>('select count(*) as n from automation.triggers');
    assert.equal(after.rows[0]!.n, before.rows[0]!.n, 'no trigger row recorded for a refused request');
  });

  it('GET mcp/analytics/{metric}: the sum over the last hour of the sample recorded above', async () => {
    const r = await walk(
      'GET /api/v1/integration/mcp/analytics/{metric}',
      'GET',
      `/api/v1/integration/mcp/analytics/${metricName}?window=1h&aggregate=sum`,
    );
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      [r.body.result.name, r.body.result.aggregate, r.body.result.value, r.body.result.samples],
      [metricName, 'sum', 42, 1],
    );
  });

  it('GET agents/health: the six agents of the specification, healthy', async () => {
    const r = await walk('GET /api/v1/integration/agents/health', 'GET', '/api/v1/integration/agents/health');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'healthy', r.text);
    const names = r.body.agents.map((a: { agent: string }) => a.agent);
    for (const a of agentsOfSpec) assert.ok(names.includes(a), `${a} in ${names.join(', ')}`);
  });

  it('GET agents/health/{agent_name}: data_analyst', async () => {
    const r = await walk(
      'GET /api/v1/integration/agents/health/{agent_name}',
      'GET',
      '/api/v1/integration/agents/health/data_analyst',
    );
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.agent, r.body.status], ['data_analyst', 'healthy'], r.text);
    assert.ok(r.body.task_types.includes('revenue_analysis'), r.text);
    assert.ok(r.body.instances.length >= 1 && r.body.instances.every((i: { healthy: boolean }) => i.healthy), r.text);
  });

  it('POST agents/delegate: customer_segmentation, waited for, with its segments', async () => {
    const r = await walk(
      'POST /api/v1/integration/agents/delegate',
      'POST',
      '/api/v1/integration/agents/delegate?wait=true',
      { task_type: 'segment_customers', context: {}, priority: 'normal' },
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'completed', r.text);
    assert.equal(r.body.agent, 'data_analyst');
    // Every customer of the demo data lands in exactly one segment.
    const customers = (await db.query<{ n: number }>('select count(*)::int as n from business.customers')).rows[0]!.n;
    assert.equal(r.body.result.customers, customers, r.text);
    assert.equal(
      r.body.result.segments.reduce((n: number, s: { count: number }) => n + s.count, 0),
      customers,
      r.text,
    );
  });

  it('POST agents/workflow: an ad-hoc two-agent workflow (data_analyst, then financial_advisor) completes', async () => {
    const r = await walk(
      'POST /api/v1/integration/agents/workflow',
      'POST',
      '/api/v1/integration/agents/workflow?wait=true&wait_ms=60000',
      {
        definition: {
          id: `spec-walk-agents-${stamp}`,
          steps: [
            { id: 'revenue', uses: 'agent:revenue_analysis', with: { timeframe: '30d' } },
            // The second agent forecasts from the month the first one's window ends in.
            {
              id: 'forecast',
              uses: 'agent:revenue_forecast',
              needs: ['revenue'],
              with: { horizon: 3, asOf: '${{ steps.revenue.output.window.to }}' },
            },
          ],
          outputs: {
            revenue_total: '${{ steps.revenue.output.total }}',
            as_of: '${{ steps.revenue.output.window.to }}',
            forecast: '${{ steps.forecast.output }}',
          },
        },
        input: {},
      },
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'completed', r.text);
    // The first agent's window and total are the database's; the second forecasts the three months after it.
    const want = await revenue30d();
    const out = r.body.output;
    assert.equal(out.as_of, want.to_date);
    assert.ok(Math.abs(out.revenue_total - Number(want.total)) < 0.01, `${out.revenue_total} vs ${want.total}`);
    assert.equal(out.forecast.asOf, want.to_date);
    const month = (k: number) =>
      new Date(Date.UTC(Number(want.to_date.slice(0, 4)), Number(want.to_date.slice(5, 7)) - 1 + k, 1))
        .toISOString()
        .slice(0, 7);
    assert.deepEqual(
      out.forecast.forecast.map((m: { month: string }) => m.month),
      [month(1), month(2), month(3)],
    );
    assert.ok(
      out.forecast.forecast.every(
        (m: { forecast: number; lower: number; upper: number }) => m.lower <= m.forecast && m.forecast <= m.upper,
      ),
    );
    const e = await get(`/api/v1/workflows/executions/${r.body.execution_id}`);
    assert.equal(e.status, 200, e.text);
    const steps = new Map<string, { status: string }>(
      e.body.steps.map((s: { step_id: string; status: string }) => [s.step_id, s]),
    );
    assert.equal(steps.get('revenue')?.status, 'succeeded', e.text);
    assert.equal(steps.get('forecast')?.status, 'succeeded', e.text);
  });

  it('GET agents/capabilities: the six agents with their task types and the alias table', async () => {
    const r = await walk(
      'GET /api/v1/integration/agents/capabilities',
      'GET',
      '/api/v1/integration/agents/capabilities',
    );
    assert.equal(r.status, 200, r.text);
    const agents = r.body.agents.map((a: { agent: string }) => a.agent);
    for (const a of agentsOfSpec) assert.ok(agents.includes(a), `${a} in ${agents.join(', ')}`);
    assert.equal(r.body.aliases.analyze_revenue, 'revenue_analysis');
  });

  /** The four quick actions: the body, the agent that must answer, and what its result must show. */
  const quick: [SpecEndpoint, Record<string, unknown>, string, (result: any) => Promise<void>][] = [
    [
      'POST /api/v1/integration/quick/analyze-revenue',
      { timeframe: '30d' },
      'data_analyst',
      async (result) => {
        const want = await revenue30d();
        assert.deepEqual([result.window.from, result.window.to], [want.from_date, want.to_date]);
        assert.ok(Math.abs(result.total - Number(want.total)) < 0.01, `${result.total} vs ${want.total}`);
        assert.equal(result.orderCount, want.orders);
      },
    ],
    [
      'POST /api/v1/integration/quick/generate-proposal',
      { customer_id: 1, proposal_type: 'upgrade' },
      'content_creator',
      async (result) => {
        const name = (await db.query<{ name: string }>('select name from business.customers where id = 1')).rows[0]!
          .name;
        assert.deepEqual([result.customerId, result.proposalType], [1, 'upgrade']);
        assert.ok(result.markdown.includes(name), result.markdown);
      },
    ],
    [
      'POST /api/v1/integration/quick/optimize-schedule',
      { days: 7 },
      'operations_manager',
      async (result) => {
        assert.equal(result.status, 'optimal');
        assert.ok(result.assignments.length > 0);
        assert.equal(
          (Date.parse(result.period.to) - Date.parse(result.period.from)) / 86_400_000,
          6,
          JSON.stringify(result.period),
        );
      },
    ],
    [
      'POST /api/v1/integration/quick/customer-support',
      { query: 'How do I add two more seats to my plan?', customer_id: 1 },
      'customer_success',
      async (result) => {
        assert.equal(result.intent, 'billing');
        assert.equal(result.escalation.escalate, false);
        assert.equal(result.customer.id, 1);
        assert.match(result.draft, /seat/);
      },
    ],
  ];
  for (const [endpoint, body, agent, check] of quick) {
    const url = endpoint.slice('POST '.length);
    it(`POST ${url.slice('/api/v1/integration/'.length)}: waited for, completed by ${agent} with its result`, async () => {
      const r = await walk(endpoint, 'POST', `${url}?wait=true`, body);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.status, 'completed', r.text);
      assert.equal(r.body.agent, agent);
      await check(r.body.result);
    });
  }

  it('GET integration/status: the verdict, the MCP servers and the six agents', async () => {
    const r = await walk('GET /api/v1/integration/status', 'GET', '/api/v1/integration/status');
    assert.equal(r.status, 200, r.text);
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(r.body.status), r.text);
    const agents = r.body.agents.items.map((x: { agent: string }) => x.agent);
    for (const a of agentsOfSpec) assert.ok(agents.includes(a), `${a} in ${agents.join(', ')}`);
    assert.ok(
      r.body.mcp.servers.some((s: { server: string }) => s.server === 'analytics'),
      r.text,
    );
  });

  it('GET system/health-report: the probed services', async () => {
    const r = await walk('GET /api/v1/system/health-report', 'GET', '/api/v1/system/health-report');
    assert.equal(r.status, 200, r.text);
    const services = r.body.services.map((s: { service: string }) => s.service);
    for (const s of ['postgres', 'nats', 'mcp:database'])
      assert.ok(services.includes(s), `${s} in ${services.join(', ')}`);
  });

  it('GET system/performance-trends: CPU over the last hour, with sampled buckets', async () => {
    // A CPU percentage needs two samples of the CPU times, so on a system this young the first
    // bucket can still be a sample interval away: wait for it, then check the answer's shape.
    let r: Awaited<ReturnType<typeof walk>> | undefined;
    const total = await until(
      'a sampled CPU total in the last hour',
      async () => {
        r = await walk(
          'GET /api/v1/system/performance-trends',
          'GET',
          '/api/v1/system/performance-trends?metric=system_cpu_usage_percent&window=1h',
        );
        assert.equal(r.status, 200, r.text);
        assert.deepEqual([r.body.metric, r.body.window], ['system_cpu_usage_percent', '1h'], r.text);
        const series = r.body.series.find((x: { labels: { cpu?: string } }) => x.labels.cpu === 'total');
        return series?.buckets.length >= 1 ? series : undefined;
      },
      60_000,
      500,
    );
    r = r!;
    assert.ok(
      total.buckets.every((b: { count: number; avg: number }) => b.count >= 1 && b.avg >= 0 && b.avg <= 100),
      r.text,
    );
  });

  it('GET system/availability: uptime per service', async () => {
    const r = await walk('GET /api/v1/system/availability', 'GET', '/api/v1/system/availability');
    assert.equal(r.status, 200, r.text);
    const services = r.body.services.map((x: { service: string }) => x.service);
    for (const s of ['postgres', 'nats', 'mcp:database'])
      assert.ok(services.includes(s), `${s} in ${services.join(', ')}`);
    for (const x of r.body.services)
      assert.ok(x.windows['1h'].uptimePercent >= 0 && x.windows['1h'].uptimePercent <= 100, JSON.stringify(x));
  });

  it('GET system/alerts: a rule added with a threshold always met fires, and is listed firing', async () => {
    const put = await curl(
      'PUT',
      '/api/v1/system/alert-rules',
      JSON.stringify({
        id: alertRuleId,
        name: 'spec walk: NATS probed',
        metric: 'probe_up',
        match: { service: 'nats' },
        comparator: '>=',
        threshold: 0,
        for_ms: 0,
        severity: 'info',
      }),
    );
    assert.equal(put.status, 200, put.text);
    const alert = await until(
      'the spec walk rule firing',
      async () => {
        const r = await walk('GET /api/v1/system/alerts', 'GET', '/api/v1/system/alerts?state=firing');
        assert.equal(r.status, 200, r.text);
        return r.body.alerts.find((a: { ruleId: string }) => a.ruleId === alertRuleId);
      },
      60_000,
      500,
    );
    assert.equal(alert.state, 'firing');
    firingAlertId = alert.id;
  });

  it('POST system/alerts/{alert_id}/resolve: with no body, the fired alert is resolved by hand', async () => {
    assert.ok(firingAlertId, 'an alert fired in the test before');
    const r = await walk(
      'POST /api/v1/system/alerts/{alert_id}/resolve',
      'POST',
      `/api/v1/system/alerts/${firingAlertId}/resolve`,
    );
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      [r.body.alert.id, r.body.alert.state, r.body.alert.resolvedHow, r.body.alert.resolveReason],
      [firingAlertId, 'resolved', 'manual', 'resolved by hand'],
    );
    assert.match(r.body.alert.resolvedBy, /^apikey:/);
    // The rule would fire again: remove it, the system as it was.
    assert.equal((await curl('DELETE', `/api/v1/system/alert-rules?id=${alertRuleId}`)).status, 200);
  });

  it('GET workflows/templates: the built-in templates with their input schemas', async () => {
    const r = await walk('GET /api/v1/workflows/templates', 'GET', '/api/v1/workflows/templates');
    assert.equal(r.status, 200, r.text);
    const ids = r.body.templates.map((t: { id: string }) => t.id);
    for (const t of ['revenue_analysis', 'customer_onboarding', 'customer_support'])
      assert.ok(ids.includes(t), `${t} in ${ids.join(', ')}`);
    const onboarding = r.body.templates.find((t: { id: string }) => t.id === 'customer_onboarding');
    assert.deepEqual(onboarding.input.required, ['customer']);
  });

  it('POST workflows/start/{template_id}: customer_onboarding completes, the customer is in the database', async () => {
    const r = await walk(
      'POST /api/v1/workflows/start/{template_id}',
      'POST',
      '/api/v1/workflows/start/customer_onboarding?wait=true&wait_ms=60000',
      {
        customer: { name: 'Ada Lovelace Ltd', email: onboardingEmail, plan: 'growth', seats: 4 },
        follow_up_after: ['30d'],
      },
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'completed', r.text);
    assert.equal(r.body.output.status, 'onboarded', r.text);
    assert.equal(r.body.output.welcome_sent, true, r.text);
    onboardingExecution = r.body.execution_id;
    const row = await db.query('select id, name from business.customers where email = $1', [onboardingEmail]);
    assert.deepEqual(row.rows, [{ id: r.body.output.customer_id, name: 'Ada Lovelace Ltd' }]);
  });

  it('the onboarding mail: the welcome is in the development mailbox', async () => {
    const r = await get(`/api/v1/integration/mcp/automation/mailbox?to=${encodeURIComponent(onboardingEmail)}`);
    assert.equal(r.status, 200, r.text);
    const welcome = r.body.messages.filter(
      (m: { subject: string }) => m.subject === 'Welcome to Switchyard, Ada Lovelace Ltd',
    );
    assert.equal(welcome.length, 1, r.text);
    assert.deepEqual(welcome[0].to, [onboardingEmail]);
    assert.ok(
      welcome[0].text.startsWith(
        'Hi Ada Lovelace Ltd,\n\nWelcome to Switchyard! Your growth plan with 4 seats is active.',
      ),
      welcome[0].text,
    );
  });

  it('GET workflows/executions: the onboarding execution listed completed', async () => {
    const r = await walk(
      'GET /api/v1/workflows/executions',
      'GET',
      '/api/v1/workflows/executions?template=customer_onboarding',
    );
    assert.equal(r.status, 200, r.text);
    const mine = r.body.items.find((e: { execution_id: string }) => e.execution_id === onboardingExecution);
    assert.equal(mine?.status, 'completed', r.text);
  });

  it('GET workflows/executions/{execution_id}: every step of the onboarding succeeded, its compensation never ran', async () => {
    const r = await walk(
      'GET /api/v1/workflows/executions/{execution_id}',
      'GET',
      `/api/v1/workflows/executions/${onboardingExecution}`,
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'completed');
    const status = Object.fromEntries(
      r.body.steps.map((s: { step_id: string; status: string }) => [s.step_id, s.status]),
    );
    assert.deepEqual(status, {
      check_existing: 'succeeded',
      create_records: 'succeeded',
      welcome_content: 'succeeded',
      send_welcome: 'succeeded',
      schedule_follow_ups: 'succeeded',
      // The undo of create_records: only a failure or a cancel runs it.
      remove_customer: 'pending',
      // The undo of each follow-up schedule: only a cancel runs it.
      delete_follow_up: 'pending',
    });
  });

  it('POST workflows/executions/{execution_id}/cancel: a running execution (a step waiting on a slow HTTP answer) ends canceled; the next step never runs', async () => {
    const afterMetric = `spec_walk_after_cancel_${stamp}`;
    const start = await curl(
      'POST',
      '/api/v1/integration/agents/workflow',
      JSON.stringify({
        definition: {
          id: `spec-walk-slow-${stamp}`,
          steps: [
            {
              id: 'slow',
              uses: 'mcp:fetch/http_request',
              with: { url: `${receiverUrl}/slow`, method: 'GET', timeout_ms: 60_000 },
              timeout_ms: 90_000,
            },
            {
              id: 'after',
              uses: 'mcp:analytics/record_metric',
              needs: ['slow'],
              with: { name: afterMetric, value: 1 },
            },
          ],
        },
        input: {},
      }),
    );
    assert.equal(start.status, 202, start.text);
    const id = start.body.execution_id as string;
    await until('the slow step to reach the receiver', async () => slowRequests.length > 0, 60_000, 100);
    assert.equal((await get(`/api/v1/workflows/executions/${id}`)).body.status, 'running');
    const r = await walk(
      'POST /api/v1/workflows/executions/{execution_id}/cancel',
      'POST',
      `/api/v1/workflows/executions/${id}/cancel`,
    );
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.body, { execution_id: id, status: 'canceling' });
    // Canceling waits for the dispatched step: let its HTTP answer come now.
    for (const res of slowRequests.splice(0)) res.writeHead(200, { 'content-type': 'text/plain' }).end('late');
    const done = await until(
      'the execution to end',
      async () => {
        const e = await get(`/api/v1/workflows/executions/${id}`);
        return terminal.includes(e.body?.status) ? e.body : undefined;
      },
      60_000,
      250,
    );
    assert.equal(done.status, 'canceled', JSON.stringify(done));
    const afterStep = done.steps.find((s: { step_id: string }) => s.step_id === 'after');
    assert.notEqual(afterStep?.status, 'succeeded', JSON.stringify(done.steps));
    assert.equal(
      (await db.query('select count(*)::int as n from analytics.metrics where name = $1', [afterMetric])).rows[0].n,
      0,
    );
  });

  it('the walk covered every endpoint of the specification list, in its order', () => {
    assert.equal(SPEC_ENDPOINTS.length, 29, 'the specification lists 29 endpoints');
    assert.equal(new Set(SPEC_ENDPOINTS).size, SPEC_ENDPOINTS.length);
    const missing = SPEC_ENDPOINTS.filter((e) => !covered.has(e));
    assert.deepEqual(missing, [], `not walked: ${missing.join(', ')}`);
    assert.deepEqual([...covered.keys()], [...SPEC_ENDPOINTS], 'walked in the order of the list');
  });
});

/**
 * The specification's five "Usage Examples", sent verbatim to the whole system as `npm start` runs
 * it (one launcher process, all roles, its own PostgreSQL and nats-server, every port free): the
 * same method, path, headers and body bytes as the curl commands, plus the Authorization header
 * every route requires. Each must answer 2xx with a real result, checked against the system's own
 * database where there is a figure.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '@switchyard/platform';
import { until } from '@switchyard/testing';
import { newAdminKey, Proc, root, systemEnv, waitReady } from './launcher.js';

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

describe("the specification's usage examples, verbatim, against the launcher", () => {
  const adminKey = newAdminKey();
  let dataDir: string;
  let base: string;
  let system: Proc;
  let db: pg.Client;

  /** One request as curl sends it: `-H "Content-Type: application/json"` only with a body, plus the key. */
  const curl = async (method: 'GET' | 'POST', url: string, body?: string) => {
    const headers: Record<string, string> = { accept: '*/*', authorization: `Bearer ${adminKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${url}`, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    return { status: res.status, text, body: (text ? JSON.parse(text) : undefined) as any };
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
    mkdirSync(path.join(root, '.tmp'), { recursive: true });
    dataDir = mkdtempSync(path.join(root, '.tmp', 'e2e-spec-examples-'));
    chmodSync(dataDir, 0o755); // Postgres runs as the postgres user when we are root
    const gatewayPort = await freePort();
    const pgPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    const env = await systemEnv(dataDir, adminKey, {
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(pgPort),
      EMBEDDED_NATS_PORT: String(await freePort()),
    });
    // No roles: every role in one process, as `npm start` runs it.
    system = new Proc('system (npm start)', [], env);
    system.start();
    await system.waitUp(120_000);
    await waitReady(base, system);
    db = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${pgPort}/switchyard` });
    await db.connect();
    // The database server answers through the connectors once they have connected to it.
    await until(
      'the database MCP server up',
      async () => ((await get('/api/v1/integration/mcp/health')).body?.servers ?? []).some((s: { server: string; state: string }) => s.server === 'database' && s.state === 'up'),
      90_000,
      250,
    );
  });

  after(async () => {
    await db?.end().catch(() => undefined);
    await system?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

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
        const servers = (s.body?.mcp?.servers ?? []).map((x: { server: string }) => x.server);
        const agents = (s.body?.agents?.items ?? []).map((x: { agent: string }) => x.agent);
        return s.status === 200 && servers.includes('database') && ['data_analyst', 'financial_advisor', 'operations_manager', 'automation_specialist', 'content_creator', 'customer_success'].every((a) => agents.includes(a)) ? s.body : undefined;
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
    assert.deepEqual([done.task_type, done.requested_task_type, done.priority, done.agent], ['revenue_analysis', 'analyze_revenue', 'high', 'data_analyst']);
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

  it('4. POST /api/v1/workflows/start/revenue_analysis: started, then completed with the window\'s revenue and a forecast', async () => {
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
        return h.status === 200 && (h.body?.services ?? []).some((s: { service: string }) => s.service === 'postgres') ? h : undefined;
      },
      90_000,
      500,
    );
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(r.body.status), r.text);
    assert.ok(Array.isArray(r.body.reasons));
    assert.ok(!Number.isNaN(Date.parse(r.body.at)));
    const services = r.body.services.map((s: { service: string }) => s.service);
    for (const s of ['postgres', 'nats']) assert.ok(services.includes(s), `${s} in ${services.join(', ')}`);
    assert.ok(services.some((s: string) => s.startsWith('mcp:')), services.join(', '));
    assert.ok(services.some((s: string) => s.startsWith('agent:')), services.join(', '));
    assert.ok('cpuPercent' in r.body.system && 'memoryPercent' in r.body.system && Array.isArray(r.body.system.disks));
    assert.equal(typeof r.body.alerts.firing, 'number');
    assert.equal(typeof r.body.alerts.pending, 'number');
  });
});

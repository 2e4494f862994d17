import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, stopOwnInfra, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { externalAgentStreamId } from '@switchyard/contracts';
import {
  AgentRuntime,
  loadDemoData,
  startAgent,
  startAgentHttp,
  startAgents,
  type AgentHandle,
  type AgentsHandle,
} from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { createGateway, type Gateway } from '../../index.js';
import { bearer, startSecuredGateway, type SecuredGateway } from '../../security/test-support.js';
import { AgentsFeatureModule } from './index.js';

/**
 * HTTP -> gateway (AgentsFeatureModule) -> NATS -> dispatcher -> agent -> result, on real
 * PostgreSQL with the demo data and a nats-server of this suite's own (no other suite's
 * agents or `tasks` service on its subjects). Expected figures come from plain SQL.
 */
const logger = createLogger('agents-gw-int', process.env.LOG_LEVEL ?? 'silent');

describe('agents feature: gateway -> dispatcher -> agents', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let gw: Gateway;
  let base: string;
  const extra: AgentHandle[] = [];

  const http = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const one = async <T = any>(sql: string, params: unknown[] = []): Promise<T> =>
    (await pool.query(sql, params)).rows[0] as T;

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'agents-gw-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'agents-gw-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('agents_gw'), max: 8 });
    await loadDemoData(pool);
    store = new PostgresEventStore({ pool });
    await store.init();
    agents = await startAgents({ nats: nc, pool, logger, http: false, noop: true, instancePrefix: 'gw' });
    dispatcher = await startDispatcher({
      store,
      nats: nc,
      pool,
      logger,
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    gw = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      { modules: [AgentsFeatureModule] },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
  });

  after(async () => {
    await gw?.close();
    await dispatcher?.stop();
    await agents?.stop();
    await Promise.all(extra.map((a) => a.stop()));
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('delegate ?wait=true runs revenue_analysis on data_analyst; the total equals the SQL sum', async () => {
    const r = await http('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'revenue_analysis',
      context: { timeframe: '12m', topN: 3 },
      priority: 'high',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'completed');
    assert.equal(r.body.agent, 'data_analyst');
    assert.equal(r.body.instance, 'gw-data_analyst');
    const { window, total, orderCount } = r.body.result;
    assert.deepEqual([window.from, window.to], ['2025-07-01', '2026-06-30']);
    const sql = await one<{ total: number; n: number }>(
      `select sum(amount)::float8 as total, count(*)::int as n from business.orders where order_date between $1 and $2`,
      [window.from, window.to],
    );
    assert.ok(Math.abs(total - sql.total) < 0.01, `${total} vs ${sql.total}`);
    assert.equal(orderCount, sql.n);
    // The task is readable afterwards, with its result.
    const t = await http('GET', `/api/v1/integration/agents/tasks/${r.body.task_id}`);
    assert.equal(t.status, 200);
    assert.equal(t.body.status, 'completed');
    assert.equal(t.body.priority, 'high');
    assert.ok(Math.abs(t.body.result.total - sql.total) < 0.01);
  });

  it("a task alias (the specification's analyze_revenue) runs its canonical type; the task records both; capabilities list the aliases", async () => {
    const r = await http('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'analyze_revenue',
      context: { timeframe: '30d' },
      priority: 'high',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.status, r.body.agent], ['completed', 'data_analyst']);
    const { window, total } = r.body.result;
    const sql = await one<{ total: number }>(
      `select coalesce(sum(amount), 0)::float8 as total from business.orders where order_date between $1 and $2`,
      [window.from, window.to],
    );
    assert.ok(Math.abs(total - sql.total) < 0.01, `${total} vs ${sql.total}`);
    const t = await http('GET', `/api/v1/integration/agents/tasks/${r.body.task_id}`);
    assert.deepEqual([t.body.task_type, t.body.requested_task_type], ['revenue_analysis', 'analyze_revenue']);
    const submitted = (await store.readStream(taskStreamId(r.body.task_id))).find((e) => e.type === 'TaskSubmitted');
    assert.deepEqual(
      [(submitted?.data as any).task_type, (submitted?.data as any).requested_task_type],
      ['revenue_analysis', 'analyze_revenue'],
    );
    // A canonical name records no alias.
    const plain = await http('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'revenue_forecast',
      context: {},
      priority: 'normal',
    });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(
      (await http('GET', `/api/v1/integration/agents/tasks/${plain.body.task_id}`)).body.requested_task_type,
      undefined,
    );

    const caps = await http('GET', '/api/v1/integration/agents/capabilities');
    assert.equal(caps.status, 200);
    assert.equal(caps.body.aliases.analyze_revenue, 'revenue_analysis');
    const ra = caps.body.agents
      .find((a: any) => a.agent === 'data_analyst')
      .task_types.find((x: any) => x.type === 'revenue_analysis');
    assert.deepEqual(ra.aliases, ['analyze_revenue']);
    assert.ok(caps.body.agents.every((a: any) => a.task_types.every((x: any) => Array.isArray(x.aliases))));
  });

  it('delegate without wait answers 202 with the chosen agent; the task then completes', async () => {
    const r = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'customer_segmentation',
      context: {},
      priority: 'normal',
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.match(r.body.task_id, /.+/);
    assert.ok(['data_analyst', 'queued'].includes(r.body.agent));
    const done = await until('segmentation to complete', async () => {
      const t = await http('GET', `/api/v1/integration/agents/tasks/${r.body.task_id}`);
      return t.body.status === 'completed' ? t.body : undefined;
    });
    const customers = await one<{ n: number }>(`select count(distinct customer_id)::int as n from business.orders`);
    assert.ok(done.result !== undefined && customers.n > 0);
  });

  it('unknown task_type: 400 listing the valid ones; bad context: 400 naming the field', async () => {
    const unknown = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'telepathy',
      context: {},
      priority: 'normal',
    });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.detail, /unknown task_type telepathy/);
    for (const t of ['revenue_analysis', 'generate_proposal', 'support_response', 'schedule_optimization'])
      assert.match(unknown.body.detail, new RegExp(t));
    assert.ok(unknown.body.valid_task_types.includes('customer_segmentation'));

    const bad = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'revenue_analysis',
      context: { timeframe: '12x' },
      priority: 'normal',
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.detail, /context\.timeframe/);
    assert.equal(bad.body.errors[0].path, 'context.timeframe');

    const badPriority = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'revenue_analysis',
      context: {},
      priority: 'urgent',
    });
    assert.equal(badPriority.status, 400);
    assert.match(badPriority.body.detail, /priority/);
  });

  it('all capable agents down: 202 queued; the task runs when one comes back', async () => {
    const cs = agents.agents.find((a) => a.agent === 'customer_success')!;
    await cs.stop();
    await until('customer_success to be down', async () => {
      const h = await http('GET', '/api/v1/integration/agents/health/customer_success');
      return h.body.status === 'down' ? true : undefined;
    });
    const r = await http('POST', '/api/v1/integration/quick/customer-support', {
      query: 'I was charged twice on my invoice, please refund',
      customer_id: 7,
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.agent, 'queued');
    assert.equal(r.body.status, 'queued');
    const h = await http('GET', '/api/v1/integration/agents/health/customer_success');
    assert.equal(h.body.queued, 1);
    // The agent comes back as a new instance.
    extra.push(await startAgent({ nats: nc, pool, agent: 'customer_success', instanceId: 'gw-cs-2', logger }));
    const done = await until('the queued support task to complete', async () => {
      const t = await http('GET', `/api/v1/integration/agents/tasks/${r.body.task_id}`);
      return t.body.status === 'completed' ? t.body : undefined;
    });
    assert.equal(done.instance, 'gw-cs-2');
    assert.equal(done.result.customerId ?? done.result.customer?.id ?? 7, 7);
  });

  it('quick actions map their small bodies to task contexts (?wait=true)', async () => {
    const c = await one<{ id: number }>(
      `select customer_id as id from business.subscriptions where ended_on is null order by customer_id limit 1`,
    );
    const p = await http('POST', '/api/v1/integration/quick/generate-proposal?wait=true', {
      customer_id: c.id,
      proposal_type: 'renewal',
    });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.agent, 'content_creator');
    assert.match(JSON.stringify(p.body.result), new RegExp(String(c.id)));
    const bad = await http('POST', '/api/v1/integration/quick/generate-proposal', { proposal_type: 'renewal' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.detail, /customer_id/);
    // Values the agents cannot take are refused at the edge (they failed inside the agent, 409):
    // an id past the business tables' integers, a plan starting where its days are no dates.
    for (const [route, body, field] of [
      ['generate-proposal', { customer_id: 2_147_483_648 }, 'customer_id'],
      ['customer-support', { query: 'where is my invoice', customer_id: 9_007_199_254_740_991 }, 'customer_id'],
      ['optimize-schedule', { from: '9999-12-31', days: 31 }, 'from'],
    ] as const) {
      const r = await http('POST', `/api/v1/integration/quick/${route}?wait=true`, body);
      assert.equal(r.status, 400, `${route}: ${JSON.stringify(r.body)}`);
      assert.ok(
        (r.body.errors as { path: string }[]).some((e) => e.path === field),
        `${route}: ${JSON.stringify(r.body.errors)}`,
      );
    }
  });

  it("a context field the task type does not know: 400 naming it and the field meant; a snake_case field is the camelCase one's alias", async () => {
    // The reviewer's call: customer_id used to be dropped, and the answer had no customer.
    const r = await http('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'customer_support',
      context: { query: 'I was double charged', customer_id: 3 },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.customer?.id, 3, JSON.stringify(r.body.result));
    // Recorded (and sent to the agent) under the schema's name.
    const submitted = (await store.readStream(taskStreamId(r.body.task_id))).find((e) => e.type === 'TaskSubmitted');
    assert.deepEqual((submitted?.data as any).context, { query: 'I was double charged', customerId: 3 });

    const count = async () => (await one<{ n: number }>(`select count(*)::int as n from delegation.tasks`)).n;
    const tasksBefore = await count();
    // A typo used to run the default 12-month analysis.
    const typo = await http('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'analyze_revenue',
      context: { timefram: '30d' },
    });
    assert.equal(typo.status, 400, JSON.stringify(typo.body));
    assert.match(typo.body.detail, /context\.timefram is not a field of revenue_analysis; did you mean timeframe\?/);
    assert.deepEqual(
      typo.body.errors.map((e: any) => [e.path, e.code, e.suggestion]),
      [['context.timefram', 'unknown_field', 'timeframe']],
    );
    const other = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'support_response',
      context: { query: 'I was double charged', CustomerID: 3 },
    });
    assert.equal(other.status, 400, JSON.stringify(other.body));
    assert.match(
      other.body.detail,
      /context\.CustomerID is not a field of support_response; did you mean customerId\?/,
    );
    // Both spellings: which one was meant is unknown.
    const both = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'support_response',
      context: { query: 'I was double charged', customer_id: 3, customerId: 4 },
    });
    assert.equal(both.status, 400, JSON.stringify(both.body));
    assert.deepEqual(
      both.body.errors.map((e: any) => [e.path, e.code]),
      [['context.customer_id', 'both_spellings']],
    );
    // The body around the context, and a quick action's, are strict too.
    const body = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'revenue_analysis',
      contxt: { timeframe: '30d' },
    });
    assert.equal(body.status, 400, JSON.stringify(body.body));
    assert.deepEqual(
      body.body.errors.map((e: any) => e.path),
      ['contxt'],
    );
    const quick = await http('POST', '/api/v1/integration/quick/optimize-schedule', { dayz: 14 });
    assert.equal(quick.status, 400, JSON.stringify(quick.body));
    assert.deepEqual(
      quick.body.errors.map((e: any) => e.path),
      ['dayz'],
    );
    // No task was made for any refused one.
    await dispatcher.projections!.waitFor();
    assert.equal(await count(), tasksBefore);

    // The capability cards say so: no other property, and the other spellings each field takes.
    const caps = await http('GET', '/api/v1/integration/agents/capabilities');
    const sr = caps.body.agents
      .find((a: any) => a.agent === 'customer_success')
      .task_types.find((t: any) => t.type === 'support_response');
    assert.equal(sr.input_schema.additionalProperties, false);
    assert.deepEqual(sr.context_aliases, { customer_id: 'customerId' });
    assert.match(sr.input_schema.properties.customerId.description, /also accepted as customer_id/);
    for (const a of caps.body.agents)
      for (const t of a.task_types)
        if (t.type !== 'noop') assert.equal(t.input_schema?.additionalProperties, false, `${a.agent}/${t.type}`);
  });

  it("a task that ended keeps its last attempt's start and counts the attempts made", async () => {
    const r = await http('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'support_response',
      context: { query: 'Where is my invoice for March?' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const events = await store.readStream(taskStreamId(r.body.task_id));
    const started = events.find((e) => e.type === 'TaskStarted');
    assert.ok(started, events.map((e) => e.type).join(', '));
    const t = await http('GET', `/api/v1/integration/agents/tasks/${r.body.task_id}`);
    assert.equal(t.body.status, 'completed');
    assert.equal(t.body.started_at, (started.data as any).started_at);
    assert.equal(t.body.attempts, 1);
    assert.ok(Date.parse(t.body.assigned_at) <= Date.parse(t.body.started_at));
    assert.ok(Date.parse(t.body.started_at) <= Date.parse(t.body.completed_at));
    // A task that failed on its input: one attempt made, started too.
    const f = await http('POST', '/api/v1/integration/quick/generate-proposal?wait=true', { customer_id: 2_000_000 });
    assert.equal(f.status, 404, JSON.stringify(f.body));
    const failed = await until('the failed task to be readable', async () => {
      const x = await http('GET', `/api/v1/integration/agents/tasks/${f.body.task_id}`);
      return x.body.status === 'failed' ? x.body : undefined;
    });
    assert.equal(failed.attempts, 1);
    assert.ok(failed.started_at !== null, JSON.stringify(failed));
  });

  it('optimize-schedule states the period asked for and the period covered, with a warning when the data covers less', async () => {
    const range = await one<{ from: string; to: string }>(
      `select min(day)::text as "from", max(day)::text as "to" from business.shifts`,
    );
    const dayAfter = (d: string, n: number) =>
      new Date(Date.parse(`${d}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
    const spanOf = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
    // The reviewer's calls: 14 days from five days before the first shift, and 31 days from the first.
    for (const [body, requested] of [
      [
        { from: dayAfter(range.from, -5), days: 14 },
        { from: dayAfter(range.from, -5), to: dayAfter(range.from, 8), days: 14 },
      ],
      [{ days: 31 }, { from: range.from, to: dayAfter(range.from, 30), days: 31 }],
    ] as const) {
      const r = await http('POST', '/api/v1/integration/quick/optimize-schedule?wait=true', body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const { requestedPeriod, period, warnings } = r.body.result;
      assert.deepEqual(requestedPeriod, requested);
      const covered = {
        from: requested.from > range.from ? requested.from : range.from,
        to: requested.to < range.to ? requested.to : range.to,
      };
      assert.deepEqual(period, { ...covered, days: spanOf(covered.from, covered.to) });
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.match(
        warnings[0],
        new RegExp(`of the ${requested.days} days asked for \\(${requested.from} to ${requested.to}\\)`),
      );
      assert.match(warnings[0], new RegExp(`covers ${covered.from} to ${covered.to}`));
    }
    // A period the data covers whole: no warning.
    const week = await http('POST', '/api/v1/integration/quick/optimize-schedule?wait=true', { days: 7 });
    assert.equal(week.status, 200, JSON.stringify(week.body));
    assert.deepEqual(week.body.result.period, week.body.result.requestedPeriod);
    assert.deepEqual(week.body.result.warnings, []);
  });

  it("caller errors are counted apart from the agent's failures and left out of its success rate", async () => {
    const perfOf = async (agent: string) => {
      await dispatcher.projections!.waitFor();
      const p = await http('GET', '/api/v1/integration/agents/performance');
      return (
        p.body.agents.find((a: any) => a.agent === agent) ?? {
          tasks_done: 0,
          succeeded: 0,
          failed: 0,
          timed_out: 0,
          caller_errors: 0,
        }
      );
    };
    const before = await perfOf('content_creator');
    const churned = await one<{ id: number } | undefined>(
      `select c.id from business.customers c
        where exists (select 1 from business.subscriptions s where s.customer_id = c.id)
          and not exists (select 1 from business.subscriptions s where s.customer_id = c.id and s.ended_on is null)
        order by c.id limit 1`,
    );
    assert.ok(churned, 'a customer without an active subscription in the demo data');
    // The caller's: an unknown customer (404), a customer without an active subscription (409).
    const unknown = await http('POST', '/api/v1/integration/quick/generate-proposal?wait=true', {
      customer_id: 2_000_001,
    });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    const inactive = await http('POST', '/api/v1/integration/quick/generate-proposal?wait=true', {
      customer_id: churned.id,
    });
    assert.equal(inactive.status, 409, JSON.stringify(inactive.body));
    // The agent's: its handler throwing.
    const threw = await http('POST', '/api/v1/integration/agents/delegate?wait=true', {
      task_type: 'noop',
      context: { fail: 'throw' },
      agent: 'content_creator',
    });
    assert.ok(threw.status >= 400, JSON.stringify(threw.body));
    const active = await one<{ id: number }>(
      `select customer_id as id from business.subscriptions where ended_on is null order by customer_id limit 1`,
    );
    const ok = await http('POST', '/api/v1/integration/quick/generate-proposal?wait=true', { customer_id: active.id });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));

    const after = await perfOf('content_creator');
    assert.deepEqual(
      {
        tasks_done: after.tasks_done - before.tasks_done,
        succeeded: after.succeeded - before.succeeded,
        failed: after.failed - before.failed,
        caller_errors: after.caller_errors - before.caller_errors,
      },
      { tasks_done: 4, succeeded: 1, failed: 1, caller_errors: 2 },
    );
    assert.equal(after.success_rate, after.succeeded / (after.succeeded + after.failed + after.timed_out));
  });

  it('cancel a running task; capabilities, health and performance', async () => {
    const r = await http('POST', '/api/v1/integration/agents/delegate', {
      task_type: 'noop',
      context: { sleep_ms: 10_000 },
      priority: 'low',
      agent: 'data_analyst',
    });
    assert.equal(r.status, 202);
    const c = await http('POST', `/api/v1/integration/agents/tasks/${r.body.task_id}/cancel`, {
      reason: 'no longer needed',
    });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    assert.equal(c.body.status, 'canceled');
    const view = (await http('GET', `/api/v1/integration/agents/tasks/${r.body.task_id}`)).body;
    assert.equal(view.status, 'canceled');
    assert.deepEqual(view.canceled, { reason: 'no longer needed', by: 'anonymous' }, 'the view says why and by whom');
    assert.equal((await http('GET', '/api/v1/integration/agents/tasks/does-not-exist')).status, 404);
    assert.equal((await http('GET', '/api/v1/integration/agents/health/nobody')).status, 404);

    const caps = await http('GET', '/api/v1/integration/agents/capabilities');
    assert.equal(caps.status, 200);
    assert.equal(caps.body.agents.filter((a: any) => a.kind === 'nats').length, 6);
    const da = caps.body.agents.find((a: any) => a.agent === 'data_analyst');
    assert.ok(da.task_types.some((t: any) => t.type === 'revenue_analysis' && t.input_schema));

    const health = await http('GET', '/api/v1/integration/agents/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.agents.length, 6);
    assert.equal(health.body.agents.find((a: any) => a.agent === 'data_analyst').status, 'healthy');

    await dispatcher.projections!.waitFor();
    const perf = await http('GET', '/api/v1/integration/agents/performance');
    assert.equal(perf.status, 200);
    const daPerf = perf.body.agents.find((a: any) => a.agent === 'data_analyst');
    assert.ok(daPerf.succeeded >= 2, JSON.stringify(daPerf));
    assert.equal(daPerf.success_rate, daPerf.succeeded / (daPerf.succeeded + daPerf.failed + daPerf.timed_out));
    assert.ok(daPerf.latency_p95_ms >= daPerf.latency_p50_ms);
  });
});

/**
 * Managing external agents through the gateway, with auth on: an admin registers and removes
 * one (the dispatcher stores it; the answer never echoes its token); other roles get 403.
 * The dispatcher runs on the secured gateway's own nats-server and database.
 */
describe('agents feature: external agents managed by an admin', () => {
  const TOKEN = 'gw-ext-token-5d1e0b2a9c';
  let g: SecuredGateway;
  let dispatcher: DispatcherHandle;
  let agentHttp: Awaited<ReturnType<typeof startAgentHttp>>;
  let keys: { viewer: string; operator: string };

  const send = async (method: string, url: string, key: string, body?: unknown) => {
    const res = await fetch(`${g.url}${url}`, {
      method,
      headers: { ...bearer(key), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, text, body: JSON.parse(text) };
  };

  before(async () => {
    g = await startSecuredGateway('agents_gw_ext', { modules: [AgentsFeatureModule] });
    keys = { viewer: (await g.makeKey('viewer')).key, operator: (await g.makeKey('operator')).key };
    const nats = g.nats;
    dispatcher = await startDispatcher({
      store: g.store,
      nats,
      pool: g.pool,
      logger,
      egress: { allowCidrs: ['127.0.0.0/8'] },
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    const runtime = new AgentRuntime({
      agent: 'automation_specialist',
      instanceId: 'gw-ext',
      pool: g.pool,
      logger,
      noop: true,
    });
    agentHttp = await startAgentHttp({ runtime, port: 0, host: '127.0.0.1', token: TOKEN, logger });
  });

  after(async () => {
    await dispatcher?.stop();
    await agentHttp?.close();
    await g?.close();
    await stopOwnInfra();
  });

  it('POST registers (201, health view, no token echoed), the agent runs a task; DELETE removes it (200), then 404', async () => {
    const registration = {
      name: 'gw-ext',
      url: agentHttp.url,
      task_types: ['noop'],
      token: TOKEN,
      description: 'external noop',
    };
    // 1. Below admin: 403, nothing registered.
    for (const key of [keys.viewer, keys.operator])
      assert.equal((await send('POST', '/api/v1/integration/agents/external', key, registration)).status, 403);
    assert.equal((await g.pool.query(`select 1 from delegation.external_agents`)).rowCount, 0);

    // 2. Admin: registered, probed, answered with its health view.
    const reg = await send('POST', '/api/v1/integration/agents/external', g.adminKey, registration);
    assert.equal(reg.status, 201, reg.text);
    assert.equal(reg.body.agent, 'gw-ext');
    assert.equal(reg.body.status, 'healthy');
    assert.deepEqual(
      reg.body.instances.map((i: any) => i.kind),
      ['http'],
    );
    assert.ok(!reg.text.includes(TOKEN), 'the token is echoed');
    assert.equal(reg.body.registration, 'created');
    const [registered] = await g.store.readStream(externalAgentStreamId('gw-ext'));
    assert.match(String(registered!.metadata.actor), /^apikey:/);
    assert.ok(!JSON.stringify(registered).includes(TOKEN));
    // The same registration again, twice at once: 200 unchanged, nothing more in the log. A new
    // token alone is recorded (other dispatchers learn it from the event); a change is 'replaced'.
    const same = await Promise.all(
      [1, 2].map(() => send('POST', '/api/v1/integration/agents/external', g.adminKey, registration)),
    );
    assert.deepEqual(
      same.map((r) => [r.status, r.body.registration]),
      [
        [200, 'unchanged'],
        [200, 'unchanged'],
      ],
    );
    assert.equal((await g.store.readStream(externalAgentStreamId('gw-ext'))).length, 1);
    const newToken = await send('POST', '/api/v1/integration/agents/external', g.adminKey, {
      ...registration,
      token: `${TOKEN}-2`,
    });
    assert.deepEqual([newToken.status, newToken.body.registration], [200, 'replaced']);
    const back = await send('POST', '/api/v1/integration/agents/external', g.adminKey, registration);
    assert.deepEqual([back.status, back.body.registration], [200, 'replaced']);
    assert.equal((await g.store.readStream(externalAgentStreamId('gw-ext'))).length, 3);

    // 3. It takes tasks (the dispatcher sends its bearer token).
    const done = await send('POST', '/api/v1/integration/agents/delegate?wait=true', keys.operator, {
      task_type: 'noop',
      context: { echo: 'via gateway' },
      agent: 'gw-ext',
    });
    assert.equal(done.status, 200, done.text);
    assert.equal(done.body.agent, 'gw-ext');
    assert.deepEqual(done.body.result, { echo: 'via gateway', slept_ms: 0 });

    // 4. Bad bodies and built-in names: 400.
    assert.equal(
      (await send('POST', '/api/v1/integration/agents/external', g.adminKey, { ...registration, url: 'not a url' }))
        .status,
      400,
    );
    assert.equal(
      (await send('POST', '/api/v1/integration/agents/external', g.adminKey, { ...registration, name: 'data_analyst' }))
        .status,
      400,
    );
    assert.equal((await send('DELETE', '/api/v1/integration/agents/external/data_analyst', g.adminKey)).status, 400);
    // A task type named like an alias would never reach the agent (the alias names its canonical type).
    const aliased = await send('POST', '/api/v1/integration/agents/external', g.adminKey, {
      ...registration,
      name: 'gw-ext-alias',
      task_types: ['analyze_revenue'],
    });
    assert.equal(aliased.status, 400, aliased.text);
    assert.match(aliased.body.detail, /analyze_revenue is an alias/);

    // 5. Removal: 403 below admin, 200 for the admin, then 404; the health view no longer lists it.
    assert.equal((await send('DELETE', '/api/v1/integration/agents/external/gw-ext', keys.operator)).status, 403);
    const del = await send('DELETE', '/api/v1/integration/agents/external/gw-ext', g.adminKey);
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(del.body, { removed: 'gw-ext' });
    const again = await send('DELETE', '/api/v1/integration/agents/external/gw-ext', g.adminKey);
    assert.equal(again.status, 404, again.text);
    assert.equal((await send('GET', '/api/v1/integration/agents/health/gw-ext', keys.viewer)).status, 404);
    // The read model is a projection of the log: it follows the removal shortly after the answer.
    await until(
      'the read model to drop the agent',
      async () => (await g.pool.query(`select 1 from delegation.external_agents`)).rowCount === 0,
    );
  });
});

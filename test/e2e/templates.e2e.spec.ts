/**
 * The three built-in workflow templates, run for real against the whole system: one launcher
 * process (its own PostgreSQL and nats-server, MCP servers, connectors, agents on the demo data,
 * dispatcher, workflow engine, gateway with auth), driven through HTTP like a user. Every figure is
 * checked against a value computed here independently (SQL on the system's own database, the
 * report file on disk, the HTTP requests a local webhook sink received, the mails the development
 * mailbox received).
 *
 * The system runs with WEBHOOK_ALLOW_LOOPBACK=true (the sink is local) and otherwise the defaults:
 * the `database` MCP server is read-only, and customer_onboarding writes through `database_writer`,
 * a Postgres role that may only touch business.customers and business.subscriptions; every
 * component logs in as a least-privilege role of its own (switchyard_gateway, _engine, ...,
 * _mcp_reader, _mcp_writer); the schema owner switchyard_app only ran the migrations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '@switchyard/platform';
import { embeddedDatabaseUrl } from './launcher.js';
import { gatewayRequest } from './support.js';
import { scratchDataDir, until } from '@switchyard/testing';

const root = path.resolve(import.meta.dirname, '..', '..', '..');
const launcher = path.join(root, 'apps', 'launcher', 'dist', 'main.js');
const adminKey = `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
const auth = { authorization: `Bearer ${adminKey}` };
/**
 * The person the templates' steps act for: the automation and analytics servers keep a caller's
 * idempotency keys under it (`<actor>/<key>`), so another key cannot claim them first.
 */
const adminActor = `apikey:${adminKey.split('_')[1]}`;
const agentNames = [
  'DATA_ANALYST',
  'FINANCIAL_ADVISOR',
  'OPERATIONS_MANAGER',
  'AUTOMATION_SPECIALIST',
  'CONTENT_CREATOR',
  'CUSTOMER_SUCCESS',
];
const mcpKinds = [
  'FILESYSTEM_BRIDGE',
  'DATABASE',
  'DATABASE_WRITER',
  'GITHUB',
  'FETCH',
  'AUTOMATION',
  'ANALYTICS',
] as const;

/** One request the webhook sink received. */
interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A local HTTP endpoint standing in for the e-mail gateway and the escalation desk. */
async function startSink(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}');
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${port}`, received };
}

/**
 * An OpenAI-compatible endpoint standing in for the agents' optional LLM (LLM_BASE_URL): it answers
 * every request 503 at once, so the agents keep their own wording (their fallback), except one
 * whose text names `hold`: that one waits until `release()` (or its caller gives up), so the step
 * that asked (the onboarding's welcome_content) stays running for as long as a test needs.
 */
async function startHeldLlm(): Promise<{
  server: Server;
  url: string;
  hold: (marker: string) => void;
  held: () => number;
  release: () => void;
}> {
  let marker: string | undefined;
  const waiting = new Set<ServerResponse>();
  const refuse = (res: ServerResponse) => {
    waiting.delete(res);
    if (!res.writableEnded) res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"unavailable"}');
  };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      if (marker === undefined || !body.includes(marker)) return refuse(res);
      waiting.add(res);
      res.on('close', () => waiting.delete(res));
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    server,
    url: `http://127.0.0.1:${port}/v1`,
    hold: (m) => (marker = m),
    held: () => waiting.size,
    release: () => {
      marker = undefined;
      for (const res of [...waiting]) refuse(res);
    },
  };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One authenticated JSON request to the gateway. */
const request = (base: string, method: string, url: string, body?: unknown) =>
  gatewayRequest(base, auth, method, url, body);

interface Launched {
  readonly base: string;
  readonly dataDir: string;
  readonly filesRoot: string;
  readonly databaseUrl: string;
  stop(): Promise<void>;
}

/**
 * Start `node apps/launcher/dist/main.js` on free ports with its own DATA_DIR, PostgreSQL and
 * nats-server (as system.e2e.spec.ts does), plus `extraEnv`; resolves once /readyz answers 200 and
 * the MCP servers the templates use are up.
 */
async function startLauncher(extraEnv: Record<string, string>): Promise<Launched> {
  const dataDir = scratchDataDir('e2e-templates-');
  const filesRoot = path.join(dataDir, 'files');
  const gatewayPort = await freePort();
  const pgPort = await freePort();
  const base = `http://127.0.0.1:${gatewayPort}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATA_DIR: dataDir,
    GATEWAY_PORT: String(gatewayPort),
    GATEWAY_HOST: '127.0.0.1',
    EMBEDDED_PG_PORT: String(pgPort),
    EMBEDDED_NATS_PORT: String(await freePort()),
    FILESYSTEM_ROOT: filesRoot,
    LOG_LEVEL: 'warn',
    SWITCHYARD_ADMIN_KEY: adminKey,
    ...extraEnv,
  };
  for (const name of agentNames) env[`AGENT_${name}_PORT`] = String(await freePort());
  for (const kind of mcpKinds) {
    const port = await freePort();
    env[`MCP_${kind}_PORT`] = String(port);
    // The connectors reach the filesystem and GitHub servers over stdio; their HTTP bridges only move ports.
    if (kind !== 'FILESYSTEM_BRIDGE' && kind !== 'GITHUB') env[`MCP_${kind}_URL`] = `http://127.0.0.1:${port}/mcp`;
  }
  // The launcher starts its own infrastructure, as on a fresh machine.
  for (const k of [
    'DATABASE_URL',
    'NATS_URL',
    'TEST_DATABASE_URL',
    'TEST_NATS_URL',
    'DATABASE_ALLOW_WRITES',
    'WEBHOOK_ALLOW_LOOPBACK',
    'SMTP_URL',
  ]) {
    if (!(k in extraEnv)) delete env[k];
  }
  const proc: ChildProcess = spawn(process.execPath, [launcher], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  proc.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      if ((await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)])) === 'timeout') {
        proc.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 90_000;
  let last = '';
  try {
    for (;;) {
      if (proc.exitCode !== null) assert.fail(`launcher exited ${proc.exitCode}: ${output.slice(-3000)}`);
      if (Date.now() > deadline) assert.fail(`system not ready: ${last}\n${output.slice(-3000)}`);
      try {
        const ready = await fetch(`${base}/readyz`);
        if (ready.status === 200) {
          const h = await request(base, 'GET', '/api/v1/integration/mcp/health');
          const servers = (h.body?.servers ?? []) as { server: string; state: string }[];
          const up = new Set(servers.filter((s) => s.state === 'up').map((s) => s.server));
          if (['database', 'automation', 'analytics', 'filesystem'].every((s) => up.has(s))) break;
          last = JSON.stringify(servers);
        } else last = `readyz ${ready.status}`;
      } catch (err) {
        last = String(err);
      }
      await sleep(250);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { base, dataDir, filesRoot, databaseUrl: embeddedDatabaseUrl(dataDir, pgPort), stop };
}

describe('built-in workflow templates, end to end', () => {
  let system: Launched;
  let filesRoot: string;
  let base: string;
  let db: pg.Client;
  let sink: Awaited<ReturnType<typeof startSink>>;
  let llm: Awaited<ReturnType<typeof startHeldLlm>>;
  const secrets = { escalation: randomBytes(24).toString('hex') };

  const http = (method: string, url: string, body?: unknown) => request(base, method, url, body);
  /** Start a template and wait for its end (200 with the result). */
  const run = async (template: string, input: unknown) => {
    const r = await http('POST', `/api/v1/workflows/start/${template}?wait=true&wait_ms=60000`, input);
    assert.equal(r.status, 200, `start ${template}: ${JSON.stringify(r.body)}`);
    assert.equal(
      r.body.status,
      'completed',
      `${template} ended ${r.body.status}: ${JSON.stringify(r.body.error ?? r.body)}`,
    );
    return r.body as { execution_id: string; status: string; output: Record<string, any> };
  };
  /** The execution's step detail from the read model (projected asynchronously: wait for the end state). */
  const detail = async (executionId: string) => {
    for (let i = 0; ; i++) {
      const r = await http('GET', `/api/v1/workflows/executions/${executionId}`);
      if (r.status === 200 && r.body.status === 'completed') {
        return r.body as {
          status: string;
          steps: { step_id: string; status: string; attempts: number; output: any }[];
        };
      }
      if (i > 100) assert.fail(`execution ${executionId} not projected as completed: ${JSON.stringify(r.body)}`);
      await sleep(100);
    }
  };
  const stepStatus = (d: Awaited<ReturnType<typeof detail>>) =>
    Object.fromEntries(d.steps.map((s) => [s.step_id, s.status]));
  /** Where revenue_analysis writes without report_path: reports/revenue-analysis-<start, UTC>-<execution id>.md. */
  const defaultReportFile = async (executionId: string) => {
    const r = await http('GET', `/api/v1/workflows/executions/${executionId}`);
    const started = String(r.body.started_at);
    assert.match(started, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    const stamp = `${started.split('Z')[0]!.replaceAll('-', '').replaceAll(':', '')}Z`;
    return `./reports/revenue-analysis-${stamp}-${executionId}.md`;
  };
  /** A report_file output's file on disk (the output is relative to the sandbox root). */
  const readReport = (reportFile: string) => {
    assert.match(reportFile, /^\.\/reports\/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.md$/);
    return readFileSync(path.join(realpathSync(filesRoot), reportFile), 'utf8');
  };

  before(async () => {
    sink = await startSink();
    // The agents' LLM answers 503 (they keep their own wording) but for a text a test holds.
    llm = await startHeldLlm();
    system = await startLauncher({ WEBHOOK_ALLOW_LOOPBACK: 'true', LLM_BASE_URL: llm.url, LLM_MODEL: 'held' });
    ({ base, filesRoot } = system);
    db = new pg.Client({ connectionString: system.databaseUrl });
    await db.connect();

    // 2. The escalation desk's webhook, registered like an operator would (secrets stay out of workflow inputs).
    // The onboarding mails need nothing registered: they go to the development mailbox.
    const hooks = [{ name: 'support-escalation', url: `${sink.url}/escalation`, secret: secrets.escalation }];
    for (const h of hooks) {
      const r = await http('POST', '/api/v1/integration/mcp/call', {
        server: 'automation',
        tool: 'register_webhook',
        arguments: h,
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });

  after(async () => {
    await db?.end().catch(() => undefined);
    await system?.stop();
    await new Promise((r) => sink?.server.close(r));
    llm?.release();
    await new Promise((r) => llm?.server.close(r));
  });

  it('revenue_analysis with the seed body (30d, forecasts): totals equal the SQL sum, report on disk, forecast ran, metrics stored', async () => {
    const r = await run('revenue_analysis', { timeframe: '30d', include_forecasts: true });
    // Independently: the 30 days ending at the last order date.
    const sql = await db.query<{
      from_date: string;
      to_date: string;
      total: string;
      orders: number;
      customers: number;
    }>(
      `with m as (select max(order_date) as as_of from business.orders)
       select (m.as_of - 29)::text as from_date, m.as_of::text as to_date, sum(o.amount)::text as total,
              count(*)::int as orders, count(distinct o.customer_id)::int as customers
         from m join business.orders o on o.order_date between m.as_of - 29 and m.as_of group by m.as_of`,
    );
    const want = sql.rows[0]!;
    const total = round2(Number(want.total));
    assert.ok(total > 0, 'the demo data has revenue in the window');
    assert.deepEqual(r.output.window, { from: want.from_date, to: want.to_date, timeframe: '30d' });
    assert.equal(r.output.total_revenue, total);
    assert.equal(r.output.orders, want.orders);
    assert.equal(r.output.customers_with_orders, want.customers);
    assert.equal(r.output.forecast_included, true);
    assert.equal(typeof r.output.forecast_total, 'number');

    // The report, named relative to the sandbox (the filesystem server shows no absolute server path):
    // a file of this execution's own, by its start time and id.
    assert.equal(r.output.report_file, await defaultReportFile(r.execution_id));
    const report = readReport(r.output.report_file);
    assert.match(report, new RegExp(`^# Revenue analysis: last 30d \\(${want.from_date} to ${want.to_date}\\)\\n`));
    assert.ok(report.includes(`| Total revenue | ${total} |`), report.slice(0, 600));
    assert.ok(report.includes(`| Orders | ${want.orders} |`));
    // One row per day; the last day's revenue as SQL sums it.
    const lastDay = await db.query<{ revenue: string | null }>(
      `select sum(amount)::text as revenue from business.orders where order_date = $1`,
      [want.to_date],
    );
    assert.ok(
      report.includes(`| ${want.to_date} | ${round2(Number(lastDay.rows[0]!.revenue ?? 0))} |`),
      'the last day is in the series',
    );
    assert.match(
      report,
      /## Forecast\n\nMethod: [a-z_]+, back-test MAPE [0-9.]+ %, forecast total [0-9.]+\n\n\| Month \| Forecast/,
    );
    assert.ok(report.includes(`forecast total ${r.output.forecast_total}`));

    const d = await detail(r.execution_id);
    const st = stepStatus(d);
    assert.deepEqual(
      [st.fetch_revenue, st.analyze, st.forecast, st.fs_root, st.report_dir, st.write_report, st.store_results],
      ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded'],
    );
    // Time travel at every revision (docs/operating-executions.md): statuses only move forward; the last equals the read model.
    const hist = await http('GET', `/api/v1/workflows/executions/${r.execution_id}/history?limit=500`);
    assert.equal(hist.status, 200);
    const rank: Record<string, number> = { pending: 0, running: 1, succeeded: 2, failed: 2, skipped: 2 };
    let prev: Record<string, number> = {};
    let last: { status: string; steps: { step_id: string; status: string; output: unknown }[] } | undefined;
    for (let at = 0; at <= hist.body.last_revision; at++) {
      const t = await http('GET', `/api/v1/workflows/executions/${r.execution_id}?at=${at}`);
      assert.equal(t.status, 200);
      const now = Object.fromEntries(
        (t.body.steps as { step_id: string; status: string }[]).map((s) => [s.step_id, rank[s.status]!]),
      );
      for (const [k, v] of Object.entries(prev)) assert.ok(now[k]! >= v, `step ${k} went back at revision ${at}`);
      prev = now;
      last = t.body;
    }
    assert.equal(last!.status, 'completed');
    for (const s of d.steps)
      assert.deepEqual(last!.steps.find((x) => x.step_id === s.step_id)?.output, s.output, s.step_id);

    // Stored results: the analytics metrics carry the same figures.
    // Each keyed by the execution, so a re-dispatched step cannot record it twice.
    const metrics = await db.query<{ name: string; value: number; idempotency_key: string }>(
      `select name, value, idempotency_key from analytics.metrics where labels->>'timeframe' = '30d' and labels->>'to' = $1 order by name`,
      [want.to_date],
    );
    const keyed = (name: string) => `${adminActor}/${r.execution_id}:${name}`;
    assert.deepEqual(metrics.rows, [
      { name: 'revenue.customers', value: want.customers, idempotency_key: keyed('revenue.customers') },
      {
        name: 'revenue.forecast_total',
        value: r.output.forecast_total,
        idempotency_key: keyed('revenue.forecast_total'),
      },
      { name: 'revenue.orders', value: want.orders, idempotency_key: keyed('revenue.orders') },
      { name: 'revenue.total', value: total, idempotency_key: keyed('revenue.total') },
    ]);
  });

  it('revenue_analysis: two runs without report_path write two reports, each holding its own run, each named by its output', async () => {
    const first = await run('revenue_analysis', { timeframe: '30d', include_forecasts: true });
    const second = await run('revenue_analysis', { timeframe: '12m' });
    assert.equal(first.output.report_file, await defaultReportFile(first.execution_id));
    assert.equal(second.output.report_file, await defaultReportFile(second.execution_id));
    assert.notEqual(first.output.report_file, second.output.report_file);
    // The first run's report is still the first run's after the second one wrote.
    const a = readReport(first.output.report_file);
    const b = readReport(second.output.report_file);
    assert.match(a, new RegExp(`^# Revenue analysis: last 30d \\(${first.output.window.from} to `));
    assert.ok(a.includes(`| Total revenue | ${first.output.total_revenue} |`));
    assert.ok(a.includes(`forecast total ${first.output.forecast_total}`));
    assert.match(b, new RegExp(`^# Revenue analysis: last 12m \\(${second.output.window.from} to `));
    assert.ok(b.includes(`| Total revenue | ${second.output.total_revenue} |`));
    assert.match(b, /## Forecast\n\nNot requested/);
    // Sorted by name, the later run's report comes later; the metrics name each run's own report.
    assert.ok(first.output.report_file < second.output.report_file);
    const labelled = await db.query<{ report: string }>(
      `select distinct labels->>'report' as report from analytics.metrics where idempotency_key like $1`,
      [`${adminActor}/${second.execution_id}:%`],
    );
    assert.deepEqual(
      labelled.rows.map((x) => `./${x.report}`),
      [second.output.report_file],
    );
  });

  it('revenue_analysis with defaults (12m, no forecasts): forecast skipped, 12 calendar months summed', async () => {
    const r = await run('revenue_analysis', { report_path: 'reports/revenue-12m.md' });
    // A path given is the file written, as given.
    assert.equal(r.output.report_file, './reports/revenue-12m.md');
    const sql = await db.query<{ from_date: string; total: string }>(
      `with m as (select max(order_date) as as_of from business.orders),
            w as (select (date_trunc('month', m.as_of::timestamp) - interval '11 months')::date as from_date, m.as_of from m)
       select w.from_date::text, sum(o.amount)::text as total from w join business.orders o on o.order_date between w.from_date and w.as_of group by w.from_date`,
    );
    assert.equal(r.output.window.from, sql.rows[0]!.from_date);
    assert.equal(r.output.total_revenue, round2(Number(sql.rows[0]!.total)));
    assert.equal(r.output.forecast_included, false);
    assert.equal(r.output.forecast_total, null);
    assert.equal(r.output.metrics_recorded, 3);
    const st = stepStatus(await detail(r.execution_id));
    assert.equal(st.forecast, 'skipped');
    assert.equal(st.write_report, 'succeeded');
    const report = readFileSync(path.join(filesRoot, 'reports', 'revenue-12m.md'), 'utf8');
    assert.ok(report.includes(`| Total revenue | ${r.output.total_revenue} |`));
    assert.equal(report.match(/^\| \d{4}-\d{2} \| /gm)?.length, 12, 'one row per month');
    assert.match(report, /## Forecast\n\nNot requested \(include_forecasts is false\)\.\n$/);
  });

  it('customer_onboarding: rows created, exactly one welcome e-mail in the mailbox, follow-up schedules; a second run finds the customer', async () => {
    const email = `ada.${randomBytes(4).toString('hex')}@example.com`;
    const before = (await db.query<{ n: number }>(`select count(*)::int as n from business.customers`)).rows[0]!.n;
    const r = await run('customer_onboarding', {
      customer: { name: 'Ada Lovelace Ltd', email, segment: 'mid_market', region: 'emea', plan: 'growth', seats: 12 },
      follow_up_after: ['1d', '7d', '30d'],
    });
    assert.equal(r.output.status, 'onboarded');
    assert.equal(r.output.welcome_sent, true);

    // The rows, as the database has them.
    const c = await db.query(
      `select id, name, email, segment, region, signup_date::text as signup from business.customers where email = $1`,
      [email],
    );
    assert.equal(c.rowCount, 1);
    const { signup, ...row } = c.rows[0] as { signup: string };
    assert.deepEqual(row, {
      id: r.output.customer_id,
      name: 'Ada Lovelace Ltd',
      email,
      segment: 'mid_market',
      region: 'emea',
    });
    assert.match(signup, /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(
      (await db.query<{ n: number }>(`select count(*)::int as n from business.customers`)).rows[0]!.n,
      before + 1,
    );
    const s = await db.query(
      `select id, plan, seats, price_per_seat::float8 as price from business.subscriptions where customer_id = $1`,
      [r.output.customer_id],
    );
    assert.deepEqual(s.rows, [{ id: r.output.subscription_id, plan: 'growth', seats: 12, price: 29 }]);

    // Exactly one welcome mail, received over SMTP by the development mailbox, as the API lists it.
    const inbox = await http('GET', `/api/v1/integration/mcp/automation/mailbox?to=${encodeURIComponent(email)}`);
    assert.equal(inbox.status, 200, JSON.stringify(inbox.body));
    assert.equal(inbox.body.messages.length, 1, JSON.stringify(inbox.body));
    const mail = inbox.body.messages[0] as { subject: string; text: string; to: string[]; message_id: string };
    assert.deepEqual(mail.to, [email]);
    assert.equal(mail.subject, 'Welcome to Switchyard, Ada Lovelace Ltd');
    // Keyed by the execution and the step: the Message-ID is the key's, and the key is recorded as sent once.
    const keyed = await db.query<{ status: string; sends: number }>(
      `select status, sends from automation.mail_sends where idempotency_key = $1`,
      [`${adminActor}/welcome-${r.execution_id}:send_welcome`],
    );
    assert.deepEqual(keyed.rows, [{ status: 'sent', sends: 1 }]);
    // The content agent's welcome for this customer: greeted by name, its plan, seats and price, next
    // steps; the subject is the mail's header, not a line of the body, and nothing of the segment
    // newsletter (other customers' counts, the business's revenue) is in it.
    const body = mail.text;
    assert.ok(
      body.startsWith('Hi Ada Lovelace Ltd,\n\nWelcome to Switchyard! Your growth plan with 12 seats is active.\n'),
      body,
    );
    for (const line of ['- Plan: growth', '- Seats: 12', '- Price: $29.00 per seat, $348.00 per month', 'Next steps'])
      assert.match(body, new RegExp(`^${line.replace(/[.$]/g, '\\$&')}$`, 'm'), body);
    assert.match(body, /^1\. Invite your team: your plan has 12 seats/m);
    assert.doesNotMatch(body, /\*\*|Subject:|\{\{|revenue|year over year|API calls|teams ran/i);

    // Follow-ups: one durable one-shot e-mail schedule per delay, due that long after the onboarding.
    const sched = await db.query<{
      name: string;
      cron: string | null;
      run_once: boolean;
      due_in_s: number;
      target: { kind: string; to: string };
    }>(
      `select name, cron, run_once, extract(epoch from next_fire_at - created_at)::int as due_in_s, target from automation.schedules where name like $1 order by next_fire_at`,
      [`onboarding-${r.output.customer_id}-after-%`],
    );
    assert.deepEqual(
      sched.rows.map((x) => [x.name, x.cron, x.run_once, x.due_in_s, x.target.kind, x.target.to]),
      [
        ['1d', 1],
        ['7d', 7],
        ['30d', 30],
      ].map(([a, d]) => [
        `onboarding-${r.output.customer_id}-after-${a}`,
        null,
        true,
        Number(d) * 86_400,
        'email',
        email,
      ]),
    );
    assert.deepEqual(r.output.follow_ups.slice().sort(), sched.rows.map((x) => x.name).sort());

    // Again with the same e-mail: nothing created, nothing sent.
    const again = await run('customer_onboarding', { customer: { name: 'Ada again', email: email.toUpperCase() } });
    assert.deepEqual(again.output, {
      status: 'already_customer',
      customer_id: r.output.customer_id,
      subscription_id: null,
      welcome_sent: false,
      follow_ups: [],
      welcome_error: null,
      follow_up_error: null,
    });
    assert.equal((await db.query(`select 1 from business.customers where lower(email) = $1`, [email])).rowCount, 1);
    const inboxAfter = await http('GET', `/api/v1/integration/mcp/automation/mailbox?to=${encodeURIComponent(email)}`);
    assert.equal(inboxAfter.body.messages.length, 1, 'nothing mailed again');
  });

  it('customer_onboarding canceled after its follow-ups were scheduled: no schedule of it is left, nor its customer', async () => {
    const name = `Withdrawn ${randomBytes(4).toString('hex')}`;
    const email = `withdrawn.${randomBytes(4).toString('hex')}@example.com`;
    // The welcome is held while it is written (its text names the customer): the onboarding runs on.
    llm.hold(`Hi ${name},`);
    try {
      const start = await http('POST', '/api/v1/workflows/start/customer_onboarding', {
        customer: { name, email, plan: 'starter', seats: 2 },
        follow_up_after: ['1d', '7d', '7d'],
      });
      assert.equal(start.status, 202, JSON.stringify(start.body));
      const id = start.body.execution_id as string;
      const customerId = await until(
        'the customer row',
        async () =>
          (await db.query<{ id: number }>(`select id from business.customers where email = $1`, [email])).rows[0]?.id,
        60_000,
        100,
      );
      const schedules = async () =>
        (
          await db.query<{ name: string }>(`select name from automation.schedules where name like $1 order by name`, [
            `onboarding-${customerId}-after-%`,
          ])
        ).rows.map((r) => r.name);
      // The follow-ups are scheduled (the step succeeded), while the welcome is still being written.
      await until(
        'schedule_follow_ups to succeed',
        async () => {
          const e = await http('GET', `/api/v1/workflows/executions/${id}`);
          const step = (e.body?.steps ?? []).find((x: { step_id: string }) => x.step_id === 'schedule_follow_ups');
          return step?.status === 'succeeded' ? true : undefined;
        },
        60_000,
        100,
      );
      assert.equal(llm.held(), 1, 'the welcome is being written');
      assert.deepEqual(await schedules(), [
        `onboarding-${customerId}-after-1d`,
        `onboarding-${customerId}-after-7d`,
        `onboarding-${customerId}-after-7d-3`,
      ]);

      const cancel = await http('POST', `/api/v1/workflows/executions/${id}/cancel`, { reason: 'customer withdrew' });
      assert.equal(cancel.status, 202, JSON.stringify(cancel.body));
      llm.release();
      const done = await until(
        'the onboarding to end',
        async () => {
          const e = await http('GET', `/api/v1/workflows/executions/${id}`);
          return ['completed', 'failed', 'canceled'].includes(e.body?.status) ? e.body : undefined;
        },
        90_000,
        250,
      );
      assert.equal(done.status, 'canceled', JSON.stringify(done));
      // Nothing of it is left: no follow-up will mail a customer that is gone, and the customer is gone.
      assert.deepEqual(await schedules(), []);
      assert.equal((await db.query(`select 1 from business.customers where email = $1`, [email])).rowCount, 0);
      assert.equal(
        (await db.query(`select 1 from business.subscriptions where customer_id = $1`, [customerId])).rowCount,
        0,
      );
    } finally {
      llm.release();
    }
  });

  it('customer_onboarding: a dozen at once all onboard, each with ids of its own (ids taken as max + 1 collided)', async () => {
    const tag = randomBytes(3).toString('hex');
    const runs = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        run('customer_onboarding', {
          customer: { name: `Burst ${i}`, email: `burst-${tag}-${i}@example.com`, plan: 'starter', seats: 1 },
          follow_up_after: [],
        }),
      ),
    );
    assert.deepEqual(
      runs.map((r) => r.output.status),
      runs.map(() => 'onboarded'),
    );
    assert.equal(new Set(runs.map((r) => r.output.customer_id)).size, 12);
    assert.equal(new Set(runs.map((r) => r.output.subscription_id)).size, 12);
  });

  it('customer_support: an angry urgent query escalates (signed), a calm one does not; both are logged', async () => {
    // A customer with no open ticket, so only the query's tone decides.
    const cust = await db.query<{ id: number; email: string; name: string }>(
      `select c.id, c.email, c.name from business.customers c
        where not exists (select 1 from business.tickets t where t.customer_id = c.id and t.resolved_at is null) order by c.id limit 1`,
    );
    const { id, email, name } = cust.rows[0]!;
    const escalationsBefore = sink.received.filter((x) => x.path === '/escalation').length;

    const started = await http('POST', '/api/v1/workflows/start/customer_support', {
      customer_email: email,
      query:
        'This is UNACCEPTABLE!! Production is down, all of our users cannot log in and we are losing money. Fix it immediately or we talk to our lawyer.',
      channel: 'chat',
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    // An escalated reply waits for a person: here they decline it (nothing is sent to the customer).
    const declined = await http(
      'POST',
      `/api/v1/workflows/executions/${started.body.execution_id}/signals/approve_reply`,
      { approved: false },
    );
    assert.equal(declined.status, 202, JSON.stringify(declined.body));
    const angry = {
      execution_id: started.body.execution_id as string,
      output: ((await detail(started.body.execution_id)) as unknown as { output: Record<string, any> }).output,
    };
    assert.equal(angry.output.approval, 'rejected');
    assert.equal(angry.output.customer_id, id);
    assert.equal(angry.output.escalation, 'sent');
    assert.ok(angry.output.escalate_reasons.length > 0);
    // The drafted reply addresses the customer by name and says a person takes over.
    assert.ok(angry.output.response.startsWith(`Hello ${name} team,`), angry.output.response);
    assert.match(angry.output.response, /senior member of our team/);
    const esc = sink.received.filter((x) => x.path === '/escalation');
    assert.equal(esc.length, escalationsBefore + 1);
    const last = esc[esc.length - 1]!;
    const ts = String(last.headers['x-switchyard-timestamp']);
    assert.equal(
      last.headers['x-switchyard-signature'],
      `sha256=${createHmac('sha256', secrets.escalation).update(`${ts}.${last.body}`).digest('hex')}`,
    );
    // Keyed by the execution: a re-dispatched or retried escalation is the same delivery.
    assert.equal(last.headers['idempotency-key'], `${adminActor}/escalation-${angry.execution_id}`);
    const payload = (JSON.parse(last.body) as { payload: Record<string, any> }).payload;
    assert.equal(payload['customer_email'], email);
    assert.equal(payload['customer'].id, id);
    assert.equal(payload['priority'], angry.output.priority);

    const calm = await run('customer_support', {
      customer_email: email,
      query: 'Hello, how do I add two more seats to our plan? Thanks.',
    });
    assert.equal(calm.output.escalation, 'not_needed');
    assert.deepEqual(calm.output.escalate_reasons, []);
    assert.ok(calm.output.response.startsWith(`Hello ${name} team,`));
    assert.doesNotMatch(calm.output.response, /senior member of our team/);
    assert.equal(sink.received.filter((x) => x.path === '/escalation').length, escalationsBefore + 1);
    const st = stepStatus(await detail(calm.execution_id));
    assert.deepEqual(
      [st.fetch_context, st.analyze_query, st.analyze_query_anonymous, st.escalate, st.log_interaction],
      ['succeeded', 'succeeded', 'skipped', 'skipped', 'succeeded'],
    );

    // The log: one metric sample per interaction, labelled with the outcome.
    const logged = await db.query<{ id: string; escalation: string; channel: string; idempotency_key: string }>(
      `select id::text, labels->>'escalation' as escalation, labels->>'channel' as channel, idempotency_key from analytics.metrics
        where name = 'support.interaction' and labels->>'customer' = $1 order by id`,
      [String(id)],
    );
    assert.deepEqual(logged.rows, [
      {
        id: angry.output.interaction_metric_id,
        escalation: 'sent',
        channel: 'chat',
        idempotency_key: `${adminActor}/interaction-${angry.execution_id}`,
      },
      {
        id: calm.output.interaction_metric_id,
        escalation: 'not_needed',
        channel: 'email',
        idempotency_key: `${adminActor}/interaction-${calm.execution_id}`,
      },
    ]);
  });

  it('an unknown e-mail is answered without customer context', async () => {
    const r = await run('customer_support', {
      customer_email: 'nobody@nowhere.example',
      query: 'Where can I download my invoice as PDF?',
    });
    assert.equal(r.output.customer_id, null);
    assert.equal(r.output.escalation, 'not_needed');
    const st = stepStatus(await detail(r.execution_id));
    assert.deepEqual([st.analyze_query, st.analyze_query_anonymous], ['skipped', 'succeeded']);
  });

  it('bad input is a 400 naming the field; an unknown template is a 404', async () => {
    const bad = await http('POST', '/api/v1/workflows/start/revenue_analysis?wait=true', { timeframe: 'forever' });
    assert.equal(bad.status, 400);
    assert.ok(JSON.stringify(bad.body).includes('timeframe'), JSON.stringify(bad.body));
    assert.ok(
      (bad.body.errors as { path: string }[]).some((e) => e.path === 'timeframe'),
      JSON.stringify(bad.body),
    );
    const badMail = await http('POST', '/api/v1/workflows/start/customer_onboarding', {
      customer: { name: 'X', email: 'not-an-email' },
    });
    assert.equal(badMail.status, 400);
    assert.ok(
      (badMail.body.errors as { path: string }[]).some((e) => e.path === 'customer.email'),
      JSON.stringify(badMail.body),
    );
    const unknown = await http('POST', '/api/v1/workflows/start/no_such_template', {});
    assert.equal(unknown.status, 404);
    assert.ok(existsSync(filesRoot));
  });
  it('writes stay least-privilege: the database server refuses writes, the writer is closed to API calls while DATABASE_ALLOW_WRITES is unset', async () => {
    const orders = Number((await db.query('select count(*) from business.orders')).rows[0].count);
    const ro = await http('POST', '/api/v1/integration/mcp/database/query', {
      query: 'delete from business.orders',
      params: [],
    });
    assert.equal(ro.status, 403, JSON.stringify(ro.body));
    // Even with the admin key: the templates use the writer internally, the API may not.
    const rw = await http('POST', '/api/v1/integration/mcp/call', {
      server: 'database_writer',
      tool: 'query',
      arguments: { sql: 'delete from business.orders', params: [] },
    });
    assert.equal(rw.status, 403, JSON.stringify(rw.body));
    assert.match(JSON.stringify(rw.body), /DATABASE_ALLOW_WRITES/);
    assert.equal(Number((await db.query('select count(*) from business.orders')).rows[0].count), orders);
  });

  it('no component is logged in as the superuser or the schema owner: each as its own role, none superuser', async () => {
    const sessions = await db.query<{ usename: string; n: number; rolsuper: boolean }>(
      `select a.usename, count(*)::int as n, r.rolsuper from pg_stat_activity a join pg_roles r on r.rolname = a.usename
        where a.datname = 'switchyard' and a.pid <> pg_backend_pid() group by a.usename, r.rolsuper order by 1`,
    );
    const users = sessions.rows.map((r) => r.usename);
    const components = [
      'gateway',
      'engine',
      'dispatcher',
      'relay',
      'projections',
      'monitor',
      'agents',
      'automation',
      'analytics',
      'sink',
    ].map((c) => `switchyard_${c}`);
    // The templates above ran agents, the database servers and the automation server, and recorded events.
    for (const u of [
      'switchyard_mcp_reader',
      'switchyard_gateway',
      'switchyard_engine',
      'switchyard_dispatcher',
      'switchyard_agents',
      'switchyard_sink',
    ]) {
      assert.ok(users.includes(u), `${u}: ${JSON.stringify(sessions.rows)}`);
    }
    assert.ok(!users.includes('switchyard_app'), `the owner only migrates: ${JSON.stringify(sessions.rows)}`);
    assert.ok(
      users.every((u) => [...components, 'switchyard_mcp_reader', 'switchyard_mcp_writer'].includes(u)),
      JSON.stringify(sessions.rows),
    );
    assert.ok(
      sessions.rows.every((r) => r.rolsuper === false),
      JSON.stringify(sessions.rows),
    );
    // The onboarding writes above went through the writer role.
    const writer = await db.query(
      `select has_table_privilege('switchyard_mcp_writer', 'business.orders', 'DELETE') as d, has_table_privilege('switchyard_mcp_writer', 'business.customers', 'INSERT') as i`,
    );
    assert.deepEqual(writer.rows[0], { d: false, i: true });
  });
});

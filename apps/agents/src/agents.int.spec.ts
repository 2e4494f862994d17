import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createLogger, isAppError } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { agentCards, loadDemoData, runTask, taskHandlers, type AgentContext } from './index.js';
import { ANOMALY_MONTHS, generateDemoData } from './demo-data/generate.js';

/**
 * Every agent against the real demo data in a real PostgreSQL. Expected values are computed
 * here independently (plain SQL or a direct recount), never by calling the code under test.
 */
describe('agents on the demo business data (PostgreSQL)', () => {
  let pool: pg.Pool;
  let ctx: AgentContext;
  const run = <T = any>(task: string, input: unknown): Promise<T> => runTask(task, input, ctx) as Promise<T>;
  const one = async <T = any>(sql: string, params: unknown[] = []): Promise<T> =>
    (await pool.query(sql, params)).rows[0] as T;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('agents'), max: 4 });
    ctx = { pool, logger: createLogger('agents-test', 'silent'), signal: new AbortController().signal };
    const first = await loadDemoData(pool);
    assert.equal(first.loaded, true);
  });
  after(async () => {
    await pool?.end();
  });

  describe('demo data set', () => {
    it('is deterministic, idempotent and reloadable', async () => {
      const gen = generateDemoData();
      const db = await one<{ n: number; cents: string }>(
        `select count(*)::int as n, sum(amount * 100)::bigint::text as cents from business.orders`,
      );
      assert.equal(db.n, gen.orders.length);
      assert.equal(BigInt(db.cents), BigInt(gen.orders.reduce((a, o) => a + Math.round(o.amount * 100), 0)));
      assert.ok(db.n > 10_000 && db.n < 20_000, `orders ${db.n}`);
      const again = await loadDemoData(pool);
      assert.equal(again.loaded, false);
      assert.equal(again.counts.orders, db.n);
      const reset = await loadDemoData(pool, { reset: true });
      assert.equal(reset.loaded, true);
      assert.deepEqual(reset.counts, again.counts);
      const n = await one<{ c: number }>(`select count(*)::int as c from business.customers`);
      assert.equal(n.c, 500);
    });

    it('concurrent first loads write once; a foreign business schema is not dropped', async () => {
      const other = new pg.Pool({ connectionString: await freshDatabase('agents_race'), max: 4 });
      try {
        const results = await Promise.all([loadDemoData(other), loadDemoData(other)]);
        assert.deepEqual(results.map((r) => r.loaded).sort(), [false, true]);
        await other.query(`drop schema business cascade; create schema business; create table business.keep(x int)`);
        await assert.rejects(loadDemoData(other), (e) => isAppError(e) && e.code === 'illegal_state');
        const kept = await other.query(`select to_regclass('business.keep')::text as t`);
        assert.equal(kept.rows[0].t, 'business.keep');
      } finally {
        await other.end();
      }
    });

    it('customers and subscriptions take ids from identity columns: concurrent inserts never collide; a version 1 set is upgraded in place', async () => {
      const other = new pg.Pool({ connectionString: await freshDatabase('agents_ids'), max: 8 });
      try {
        await loadDemoData(other);
        const insert = (i: number) =>
          other.query<{ id: number }>(
            `insert into business.customers (name, email, segment, region, signup_date)
             values ($1, $2, 'smb', 'emea', current_date) returning id`,
            [`c${i}`, `ids-${i}@example.com`],
          );
        const ids = (await Promise.all(Array.from({ length: 40 }, (_, i) => insert(i)))).map((r) => r.rows[0]!.id);
        assert.equal(new Set(ids).size, 40);
        assert.ok(Math.min(...ids) > 500, 'past the loaded ids');
        // A set loaded as version 1 (no identity, marker 1) keeps its rows and gains the columns.
        await other.query(`alter table business.customers alter column id drop identity;
          alter table business.subscriptions alter column id drop identity;
          update business.demo_meta set value = jsonb_set(value, '{version}', '1') where key = 'dataset'`);
        const upgraded = await loadDemoData(other);
        assert.equal(upgraded.loaded, false, 'not reloaded');
        const kept = await other.query(`select count(*)::int as n from business.customers where email like 'ids-%'`);
        assert.equal(kept.rows[0].n, 40);
        const next = await insert(1000);
        assert.ok(next.rows[0]!.id > Math.max(...ids));
        const marker = await other.query(`select value->>'version' as v from business.demo_meta where key = 'dataset'`);
        assert.equal(marker.rows[0].v, '2');
        // A version 5 onboarding still running inserts max + 1 itself; the next start moves the
        // sequence past it (never back), so the next insert does not collide.
        await other.query(
          `insert into business.customers (id, name, email, segment, region, signup_date)
           select max(id) + 1, 'v5', 'v5@example.com', 'smb', 'emea', current_date from business.customers`,
        );
        await loadDemoData(other);
        const after = await insert(2000);
        assert.ok(after.rows[0]!.id > next.rows[0]!.id + 1);
      } finally {
        await other.end();
      }
    });

    it('CLI loads into DATABASE_URL and skips a second time', async () => {
      const url = await freshDatabase('agents_cli');
      const cli = fileURLToPath(new URL('./demo-data/cli.js', import.meta.url));
      const env = { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'info' };
      const first = await promisify(execFile)(process.execPath, [cli], { env });
      assert.match(first.stdout, /demo data loaded/);
      const second = await promisify(execFile)(process.execPath, [cli], { env });
      assert.match(second.stdout, /demo data already present/);
      const other = new pg.Pool({ connectionString: url, max: 1 });
      try {
        const r = await other.query<{ n: number }>(`select count(*)::int as n from business.customers`);
        assert.equal(r.rows[0]!.n, 500);
      } finally {
        await other.end();
      }
      await assert.rejects(
        promisify(execFile)(process.execPath, [cli], { env: { ...process.env, DATABASE_URL: 'mysql://x' } }),
        /DATABASE_URL/,
      );
    });
  });

  describe('capability cards', () => {
    it('six agents, every task type registered with its schema', () => {
      assert.equal(agentCards.length, 6);
      const types = agentCards.flatMap((c) => c.taskTypes.map((t) => t.type)).sort();
      assert.deepEqual(types, Object.keys(taskHandlers).sort());
      assert.equal(types.length, 12);
      for (const c of agentCards) assert.ok(c.maxConcurrency >= 1 && c.taskTypes.length >= 1, c.name);
    });

    it('rejects unknown task types and bad input with typed errors', async () => {
      await assert.rejects(run('nope', {}), (e) => isAppError(e) && e.code === 'not_found');
      await assert.rejects(
        run('revenue_analysis', { timeframe: '12x' }),
        (e) => isAppError(e) && e.code === 'validation' && JSON.stringify(e.details).includes('timeframe'),
      );
      await assert.rejects(
        run('generate_proposal', { customerId: 99_999 }),
        (e) => isAppError(e) && e.code === 'not_found',
      );
      const aborted = new AbortController();
      aborted.abort('caller gave up');
      await assert.rejects(
        runTask('revenue_analysis', {}, { ...ctx, signal: aborted.signal }),
        (e) => isAppError(e) && e.code === 'timeout',
      );
      const churned = await one<{ id: number }>(
        `select customer_id as id from business.subscriptions where ended_on is not null order by id limit 1`,
      );
      await assert.rejects(
        run('generate_proposal', { customerId: churned.id }),
        (e) => isAppError(e) && e.code === 'illegal_state',
      );
    });
  });

  describe('data_analyst', () => {
    it('revenue_analysis 12m: totals equal SQL sums, top customers equal SQL order by', async () => {
      const r = await run('revenue_analysis', { timeframe: '12m', topN: 5 });
      assert.equal(r.window.from, '2025-07-01');
      assert.equal(r.window.to, '2026-06-30');
      const sql = await one<{ total: number; n: number }>(
        `select sum(amount)::float8 as total, count(*)::int as n from business.orders where order_date between '2025-07-01' and '2026-06-30'`,
      );
      assert.ok(Math.abs(r.total - sql.total) < 0.01, `${r.total} vs ${sql.total}`);
      assert.equal(r.orderCount, sql.n);
      assert.equal(r.series.length, 12);
      assert.ok(Math.abs(r.series.reduce((a: number, s: any) => a + s.revenue, 0) - sql.total) < 0.1);
      const june = await one<{ v: number }>(
        `select sum(amount)::float8 as v from business.orders where order_date between '2026-06-01' and '2026-06-30'`,
      );
      const may = await one<{ v: number }>(
        `select sum(amount)::float8 as v from business.orders where order_date between '2026-05-01' and '2026-05-31'`,
      );
      const juneLastYear = await one<{ v: number }>(
        `select sum(amount)::float8 as v from business.orders where order_date between '2025-06-01' and '2025-06-30'`,
      );
      const last = r.series[11];
      assert.ok(Math.abs(last.growthVsPrevious - (june.v - may.v) / may.v) < 1e-4);
      assert.ok(Math.abs(last.yoy - (june.v - juneLastYear.v) / juneLastYear.v) < 1e-4);
      const top = await pool.query<{ id: number; revenue: number }>(
        `select customer_id as id, sum(amount)::float8 as revenue from business.orders
          where order_date between '2025-07-01' and '2026-06-30' group by customer_id order by sum(amount) desc, customer_id limit 5`,
      );
      assert.deepEqual(
        r.topCustomers.map((t: any) => t.customerId),
        top.rows.map((t) => t.id),
      );
      r.topCustomers.forEach((t: any, i: number) => assert.ok(Math.abs(t.revenue - top.rows[i]!.revenue) < 0.01));
      // cohort sizes are the sign-up counts per month
      const signups = await one<{ n: number }>(
        `select count(*)::int as n from business.customers where signup_date between '2025-07-01' and '2026-06-30'`,
      );
      const cohortTotal = r.cohorts.reduce((a: number, c: any) => a + c.size, 0);
      assert.ok(cohortTotal <= signups.n && cohortTotal > 0);
      for (const c of r.cohorts) for (const v of c.retention) assert.ok(v >= 0 && v <= 1);
    });

    it('revenue_analysis 24m finds exactly the two planted anomalies', async () => {
      const r = await run('revenue_analysis', { timeframe: '24m', includeCohorts: false });
      assert.deepEqual(
        r.anomalies.map((a: any) => [a.period, a.direction]),
        [
          [ANOMALY_MONTHS.servicesSpike, 'spike'],
          [ANOMALY_MONTHS.billingOutage, 'dip'],
        ],
      );
    });

    it('revenue_analysis 30d buckets by day and sums to the SQL total', async () => {
      const r = await run('revenue_analysis', { timeframe: '30d', includeCohorts: false });
      assert.equal(r.window.granularity, 'day');
      assert.equal(r.series.length, 30);
      const sql = await one<{ total: number }>(
        `select sum(amount)::float8 as total from business.orders where order_date between '2026-06-01' and '2026-06-30'`,
      );
      assert.ok(Math.abs(r.total - sql.total) < 0.01);
    });

    it('customer_segmentation: segments and clusters account for every customer', async () => {
      const r = await run('customer_segmentation', { k: 4, seed: 7 });
      const n = await one<{ all: number; buyers: number }>(
        `select (select count(*)::int from business.customers where signup_date <= '2026-06-30') as all,
                (select count(distinct customer_id)::int from business.orders where order_date between '2024-07-01' and '2026-06-30') as buyers`,
      );
      assert.equal(r.customers, n.all);
      assert.equal(
        r.segments.reduce((a: number, s: any) => a + s.count, 0),
        n.all,
      );
      assert.equal(
        r.clustering.clusters.reduce((a: number, c: any) => a + c.size, 0),
        n.buyers,
      );
      const again = await run('customer_segmentation', { k: 4, seed: 7 });
      assert.deepEqual(again.clustering, r.clustering);
    });
  });

  describe('financial_advisor', () => {
    it('revenue_forecast reports a bounded back-test error and sane intervals', async () => {
      const r = await run('revenue_forecast', { horizon: 6 });
      assert.equal(r.history.length, 24);
      assert.equal(r.model.method, 'holt_winters_additive');
      assert.equal(r.forecast.length, 6);
      assert.equal(r.forecast[0].month, '2026-07');
      for (const p of r.forecast) assert.ok(p.lower < p.forecast && p.forecast < p.upper);
      // The planted one-off months are cleaned before fitting.
      assert.deepEqual(r.cleanedPoints.map((p: any) => p.month).sort(), [
        ANOMALY_MONTHS.servicesSpike,
        ANOMALY_MONTHS.billingOutage,
      ]);
      // Back-test on the last 6 months. Month-to-month noise in this data is a few percent and
      // growth is steady, so a trend model should stay within 10 % on average and beat the
      // naive "last value" forecast, which misses all of the growth.
      assert.equal(r.backtest.months, 6);
      assert.ok(Number.isFinite(r.backtest.mapePct));
      assert.ok(r.backtest.mapePct < 10, `MAPE ${r.backtest.mapePct}`);
      assert.ok(
        r.backtest.mapePct < r.backtest.naiveMapePct,
        `${r.backtest.mapePct} vs naive ${r.backtest.naiveMapePct}`,
      );
      const actual = await one<{ v: number }>(
        `select sum(amount)::float8 as v from business.orders where order_date between '2026-01-01' and '2026-01-31'`,
      );
      assert.ok(Math.abs(r.backtest.points[0].actual - actual.v) < 0.01);
    });

    it('cost_optimization: totals equal SQL sums, suggestions carry their figures', async () => {
      const r = await run('cost_optimization', { months: 12 });
      const sql = await one<{ total: number }>(
        `select sum(amount)::float8 as total from business.cost_lines where month between '2025-07-01' and '2026-06-01'`,
      );
      assert.ok(Math.abs(r.totals.costs - sql.total) < 0.01);
      const cloud = await one<{ total: number }>(
        `select sum(amount)::float8 as total from business.cost_lines where category = 'cloud_infrastructure' and month >= '2025-07-01'`,
      );
      assert.ok(
        Math.abs(r.categories.find((c: any) => c.category === 'cloud_infrastructure').total - cloud.total) < 0.01,
      );
      const kinds = r.suggestions.map((s: any) => `${s.category}:${s.kind}`);
      assert.ok(kinds.includes('cloud_infrastructure:growing_faster_than_revenue'), kinds.join(','));
      assert.ok(kinds.includes('contractors:one_off_spike'), kinds.join(','));
      for (const s of r.suggestions) assert.ok(Object.keys(s.figures).length > 0 && Number.isFinite(s.annualImpact));
    });
  });

  describe('operations_manager', () => {
    it('schedule_optimization violates no constraint (checked here against the tables)', async () => {
      const r = await run('schedule_optimization', {});
      assert.ok(['optimal', 'feasible_not_proven_optimal'].includes(r.status));
      const staff = new Map(
        (
          await pool.query(`select id, skills, max_hours_week, hourly_cost::float8 as cost from business.staff`)
        ).rows.map((s) => [s.id, s]),
      );
      const shifts = new Map(
        (
          await pool.query(`select id, day::text as day, slot, hours, required_skill, headcount from business.shifts`)
        ).rows.map((s) => [s.id, s]),
      );
      const avail = new Set(
        (await pool.query(`select staff_id, day::text as day, slot from business.availability`)).rows.map(
          (a) => `${a.staff_id}|${a.day}|${a.slot}`,
        ),
      );
      const hours = new Map<number, number>();
      const perDay = new Map<string, number>();
      const perShift = new Map<number, number>();
      let cost = 0;
      for (const a of r.assignments) {
        const s = staff.get(a.staffId);
        const d = shifts.get(a.shiftId);
        assert.ok(s && d, `unknown ids in ${JSON.stringify(a)}`);
        assert.ok(s.skills.includes(d.required_skill), `skill ${d.required_skill} for staff ${s.id}`);
        assert.ok(avail.has(`${s.id}|${d.day}|${d.slot}`), `availability ${s.id} ${d.day} ${d.slot}`);
        hours.set(s.id, (hours.get(s.id) ?? 0) + d.hours);
        perDay.set(`${s.id}|${d.day}`, (perDay.get(`${s.id}|${d.day}`) ?? 0) + 1);
        perShift.set(d.id, (perShift.get(d.id) ?? 0) + 1);
        cost += s.cost * d.hours;
      }
      for (const [id, h] of hours) assert.ok(h <= staff.get(id).max_hours_week, `staff ${id} ${h}h`);
      for (const [k, n] of perDay) assert.equal(n, 1, `double booking ${k}`);
      let required = 0;
      for (const [id, d] of shifts) {
        required += d.headcount;
        assert.ok((perShift.get(id) ?? 0) <= d.headcount);
      }
      assert.ok(Math.abs(r.objective.laborCost - cost) < 0.01);
      assert.equal(r.coverage.required, required);
      assert.equal(r.coverage.assigned, r.assignments.length);
      assert.equal(r.objective.uncoveredPersonShifts, required - r.assignments.length);
      assert.deepEqual(r.violations, []);
    });

    it('performance_analysis and workflow_optimization over supplied execution records', async () => {
      const t0 = Date.parse('2026-06-01T09:00:00Z');
      const iso = (ms: number) => new Date(ms).toISOString();
      const executions = Array.from({ length: 10 }, (_, i) => ({
        executionId: `x${i}`,
        steps: [
          {
            stepId: 'a',
            status: 'succeeded',
            startedAt: iso(t0 + i * 1e6),
            finishedAt: iso(t0 + i * 1e6 + 100 * (i + 1)),
            dependsOn: [],
          },
          {
            stepId: 'b',
            status: i === 3 ? 'failed' : 'succeeded',
            startedAt: iso(t0 + i * 1e6 + 2000),
            finishedAt: iso(t0 + i * 1e6 + 4000),
            dependsOn: ['a'],
            ...(i === 3 ? { error: 'timeout' } : {}),
          },
        ],
      }));
      const perf = await run('performance_analysis', { executions });
      const a = perf.steps.find((s: any) => s.stepId === 'a');
      assert.equal(a.durationMs.p50, 550); // median of 100, 200, …, 1000
      assert.equal(a.durationMs.p95, 955); // 900 + 0.55 × 100 (position 8.55)
      assert.equal(perf.steps.find((s: any) => s.stepId === 'b').failureRate, 0.1);
      assert.equal(perf.successRate, 0.9);
      const opt = await run('workflow_optimization', { executions });
      assert.equal(opt.failureHotSpots[0].stepId, 'b');
      assert.equal(opt.retryProposals[0].stepId, 'b');
      assert.ok(opt.retryProposals[0].backoff);
    });
  });

  describe('customer_success', () => {
    it('support_response classifies labelled queries', async () => {
      const labelled: [string, string][] = [
        ['Our invoice for May shows 40 seats but we only have 30, can you fix the billing?', 'billing'],
        ['The dashboard is not loading for anyone on our team, we get a 500 error', 'technical'],
        ['I am locked out after the password reset', 'account_access'],
        ['We have decided not to renew and want to cancel', 'cancellation'],
        ['Feature request: it would be great to export reports to Google Sheets', 'feature_request'],
      ];
      for (const [query, intent] of labelled) {
        const r = await run('support_response', { query });
        assert.equal(r.intent, intent, query);
        assert.ok(r.draft.length > 50);
      }
    });

    it('escalates an angry urgent query and a high-value cancellation, not a calm question', async () => {
      const angry = await run('support_response', {
        query:
          'URGENT!!! Production is DOWN for all our users since 8am. This is unacceptable, we are losing money every minute.',
        customerId: 1,
      });
      assert.equal(angry.escalation.escalate, true);
      assert.equal(angry.escalation.priority, 'p1');
      assert.equal(angry.sentiment.label, 'negative');
      assert.ok(angry.draft.includes(angry.customer.name));
      const ent = await one<{
        id: number;
      }>(`select c.id from business.customers c join business.subscriptions s on s.customer_id = c.id
                                            where c.segment = 'enterprise' and s.ended_on is null order by c.id limit 1`);
      const cancel = await run('support_response', {
        query: 'Please cancel our subscription at the end of this term.',
        customerId: ent.id,
      });
      assert.equal(cancel.intent, 'cancellation');
      assert.equal(cancel.escalation.escalate, true);
      assert.ok(
        cancel.escalation.reasons.some((x: string) => x.includes('cancellation request from a enterprise account')),
      );
      const calm = await run('support_response', { query: 'Where can I find the PDF of my last invoice?' });
      assert.equal(calm.escalation.escalate, false);
      assert.equal(calm.article.id, 'kb-billing-invoice');
    });

    it('satisfaction_analysis matches the tickets table', async () => {
      const r = await run('satisfaction_analysis', { months: 12 });
      const rows = (
        await pool.query<{ category: string; satisfaction: number | null; h: number | null }>(
          `select category, satisfaction, extract(epoch from resolved_at - created_at)::float8 / 3600 as h
           from business.tickets where created_at >= '2025-07-01T00:00:00Z' and created_at < '2026-07-01T00:00:00Z'`,
        )
      ).rows;
      const rated = rows.filter((x) => x.satisfaction !== null).map((x) => x.satisfaction!);
      assert.equal(r.tickets, rows.length);
      assert.equal(r.rated, rated.length);
      assert.ok(Math.abs(r.csatAverage - rated.reduce((a, b) => a + b, 0) / rated.length) < 0.001);
      assert.ok(Math.abs(r.csatSatisfiedShare - rated.filter((s) => s >= 4).length / rated.length) < 0.0001);
      const hours = rows
        .filter((x) => x.h !== null)
        .map((x) => x.h!)
        .sort((a, b) => a - b);
      // linear interpolation between order statistics, written out here
      const pct = (p: number) => {
        const pos = (hours.length - 1) * p;
        const lo = Math.floor(pos);
        return hours[lo]! + (hours[Math.min(lo + 1, hours.length - 1)]! - hours[lo]!) * (pos - lo);
      };
      assert.ok(Math.abs(r.resolutionHours.p50 - pct(0.5)) < 0.01);
      assert.ok(Math.abs(r.resolutionHours.p95 - pct(0.95)) < 0.01);
      assert.equal(
        r.byCategory.reduce((a: number, c: any) => a + c.tickets, 0),
        rows.length,
      );
      assert.equal(r.trend.monthly.length, 12);
    });
  });

  describe('content_creator', () => {
    it("generate_proposal fills the markdown with the customer's real figures", async () => {
      const c = await one<{ id: number; name: string; plan: string; seats: number; price: number }>(
        `select c.id, c.name, s.plan, s.seats, s.price_per_seat::float8 as price from business.customers c join business.subscriptions s on s.customer_id = c.id
          where s.ended_on is null and s.plan = 'growth' order by c.id limit 1`,
      );
      const rev = await one<{ v: number }>(
        `select sum(amount)::float8 as v from business.orders where customer_id = $1 and order_date between '2025-07-01' and '2026-06-30'`,
        [c.id],
      );
      const r = await run('generate_proposal', { customerId: c.id, proposalType: 'upgrade' });
      const money = (x: number) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(x);
      assert.ok(r.markdown.includes(c.name));
      assert.ok(r.markdown.includes(`| Current plan | growth |`));
      assert.ok(r.markdown.includes(`| Seats | ${c.seats} |`));
      assert.ok(r.markdown.includes(money(rev.v)), `expected ${money(rev.v)} in\n${r.markdown}`);
      assert.ok(r.markdown.includes(money(c.seats * c.price)));
      assert.equal(r.proposed.plan, 'business');
      assert.equal(r.proposed.monthly, c.seats * 49);
      assert.ok(r.markdown.includes(money(c.seats * 49 * 12)));
      assert.ok(!r.markdown.includes('{{'), 'no unfilled placeholders');
    });

    it('marketing_content uses the segment figures', async () => {
      const r = await run('marketing_content', { channel: 'blog', segment: 'enterprise' });
      const n = await one<{ n: number }>(
        `select count(distinct c.id)::int as n from business.customers c join business.orders o on o.customer_id = c.id
          where c.segment = 'enterprise' and o.order_date between '2025-07-01' and '2026-06-30'`,
      );
      assert.equal(r.facts.activeCustomers, n.n);
      assert.ok(r.markdown.includes(`${n.n} enterprise customers`));
      assert.ok(r.markdown.startsWith('# Enterprise customers in numbers'));
      const email = await run('marketing_content', { channel: 'email' });
      assert.ok(email.markdown.includes('{{first_name}}'), 'merge field for the mail tool survives');
    });

    it("marketing_content kind welcome: the new customer's welcome, its subject apart, none of the newsletter's figures", async () => {
      // A customer as customer_onboarding makes it: the row and its subscription.
      const { id } = await one<{ id: number }>(
        `with c as (insert into business.customers (name, email, segment, region, signup_date)
                    values ('Nova Works', 'welcome-spec@example.com', 'smb', 'emea', current_date) returning id),
              s as (insert into business.subscriptions (customer_id, plan, seats, price_per_seat, started_on)
                    select id, 'growth', 12, 29.00, current_date from c)
         select id from c`,
      );
      try {
        const r = await run('marketing_content', { kind: 'welcome', channel: 'email', customerId: id });
        assert.equal(r.kind, 'welcome');
        assert.equal(r.subject, 'Welcome to Switchyard, Nova Works');
        assert.ok(
          r.text.startsWith('Hi Nova Works,\n\nWelcome to Switchyard! Your growth plan with 12 seats is active.\n'),
          r.text,
        );
        assert.ok(r.text.includes('- Price: $29.00 per seat, $348.00 per month'), r.text);
        assert.match(r.text, /^Next steps\n1\. Invite your team: your plan has 12 seats/m);
        // Plain text for a text mail: no Markdown, no subject line in the body, no merge field, nothing
        // about other customers or the business's revenue.
        assert.doesNotMatch(r.text, /\*\*|^#|Subject:|\{\{|revenue|year over year|API calls|teams ran/im);
        assert.deepEqual(r.facts, {
          customerId: id,
          name: 'Nova Works',
          plan: 'growth',
          seats: 12,
          pricePerSeat: 29,
          monthly: 348,
        });
        // One seat is a seat.
        await pool.query(`update business.subscriptions set seats = 1 where customer_id = $1`, [id]);
        const single = await run('marketing_content', { kind: 'welcome', customerId: id });
        assert.match(single.text, /Your growth plan with 1 seat is active\./);

        // The newsletter is what it was (the default kind).
        const newsletter = await run('marketing_content', { channel: 'email', kind: 'newsletter' });
        assert.deepEqual(newsletter, await run('marketing_content', { channel: 'email' }));
        assert.ok(newsletter.markdown.startsWith('**Subject:** Your year in numbers'));

        // A welcome is one customer's e-mail.
        const refused = (input: unknown, code: string, path?: string) =>
          assert.rejects(run('marketing_content', input), (e) => {
            assert.ok(isAppError(e) && e.code === code, String(e));
            if (path) assert.ok(JSON.stringify(e.details).includes(`"path":"${path}"`), JSON.stringify(e));
            return true;
          });
        await refused({ kind: 'welcome' }, 'validation', 'customerId');
        await refused({ kind: 'welcome', channel: 'blog', customerId: id }, 'validation', 'channel');
        await refused({ kind: 'welcome', customerId: 2_000_000_000 }, 'not_found');
      } finally {
        // The other specs count the demo customers.
        await pool.query(`delete from business.subscriptions where customer_id = $1`, [id]);
        await pool.query(`delete from business.customers where id = $1`, [id]);
      }
    });
  });
});

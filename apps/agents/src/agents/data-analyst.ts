import { z } from 'zod';
import type pg from 'pg';
import { defineTask } from '../types.js';
import { addMonths, monthKey, resolveWindow, type Window } from '../lib/dates.js';
import { growth, madAnomalies, round } from '../lib/stats.js';
import { clusterRfm, scoreRfm, type RfmRow, type RfmSegment } from '../lib/rfm.js';
import { checkAborted, dataAsOf } from './common.js';
import { builtinTaskTypes, revenueAnalysisInput, customerSegmentationInput } from '@switchyard/contracts';

// ---------- revenue_analysis ----------

export type RevenueAnalysisInput = z.infer<typeof revenueAnalysisInput>;

export interface RevenuePeriod {
  readonly period: string;
  readonly revenue: number;
  readonly orders: number;
  /** change vs the previous bucket (month over month, or day over day) */
  readonly growthVsPrevious: number | null;
  /** change vs the same month a year earlier (monthly buckets only) */
  readonly yoy: number | null;
}

export interface RevenueAnalysis {
  readonly window: Omit<Window, 'buckets'>;
  readonly total: number;
  readonly orderCount: number;
  readonly customersWithOrders: number;
  readonly series: RevenuePeriod[];
  readonly byKind: { kind: string; revenue: number; share: number }[];
  readonly growth: {
    readonly latestVsPrevious: number | null;
    readonly windowVsPriorYear: number | null;
    readonly firstToLast: number | null;
  };
  readonly topCustomers: {
    customerId: number;
    name: string;
    segment: string;
    revenue: number;
    orders: number;
    share: number;
  }[];
  readonly anomalies: {
    period: string;
    revenue: number;
    expected: number;
    robustZ: number;
    direction: 'spike' | 'dip';
  }[];
  readonly cohorts?: { cohort: string; size: number; retention: number[] }[];
}

/** Totals per bucket between from and to, optionally shifted back by whole years (for YoY). */
async function bucketTotals(
  pool: pg.Pool,
  from: string,
  to: string,
  granularity: 'day' | 'month',
  yearsBack = 0,
): Promise<Map<string, { revenue: number; orders: number }>> {
  const key = granularity === 'day' ? `order_date::text` : `to_char(order_date, 'YYYY-MM')`;
  const r = await pool.query<{ k: string; revenue: number; orders: number }>(
    `select ${key} as k, sum(amount)::float8 as revenue, count(*)::int as orders
       from business.orders
      where order_date between ($1::date - make_interval(years => $3)) and ($2::date - make_interval(years => $3))
      group by 1`,
    [from, to, yearsBack],
  );
  return new Map(r.rows.map((row) => [row.k, { revenue: row.revenue, orders: row.orders }]));
}

export async function revenueAnalysis(
  pool: pg.Pool,
  input: RevenueAnalysisInput,
  signal: AbortSignal,
): Promise<RevenueAnalysis> {
  const asOf = input.asOf ?? (await dataAsOf(pool));
  const w = resolveWindow(input.timeframe, asOf);
  // 1. Bucket totals for the window and, for YoY, the same months one year earlier.
  const current = await bucketTotals(pool, w.from, w.to, w.granularity);
  const prior =
    w.granularity === 'month'
      ? await bucketTotals(pool, w.from, w.to, 'month', 1)
      : new Map<string, { revenue: number }>();
  checkAborted(signal);
  const series: RevenuePeriod[] = w.buckets.map((b, i) => {
    const cur = current.get(b) ?? { revenue: 0, orders: 0 };
    const prev = i > 0 ? (current.get(w.buckets[i - 1]!)?.revenue ?? 0) : undefined;
    const yoyBase = w.granularity === 'month' ? prior.get(monthKey(addMonths(`${b}-01`, -12)))?.revenue : undefined;
    const g = growth(prev, cur.revenue);
    const y = growth(yoyBase, cur.revenue);
    return {
      period: b,
      revenue: round(cur.revenue),
      orders: cur.orders,
      growthVsPrevious: g === null ? null : round(g, 4),
      yoy: y === null ? null : round(y, 4),
    };
  });
  const totals = await pool.query<{ total: number | null; orders: number; customers: number }>(
    `select sum(amount)::float8 as total, count(*)::int as orders, count(distinct customer_id)::int as customers
       from business.orders where order_date between $1 and $2`,
    [w.from, w.to],
  );
  const total = totals.rows[0]!.total ?? 0;
  // The prior-year total only means something when the data reaches back that far.
  const priorTotal = await pool.query<{ total: number | null }>(
    `select case when (select min(order_date) from business.orders) <= ($1::date - interval '1 year')
                 then (select sum(amount)::float8 from business.orders
                        where order_date between ($1::date - interval '1 year') and ($2::date - interval '1 year'))
            end as total`,
    [w.from, w.to],
  );
  // 2. Revenue mix and top customers.
  const kinds = await pool.query<{ kind: string; revenue: number }>(
    `select kind, sum(amount)::float8 as revenue from business.orders where order_date between $1 and $2 group by kind order by revenue desc`,
    [w.from, w.to],
  );
  const top = await pool.query<{ customerId: number; name: string; segment: string; revenue: number; orders: number }>(
    `select c.id as "customerId", c.name, c.segment, sum(o.amount)::float8 as revenue, count(*)::int as orders
       from business.orders o join business.customers c on c.id = o.customer_id
      where o.order_date between $1 and $2
      group by c.id order by sum(o.amount) desc, c.id limit $3`,
    [w.from, w.to, input.topN],
  );
  checkAborted(signal);
  // 3. Anomalies: robust z-score of each bucket against its rolling median.
  const anomalies = madAnomalies(
    series.map((s) => s.revenue),
    { threshold: input.anomalyThreshold },
  ).map((a) => ({
    period: series[a.index]!.period,
    revenue: round(a.value),
    expected: round(a.expected),
    robustZ: a.robustZ,
    direction: a.direction,
  }));
  const first = series[0]?.revenue;
  const last = series[series.length - 1]?.revenue ?? 0;
  const result: RevenueAnalysis = {
    window: { from: w.from, to: w.to, granularity: w.granularity },
    total: round(total),
    orderCount: totals.rows[0]!.orders,
    customersWithOrders: totals.rows[0]!.customers,
    series,
    byKind: kinds.rows.map((k) => ({
      kind: k.kind,
      revenue: round(k.revenue),
      share: total ? round(k.revenue / total, 4) : 0,
    })),
    growth: {
      latestVsPrevious: series.length > 1 ? series[series.length - 1]!.growthVsPrevious : null,
      windowVsPriorYear: (() => {
        const g = growth(priorTotal.rows[0]?.total ?? undefined, total);
        return g === null ? null : round(g, 4);
      })(),
      firstToLast: (() => {
        const g = growth(first, last);
        return g === null ? null : round(g, 4);
      })(),
    },
    topCustomers: top.rows.map((t) => ({
      ...t,
      revenue: round(t.revenue),
      share: total ? round(t.revenue / total, 4) : 0,
    })),
    anomalies,
  };
  if (!input.includeCohorts) return result;
  return { ...result, cohorts: await cohortRetention(pool, w) };
}

/**
 * Monthly sign-up cohorts inside the window; retention[k] = share of the cohort with at least
 * one order in the k-th month after sign-up (k = 0 is the sign-up month), up to the window end.
 */
async function cohortRetention(
  pool: pg.Pool,
  w: Window,
): Promise<{ cohort: string; size: number; retention: number[] }[]> {
  const from = `${w.from.slice(0, 7)}-01`;
  const r = await pool.query<{ cohort: string; size: number; k: number; active: number }>(
    `with cohort as (
       select id, date_trunc('month', signup_date)::date as cm from business.customers
        where signup_date between $1 and $2
     ), activity as (
       select distinct o.customer_id, date_trunc('month', o.order_date)::date as om
         from business.orders o join cohort c on c.id = o.customer_id
        where o.order_date <= $2
     )
     select to_char(c.cm, 'YYYY-MM') as cohort,
            (select count(*) from cohort c2 where c2.cm = c.cm)::int as size,
            ((extract(year from a.om) - extract(year from c.cm)) * 12 + extract(month from a.om) - extract(month from c.cm))::int as k,
            count(distinct a.customer_id)::int as active
       from cohort c join activity a on a.customer_id = c.id and a.om >= c.cm
      group by c.cm, k order by c.cm, k`,
    [from, w.to],
  );
  const byCohort = new Map<string, { size: number; active: Map<number, number> }>();
  for (const row of r.rows) {
    const entry = byCohort.get(row.cohort) ?? { size: row.size, active: new Map() };
    entry.active.set(row.k, row.active);
    byCohort.set(row.cohort, entry);
  }
  const lastMonth = w.to.slice(0, 7);
  return [...byCohort].map(([cohort, e]) => {
    const span =
      (Number(lastMonth.slice(0, 4)) - Number(cohort.slice(0, 4))) * 12 +
      Number(lastMonth.slice(5, 7)) -
      Number(cohort.slice(5, 7));
    return {
      cohort,
      size: e.size,
      retention: Array.from({ length: span + 1 }, (_, k) => round((e.active.get(k) ?? 0) / e.size, 4)),
    };
  });
}

// ---------- customer_segmentation ----------

export type CustomerSegmentationInput = z.infer<typeof customerSegmentationInput>;

export async function customerSegmentation(pool: pg.Pool, input: CustomerSegmentationInput, signal: AbortSignal) {
  const asOf = input.asOf ?? (await dataAsOf(pool));
  const from = addMonths(asOf, -(input.lookbackMonths - 1));
  // 1. One RFM row per customer; customers without orders in the window keep null recency.
  const r = await pool.query<{ customerId: number; recencyDays: number | null; frequency: number; monetary: number }>(
    `select c.id as "customerId",
            ($2::date - max(o.order_date))::int as "recencyDays",
            count(o.id)::int as frequency,
            coalesce(sum(o.amount), 0)::float8 as monetary
       from business.customers c
       left join business.orders o on o.customer_id = c.id and o.order_date between $1 and $2
      where c.signup_date <= $2
      group by c.id order by c.id`,
    [from, asOf],
  );
  checkAborted(signal);
  const rows: RfmRow[] = r.rows;
  // 2. Rule-based RFM segments and k-means clusters over the same features.
  const scored = scoreRfm(rows);
  const counts = new Map<RfmSegment, { count: number; monetary: number }>();
  for (const s of scored) {
    const e = counts.get(s.segment) ?? { count: 0, monetary: 0 };
    e.count++;
    e.monetary += s.monetary;
    counts.set(s.segment, e);
  }
  const clustering = clusterRfm(rows, input.k, input.seed);
  return {
    asOf,
    window: { from, to: asOf },
    customers: scored.length,
    method:
      'RFM quintile scores (5 = best) with rule-based segments; k-means (ml-kmeans, k-means++ seed) on standardised log R/F/M',
    segments: [...counts]
      .map(([segment, e]) => ({
        segment,
        count: e.count,
        share: round(e.count / scored.length, 4),
        avgMonetary: round(e.monetary / e.count),
      }))
      .sort((a, b) => b.count - a.count),
    clustering: {
      ...clustering,
      clusters: clustering.clusters.map(({ customerIds, ...c }) => ({
        ...c,
        ...(input.includeCustomers ? { customerIds } : {}),
      })),
    },
    ...(input.includeCustomers ? { scores: scored } : {}),
  };
}

export const dataAnalystTasks = {
  revenue_analysis: defineTask({
    taskType: 'revenue_analysis',
    ...builtinTaskTypes.revenue_analysis,
    handle: (input, ctx) => revenueAnalysis(ctx.pool, input, ctx.signal),
  }),
  customer_segmentation: defineTask({
    taskType: 'customer_segmentation',
    ...builtinTaskTypes.customer_segmentation,
    handle: (input, ctx) => customerSegmentation(ctx.pool, input, ctx.signal),
  }),
};

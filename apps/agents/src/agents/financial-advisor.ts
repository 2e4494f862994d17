import { z } from 'zod';
import type pg from 'pg';
import { AppError } from '@switchyard/platform';
import { defineTask } from '../types.js';
import { addDays, addMonths, monthEnd, monthKey } from '../lib/dates.js';
import { fit, forecast, mape, type FitResult, type SmoothingMethod } from '../lib/holt-winters.js';
import { growth, madAnomalies, round, slope } from '../lib/stats.js';
import { checkAborted, dataAsOf } from './common.js';
import { builtinTaskTypes, revenueForecastInput, costOptimizationInput } from '@switchyard/contracts';

/** Complete months of revenue ending with the month of asOf (dropped when asOf is mid-month). */
async function monthlyRevenue(
  pool: pg.Pool,
  asOf: string,
  months: number,
): Promise<{ month: string; revenue: number }[]> {
  const lastFull = asOf === monthEnd(asOf) ? `${asOf.slice(0, 7)}-01` : addMonths(asOf, -1);
  const first = addMonths(lastFull, -(months - 1));
  const firstData = await pool.query<{ d: string | null }>(`select min(order_date)::text as d from business.orders`);
  const dataStart = firstData.rows[0]?.d ? `${firstData.rows[0].d.slice(0, 7)}-01` : first;
  const start = first < dataStart ? dataStart : first;
  const r = await pool.query<{ m: string; revenue: number }>(
    `select to_char(order_date, 'YYYY-MM') as m, sum(amount)::float8 as revenue
       from business.orders where order_date between $1 and $2 group by 1`,
    [start, monthEnd(lastFull)],
  );
  const byMonth = new Map(r.rows.map((x) => [x.m, x.revenue]));
  const out: { month: string; revenue: number }[] = [];
  for (let m = start; m <= lastFull; m = addMonths(m, 1))
    out.push({ month: monthKey(m), revenue: byMonth.get(monthKey(m)) ?? 0 });
  return out;
}

// ---------- revenue_forecast ----------

export type RevenueForecastInput = z.infer<typeof revenueForecastInput>;

const Z: Record<number, number> = { 0.8: 1.2816, 0.9: 1.6449, 0.95: 1.96 };

/**
 * `auto` uses the seasonal model only with two full seasons: with one, its seasonal indices
 * rest on a single observation each, and on this data the back-test is worse than Holt's
 * (8.0 % vs 7.3 % MAPE over 6 months). An explicit request gets it from m + 2 points.
 */
function chooseMethod(requested: RevenueForecastInput['method'], n: number, m: number): SmoothingMethod {
  if (requested === 'auto') return n >= 2 * m ? 'holt_winters_additive' : 'holt';
  if (requested === 'holt_winters_additive' && n < m + 2) return 'holt';
  return requested;
}

function clean(
  values: number[],
  enabled: boolean,
): { values: number[]; replaced: { index: number; value: number; replacedBy: number; robustZ: number }[] } {
  if (!enabled) return { values, replaced: [] };
  const anomalies = madAnomalies(values);
  const out = [...values];
  for (const a of anomalies) out[a.index] = a.expected;
  return {
    values: out,
    replaced: anomalies.map((a) => ({
      index: a.index,
      value: round(a.value),
      replacedBy: round(a.expected),
      robustZ: a.robustZ,
    })),
  };
}

function describeModel(model: FitResult) {
  return {
    method: model.method,
    params: { alpha: model.params.alpha, beta: model.params.beta, gamma: model.params.gamma },
    seasonLength: model.seasonLength,
    residualSd: round(model.sigma),
    level: round(model.level),
    trendPerMonth: round(model.trend),
  };
}

export async function revenueForecast(pool: pg.Pool, input: RevenueForecastInput, signal: AbortSignal) {
  const asOf = input.asOf ?? (await dataAsOf(pool));
  const history = await monthlyRevenue(pool, asOf, input.historyMonths);
  checkAborted(signal);
  const n = history.length;
  if (n < input.backtestMonths + 4) {
    throw new AppError('validation', 'not enough months of history for the back-test', {
      needed: input.backtestMonths + 4,
      have: n,
    });
  }
  const m = input.seasonLength;
  const z = Z[input.confidence]!;
  const raw = history.map((h) => h.revenue);

  // 1. Back-test: run the whole procedure (cleaning, model choice, fit) on the history minus the
  //    last k months and compare its forecasts with what actually happened.
  const k = input.backtestMonths;
  const trainRaw = raw.slice(0, n - k);
  const trainClean = clean(trainRaw, input.cleanAnomalies);
  const btMethod = chooseMethod(input.method, trainRaw.length, m);
  const btModel = fit(trainClean.values, btMethod, m);
  const btForecast = forecast(btModel, k, z);
  const actual = raw.slice(n - k);
  const naiveLast = trainRaw[trainRaw.length - 1]!;
  const backtest = {
    months: k,
    method: btMethod,
    trainedOn: { from: history[0]!.month, to: history[n - k - 1]!.month },
    mapePct: round(
      mape(
        actual,
        btForecast.map((f) => f.value),
      ),
      2,
    ),
    /** same horizon with the last observed value repeated: the model should beat this */
    naiveMapePct: round(
      mape(
        actual,
        actual.map(() => naiveLast),
      ),
      2,
    ),
    intervalCoverage: round(
      actual.filter((a, i) => a >= btForecast[i]!.lower && a <= btForecast[i]!.upper).length / k,
      4,
    ),
    points: history.slice(n - k).map((h, i) => ({
      month: h.month,
      actual: round(actual[i]!),
      forecast: round(btForecast[i]!.value),
      errorPct: round((100 * (actual[i]! - btForecast[i]!.value)) / actual[i]!, 2),
    })),
  };
  checkAborted(signal);

  // 2. Final model on the full history.
  const cleaned = clean(raw, input.cleanAnomalies);
  const method = chooseMethod(input.method, n, m);
  const model = fit(cleaned.values, method, m);
  const lastMonth = `${history[n - 1]!.month}-01`;
  const points = forecast(model, input.horizon, z).map((p) => ({
    month: monthKey(addMonths(lastMonth, p.step)),
    forecast: round(p.value),
    lower: round(p.lower),
    upper: round(p.upper),
  }));
  const next12 = points.slice(0, 12).reduce((a, p) => a + p.forecast, 0);
  const last12 = raw.slice(-12).reduce((a, b) => a + b, 0);
  return {
    asOf,
    history: history.map((h) => ({ month: h.month, revenue: round(h.revenue) })),
    cleanedPoints: cleaned.replaced.map((r) => ({
      month: history[r.index]!.month,
      value: r.value,
      replacedBy: r.replacedBy,
      robustZ: r.robustZ,
    })),
    model: describeModel(model),
    methodNote:
      method === 'holt_winters_additive'
        ? 'additive Holt-Winters (level, trend, 12-month season), parameters by grid search on one-step SSE'
        : `${method} exponential smoothing (auto uses a seasonal model from ${2 * m} months; ${n} available)`,
    confidence: input.confidence,
    forecast: points,
    summary: {
      forecastTotal: round(points.reduce((a, p) => a + p.forecast, 0)),
      ...(points.length >= 12 ? { next12VsLast12: round(growth(last12, next12) ?? 0, 4) } : {}),
    },
    backtest,
  };
}

// ---------- cost_optimization ----------

export type CostOptimizationInput = z.infer<typeof costOptimizationInput>;

export async function costOptimization(pool: pg.Pool, input: CostOptimizationInput, signal: AbortSignal) {
  const asOf = input.asOf ?? (await dataAsOf(pool));
  const lastMonth = asOf === monthEnd(asOf) ? `${asOf.slice(0, 7)}-01` : addMonths(asOf, -1);
  const from = addMonths(lastMonth, -(input.months - 1));
  const months = Array.from({ length: input.months }, (_, i) => monthKey(addMonths(from, i)));
  const costs = await pool.query<{ category: string; m: string; amount: number }>(
    `select category, to_char(month, 'YYYY-MM') as m, amount::float8 as amount
       from business.cost_lines where month between $1 and $2 order by category, month`,
    [from, lastMonth],
  );
  const revenueRows = await pool.query<{ m: string; revenue: number }>(
    `select to_char(order_date, 'YYYY-MM') as m, sum(amount)::float8 as revenue
       from business.orders where order_date between $1 and $2 group by 1`,
    [from, addDays(addMonths(lastMonth, 1), -1)],
  );
  checkAborted(signal);
  const revenueBy = new Map(revenueRows.rows.map((r) => [r.m, r.revenue]));
  const revenue = months.map((m) => revenueBy.get(m) ?? 0);
  const totalRevenue = revenue.reduce((a, b) => a + b, 0);
  // Growth = mean of the last quarter vs mean of the first quarter of the window: less noisy
  // than first vs last month, and comparable between costs and revenue.
  const q = Math.max(1, Math.floor(input.months / 4));
  const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const periodGrowth = (xs: number[]): number | null => growth(avg(xs.slice(0, q)), avg(xs.slice(-q)));
  const revenueGrowth = periodGrowth(revenue);

  const byCategory = new Map<string, Map<string, number>>();
  for (const c of costs.rows) {
    const e = byCategory.get(c.category) ?? new Map<string, number>();
    e.set(c.m, c.amount);
    byCategory.set(c.category, e);
  }
  const totalCost = costs.rows.reduce((a, c) => a + c.amount, 0);
  const categories = [...byCategory]
    .map(([category, e]) => {
      const series = months.map((m) => e.get(m) ?? 0);
      const total = series.reduce((a, b) => a + b, 0);
      const g = periodGrowth(series);
      return {
        category,
        total: round(total),
        shareOfCosts: round(total / totalCost, 4),
        shareOfRevenue: totalRevenue ? round(total / totalRevenue, 4) : null,
        monthlyAverage: round(total / months.length),
        trendPerMonth: round(slope(series)),
        growth: g === null ? null : round(g, 4),
        series: months.map((m, i) => ({ month: m, amount: round(series[i]!) })),
        anomalies: madAnomalies(series).map((a) => ({
          month: months[a.index]!,
          amount: round(a.value),
          expected: round(a.expected),
          robustZ: a.robustZ,
        })),
      };
    })
    .sort((a, b) => b.total - a.total);

  // Suggestions, each with the figures it rests on.
  const suggestions: {
    category: string;
    kind: string;
    message: string;
    annualImpact: number;
    figures: Record<string, number | string | null>;
  }[] = [];
  for (const c of categories) {
    if (
      c.growth !== null &&
      revenueGrowth !== null &&
      c.growth - revenueGrowth > input.excessGrowthThreshold &&
      c.category !== 'payment_processing'
    ) {
      const series = c.series.map((s) => s.amount);
      const first = avg(series.slice(0, q));
      const last = avg(series.slice(-q));
      const annual = (last - first * (1 + revenueGrowth)) * 12;
      suggestions.push({
        category: c.category,
        kind: 'growing_faster_than_revenue',
        message: `${c.category} grew ${round(c.growth * 100, 1)}% (first vs last ${q} months) while revenue grew ${round(revenueGrowth * 100, 1)}%; holding it to revenue growth would save about ${Math.round(annual)} a year`,
        annualImpact: round(annual),
        figures: {
          firstQuarterAvg: round(first),
          lastQuarterAvg: round(last),
          categoryGrowth: c.growth,
          revenueGrowth: round(revenueGrowth, 4),
        },
      });
    }
    for (const a of c.anomalies.filter((x) => x.robustZ > 0)) {
      suggestions.push({
        category: c.category,
        kind: 'one_off_spike',
        message: `${c.category} in ${a.month} was ${Math.round(a.amount)} against a typical ${Math.round(a.expected)} (robust z ${a.robustZ}); review whether the ${Math.round(a.amount - a.expected)} excess recurs`,
        annualImpact: round(a.amount - a.expected),
        figures: { month: a.month, amount: a.amount, expected: a.expected, robustZ: a.robustZ },
      });
    }
  }
  suggestions.sort((a, b) => b.annualImpact - a.annualImpact);
  const costSeries = months.map((m) =>
    categories.reduce((acc, c) => acc + (byCategory.get(c.category)?.get(m) ?? 0), 0),
  );
  return {
    window: { from: months[0], to: months[months.length - 1] },
    totals: {
      costs: round(totalCost),
      revenue: round(totalRevenue),
      costToRevenue: totalRevenue ? round(totalCost / totalRevenue, 4) : null,
      revenueGrowth: revenueGrowth === null ? null : round(revenueGrowth, 4),
      costGrowth: (() => {
        const g = periodGrowth(costSeries);
        return g === null ? null : round(g, 4);
      })(),
    },
    categories,
    suggestions,
  };
}

export const financialAdvisorTasks = {
  revenue_forecast: defineTask({
    taskType: 'revenue_forecast',
    ...builtinTaskTypes.revenue_forecast,
    handle: (input, ctx) => revenueForecast(ctx.pool, input, ctx.signal),
  }),
  cost_optimization: defineTask({
    taskType: 'cost_optimization',
    ...builtinTaskTypes.cost_optimization,
    handle: (input, ctx) => costOptimization(ctx.pool, input, ctx.signal),
  }),
};

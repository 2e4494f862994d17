import { z } from 'zod';
import type pg from 'pg';
import { defineTask, type AgentContext } from '../types.js';
import { addMonths, monthKey } from '../lib/dates.js';
import { round, slope } from '../lib/stats.js';
import {
  analyseSentiment,
  classifyIntent,
  decideEscalation,
  detectUrgency,
  draftReply,
  pickArticle,
  type CustomerFacts,
} from '../lib/support.js';
import { checkAborted, dataAsOf, getCustomer } from './common.js';
import { builtinTaskTypes, supportResponseInput, satisfactionAnalysisInput } from '@switchyard/contracts';

// ---------- support_response ----------

export type SupportResponseInput = z.infer<typeof supportResponseInput>;

async function supportFacts(pool: pg.Pool, customerId: number): Promise<CustomerFacts> {
  const c = await getCustomer(pool, customerId);
  const asOf = await dataAsOf(pool);
  const r = await pool.query<{ revenue: number; open: number }>(
    `select (select coalesce(sum(amount), 0)::float8 from business.orders
              where customer_id = $1 and order_date > ($2::date - interval '12 months')) as revenue,
            (select count(*)::int from business.tickets where customer_id = $1 and resolved_at is null) as open`,
    [customerId, asOf],
  );
  return { name: c.name, segment: c.segment, revenue12m: r.rows[0]!.revenue, openTickets: r.rows[0]!.open };
}

export async function supportResponse(input: SupportResponseInput, ctx: AgentContext) {
  const customer = input.customerId ? await supportFacts(ctx.pool, input.customerId) : null;
  checkAborted(ctx.signal);
  // 1. Classify, 2. score tone and urgency, 3. pick the answer, 4. decide on escalation.
  const intent = classifyIntent(input.query);
  const sentiment = analyseSentiment(input.query);
  const urgency = detectUrgency(input.query);
  const { article, keywordHits } = pickArticle(intent.intent, input.query);
  const escalation = decideEscalation(intent.intent, sentiment, urgency, customer);
  const draft = draftReply({
    customerName: customer?.name ?? null,
    intent: intent.intent,
    sentiment,
    article,
    escalation,
  });
  return {
    intent: intent.intent,
    intentScores: intent.scores,
    intentEvidence: intent.matched,
    sentiment,
    urgency,
    article: { id: article.id, title: article.title, keywordHits },
    escalation,
    customer: customer ? { id: input.customerId, ...customer, revenue12m: round(customer.revenue12m) } : null,
    draft: ctx.llm ? await ctx.llm.polish(draft, 'support reply', ctx.signal) : draft,
    method:
      'keyword intent rules + AFINN sentiment (npm `sentiment`) with support-domain terms; knowledge base shipped with the agent',
  };
}

// ---------- satisfaction_analysis ----------

export type SatisfactionAnalysisInput = z.infer<typeof satisfactionAnalysisInput>;

export async function satisfactionAnalysis(input: SatisfactionAnalysisInput, ctx: AgentContext) {
  const { pool } = ctx;
  const asOf = input.asOf ?? (await dataAsOf(pool));
  const from = addMonths(asOf, -(input.months - 1));
  // Day boundaries in UTC, whatever the session time zone is.
  const where = `created_at >= ($1::date::timestamp at time zone 'UTC') and created_at < (($2::date + 1)::timestamp at time zone 'UTC') and ($3::text is null or category = $3)`;
  const params = [from, asOf, input.category ?? null];
  const hours = `extract(epoch from resolved_at - created_at) / 3600`;
  const [overall, byCategory, trend] = await Promise.all([
    pool.query<{
      tickets: number;
      rated: number;
      csat: number | null;
      satisfied: number | null;
      resolved: number;
      p50: number | null;
      p95: number | null;
    }>(
      `select count(*)::int as tickets, count(satisfaction)::int as rated, avg(satisfaction)::float8 as csat,
              (count(*) filter (where satisfaction >= 4))::float8 / nullif(count(satisfaction), 0) as satisfied,
              count(resolved_at)::int as resolved,
              percentile_cont(0.5) within group (order by ${hours})::float8 as p50,
              percentile_cont(0.95) within group (order by ${hours})::float8 as p95
         from business.tickets where ${where}`,
      params,
    ),
    pool.query<{
      category: string;
      tickets: number;
      rated: number;
      csat: number | null;
      p50: number | null;
      p95: number | null;
      open: number;
    }>(
      `select category, count(*)::int as tickets, count(satisfaction)::int as rated, avg(satisfaction)::float8 as csat,
              percentile_cont(0.5) within group (order by ${hours})::float8 as p50,
              percentile_cont(0.95) within group (order by ${hours})::float8 as p95,
              (count(*) filter (where resolved_at is null))::int as open
         from business.tickets where ${where} group by category order by category`,
      params,
    ),
    pool.query<{ m: string; tickets: number; csat: number | null }>(
      `select to_char(created_at at time zone 'UTC', 'YYYY-MM') as m, count(*)::int as tickets, avg(satisfaction)::float8 as csat
         from business.tickets where ${where} group by 1 order by 1`,
      params,
    ),
  ]);
  checkAborted(ctx.signal);
  const o = overall.rows[0]!;
  const monthly = Array.from({ length: input.months }, (_, i) => monthKey(addMonths(from, i))).map((m) => {
    const row = trend.rows.find((t) => t.m === m);
    return { month: m, tickets: row?.tickets ?? 0, csat: row?.csat == null ? null : round(row.csat, 3) };
  });
  const rated = monthly.filter((x) => x.csat !== null);
  const trendPerMonth = rated.length >= 2 ? slope(rated.map((x) => x.csat!)) : 0;
  const worst = [...byCategory.rows].filter((c) => c.csat !== null).sort((a, b) => a.csat! - b.csat!)[0];
  return {
    window: { from, to: asOf },
    tickets: o.tickets,
    rated: o.rated,
    csatAverage: o.csat === null ? null : round(o.csat, 3),
    /** share of rated tickets scored 4 or 5 (the usual CSAT %) */
    csatSatisfiedShare: o.satisfied === null ? null : round(o.satisfied, 4),
    resolved: o.resolved,
    open: o.tickets - o.resolved,
    resolutionHours: { p50: o.p50 === null ? null : round(o.p50, 2), p95: o.p95 === null ? null : round(o.p95, 2) },
    byCategory: byCategory.rows.map((c) => ({
      category: c.category,
      tickets: c.tickets,
      rated: c.rated,
      csatAverage: c.csat === null ? null : round(c.csat, 3),
      open: c.open,
      resolutionHours: { p50: c.p50 === null ? null : round(c.p50, 2), p95: c.p95 === null ? null : round(c.p95, 2) },
    })),
    trend: {
      monthly,
      csatChangePerMonth: round(trendPerMonth, 4),
      direction: Math.abs(trendPerMonth) < 0.005 ? 'flat' : trendPerMonth > 0 ? 'improving' : 'declining',
    },
    findings: worst
      ? [
          `lowest satisfaction: ${worst.category} at ${round(worst.csat!, 2)}/5 over ${worst.rated} ratings (median resolution ${round(worst.p50 ?? 0, 1)} h)`,
        ]
      : [],
  };
}

export const customerSuccessTasks = {
  support_response: defineTask({
    taskType: 'support_response',
    ...builtinTaskTypes.support_response,
    handle: supportResponse,
  }),
  satisfaction_analysis: defineTask({
    taskType: 'satisfaction_analysis',
    ...builtinTaskTypes.satisfaction_analysis,
    handle: satisfactionAnalysis,
  }),
};

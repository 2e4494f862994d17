import { z } from 'zod';
import type pg from 'pg';
import Mustache from 'mustache';
import { AppError } from '@switchyard/platform';
import { defineTask, type AgentContext } from '../types.js';
import { addMonths } from '../lib/dates.js';
import { growth, round } from '../lib/stats.js';
import { marketingTemplates, proposalTemplate, welcomeTemplates } from '../templates/content.js';
import { checkAborted, dataAsOf, getCustomer } from './common.js';
import { builtinTaskTypes, generateProposalInput, marketingContentInput } from '@switchyard/contracts';

const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', maximumFractionDigits: 2 });
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const render = (tpl: string, view: object): string => Mustache.render(tpl, view, {}, { escape: (s: string) => s });

/** Plan ladder and list prices per seat (the same ones the demo data bills). */
export const PLAN_LADDER = [
  { plan: 'starter', pricePerSeat: 15 },
  { plan: 'growth', pricePerSeat: 29 },
  { plan: 'business', pricePerSeat: 49 },
  { plan: 'enterprise', pricePerSeat: 79 },
] as const;
const SEGMENT_LABEL: Record<string, string> = {
  smb: 'small business',
  mid_market: 'mid-market',
  enterprise: 'enterprise',
};
const REGION_LABEL: Record<string, string> = {
  north_america: 'North America',
  emea: 'EMEA',
  apac: 'APAC',
  latam: 'Latin America',
};

// ---------- generate_proposal ----------

export type GenerateProposalInput = z.infer<typeof generateProposalInput>;

export interface CustomerFacts {
  customer: { id: number; name: string; segment: string; region: string; signupDate: string };
  subscription: { plan: string; seats: number; pricePerSeat: number; monthly: number; active: boolean };
  usage: { activeUsers: number; apiCalls: number; utilisation: number; months: number };
  revenue: { last12: number; lifetime: number; orders12: number };
  support: { tickets12: number; csat: number | null };
}

export async function customerFacts(pool: pg.Pool, customerId: number, asOf: string): Promise<CustomerFacts> {
  const customer = await getCustomer(pool, customerId);
  const from12 = addMonths(asOf, -11);
  const [sub, usage, revenue, support] = await Promise.all([
    pool.query<{ plan: string; seats: number; pricePerSeat: number; endedOn: string | null }>(
      `select plan, seats, price_per_seat::float8 as "pricePerSeat", ended_on::text as "endedOn"
         from business.subscriptions where customer_id = $1 order by started_on desc, id desc limit 1`,
      [customerId],
    ),
    pool.query<{ activeUsers: number | null; apiCalls: number | null; months: number }>(
      `select avg(active_users)::float8 as "activeUsers", avg(api_calls)::float8 as "apiCalls", count(*)::int as months
         from (select active_users, api_calls from business.usage_monthly
                where customer_id = $1 and month <= $2 order by month desc limit 3) u`,
      [customerId, asOf],
    ),
    pool.query<{ last12: number; lifetime: number; orders12: number }>(
      `select coalesce(sum(amount) filter (where order_date >= $2), 0)::float8 as last12,
              coalesce(sum(amount), 0)::float8 as lifetime,
              (count(*) filter (where order_date >= $2))::int as orders12
         from business.orders where customer_id = $1 and order_date <= $3`,
      [customerId, from12, asOf],
    ),
    pool.query<{ tickets: number; csat: number | null }>(
      `select count(*)::int as tickets, avg(satisfaction)::float8 as csat
         from business.tickets where customer_id = $1 and created_at >= ($2::date::timestamp at time zone 'UTC')
            and created_at < (($3::date + 1)::timestamp at time zone 'UTC')`,
      [customerId, from12, asOf],
    ),
  ]);
  const s = sub.rows[0];
  if (!s) throw new AppError('not_found', 'the customer has no subscription', { customerId });
  const u = usage.rows[0]!;
  return {
    customer: {
      id: customer.id,
      name: customer.name,
      segment: customer.segment,
      region: customer.region,
      signupDate: customer.signupDate,
    },
    subscription: {
      plan: s.plan,
      seats: s.seats,
      pricePerSeat: s.pricePerSeat,
      monthly: round(s.seats * s.pricePerSeat),
      active: s.endedOn === null || s.endedOn > asOf,
    },
    usage: {
      activeUsers: Math.round(u.activeUsers ?? 0),
      apiCalls: Math.round(u.apiCalls ?? 0),
      utilisation: s.seats ? round((u.activeUsers ?? 0) / s.seats, 4) : 0,
      months: u.months,
    },
    revenue: {
      last12: round(revenue.rows[0]!.last12),
      lifetime: round(revenue.rows[0]!.lifetime),
      orders12: revenue.rows[0]!.orders12,
    },
    support: {
      tickets12: support.rows[0]!.tickets,
      csat: support.rows[0]!.csat === null ? null : round(support.rows[0]!.csat, 2),
    },
  };
}

export async function generateProposal(input: GenerateProposalInput, ctx: AgentContext) {
  const asOf = input.asOf ?? (await dataAsOf(ctx.pool));
  const facts = await customerFacts(ctx.pool, input.customerId, asOf);
  checkAborted(ctx.signal);
  if (!facts.subscription.active) {
    // A churned account needs a win-back conversation, not a proposal priced off stale usage.
    throw new AppError('illegal_state', 'the customer has no active subscription', {
      customerId: input.customerId,
      plan: facts.subscription.plan,
    });
  }
  const months = (n: number): string => `${n} month${n === 1 ? '' : 's'}`;
  const idx = PLAN_LADDER.findIndex((p) => p.plan === facts.subscription.plan);
  const target =
    PLAN_LADDER.find((p) => p.plan === input.targetPlan) ??
    (input.proposalType === 'upgrade'
      ? PLAN_LADDER[Math.min(idx + 1, PLAN_LADDER.length - 1)]!
      : PLAN_LADDER[Math.max(idx, 0)]!);
  const headroomSeats = Math.max(0, Math.ceil(facts.usage.activeUsers * 1.2) - facts.subscription.seats);
  const seats =
    facts.subscription.seats +
    (input.proposalType === 'expansion' ? (input.additionalSeats ?? Math.max(5, headroomSeats)) : 0);
  const listMonthly = seats * target.pricePerSeat;
  const monthly = round(listMonthly * (1 - input.discountPct / 100));
  const reasons: string[] = [];
  if (facts.usage.utilisation >= 0.8)
    reasons.push(
      `Your team uses ${round(facts.usage.utilisation * 100, 0)}% of its ${facts.subscription.seats} seats (${facts.usage.activeUsers} active users on average over the last ${months(facts.usage.months)}).`,
    );
  else
    reasons.push(
      `${facts.usage.activeUsers} of your ${facts.subscription.seats} seats were active on average over the last ${months(facts.usage.months)}.`,
    );
  reasons.push(`You made ${int.format(facts.usage.apiCalls)} API calls per month on average.`);
  if (input.proposalType === 'upgrade' && target.plan !== facts.subscription.plan)
    reasons.push(
      `Moving from ${facts.subscription.plan} to ${target.plan} adds the higher limits and support level of the ${target.plan} plan.`,
    );
  if (input.proposalType === 'expansion')
    reasons.push(`Adding ${seats - facts.subscription.seats} seats keeps about 20% headroom above your active users.`);
  if (input.proposalType === 'renewal')
    reasons.push(`Renewing keeps your ${facts.subscription.plan} plan and current seat count for another 12 months.`);
  const title = {
    upgrade: `Upgrade proposal: ${target.plan} plan`,
    renewal: 'Renewal proposal',
    expansion: 'Seat expansion proposal',
  }[input.proposalType];
  const view = {
    title: `${title} for ${facts.customer.name}`,
    asOf,
    contact: input.contact,
    customer: {
      ...facts.customer,
      segmentLabel: SEGMENT_LABEL[facts.customer.segment] ?? facts.customer.segment,
      regionLabel: REGION_LABEL[facts.customer.region] ?? facts.customer.region,
    },
    current: {
      plan: facts.subscription.plan,
      seats: facts.subscription.seats,
      pricePerSeatFormatted: money.format(facts.subscription.pricePerSeat),
      monthlyFormatted: money.format(facts.subscription.monthly),
    },
    usage: {
      activeUsers: facts.usage.activeUsers,
      utilisationPct: round(facts.usage.utilisation * 100, 0),
      apiCallsFormatted: int.format(facts.usage.apiCalls),
    },
    revenue: {
      last12Formatted: money.format(facts.revenue.last12),
      lifetimeFormatted: money.format(facts.revenue.lifetime),
    },
    support: { tickets: facts.support.tickets12 || null, csat: facts.support.csat },
    reasons,
    proposed: {
      plan: target.plan,
      seats,
      pricePerSeatFormatted: money.format(target.pricePerSeat),
      monthlyFormatted: money.format(monthly),
      annualFormatted: money.format(monthly * 12),
      deltaFormatted: `${monthly - facts.subscription.monthly >= 0 ? '+' : '−'}${money.format(Math.abs(monthly - facts.subscription.monthly))}`,
      discountPct: input.discountPct || null,
    },
  };
  const markdown = render(proposalTemplate, view);
  return {
    customerId: facts.customer.id,
    proposalType: input.proposalType,
    markdown: ctx.llm ? await ctx.llm.polish(markdown, 'sales proposal', ctx.signal) : markdown,
    facts,
    proposed: {
      plan: target.plan,
      seats,
      pricePerSeat: target.pricePerSeat,
      monthly,
      annual: round(monthly * 12),
      monthlyDelta: round(monthly - facts.subscription.monthly),
    },
  };
}

// ---------- marketing_content ----------

export type MarketingContentInput = z.infer<typeof marketingContentInput>;

export async function marketingContent(input: MarketingContentInput, ctx: AgentContext) {
  if (input.kind === 'welcome') return welcomeEmail(input, ctx);
  const { pool } = ctx;
  const asOf = input.asOf ?? (await dataAsOf(pool));
  const from = addMonths(asOf, -11);
  const priorFrom = addMonths(asOf, -23);
  const filter = `($1::text is null or c.segment = $1) and ($2::text is null or c.region = $2)`;
  const params = [input.segment ?? null, input.region ?? null];
  const [cust, usage, rev, tickets, top] = await Promise.all([
    pool.query<{ n: number }>(
      `select count(distinct c.id)::int as n from business.customers c join business.orders o on o.customer_id = c.id
        where ${filter} and o.order_date between $3 and $4`,
      [...params, from, asOf],
    ),
    pool.query<{ users: number | null; calls: number | null; seats: number | null }>(
      `select avg(u.active_users)::float8 as users, sum(u.api_calls)::float8 as calls,
              (select avg(s.seats)::float8 from business.subscriptions s join business.customers c on c.id = s.customer_id where ${filter}) as seats
         from business.usage_monthly u join business.customers c on c.id = u.customer_id
        where ${filter} and u.month between $3 and $4`,
      [...params, from, asOf],
    ),
    pool.query<{ cur: number | null; prior: number | null }>(
      `select sum(o.amount) filter (where o.order_date between $3 and $4)::float8 as cur,
              sum(o.amount) filter (where o.order_date >= $5 and o.order_date < $3)::float8 as prior
         from business.orders o join business.customers c on c.id = o.customer_id where ${filter}`,
      [...params, from, asOf, priorFrom],
    ),
    pool.query<{ n: number; csat: number | null; p50: number | null }>(
      `select count(*)::int as n, avg(t.satisfaction)::float8 as csat,
              percentile_cont(0.5) within group (order by extract(epoch from t.resolved_at - t.created_at) / 3600)::float8 as p50
         from business.tickets t join business.customers c on c.id = t.customer_id
        where ${filter} and t.created_at >= ($3::date::timestamp at time zone 'UTC')
          and t.created_at < (($4::date + 1)::timestamp at time zone 'UTC')`,
      [...params, from, asOf],
    ),
    pool.query<{ subject: string; n: number }>(
      `select t.subject, count(*)::int as n from business.tickets t join business.customers c on c.id = t.customer_id
        where ${filter} and t.category = 'feature_request' and t.created_at >= ($3::date::timestamp at time zone 'UTC') group by t.subject order by n desc, t.subject limit 1`,
      [...params, from],
    ),
  ]);
  checkAborted(ctx.signal);
  const g = growth(rev.rows[0]!.prior ?? undefined, rev.rows[0]!.cur ?? 0);
  const audience = input.segment ? SEGMENT_LABEL[input.segment]! : 'customer';
  const facts = {
    from,
    to: asOf,
    activeCustomers: cust.rows[0]!.n,
    avgActiveUsers: round(usage.rows[0]!.users ?? 0, 1),
    apiCalls: Math.round(usage.rows[0]!.calls ?? 0),
    utilisation: usage.rows[0]!.seats ? round((usage.rows[0]!.users ?? 0) / usage.rows[0]!.seats, 4) : null,
    revenue12: round(rev.rows[0]!.cur ?? 0),
    revenueGrowth: g === null ? null : round(g, 4),
    tickets: tickets.rows[0]!.n,
    csat: tickets.rows[0]!.csat === null ? null : round(tickets.rows[0]!.csat, 2),
    medianResolutionHours: tickets.rows[0]!.p50 === null ? null : round(tickets.rows[0]!.p50, 1),
    topRequest: top.rows[0]?.subject.replace(/^Feature request:\s*/i, '') ?? 'more integrations',
  };
  const view = {
    ...facts,
    audience,
    audienceTitle: audience.charAt(0).toUpperCase() + audience.slice(1) + (input.segment ? ' customers' : 's'),
    apiCallsFormatted: int.format(facts.apiCalls),
    utilisationPct: facts.utilisation === null ? 'n/a' : round(facts.utilisation * 100, 0),
    growthPct: g !== null && g > 0 ? round(g * 100, 1) : null,
    growthAbsPct: g === null ? 'n/a' : round(Math.abs(g) * 100, 1),
    growthWord: g !== null && g < 0 ? 'fell' : 'grew',
    csat: facts.csat ?? 'n/a',
    resolutionHours: facts.medianResolutionHours ?? 'n/a',
    hashtag: input.segment ? input.segment.replace('_', '') : 'customers',
  };
  const markdown = render(marketingTemplates[input.channel], view);
  return {
    channel: input.channel,
    audience: { segment: input.segment ?? null, region: input.region ?? null },
    markdown: ctx.llm ? await ctx.llm.polish(markdown, `marketing ${input.channel}`, ctx.signal) : markdown,
    facts,
  };
}

/**
 * The welcome e-mail of one customer, from its row and its latest subscription: greets it by name,
 * names its plan, seats and price, lists the next steps. Subject and body apart, so the mail's
 * subject is a header, not a line of the body.
 */
async function welcomeEmail(input: MarketingContentInput, ctx: AgentContext) {
  // The contract asks for customerId with kind welcome; a direct call without it is the caller's error.
  if (input.customerId === undefined)
    throw new AppError('validation', 'a welcome is for one customer: give customerId', { kind: input.kind });
  const customer = await getCustomer(ctx.pool, input.customerId);
  const sub = await ctx.pool.query<{ plan: string; seats: number; pricePerSeat: number }>(
    `select plan, seats, price_per_seat::float8 as "pricePerSeat"
       from business.subscriptions where customer_id = $1 order by started_on desc, id desc limit 1`,
    [input.customerId],
  );
  checkAborted(ctx.signal);
  const s = sub.rows[0];
  if (!s) throw new AppError('not_found', 'the customer has no subscription', { customerId: input.customerId });
  const monthly = round(s.seats * s.pricePerSeat);
  const view = {
    name: customer.name,
    plan: s.plan,
    seats: s.seats,
    seatsText: `${s.seats} seat${s.seats === 1 ? '' : 's'}`,
    pricePerSeatFormatted: money.format(s.pricePerSeat),
    monthlyFormatted: money.format(monthly),
  };
  const text = render(welcomeTemplates.text, view);
  return {
    channel: 'email' as const,
    kind: 'welcome' as const,
    audience: { segment: customer.segment, region: customer.region },
    subject: render(welcomeTemplates.subject, view),
    text: ctx.llm ? await ctx.llm.polish(text, 'welcome email', ctx.signal) : text,
    facts: {
      customerId: customer.id,
      name: customer.name,
      plan: s.plan,
      seats: s.seats,
      pricePerSeat: s.pricePerSeat,
      monthly,
    },
  };
}

export const contentCreatorTasks = {
  generate_proposal: defineTask({
    taskType: 'generate_proposal',
    ...builtinTaskTypes.generate_proposal,
    handle: generateProposal,
  }),
  marketing_content: defineTask({
    taskType: 'marketing_content',
    ...builtinTaskTypes.marketing_content,
    handle: marketingContent,
  }),
};

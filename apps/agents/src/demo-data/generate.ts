import { Rng } from '../lib/prng.js';
import { addDays, addMonths, monthEnd } from '../lib/dates.js';

/**
 * Deterministic demo business: a B2B SaaS company over the 24 months ending at REFERENCE_MONTH.
 * Same seed → byte-identical rows. Built-in features the agents should find:
 *  - growth: more sign-ups each month, seat expansion over time
 *  - seasonality: usage and add-on revenue peak in Nov/Dec, dip in Jul/Aug and January
 *  - churn: monthly churn by segment (smb 3 %, mid-market 1.5 %, enterprise 0.7 %)
 *  - anomalies: a one-off services deal in 2025-03 (spike) and a billing outage in 2025-11
 *    when half of the subscription invoices were never issued (dip)
 *  - cost lines: cloud grows faster than revenue, a contractor spike, payment fees ∝ revenue
 */
export const REFERENCE_MONTH = '2026-06';
export const FIRST_MONTH = '2024-07';
export const MONTHS = 24;
/** The week the schedule optimiser plans by default (a Monday), just after the data ends. */
export const SCHEDULE_WEEK_START = '2026-07-06';
export const DEFAULT_SEED = 20260630;
export const ANOMALY_MONTHS = { servicesSpike: '2025-03', billingOutage: '2025-11' } as const;

export interface DemoData {
  customers: { id: number; name: string; email: string; segment: Segment; region: string; signup_date: string }[];
  subscriptions: {
    id: number;
    customer_id: number;
    plan: string;
    seats: number;
    price_per_seat: number;
    started_on: string;
    ended_on: string | null;
  }[];
  orders: {
    id: number;
    customer_id: number;
    order_date: string;
    amount: number;
    kind: 'subscription' | 'usage' | 'addon' | 'services';
  }[];
  usage: { customer_id: number; month: string; active_users: number; api_calls: number }[];
  tickets: {
    id: number;
    customer_id: number;
    subject: string;
    body: string;
    category: string;
    created_at: string;
    resolved_at: string | null;
    satisfaction: number | null;
  }[];
  staff: { id: number; name: string; skills: string[]; max_hours_week: number; hourly_cost: number }[];
  shifts: {
    id: number;
    day: string;
    slot: string;
    starts_at: string;
    hours: number;
    required_skill: string;
    headcount: number;
  }[];
  availability: { staff_id: number; day: string; slot: string }[];
  costLines: { id: number; category: string; month: string; amount: number }[];
}

type Segment = 'smb' | 'mid_market' | 'enterprise';

const cents = (x: number): number => Math.round(x * 100) / 100;
const monthDate = (i: number): string => addMonths(`${FIRST_MONTH}-01`, i);
/** Seasonal multiplier by calendar month (1 = Jan) for usage and add-on spend. */
const SEASON = [0.85, 0.95, 1.0, 1.0, 1.0, 0.98, 0.85, 0.82, 1.02, 1.08, 1.3, 1.45];

const PREFIX = [
  'Acme',
  'Northwind',
  'Blue',
  'Summit',
  'Cedar',
  'Nova',
  'Harbor',
  'Vertex',
  'Pioneer',
  'Silver',
  'Atlas',
  'Bright',
  'Evergreen',
  'Falcon',
  'Granite',
  'Horizon',
  'Ion',
  'Juniper',
  'Kestrel',
  'Lumen',
  'Maple',
  'Orbit',
  'Pixel',
  'Quartz',
  'River',
  'Sage',
  'Tidal',
  'Umbra',
  'Vista',
  'Willow',
];
const CORE = [
  'Analytics',
  'Logistics',
  'Health',
  'Foods',
  'Robotics',
  'Media',
  'Finance',
  'Energy',
  'Retail',
  'Labs',
  'Systems',
  'Studio',
  'Partners',
  'Works',
  'Dynamics',
];
const SUFFIX = ['Inc', 'Ltd', 'GmbH', 'LLC', 'Group', 'Co'];
const REGIONS = ['north_america', 'emea', 'apac', 'latam'];
const PLANS: Record<Segment, { plan: string; price: number; seats: [number, number] }[]> = {
  smb: [
    { plan: 'starter', price: 15, seats: [2, 12] },
    { plan: 'growth', price: 29, seats: [5, 20] },
  ],
  mid_market: [
    { plan: 'growth', price: 29, seats: [15, 60] },
    { plan: 'business', price: 49, seats: [20, 80] },
  ],
  enterprise: [
    { plan: 'business', price: 49, seats: [80, 250] },
    { plan: 'enterprise', price: 79, seats: [100, 400] },
  ],
};
const CHURN: Record<Segment, number> = { smb: 0.03, mid_market: 0.015, enterprise: 0.007 };

const TICKET_TEMPLATES: Record<string, { subjects: string[]; bodies: string[]; medianHours: number; base: number }> = {
  billing: {
    subjects: [
      'Question about my invoice',
      'Charged twice this month',
      'Need a VAT receipt',
      'Invoice amount looks wrong',
    ],
    bodies: [
      'Our invoice for {month} shows {seats} seats but we only use fewer. Can you check?',
      'My card was charged twice on {month}. Please refund the duplicate.',
      'Could you send a receipt with our VAT number for {month}?',
    ],
    medianHours: 6,
    base: 4.3,
  },
  technical: {
    subjects: [
      'API returning 503 errors',
      'Export to CSV fails',
      'Dashboard not loading',
      'Webhook deliveries delayed',
    ],
    bodies: [
      'Since this morning our integration gets 503 errors from the API. This is blocking our team.',
      'The CSV export of the monthly report fails with an error after a few seconds.',
      'The dashboard stays blank for all users in our workspace.',
    ],
    medianHours: 22,
    base: 3.8,
  },
  account: {
    subjects: ['Cannot log in', 'Locked out after password reset', 'Need to add an admin', 'SSO login loop'],
    bodies: [
      'I reset my password but the login page keeps rejecting it.',
      'Please make {name} an admin of our workspace.',
      'Our SSO sign in redirects back to the login page in a loop.',
    ],
    medianHours: 4,
    base: 4.4,
  },
  feature_request: {
    subjects: [
      'Feature request: scheduled reports',
      'Would be great to have SAML groups',
      'Suggestion for the dashboard',
    ],
    bodies: [
      'It would help us a lot if reports could be emailed on a schedule.',
      'Could you add support for mapping SAML groups to roles?',
      'A dark mode for the dashboard would be nice.',
    ],
    medianHours: 48,
    base: 4.0,
  },
  cancellation: {
    subjects: ['Cancel our subscription', 'Not renewing next month', 'How do we close the account?'],
    bodies: [
      'We would like to cancel our subscription at the end of the period.',
      'We are moving to another tool and will not renew.',
      'Please tell us how to export our data before we close the account.',
    ],
    medianHours: 12,
    base: 3.6,
  },
};
const TICKET_WEIGHTS: [string, number][] = [
  ['billing', 0.28],
  ['technical', 0.34],
  ['account', 0.18],
  ['feature_request', 0.12],
  ['cancellation', 0.08],
];

const FIRST_NAMES = [
  'Ana',
  'Ben',
  'Chen',
  'Dara',
  'Eli',
  'Fatima',
  'Gus',
  'Hana',
  'Ivan',
  'Jo',
  'Kofi',
  'Lena',
  'Mo',
  'Nia',
  'Omar',
  'Pia',
  'Quinn',
  'Raj',
  'Sara',
  'Tom',
];
const LAST_NAMES = ['Silva', 'Okafor', 'Ng', 'Keller', 'Haddad', 'Novak', 'Ruiz', 'Sato', 'Berg', 'Costa'];

export function generateDemoData(seed = DEFAULT_SEED, customerCount = 500): DemoData {
  const rng = new Rng(seed);
  const data: DemoData = {
    customers: [],
    subscriptions: [],
    orders: [],
    usage: [],
    tickets: [],
    staff: [],
    shifts: [],
    availability: [],
    costLines: [],
  };

  // 1. Customers: 20 % existed before the window, the rest sign up with rising monthly volume.
  const usedNames = new Set<string>();
  const signupWeights = Array.from({ length: MONTHS }, (_, i) => 1 + 0.06 * i);
  for (let id = 1; id <= customerCount; id++) {
    let name: string;
    do {
      name = `${rng.pick(PREFIX)} ${rng.pick(CORE)} ${rng.pick(SUFFIX)}`;
    } while (usedNames.has(name) && usedNames.size < PREFIX.length * CORE.length * SUFFIX.length);
    if (usedNames.has(name)) name = `${name} ${id}`;
    usedNames.add(name);
    const segment: Segment = (['smb', 'mid_market', 'enterprise'] as const)[rng.weighted([0.6, 0.3, 0.1])]!;
    const legacy = rng.bool(0.2);
    const signupMonth = legacy
      ? addMonths(`${FIRST_MONTH}-01`, -rng.int(1, 18))
      : monthDate(rng.weighted(signupWeights));
    const signup = addDays(signupMonth, rng.int(0, 27));
    const slug = name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/-+$/, '');
    data.customers.push({
      id,
      name,
      email: `billing@${slug}.example`,
      segment,
      region: rng.pick(REGIONS),
      signup_date: signup,
    });
  }

  // 2. Subscriptions, monthly invoices, usage, add-ons; churn ends the subscription.
  let orderId = 1;
  let ticketId = 1;
  for (const c of data.customers) {
    const choice = rng.pick(PLANS[c.segment]);
    let seats = rng.int(choice.seats[0], choice.seats[1]);
    const initialSeats = seats;
    const startIdx = Math.max(0, monthIndex(c.signup_date));
    let ended: string | null = null;
    const billingDay = Math.min(28, Number(c.signup_date.slice(8, 10)));
    for (let i = startIdx; i < MONTHS; i++) {
      const month = monthDate(i);
      const calMonth = Number(month.slice(5, 7));
      const season = SEASON[calMonth - 1]!;
      const day = `${month.slice(0, 8)}${String(billingDay).padStart(2, '0')}`;
      // the sign-up month of an in-window customer is billed from the sign-up date
      const invoiceDate = i === monthIndex(c.signup_date) && c.signup_date > day ? c.signup_date : day;
      const outage = month.startsWith(ANOMALY_MONTHS.billingOutage) && rng.bool(0.5);
      if (!outage) {
        data.orders.push({
          id: orderId++,
          customer_id: c.id,
          order_date: invoiceDate,
          amount: cents(seats * choice.price),
          kind: 'subscription',
        });
      }
      const activeUsers = Math.max(1, Math.round(seats * (0.55 + 0.4 * rng.float())));
      const apiCalls = Math.round(activeUsers * 900 * season * rng.logNormal(1, 0.25));
      data.usage.push({ customer_id: c.id, month, active_users: activeUsers, api_calls: apiCalls });
      const included = seats * 600;
      if (apiCalls > included) {
        data.orders.push({
          id: orderId++,
          customer_id: c.id,
          order_date: monthEnd(month),
          amount: cents(((apiCalls - included) / 1000) * 2.5),
          kind: 'usage',
        });
      }
      if (rng.bool(c.segment === 'smb' ? 0.35 : c.segment === 'mid_market' ? 0.5 : 0.65)) {
        const amount = seats * choice.price * (0.1 + 0.25 * rng.float()) * season;
        data.orders.push({
          id: orderId++,
          customer_id: c.id,
          order_date: addDays(month, rng.int(0, 27)),
          amount: cents(amount),
          kind: 'addon',
        });
      }
      // support tickets: about one every six customer-months
      if (rng.bool(0.17)) ticketId = addTicket(data, rng, ticketId, c, month, seats);
      // expansion and churn
      if (rng.bool(0.06)) seats = Math.round(seats * (1.1 + 0.2 * rng.float()));
      if (i < MONTHS - 1 && rng.bool(CHURN[c.segment])) {
        ended = monthEnd(month);
        break;
      }
    }
    data.subscriptions.push({
      id: c.id,
      customer_id: c.id,
      plan: choice.plan,
      seats: ended ? initialSeats : seats,
      price_per_seat: choice.price,
      started_on: c.signup_date,
      ended_on: ended,
    });
  }

  // 3. Anomaly: a one-off data-migration deal, 45 % of that month's other revenue.
  const spikeMonth = ANOMALY_MONTHS.servicesSpike;
  const spikeBase = data.orders.filter((o) => o.order_date.startsWith(spikeMonth)).reduce((a, o) => a + o.amount, 0);
  const bigCustomer = data.customers.find((c) => c.segment === 'enterprise' && c.signup_date < `${spikeMonth}-01`)!;
  data.orders.push({
    id: orderId,
    customer_id: bigCustomer.id,
    order_date: `${spikeMonth}-17`,
    amount: cents(spikeBase * 0.45),
    kind: 'services',
  });
  data.orders.sort((a, b) => a.order_date.localeCompare(b.order_date) || a.id - b.id);
  data.orders.forEach((o, i) => (o.id = i + 1));

  // 4. Costs: per category and month; payment processing follows revenue.
  const revenueByMonth = new Map<string, number>();
  for (const o of data.orders)
    revenueByMonth.set(o.order_date.slice(0, 7), (revenueByMonth.get(o.order_date.slice(0, 7)) ?? 0) + o.amount);
  let costId = 1;
  for (let i = 0; i < MONTHS; i++) {
    const month = monthDate(i);
    const calMonth = Number(month.slice(5, 7));
    const revenue = revenueByMonth.get(month.slice(0, 7)) ?? 0;
    const lines: [string, number][] = [
      ['payroll', 310_000 * (1 + 0.012 * i) * (1 + 0.01 * rng.normal())],
      ['cloud_infrastructure', 48_000 * 1.065 ** i * (1 + 0.02 * rng.normal())],
      ['marketing', 60_000 * (calMonth >= 10 ? 1.5 : 1) * (1 + 0.05 * rng.normal())],
      ['software_licenses', (i < 12 ? 18_000 : 26_500) * (1 + 0.005 * rng.normal())],
      ['office', 21_000 * (1 + 0.01 * rng.normal())],
      ['support_tools', 6_500 + 40 * i],
      ['contractors', (month.startsWith('2026-02') ? 95_000 : 24_000) * (1 + 0.1 * rng.normal())],
      ['payment_processing', revenue * 0.029],
    ];
    for (const [category, amount] of lines)
      data.costLines.push({ id: costId++, category, month, amount: cents(amount) });
  }

  // 5. Staff, shift demand for one week, and availability.
  const SKILLS = ['support', 'billing', 'engineering', 'onboarding'];
  for (let id = 1; id <= 18; id++) {
    const primary = SKILLS[(id - 1) % SKILLS.length]!;
    const skills = [primary];
    for (const s of SKILLS) if (s !== primary && rng.bool(0.3)) skills.push(s);
    const cost = 26 + 8 * skills.length + (skills.includes('engineering') ? 14 : 0) + rng.int(0, 6);
    data.staff.push({
      id,
      name: `${FIRST_NAMES[(id - 1) % FIRST_NAMES.length]} ${LAST_NAMES[(id * 3) % LAST_NAMES.length]}`,
      skills: skills.sort(),
      max_hours_week: rng.pick([24, 32, 40, 40]),
      hourly_cost: cost,
    });
  }
  let shiftId = 1;
  for (let d = 0; d < 7; d++) {
    const day = addDays(SCHEDULE_WEEK_START, d);
    const weekday = d < 5;
    const demand: [string, string, number][] = weekday
      ? [
          ['morning', 'support', 3],
          ['evening', 'support', 2],
          ['morning', 'engineering', 2],
          ['evening', 'engineering', 1],
          ['morning', 'billing', 1],
          ['evening', 'onboarding', 1],
        ]
      : [
          ['morning', 'support', 1],
          ['evening', 'support', 1],
          ['morning', 'engineering', 1],
          ['evening', 'engineering', 1],
        ];
    for (const [slot, skill, headcount] of demand) {
      data.shifts.push({
        id: shiftId++,
        day,
        slot,
        starts_at: slot === 'morning' ? '08:00' : '16:00',
        hours: 8,
        required_skill: skill,
        headcount,
      });
    }
    for (const s of data.staff) {
      for (const slot of ['morning', 'evening']) {
        if (rng.bool(weekday ? 0.75 : 0.45)) data.availability.push({ staff_id: s.id, day, slot });
      }
    }
  }
  return data;
}

function monthIndex(date: string): number {
  const [y, m] = date.split('-').map(Number);
  const [fy, fm] = FIRST_MONTH.split('-').map(Number);
  return (y! - fy!) * 12 + (m! - fm!);
}

function addTicket(
  data: DemoData,
  rng: Rng,
  id: number,
  c: DemoData['customers'][number],
  month: string,
  seats: number,
): number {
  const category = TICKET_WEIGHTS[rng.weighted(TICKET_WEIGHTS.map(([, w]) => w))]![0];
  const t = TICKET_TEMPLATES[category]!;
  const fill = (s: string): string =>
    s.replace('{month}', month.slice(0, 7)).replace('{seats}', String(seats)).replace('{name}', rng.pick(FIRST_NAMES));
  const created = new Date(
    `${addDays(month, rng.int(0, 27))}T${String(rng.int(7, 19)).padStart(2, '0')}:${String(rng.int(0, 59)).padStart(2, '0')}:00Z`,
  );
  const hours = rng.logNormal(t.medianHours, 0.9);
  const resolvedAt = new Date(created.getTime() + hours * 3_600_000);
  // Recent tickets may still be open; the data set ends with the reference month.
  const open = resolvedAt.toISOString().slice(0, 7) > REFERENCE_MONTH || rng.bool(0.02);
  // Satisfaction: category baseline, slower resolution hurts, slow improvement over time.
  const trend = 0.03 * monthIndex(month);
  const raw = t.base + trend - 0.35 * Math.log2(Math.max(1, hours / t.medianHours)) + rng.normal(0, 0.7);
  const rated = !open && rng.bool(0.7);
  data.tickets.push({
    id,
    customer_id: c.id,
    subject: rng.pick(t.subjects),
    body: fill(rng.pick(t.bodies)),
    category,
    created_at: created.toISOString(),
    resolved_at: open ? null : resolvedAt.toISOString(),
    satisfaction: rated ? Math.min(5, Math.max(1, Math.round(raw))) : null,
  });
  return id + 1;
}

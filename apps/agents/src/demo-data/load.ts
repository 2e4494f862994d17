import type pg from 'pg';
import { AppError } from '@switchyard/platform';
import { businessDdl, DEMO_SCHEMA_VERSION, identityAfterLoadSql, upgradeFromVersion1Sql } from './schema.js';
import { DEFAULT_SEED, generateDemoData, REFERENCE_MONTH, SCHEDULE_WEEK_START, type DemoData } from './generate.js';

export interface LoadDemoDataOptions {
  /** drop and reload even when the same data set is already there */
  readonly reset?: boolean;
  readonly seed?: number;
  readonly customers?: number;
}

export interface LoadDemoDataResult {
  /** false when an identical data set was already loaded and nothing was written */
  readonly loaded: boolean;
  readonly seed: number;
  readonly referenceMonth: string;
  readonly scheduleWeekStart: string;
  readonly counts: Record<string, number>;
}

// Any fixed 64-bit key: serialises concurrent loaders (two agents starting at once).
const LOCK_KEY = 7_340_125_519;

const TABLES: [keyof DemoData, string, string][] = [
  ['customers', 'business.customers', 'id int, name text, email text, segment text, region text, signup_date date'],
  [
    'subscriptions',
    'business.subscriptions',
    'id int, customer_id int, plan text, seats int, price_per_seat numeric, started_on date, ended_on date',
  ],
  ['orders', 'business.orders', 'id int, customer_id int, order_date date, amount numeric, kind text'],
  ['usage', 'business.usage_monthly', 'customer_id int, month date, active_users int, api_calls bigint'],
  [
    'tickets',
    'business.tickets',
    'id int, customer_id int, subject text, body text, category text, created_at timestamptz, resolved_at timestamptz, satisfaction smallint',
  ],
  ['staff', 'business.staff', 'id int, name text, skills text[], max_hours_week int, hourly_cost numeric'],
  [
    'shifts',
    'business.shifts',
    'id int, day date, slot text, starts_at time, hours int, required_skill text, headcount int',
  ],
  ['availability', 'business.availability', 'staff_id int, day date, slot text'],
  ['costLines', 'business.cost_lines', 'id int, category text, month date, amount numeric'],
];

/**
 * Create schema `business` and fill it with the deterministic demo data set. Idempotent: when
 * the same version and seed are already loaded it returns `loaded: false` without writing,
 * unless `reset` is set. Runs in one transaction, so a failed load leaves nothing behind.
 */
export async function loadDemoData(pool: pg.Pool, opts: LoadDemoDataOptions = {}): Promise<LoadDemoDataResult> {
  const seed = opts.seed ?? DEFAULT_SEED;
  const customers = opts.customers ?? 500;
  const marker = { version: DEMO_SCHEMA_VERSION, seed, customers, referenceMonth: REFERENCE_MONTH };
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [LOCK_KEY]);
    const table = await client.query<{ t: string | null }>(`select to_regclass('business.demo_meta')::text as t`);
    const existing = table.rows[0]?.t
      ? await client.query<{ value: typeof marker }>(`select value from business.demo_meta where key = 'dataset'`)
      : { rows: [] as { value: typeof marker }[] };
    const current = existing.rows[0]?.value;
    const sameData = current !== undefined && current.seed === seed && current.customers === customers;
    // Version 1 becomes 2 in place: the rows onboardings added stay.
    const upgradable = sameData && current.version === 1 && marker.version === 2;
    if (upgradable && !opts.reset) {
      await client.query(upgradeFromVersion1Sql);
      await client.query(`update business.demo_meta set value = $1::jsonb where key = 'dataset'`, [
        JSON.stringify(marker),
      ]);
    }
    const same = sameData && (current.version === marker.version || upgradable);
    if (same && !opts.reset) {
      await client.query(identityAfterLoadSql);
      await client.query('commit');
      return {
        loaded: false,
        seed,
        referenceMonth: REFERENCE_MONTH,
        scheduleWeekStart: SCHEDULE_WEEK_START,
        counts: await countRows(pool),
      };
    }
    const schema = await client.query(`select 1 from pg_namespace where nspname = 'business'`);
    if (schema.rows.length > 0 && !current && !opts.reset) {
      // Never drop a `business` schema this loader did not create.
      throw new AppError(
        'illegal_state',
        'schema business exists but holds no demo data marker; pass reset to replace it',
      );
    }
    await client.query('drop schema if exists business cascade');
    await client.query(businessDdl);
    const data = generateDemoData(seed, customers);
    const counts: Record<string, number> = {};
    for (const [key, table, columns] of TABLES) {
      const rows = data[key] as unknown[];
      // jsonb_to_recordset: one round trip per table, and arrays (staff skills) map to text[].
      await client.query(`insert into ${table} select * from jsonb_to_recordset($1::jsonb) as x(${columns})`, [
        JSON.stringify(rows),
      ]);
      counts[key] = rows.length;
    }
    await client.query(identityAfterLoadSql);
    await client.query(`insert into business.demo_meta (key, value) values ('dataset', $1::jsonb)`, [
      JSON.stringify(marker),
    ]);
    await client.query('commit');
    return { loaded: true, seed, referenceMonth: REFERENCE_MONTH, scheduleWeekStart: SCHEDULE_WEEK_START, counts };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function countRows(pool: pg.Pool): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const [key, table] of TABLES) {
    const r = await pool.query<{ n: number }>(`select count(*)::int as n from ${table}`);
    counts[key] = r.rows[0]!.n;
  }
  return counts;
}

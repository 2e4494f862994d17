import type pg from 'pg';
import { AppError, withTransaction } from '@switchyard/platform';

/** How many webhooks and schedules the automation server keeps at most (AUTOMATION_MAX_*). */
export interface AutomationCaps {
  readonly maxWebhooks: number;
  readonly maxSchedules: number;
}

export const DEFAULT_AUTOMATION_CAPS: AutomationCaps = { maxWebhooks: 200, maxSchedules: 1_000 };

/** The creation of each kind this process runs now: the next waits for it in memory, holding no connection. */
const turns = new Map<string, Promise<unknown>>();

/**
 * Run `create` only while `table` holds fewer than `max` rows: every webhook gets every matching
 * event and every schedule fires on its own, so their number is what one caller could multiply
 * the outgoing requests by. Creations of one kind take turns, so concurrent ones cannot pass the
 * count together: in this process in memory (a waiting creation holds no pool connection, so
 * the one running always finds the connections it needs), across processes under a
 * transaction-scoped advisory lock held while `create` records and projects (waited for at most
 * LOCK_WAIT_MS, then 503).
 */
export function underCap<T>(
  pool: pg.Pool,
  o: { readonly table: 'automation.webhooks' | 'automation.schedules'; readonly max: number; readonly setting: string },
  create: () => Promise<T>,
): Promise<T> {
  const previous = turns.get(o.table) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => counted(pool, o, create));
  const settled = mine.catch(() => undefined);
  turns.set(o.table, settled);
  void settled.then(() => {
    if (turns.get(o.table) === settled) turns.delete(o.table);
  });
  return mine;
}

/**
 * What counts against a cap: every webhook; every schedule that can still fire. A fired one-shot
 * stays as a record (see list_schedules) but sends nothing more: counted, the one-shot follow-ups
 * of 1,000 onboardings used the cap up for good, and every later onboarding had none.
 */
const COUNT_SQL = {
  'automation.webhooks': 'SELECT count(*)::int AS n FROM automation.webhooks',
  'automation.schedules': `SELECT count(*)::int AS n FROM automation.schedules s
     LEFT JOIN automation.schedule_runs r ON r.schedule_id = s.id
    WHERE NOT (s.run_once AND r.done IS TRUE)`,
} as const;

/** How long a creation waits for another process's creation of the same kind. */
const LOCK_WAIT_MS = 10_000;

function counted<T>(
  pool: pg.Pool,
  o: { readonly table: 'automation.webhooks' | 'automation.schedules'; readonly max: number; readonly setting: string },
  create: () => Promise<T>,
): Promise<T> {
  return withTransaction(pool, async (c) => {
    await c.query(`SET LOCAL lock_timeout = ${LOCK_WAIT_MS}`);
    try {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`switchyard.cap.${o.table}`]);
    } catch (err) {
      if ((err as { code?: string }).code === '55P03')
        throw new AppError(
          'unavailable',
          `another process is creating ${o.table.slice('automation.'.length)}; try again`,
          {},
          true,
        );
      throw err;
    }
    const { rows } = await c.query<{ n: number }>(COUNT_SQL[o.table]);
    const n = rows[0]?.n ?? 0;
    if (n >= o.max)
      throw new AppError(
        'illegal_state',
        o.table === 'automation.schedules'
          ? `schedules: ${n} can still fire, at most ${o.max} (${o.setting}); delete one first`
          : `${o.table.slice('automation.'.length)}: ${n} exist, at most ${o.max} (${o.setting}); delete one first`,
        { max: o.max, count: n, setting: o.setting },
      );
    return create();
  });
}

import type pg from 'pg';
import { AppError, withTransaction } from '@switchyard/platform';

/** How many webhooks and schedules the automation server keeps at most (AUTOMATION_MAX_*). */
export interface AutomationCaps {
  readonly maxWebhooks: number;
  readonly maxSchedules: number;
}

export const DEFAULT_AUTOMATION_CAPS: AutomationCaps = { maxWebhooks: 200, maxSchedules: 1_000 };

/**
 * Run `create` only while `table` holds fewer than `max` rows: every webhook gets every matching
 * event and every schedule fires on its own, so their number is what one caller could multiply
 * the outgoing requests by. Creations of one kind take turns (a transaction-scoped advisory lock
 * held while `create` records and projects), so concurrent ones cannot pass the count together.
 */
export function underCap<T>(
  pool: pg.Pool,
  o: { readonly table: 'automation.webhooks' | 'automation.schedules'; readonly max: number; readonly setting: string },
  create: () => Promise<T>,
): Promise<T> {
  return withTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`switchyard.cap.${o.table}`]);
    const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${o.table}`);
    const n = rows[0]?.n ?? 0;
    if (n >= o.max)
      throw new AppError(
        'illegal_state',
        `${o.table.slice('automation.'.length)}: ${n} exist, at most ${o.max} (${o.setting}); delete one first`,
        { max: o.max, count: n, setting: o.setting },
      );
    return create();
  });
}

import type pg from 'pg';
import { AppError, cutByBytes, withTransaction } from '@switchyard/platform';

/** How many webhooks and schedules the automation server keeps at most (AUTOMATION_MAX_*). */
export interface AutomationCaps {
  readonly maxWebhooks: number;
  /** Repeating (cron) schedules. */
  readonly maxSchedules: number;
  /** One-shot schedules not fired yet (each fires once: an onboarding's follow-ups are three). */
  readonly maxOneShots: number;
}

export const DEFAULT_AUTOMATION_CAPS: AutomationCaps = { maxWebhooks: 200, maxSchedules: 1_000, maxOneShots: 100_000 };

/** What a cap counts. */
export type CapKind = 'webhooks' | 'schedules' | 'one_shots';

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
  o: { readonly kind: CapKind; readonly max: number; readonly setting: string },
  create: () => Promise<T>,
): Promise<T> {
  const previous = turns.get(o.kind) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => counted(pool, o, create));
  const settled = mine.catch(() => undefined);
  turns.set(o.kind, settled);
  void settled.then(() => {
    if (turns.get(o.kind) === settled) turns.delete(o.kind);
  });
  return mine;
}

/**
 * What counts against each cap: every webhook; every repeating schedule; the one-shots that have
 * not fired yet. A fired one-shot stays as a record (see list_schedules) but sends nothing more.
 * One cap for all schedules, fired one-shots included, was used up by the follow-ups of 333
 * onboardings (three one-shots each), and every later onboarding had none.
 */
const CAPS: Record<CapKind, { readonly count: string; readonly noun: string }> = {
  webhooks: { count: 'SELECT count(*)::int AS n FROM automation.webhooks', noun: 'webhooks' },
  schedules: {
    count: 'SELECT count(*)::int AS n FROM automation.schedules WHERE NOT run_once',
    noun: 'repeating schedules',
  },
  one_shots: {
    // `finished`: the claim that fired it says so (an index of the pending ones answers this).
    count: 'SELECT count(*)::int AS n FROM automation.schedules WHERE run_once AND NOT finished',
    noun: 'one-shot schedules not fired yet',
  },
};

/** How long a creation waits for another process's creation of the same kind. */
const LOCK_WAIT_MS = 10_000;

function counted<T>(
  pool: pg.Pool,
  o: { readonly kind: CapKind; readonly max: number; readonly setting: string },
  create: () => Promise<T>,
): Promise<T> {
  return withTransaction(pool, async (c) => {
    await c.query(`SET LOCAL lock_timeout = ${LOCK_WAIT_MS}`);
    try {
      // The schedule kinds share one lock: a creation's kind is known only from its input, and a
      // cron and a one-shot under one name must not pass the name check together.
      const lock = o.kind === 'webhooks' ? 'automation.webhooks' : 'automation.schedules';
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`switchyard.cap.${lock}`]);
    } catch (err) {
      if ((err as { code?: string }).code === '55P03')
        throw new AppError('unavailable', `another process is creating ${CAPS[o.kind].noun}; try again`, {}, true);
      throw err;
    }
    const { rows } = await c.query<{ n: number }>(CAPS[o.kind].count);
    const n = rows[0]?.n ?? 0;
    if (n >= o.max)
      throw new AppError(
        'illegal_state',
        `${CAPS[o.kind].noun}: ${n} exist, at most ${o.max} (${o.setting}); delete one first`,
        { max: o.max, count: n, setting: o.setting },
      );
    return create();
  });
}

/** Paging of list_webhooks and list_schedules. */
export interface ListingQuery {
  readonly limit?: number | undefined;
  /** The last name of the page before. */
  readonly cursor?: string | undefined;
}
export const DEFAULT_LISTING_LIMIT = 100;
export const MAX_LISTING_LIMIT = 500;
/**
 * Bytes of rows a listing page holds at most (at least one row): a tool result carries its data
 * twice (as text and as structuredContent) and must stay under the 1 MiB it may travel in, and
 * one listing of every webhook or schedule at their bounds was past it, for every caller.
 */
export const LISTING_PAGE_BYTES = 256 * 1024;
/**
 * The next cursor of a listing page read with byteBoundedSql, ordered by name: its last name when
 * the page was cut by its bytes or filled its limit, else null (the end).
 */
export function nextCursor(
  rows: readonly { taken?: string | number | null }[],
  limit: number,
  names: readonly string[],
): string | null {
  const more = cutByBytes(rows) || rows.length === limit;
  return more && names.length > 0 ? names[names.length - 1]! : null;
}

/** Bytes of JSON a schedule's target may take (its payload or its workflow input). */
export const MAX_SCHEDULE_TARGET_BYTES = 64 * 1024;

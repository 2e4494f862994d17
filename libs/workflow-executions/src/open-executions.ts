import type pg from 'pg';
import { z } from 'zod';
import { AppError, parseConfig } from '@switchyard/platform';
import type { EventStore } from '@switchyard/event-store';
import { loadExecution } from './command.js';
import { WORKFLOW_SCHEMA } from './schema.js';

/** The bound's environment variable. */
export const openExecutionsEnvSchema = z.object({
  /**
   * Executions not yet ended that one starter (an API key, a schedule's owner) may hold; a start,
   * fork or retry past it is refused (429) until some end. 0: no bound.
   */
  WORKFLOW_MAX_OPEN_PER_STARTER: z.coerce.number().int().min(0).max(100_000_000).default(10_000),
});
export const openExecutionsConfigFromEnv = (env: Record<string, string | undefined> = process.env) =>
  parseConfig(env, openExecutionsEnvSchema);

/** How long a count read from the database stands (plus the starts admitted since). */
const FRESH_MS = 1_000;
/** Tallies kept before the stale ones are dropped. */
const MAX_TALLIES = 10_000;

interface Tally {
  count: number;
  readAt: number;
  reading?: Promise<number> | undefined;
}

/**
 * The bound on executions not yet ended per starter. Without it, one key could leave any number
 * of executions waiting (for a signal, a timer, a slow tool): each is a row the engine's recovery
 * passes look at and a stream it folds again after a restart, so the pile slows everyone's
 * recovery without end.
 *
 * Counted from the engine's `active_executions` (a row per execution not yet ended, with its
 * starter: `startedBy`, which is the key that started it or the person a trigger or a schedule
 * started it for, and a sub-workflow's parent's starter). A count stands for a second, plus the
 * starts this process admitted since, so a start costs a query once a second per starter, not
 * one each. Starts on other processes within that second, and the engine's lag behind the log,
 * can take a starter a little past the bound; it never refuses below it.
 */
export class OpenExecutionsBound {
  private readonly tallies = new Map<string, Tally>();

  constructor(
    private readonly pool: pg.Pool,
    readonly max: number = openExecutionsConfigFromEnv().WORKFLOW_MAX_OPEN_PER_STARTER,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Refuse (429 `rate_limited`) when `starter` holds `max` executions not yet ended; else count
   * this start. A repeated start of an execution that exists already (`executionId`, from an
   * Idempotency-Key or a trigger) is never refused: it starts nothing new.
   */
  async admit(starter: string | undefined, repeat?: { store: EventStore; executionId: string }): Promise<void> {
    if (this.max <= 0 || starter === undefined || starter === '') return;
    const tally = await this.tally(starter);
    if (tally.count < this.max) {
      tally.count++;
      return;
    }
    if (repeat && (await loadExecution(repeat.store, repeat.executionId)).state.status !== 'not_started') return;
    throw new AppError(
      'rate_limited',
      `${starter} holds ${tally.count} workflow executions not yet ended, the most one starter may ` +
        `(WORKFLOW_MAX_OPEN_PER_STARTER=${this.max}); wait for some to end or cancel them`,
      { limit: 'WORKFLOW_MAX_OPEN_PER_STARTER', max: this.max, open: tally.count, starter },
      true,
    );
  }

  private async tally(starter: string): Promise<Tally> {
    const now = this.now();
    let t = this.tallies.get(starter);
    if (t && now - t.readAt < FRESH_MS) return t;
    if (!t) {
      if (this.tallies.size >= MAX_TALLIES) this.dropStale(now);
      t = { count: 0, readAt: -Infinity };
      this.tallies.set(starter, t);
    }
    // Concurrent starts of one starter share one read.
    t.reading ??= this.count(starter).finally(() => {
      if (t) t.reading = undefined;
    });
    const count = await t.reading;
    if (now - t.readAt >= FRESH_MS) {
      t.count = count;
      t.readAt = now;
    }
    return t;
  }

  private async count(starter: string): Promise<number> {
    const r = await this.pool.query<{ n: number }>(
      `select count(*)::int as n from ${WORKFLOW_SCHEMA}.active_executions where started_by = $1`,
      [starter],
    );
    return r.rows[0]?.n ?? 0;
  }

  private dropStale(now: number): void {
    for (const [k, t] of this.tallies) if (now - t.readAt >= FRESH_MS && !t.reading) this.tallies.delete(k);
  }
}

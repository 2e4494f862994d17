import type pg from 'pg';
import type { Logger } from '@switchyard/platform';

/**
 * How long the automation server keeps what is finished: a one-shot schedule that fired, a
 * trigger the workflow engine took, a scheduled or queued send that was delivered or given up, a
 * webhook delivery's and an e-mail's idempotency record. Each is kept because it answers a repeat
 * (a retried key sends nothing, a retried creation of a one-shot is answered as it is) or a
 * question (list_schedules, get_trigger); a month covers any retry. Without a limit they grow
 * with every onboarding (three one-shots, their mails) for as long as the system runs.
 */
export const DEFAULT_RECORD_RETENTION_DAYS = 30;
/** How often a purge round runs (every automation server runs its own; they take rows apart). */
export const RECORD_PURGE_INTERVAL_MS = 10 * 60_000;
/** Rows one statement deletes, and statements one table gets per round: a round's locks stay short. */
const PURGE_BATCH = 1_000;
const PURGE_BATCHES_PER_ROUND = 20;
/** One-shot schedules one round retires (each is a ScheduleDeleted append). */
const EXPIRED_SCHEDULES_PER_ROUND = 500;

/** What one purge round removed, per kind. */
export interface PurgeCounts {
  readonly schedules: number;
  readonly triggers: number;
  readonly scheduled_deliveries: number;
  readonly deliveries: number;
  readonly mail_sends: number;
}

const NOTHING_PURGED: PurgeCounts = {
  schedules: 0,
  triggers: 0,
  scheduled_deliveries: 0,
  deliveries: 0,
  mail_sends: 0,
};

/**
 * The tables' finished rows older than the cutoff, oldest first (each query has a partial index
 * of its finished rows, by time). A row still in progress (`pending`, `sending`) is never taken.
 */
const FINISHED_BEFORE: Readonly<Record<Exclude<keyof PurgeCounts, 'schedules'>, string>> = {
  triggers: `DELETE FROM automation.triggers WHERE id IN (
      SELECT id FROM automation.triggers WHERE status <> 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2
        FOR UPDATE SKIP LOCKED)`,
  scheduled_deliveries: `DELETE FROM automation.scheduled_deliveries WHERE delivery_id IN (
      SELECT delivery_id FROM automation.scheduled_deliveries WHERE status <> 'pending' AND finished_at < $1
       ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
  deliveries: `DELETE FROM automation.deliveries WHERE delivery_id IN (
      SELECT delivery_id FROM automation.deliveries WHERE status <> 'sending' AND finished_at < $1
       ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
  mail_sends: `DELETE FROM automation.mail_sends WHERE idempotency_key IN (
      SELECT idempotency_key FROM automation.mail_sends WHERE status <> 'sending' AND finished_at < $1
       ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
};

export interface RecordRetentionDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Days a finished record is kept; 0 keeps everything. */
  readonly retentionDays: number;
  /** Fired one-shots whose fire time is before `cutoff` (at most `limit`): their stream and id. */
  readonly expiredOneShots: (
    cutoff: Date,
    limit: number,
  ) => Promise<readonly { id: string; name: string; scope: string | null }[]>;
  /** Retire one (a ScheduleDeleted with reason `expired`); false when it was gone already. */
  readonly expireOneShot: (s: { id: string; name: string; scope: string | null }) => Promise<boolean>;
}

/** Purges what is finished and older than the retention, a bounded amount per round. */
export class RecordRetention {
  private lastRoundAt: number | undefined;
  private round: Promise<PurgeCounts> | undefined;

  constructor(private readonly deps: RecordRetentionDeps) {}

  /**
   * Start a round in the background when the last one began RECORD_PURGE_INTERVAL_MS before
   * `now` (the scheduler calls this each tick); one round at a time.
   */
  maybePurge(now: Date): void {
    if (this.deps.retentionDays <= 0 || this.round) return;
    if (this.lastRoundAt !== undefined && now.getTime() - this.lastRoundAt < RECORD_PURGE_INTERVAL_MS) return;
    this.lastRoundAt = now.getTime();
    this.round = this.purge(now)
      .catch((err: unknown) => {
        this.deps.logger.warn({ err }, 'purging finished automation records failed; the next round tries again');
        return NOTHING_PURGED;
      })
      .finally(() => (this.round = undefined));
  }

  /** Wait for a round in progress (close). */
  async settled(): Promise<void> {
    await this.round;
  }

  /** One round at `now`: everything finished before now minus the retention, up to the round's bounds. */
  async purge(now: Date): Promise<PurgeCounts> {
    if (this.deps.retentionDays <= 0) return NOTHING_PURGED;
    const cutoff = new Date(now.getTime() - this.deps.retentionDays * 86_400_000);
    let schedules = 0;
    for (const s of await this.deps.expiredOneShots(cutoff, EXPIRED_SCHEDULES_PER_ROUND)) {
      if (await this.deps.expireOneShot(s)) schedules++;
    }
    const counts: Record<string, number> = { schedules };
    for (const [table, sql] of Object.entries(FINISHED_BEFORE)) {
      let n = 0;
      for (let i = 0; i < PURGE_BATCHES_PER_ROUND; i++) {
        const r = await this.deps.pool.query(sql, [cutoff, PURGE_BATCH]);
        n += r.rowCount ?? 0;
        if ((r.rowCount ?? 0) < PURGE_BATCH) break;
      }
      counts[table] = n;
    }
    const result = counts as unknown as PurgeCounts;
    if (Object.values(result).some((n) => n > 0))
      this.deps.logger.info({ ...result, cutoff: cutoff.toISOString() }, 'purged finished automation records');
    return result;
  }
}

import type pg from 'pg';
import { createPgClient, endSessionWhenIdle, partitionOf, type Logger } from '@switchyard/platform';
import { WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';

/** First key of the two-key advisory locks that stand for partitions (second key = partition). */
const LOCK_CLASS = 0x5759_4b46; // arbitrary, constant: "WYKF"

export { partitionOf };

export interface PartitionLeaseOptions {
  readonly connectionString: string;
  readonly memberId: string;
  readonly partitions: number;
  readonly logger: Logger;
  /** How often to heartbeat and rebalance (default 500 ms). */
  readonly tickMs?: number;
  /** A member whose heartbeat is older than this is dead (default 3000 ms). */
  readonly memberTtlMs?: number;
  /**
   * PostgreSQL ends the lock connection once it sits unused this long (default the member TTL
   * plus 2 s): a frozen engine's partitions go to the others then, not when it wakes.
   */
  readonly lockIdleMs?: number;
  readonly onAcquire: (partition: number) => void;
  readonly onRelease: (partition: number) => void;
}

/**
 * Partition ownership through session-level advisory locks on one dedicated connection.
 * 1. Each tick the member heartbeats and counts live members; its fair share is ceil(N / live).
 * 2. Below its share it tries to lock free partitions; above it, it unlocks the extras so a newcomer
 *    can take them. A partition seen free for 3 ticks in a row is taken regardless of share (nobody
 *    else wants it, e.g. a dead member's heartbeat has not yet expired).
 * 3. A dead process's locks vanish with its connection (PostgreSQL ends the session), so a crash
 *    hands its partitions over within a tick or two. A process that stops without dying (SIGSTOP,
 *    a paused VM, a stall) keeps its connection open: PostgreSQL ends it after `lockIdleMs`
 *    without a tick (idle_session_timeout), and the locks go with it. If our own lock connection
 *    fails we drop every partition at once (we can no longer prove ownership) and reconnect.
 */
export class PartitionLeases {
  private client: pg.Client | undefined;
  private readonly held = new Set<number>();
  private readonly freeSeen = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  /** Date.now() of the last sweep of long-dead members' rows. */
  private sweptAt = 0;
  private readonly tickMs: number;
  private readonly ttlMs: number;
  private readonly lockIdleMs: number;

  constructor(private readonly o: PartitionLeaseOptions) {
    this.tickMs = o.tickMs ?? 500;
    this.ttlMs = o.memberTtlMs ?? 3_000;
    this.lockIdleMs = o.lockIdleMs ?? this.ttlMs + 2_000;
  }

  owned(): ReadonlySet<number> {
    return this.held;
  }

  async start(): Promise<void> {
    await this.tick();
    const loop = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.ticking = this.tick().finally(loop);
      }, this.tickMs);
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
    for (const p of [...this.held]) this.drop(p);
    const c = this.client;
    this.client = undefined;
    if (c) {
      await c
        .query(`delete from ${WORKFLOW_SCHEMA}.engine_members where member_id = $1`, [this.o.memberId])
        .catch(() => undefined);
      await c.end().catch(() => undefined); // ends the session: every advisory lock is released
    }
  }

  private drop(p: number): void {
    if (this.held.delete(p)) this.o.onRelease(p);
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    const c = createPgClient({ connectionString: this.o.connectionString }, { name: 'workflow-partition-locks' });
    c.on('error', (err) => {
      this.o.logger.warn({ err: err.message }, 'partition lock connection failed: dropping every partition');
      if (this.client === c) this.client = undefined;
      for (const p of [...this.held]) this.drop(p);
    });
    await c.connect();
    const endsWhenIdle = await endSessionWhenIdle(c, this.lockIdleMs).catch(async (err: unknown) => {
      await c.end().catch(() => undefined);
      throw err;
    });
    if (!endsWhenIdle)
      this.o.logger.warn(
        {},
        'this PostgreSQL cannot end idle sessions (idle_session_timeout, 14 and later): a frozen engine keeps its partitions until it wakes',
      );
    this.client = c;
    return c;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const c = await this.connection();
      await c.query(
        `insert into ${WORKFLOW_SCHEMA}.engine_members (member_id, heartbeat_at) values ($1, now())
         on conflict (member_id) do update set heartbeat_at = now()`,
        [this.o.memberId],
      );
      // Rows of members long dead only clutter the table: swept once a minute, not every tick.
      if (Date.now() - this.sweptAt > 60_000) {
        await c.query(`delete from ${WORKFLOW_SCHEMA}.engine_members where heartbeat_at < now() - interval '1 hour'`);
        this.sweptAt = Date.now();
      }
      const live = await c.query<{ n: string }>(
        `select count(*) as n from ${WORKFLOW_SCHEMA}.engine_members where heartbeat_at > now() - make_interval(secs => $1)`,
        [this.ttlMs / 1000],
      );
      const members = Math.max(1, Number(live.rows[0]?.n ?? 1));
      const share = Math.ceil(this.o.partitions / members);
      // Over the share: let go of the highest-numbered extras.
      while (this.held.size > share) {
        const p = Math.max(...this.held);
        await c.query('select pg_advisory_unlock($1, $2)', [LOCK_CLASS, p]);
        this.drop(p);
        this.freeSeen.set(p, -10); // do not grab it back at once
      }
      // Under the share (or partitions nobody takes): try the free ones, starting at a random offset.
      const start = Math.floor(Math.random() * this.o.partitions);
      for (let i = 0; i < this.o.partitions && !this.stopped; i++) {
        const p = (start + i) % this.o.partitions;
        if (this.held.has(p)) continue;
        const seen = this.freeSeen.get(p) ?? 0;
        if (this.held.size >= share && seen < 3) {
          // Only look whether it is free (the lock is taken and given back at once).
          const r = await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [LOCK_CLASS, p]);
          if (r.rows[0]?.ok) {
            await c.query('select pg_advisory_unlock($1, $2)', [LOCK_CLASS, p]);
            this.freeSeen.set(p, seen + 1);
          } else this.freeSeen.set(p, 0);
          continue;
        }
        const r = await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [LOCK_CLASS, p]);
        if (r.rows[0]?.ok) {
          this.held.add(p);
          this.freeSeen.delete(p);
          this.o.onAcquire(p);
        } else this.freeSeen.set(p, 0);
      }
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'partition lease tick failed');
    }
  }
}

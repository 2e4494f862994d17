import { hostname } from 'node:os';
import type pg from 'pg';
import type { EventStore, Fence } from '@switchyard/event-store';
import { backoffMs, newId, partitionOf, withTransaction, type Logger } from '@switchyard/platform';

/** The dispatcher partition of a task: FNV-1a of its id, the same function as the workflow engine's. */
export const taskPartition = (taskId: string, partitions: number): number => partitionOf(taskId, partitions);

/** Name of the event-store fence guarding appends for one partition of one delegation schema. */
export const partitionFenceName = (schema: string, partition: number): string => `${schema}.dispatcher.p${partition}`;

/** DDL of the lease, member and assignment tables (part of the delegation schema's setup). */
export const dispatcherLeaseTablesSql = (schema: string): string => `
  create table if not exists ${schema}.dispatcher_leases (
    partition int primary key,
    owner text,
    epoch bigint not null default 0,
    expires_at timestamptz not null default '-infinity');
  create table if not exists ${schema}.dispatcher_members (
    member_id text primary key,
    heartbeat_at timestamptz not null);
  create table if not exists ${schema}.assignments (
    task_id text primary key,
    assignment int not null,
    agent text not null,
    instance text not null,
    partition int not null,
    epoch bigint not null,
    dispatcher text not null,
    assigned_at timestamptz not null default now());
  create index if not exists assignments_agent on ${schema}.assignments (agent, instance);
  -- One attempt's slot in one statement (one round trip, one commit), the per-agent lock held
  -- only while the function runs: the agent's and the instance's running attempts of every
  -- dispatcher are counted against their limits, and only under the caller's current lease
  -- epoch (the lease row read FOR SHARE: a takeover waits for this commit, or this sees its epoch).
  -- Its commit does not wait for the WAL flush, so the agent's lock is not held through one: the
  -- attempt starts only after its TaskAssigned append, a durable commit written to the WAL after
  -- this one, and a flush covers everything before it; a reservation lost in a crash had no
  -- attempt behind it. (Releases stay durable: a lost one would hold a slot until a takeover.)
  create or replace function ${schema}.reserve_slot(p_task text, p_assignment int, p_agent text, p_instance text,
    p_partition int, p_epoch bigint, p_member text, p_agent_limit bigint, p_instance_limit bigint)
  returns text language plpgsql volatile as $fn$
  declare
    v_epoch bigint;
    v_owner text;
    v_agent bigint;
    v_inst bigint;
    v_n int;
  begin
    perform set_config('synchronous_commit', 'off', true);
    perform pg_advisory_xact_lock(hashtext('${schema}.slots.' || p_agent));
    select l.epoch, l.owner into v_epoch, v_owner from ${schema}.dispatcher_leases l where l.partition = p_partition for share;
    if v_epoch is distinct from p_epoch or v_owner is distinct from p_member then return 'fenced'; end if;
    select count(*), count(*) filter (where a.instance = p_instance) into v_agent, v_inst
      from ${schema}.assignments a where a.agent = p_agent and a.task_id <> p_task;
    if v_agent >= p_agent_limit then return 'agent_full'; end if;
    if v_inst >= p_instance_limit then return 'instance_full'; end if;
    insert into ${schema}.assignments as a (task_id, assignment, agent, instance, partition, epoch, dispatcher)
      values (p_task, p_assignment, p_agent, p_instance, p_partition, p_epoch, p_member)
      on conflict (task_id) do update set assignment = excluded.assignment, agent = excluded.agent, instance = excluded.instance,
        epoch = excluded.epoch, dispatcher = excluded.dispatcher, assigned_at = now()
      where a.assignment < excluded.assignment or a.epoch < excluded.epoch;
    get diagnostics v_n = row_count;
    return case when v_n = 1 then 'ok' else 'instance_full' end;
  end
  $fn$;`;

export interface DispatcherLeaseOptions {
  readonly pool: pg.Pool;
  readonly store: EventStore;
  readonly schema: string;
  readonly partitions: number;
  readonly logger: Logger;
  readonly memberId?: string;
  /** How often to renew, heartbeat and rebalance. Default 1000 ms. */
  readonly tickMs?: number;
  /** A lease (and a member's heartbeat) not renewed for this long is expired. Default 5000 ms. */
  readonly ttlMs?: number;
  /**
   * Called with the partitions just taken (fences raised, stale assignment rows gone). Calls run
   * one after another; start() awaits the first, later ticks do not wait (a long recovery must
   * not hold up the renewals).
   */
  readonly onAcquire: (taken: readonly { partition: number; epoch: number }[]) => Promise<void>;
  /** A partition given back on purpose (rebalance, stop): finish what runs there; resolves when the lease may go. */
  readonly onDrain: (partition: number) => Promise<void>;
  /** A partition lost without notice (renewal found another owner, or could not renew in time): stop acting on it at once. */
  readonly onLost: (partition: number) => void;
}

/**
 * Partition leases for dispatchers, rows in `<schema>.dispatcher_leases` with an expiry:
 * 1. Each tick the member heartbeats, renews every lease it holds (`owner = me`), and counts live
 *    members; its fair share is ceil(partitions / live).
 * 2. Under its share it takes free or expired leases, each with `epoch = epoch + 1` in the same
 *    statement, deletes the partition's assignment rows of older epochs in that transaction, then
 *    raises the partition's event-store fence to the new epoch before anything acts on it.
 *    A partition free for 3 ticks is taken regardless of share.
 * 3. Above its share it drains the extras (runs there finish, bounded) and gives them back.
 * 4. A lease that renewal no longer finds ours, or that could not be renewed for 80 % of the TTL
 *    (database unreachable), is dropped at once: the member stops acting on it before the lease
 *    can expire and be taken over. Its writes are fenced anyway (`epoch`).
 * A dead member's leases expire after `ttlMs` and are taken over by the others.
 */
export class DispatcherLeases {
  readonly memberId: string;
  private readonly held = new Map<number, number>();
  private readonly draining = new Set<number>();
  private readonly freeSeen = new Map<number, number>();
  private readonly tickMs: number;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private readonly t: string;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private lastRenewed = 0;
  /** Date.now() of the last sweep of long-dead members' rows. */
  private sweptAt = 0;
  private stopped = false;
  private seeded = false;
  private acquisitions: Promise<void> = Promise.resolve();

  constructor(private readonly o: DispatcherLeaseOptions) {
    this.memberId = o.memberId ?? `${hostname()}-${process.pid}-${newId().slice(0, 8)}`;
    this.tickMs = o.tickMs ?? 1_000;
    this.ttlMs = o.ttlMs ?? 5_000;
    this.t = `${o.schema}.dispatcher_leases`;
    this.log = o.logger.child({ component: 'dispatcher-leases', member: this.memberId });
  }

  get partitions(): number {
    return this.o.partitions;
  }

  /** Partitions held (also those being given back) with their epochs. */
  owned(): ReadonlyMap<number, number> {
    return this.held;
  }

  /** The fence of a partition held now (also while it drains), or undefined. */
  fence(partition: number): Fence | undefined {
    const epoch = this.held.get(partition);
    return epoch === undefined ? undefined : { name: partitionFenceName(this.o.schema, partition), epoch };
  }

  /** Held and not being given back: new tasks of the partition may be placed. */
  accepting(partition: number): boolean {
    return this.held.has(partition) && !this.draining.has(partition);
  }

  async start(): Promise<void> {
    await this.tick();
    await this.acquisitions;
    const loop = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.ticking = this.tick().finally(loop);
      }, this.tickMs);
      this.timer.unref();
    };
    loop();
  }

  /** Drain every partition, give the leases back and leave the member table. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
    await this.acquisitions;
    await Promise.all([...this.held.keys()].map((p) => this.giveBack(p)));
    await this.o.pool
      .query(`delete from ${this.o.schema}.dispatcher_members where member_id = $1`, [this.memberId])
      .catch(() => undefined);
  }

  /** The partition's fence refused a write: someone else holds it now. */
  dropLost(partition: number): void {
    if (!this.held.delete(partition)) return;
    this.draining.delete(partition);
    this.log.warn({ partition }, 'dispatcher partition lost');
    this.o.onLost(partition);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const pool = this.o.pool;
    const s = this.o.schema;
    try {
      if (!this.seeded) {
        await pool.query(
          `insert into ${this.t} (partition) select generate_series(0, $1::int - 1) on conflict do nothing`,
          [this.o.partitions],
        );
        this.seeded = true;
      }
      // 1. Heartbeat and renew.
      await pool.query(
        `insert into ${s}.dispatcher_members (member_id, heartbeat_at) values ($1, now())
         on conflict (member_id) do update set heartbeat_at = now()`,
        [this.memberId],
      );
      const renewed = await pool.query<{ partition: number; epoch: string }>(
        `update ${this.t} set expires_at = now() + make_interval(secs => $2) where owner = $1 returning partition, epoch`,
        [this.memberId, this.ttlMs / 1000],
      );
      this.lastRenewed = Date.now();
      const mine = new Map(renewed.rows.map((r) => [r.partition, Number(r.epoch)]));
      for (const [p, epoch] of [...this.held]) if (mine.get(p) !== epoch) this.dropLost(p);
      // Rows still in our name that we do not act on (a previous life of this member id, or
      // leases dropped while the database was unreachable): free them, to be taken over properly
      // (epoch + 1, fence, recovery) by whoever takes them next, this member included.
      for (const [p, epoch] of mine) {
        if (this.held.has(p)) continue;
        await pool.query(
          `update ${this.t} set owner = null, expires_at = now() where partition = $1 and owner = $2 and epoch = $3`,
          [p, this.memberId, epoch],
        );
      }
      // Rows of members long dead only clutter the table: swept once a minute, not every tick.
      if (Date.now() - this.sweptAt > 60_000) {
        await pool.query(`delete from ${s}.dispatcher_members where heartbeat_at < now() - interval '1 hour'`);
        this.sweptAt = Date.now();
      }
      const live = await pool.query<{ n: string }>(
        `select count(*) as n from ${s}.dispatcher_members where heartbeat_at > now() - make_interval(secs => $1)`,
        [this.ttlMs / 1000],
      );
      const share = Math.ceil(this.o.partitions / Math.max(1, Number(live.rows[0]?.n ?? 1)));
      // 2. Over the share: give back the highest-numbered extras (drained in the background).
      const keep = [...this.held.keys()].filter((p) => !this.draining.has(p)).sort((a, b) => a - b);
      for (const p of keep.slice(share)) void this.giveBack(p);
      // 3. Free or expired leases: take up to the share, or any seen free for 3 ticks.
      const free = await pool.query<{ partition: number }>(
        `select partition from ${this.t} where owner is null or expires_at < now() order by random()`,
      );
      const freeNow = new Set(free.rows.map((r) => r.partition));
      for (const p of [...this.freeSeen.keys()]) if (!freeNow.has(p)) this.freeSeen.delete(p);
      const taken: { partition: number; epoch: number }[] = [];
      for (const { partition: p } of free.rows) {
        if (this.stopped) break;
        const seen = (this.freeSeen.get(p) ?? 0) + 1;
        this.freeSeen.set(p, seen);
        if (this.held.size + taken.length >= share && seen < 3) continue;
        const epoch = await this.take(p);
        if (epoch !== undefined) taken.push({ partition: p, epoch });
      }
      if (taken.length > 0) {
        for (const { partition, epoch } of taken) {
          this.held.set(partition, epoch);
          this.freeSeen.delete(partition);
        }
        this.log.info(
          { partitions: taken.map((t) => t.partition), held: this.held.size, share },
          'dispatcher partitions taken',
        );
        this.recoverTaken(taken, 1);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dispatcher lease tick failed');
      // 4. Could not renew for most of the TTL: the leases may expire any moment; stop acting on them.
      if (this.held.size > 0 && Date.now() - this.lastRenewed > this.ttlMs * 0.8) {
        for (const p of [...this.held.keys()]) this.dropLost(p);
      }
    }
  }

  /**
   * Hand taken partitions to onAcquire, one batch after another. A failed recovery (the database
   * restarting) is retried while the lease is still held with that epoch: otherwise the tasks
   * already in the partition would have no one driving them until the lease moved.
   */
  private recoverTaken(taken: readonly { partition: number; epoch: number }[], attempt: number): void {
    this.acquisitions = this.acquisitions
      .then(() => this.o.onAcquire(taken))
      .catch((err: unknown) => {
        const still = taken.filter((t) => this.held.get(t.partition) === t.epoch);
        const retryInMs = backoffMs(attempt);
        this.log.error(
          {
            err,
            partitions: taken.map((t) => t.partition),
            attempt,
            retryInMs: still.length > 0 ? retryInMs : undefined,
          },
          'recovering taken partitions failed',
        );
        if (still.length > 0 && !this.stopped)
          setTimeout(() => {
            const held = still.filter((t) => this.held.get(t.partition) === t.epoch);
            if (held.length > 0 && !this.stopped) this.recoverTaken(held, attempt + 1);
          }, retryInMs).unref();
      });
  }

  /** Take one free or expired lease (epoch + 1), clear its stale assignment rows, raise its fence. */
  private async take(p: number): Promise<number | undefined> {
    const s = this.o.schema;
    const epoch = await withTransaction(this.o.pool, async (c) => {
      const r = await c.query<{ epoch: string }>(
        `update ${this.t} set owner = $2, epoch = epoch + 1, expires_at = now() + make_interval(secs => $3)
          where partition = $1 and (owner is null or expires_at < now()) returning epoch`,
        [p, this.memberId, this.ttlMs / 1000],
      );
      if (r.rowCount !== 1) return undefined;
      const e = Number(r.rows[0]!.epoch);
      // Capacity held by attempts of earlier owners: those attempts are abandoned by the recovery.
      await c.query(`delete from ${s}.assignments where partition = $1 and epoch < $2`, [p, e]);
      return e;
    });
    if (epoch === undefined) return undefined;
    try {
      await this.o.store.raiseFence?.(partitionFenceName(s, p), epoch);
    } catch (err) {
      // Not acting on a partition whose fence is not ours: give the lease straight back.
      this.log.warn(
        { err: (err as Error).message, partition: p },
        'raising the partition fence failed; lease given back',
      );
      await this.o.pool
        .query(
          `update ${this.t} set owner = null, expires_at = now() where partition = $1 and owner = $2 and epoch = $3`,
          [p, this.memberId, epoch],
        )
        .catch(() => undefined);
      return undefined;
    }
    return epoch;
  }

  private async giveBack(p: number): Promise<void> {
    const epoch = this.held.get(p);
    if (epoch === undefined || this.draining.has(p)) return;
    this.draining.add(p);
    try {
      await this.o.onDrain(p);
    } catch (err) {
      this.log.warn({ err, partition: p }, 'draining a dispatcher partition failed');
    }
    if (this.held.get(p) !== epoch) return; // lost meanwhile
    this.held.delete(p);
    this.draining.delete(p);
    // Expired at once: the next member's tick takes it (with epoch + 1).
    await this.o.pool
      .query(
        `update ${this.t} set owner = null, expires_at = now() where partition = $1 and owner = $2 and epoch = $3`,
        [p, this.memberId, epoch],
      )
      .catch((err) =>
        this.log.warn({ err: (err as Error).message, partition: p }, 'giving a lease back failed; it expires'),
      );
    this.log.info({ partition: p }, 'dispatcher partition given back');
  }
}

import pg from 'pg';
import {
  AppError,
  backoffMs,
  createPgPool,
  guardPgPool,
  isConnectionError,
  isSchemaManaged,
  rerunOnDeadlock,
  withTransaction,
  type Logger,
} from '@switchyard/platform';
import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import type { BatchStatement, BatchText, Projection, ProjectionStatus } from './projection.js';

/** The SQLSTATE advance_checkpoint raises when the checkpoint is not where the batch starts. */
const CHECKPOINT_MOVED = 'SY001';
/** The first trim after start: soon, but not among the start's own work. */
const HOUSEKEEPING_FIRST_MS = 10_000;

export interface ProjectionRunnerOptions {
  readonly store: EventStore;
  /** The read-model database (always PostgreSQL, whatever the event store is). */
  readonly db: { connectionString: string } | { pool: pg.Pool };
  readonly projections: readonly Projection[];
  readonly logger?: Logger;
  /** Most events applied in one transaction while catching up (default 200). */
  readonly batchSize?: number;
  /** Schema of the checkpoints table (default `read_models`). */
  readonly schema?: string;
  /**
   * How long a small batch waits for more events before it is applied (default 5 ms). Live
   * events come one append at a time; without the wait every append costs each projection a
   * transaction of its own, competing with the appends themselves for the same cores.
   */
  readonly gatherMs?: number;
  /** The first run of the projections' housekeeping after start (default 10 s). */
  readonly housekeepingFirstMs?: number;
  /** How often a read model that never deletes its rows is checked for having been emptied (default 60 s; see Projection.isEmpty). */
  readonly emptiedCheckMs?: number;
}

/** One projection's loop: a subscription feeding a buffer, drained in batched transactions. */
interface Lane {
  readonly projection: Projection;
  position: number;
  /** Position persisted in the checkpoints table (lags `position` only over skipped events). */
  stored: number;
  running: boolean;
  lastError?: string;
  sub?: AllSubscription;
  done?: Promise<void>;
  stopRequested: boolean;
  /** Rebuilt because found emptied, and not seen holding rows since: not rebuilt again for that. */
  healed?: boolean;
}

/** How often a read model that never deletes its rows is checked for having been emptied (see Projection.isEmpty). */
const EMPTIED_CHECK_MS = 60_000;

/**
 * Runs projections from checkpointed catch-up subscriptions to $all.
 * 1. Each projection's checkpoint lives in `<schema>.checkpoints` in the read-model database.
 * 2. A batch of events is applied in ONE transaction that first moves the checkpoint with a
 *    compare-and-set (`where position = <what we started from>`): a crash rolls back effect
 *    and checkpoint together (exactly-once effect), and a second runner of the same
 *    projection cannot apply the same events twice (it loses the compare-and-set and resyncs).
 * 3. The subscription is filtered to what the projection handles, where the store reads; the
 *    store's progress reports move the checkpoint past the rest (persisted about once a second).
 * 4. Batches are whatever has arrived, up to `batchSize`: large while catching up, single
 *    events when live.
 * 5. A failing batch is retried with backoff (the projection stalls rather than skipping).
 */
export class ProjectionRunner {
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly schema: string;
  private readonly batchSize: number;
  private readonly gatherMs: number;
  private readonly log: Logger | undefined;
  private readonly lanes = new Map<string, Lane>();
  private readonly waiters = new Set<() => void>();
  private started = false;
  private readonly housekeepingTimers = new Set<NodeJS.Timeout>();
  /** Trims run one after another; stop() waits for the one in flight. */
  private housekeepingRuns: Promise<void> = Promise.resolve();

  constructor(private readonly options: ProjectionRunnerOptions) {
    this.schema = options.schema ?? 'read_models';
    if (!/^[a-z_][a-z0-9_]{0,40}$/.test(this.schema))
      throw new AppError('validation', `bad schema name ${this.schema}`);
    this.batchSize = options.batchSize ?? 200;
    this.gatherMs = options.gatherMs ?? 5;
    this.log = options.logger?.child({ component: 'projection-runner' });
    if ('pool' in options.db) {
      this.pool = guardPgPool(options.db.pool, { name: 'read-models' });
      this.ownsPool = false;
    } else {
      this.pool = createPgPool(
        { connectionString: options.db.connectionString, max: 4 },
        { name: 'read-models', ...(this.log ? { logger: this.log } : {}) },
      );
      this.ownsPool = true;
    }
    for (const p of options.projections) {
      if (this.lanes.has(p.name)) throw new AppError('validation', `two projections are named ${p.name}`);
      this.lanes.set(p.name, { projection: p, position: -1, stored: -1, running: false, stopRequested: false });
    }
  }

  /**
   * Create the checkpoints table and every projection's tables, then start all projections.
   * On a pool marked schema-managed (a component role without DDL rights) the tables are the
   * owner's, made by migrate() before: only the checkpoint rows are added.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const ddl = !isSchemaManaged(this.pool);
    // Idempotent: a deadlock with another process's first writes (a setup's reset of a read
    // model meets the monitor's probe updates) runs it again instead of failing the start.
    await rerunOnDeadlock(() =>
      withTransaction(this.pool, async (c) => {
        // Several runners may boot at once: serialise the DDL.
        await c.query('select pg_advisory_xact_lock(hashtext($1))', [`${this.schema}.setup`]);
        if (ddl) await this.createCheckpoints(c);
        // Checkpoint rows before any projection DDL: a runner in another process may be applying a
        // batch (checkpoint row locked, then the projection's tables). Waiting for its row while
        // holding no table lock lets it finish; the DDL first (`create index if not exists` locks
        // the table even when the index exists) would deadlock with it.
        for (const lane of this.lanes.values()) {
          await c.query(
            `insert into ${this.schema}.checkpoints (name, position) values ($1, -1) on conflict (name) do nothing`,
            [lane.projection.name],
          );
        }
        if (ddl) for (const lane of this.lanes.values()) await lane.projection.setup(c);
      }),
    );
    for (const lane of this.lanes.values()) await this.startLane(lane);
    for (const lane of this.lanes.values())
      this.scheduleHousekeeping(lane.projection, this.options.housekeepingFirstMs ?? HOUSEKEEPING_FIRST_MS);
    for (const lane of this.lanes.values()) this.scheduleEmptiedCheck(lane);
  }

  /**
   * A read model that never deletes its rows (Projection.isEmpty) found empty while its checkpoint
   * says it applied events it handles: its rows went outside the projection; rebuilt from the log.
   * Once per emptying: a rebuild that leaves it empty is not repeated until it has held rows again.
   */
  private scheduleEmptiedCheck(lane: Lane): void {
    const { projection } = lane;
    const isEmpty = projection.isEmpty?.bind(projection);
    if (!isEmpty) return;
    // At start, then every minute.
    this.repeat(
      0,
      this.options.emptiedCheckMs ?? EMPTIED_CHECK_MS,
      async () => {
        if (lane.stored < 0) return;
        if (!(await isEmpty(this.pool))) {
          lane.healed = false;
          return;
        }
        if (lane.healed) return;
        const applied = await this.options.store.readAll({
          types: projection.handles,
          ...(projection.streamPrefixes ? { streamPrefixes: projection.streamPrefixes } : {}),
          maxCount: 1,
          until: lane.stored,
        });
        if (applied.length === 0) return;
        lane.healed = true;
        this.log?.error(
          { projection: projection.name, checkpoint: lane.stored, firstApplied: applied[0]!.position },
          'read model found empty although its checkpoint says it applied events: its rows were removed outside the projection; rebuilding it from the log',
        );
        await this.rebuild(projection.name);
      },
      (err) => this.log?.warn({ err, projection: projection.name }, 'checking a read model for lost rows failed'),
    );
  }

  /**
   * The projection's trim, every `everyMs` and once soon after start; a failure is logged and
   * the next round tries again (the rows wait, nothing depends on them going).
   */
  private scheduleHousekeeping(projection: Projection, delayMs: number): void {
    const hk = projection.housekeeping;
    if (!hk) return;
    this.repeat(
      delayMs,
      hk.everyMs,
      async () => {
        const removed = await hk.run(this.pool);
        if (removed > 0) this.log?.debug({ projection: projection.name, removed }, 'read-model rows trimmed');
      },
      (err) =>
        this.log?.warn({ err, projection: projection.name }, 'trimming a read model failed; next round tries again'),
    );
  }

  /**
   * Run `job` after `delayMs`, then every `everyMs` while the runner runs, one job at a time across
   * the runner (they share `housekeepingRuns`, which stop() waits for); a round's failure goes to
   * `onError` and the next round runs as planned.
   */
  private repeat(delayMs: number, everyMs: number, job: () => Promise<void>, onError: (err: unknown) => void): void {
    if (!this.started) return;
    const timer = setTimeout(() => {
      this.housekeepingTimers.delete(timer);
      this.housekeepingRuns = this.housekeepingRuns
        .then(() => (this.started ? job() : undefined))
        .catch(onError)
        .finally(() => this.repeat(everyMs, everyMs, job, onError));
    }, delayMs);
    timer.unref();
    this.housekeepingTimers.add(timer);
  }

  /** Only the DDL of start() (checkpoints table, every projection's setup), for an owner role migrating ahead of the components. */
  async migrate(): Promise<void> {
    await rerunOnDeadlock(() =>
      withTransaction(this.pool, async (c) => {
        await c.query('select pg_advisory_xact_lock(hashtext($1))', [`${this.schema}.setup`]);
        await this.createCheckpoints(c);
        for (const lane of this.lanes.values()) await lane.projection.setup(c);
      }),
    );
  }

  private async createCheckpoints(c: pg.PoolClient): Promise<void> {
    await c.query(`create schema if not exists ${this.schema}`);
    await c.query(
      `create table if not exists ${this.schema}.checkpoints (
         name text primary key, position bigint not null, updated_at timestamptz not null default now())`,
    );
    // The checkpoint's compare-and-set as a statement that fails when the checkpoint moved, so a
    // pipelined batch (commitPipelined) rolls back without waiting for its answer.
    await c.query(
      `create or replace function ${this.schema}.advance_checkpoint(p_name text, p_from bigint, p_to bigint)
       returns void language plpgsql volatile as $fn$
       begin
         update ${this.schema}.checkpoints set position = p_to, updated_at = now() where name = p_name and position = p_from;
         if not found then
           raise exception 'checkpoint % is not at %', p_name, p_from using errcode = '${CHECKPOINT_MOVED}';
         end if;
       end
       $fn$`,
    );
  }

  /** Stop every projection (the batch in flight commits or rolls back), then release connections. */
  async stop(): Promise<void> {
    this.started = false;
    for (const t of this.housekeepingTimers) clearTimeout(t);
    this.housekeepingTimers.clear();
    await Promise.all([...this.lanes.values()].map((l) => this.stopLane(l)));
    await this.housekeepingRuns;
    if (this.ownsPool) await this.pool.end();
  }

  /** Empty a projection's tables and replay it from the start of $all. */
  async rebuild(name: string): Promise<void> {
    const lane = this.lane(name);
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(lane.projection)
    const reset = lane.projection.reset;
    if (!reset) throw new AppError('illegal_state', `projection ${name} has no reset(): it cannot be rebuilt`);
    await this.stopLane(lane);
    await withTransaction(this.pool, async (c) => {
      // Lock the checkpoint row: a concurrent batch of another runner waits, then loses its compare-and-set.
      await c.query(`select 1 from ${this.schema}.checkpoints where name = $1 for update`, [name]);
      await reset.call(lane.projection, c);
      await c.query(`update ${this.schema}.checkpoints set position = -1, updated_at = now() where name = $1`, [name]);
    });
    this.log?.info({ projection: name }, 'projection reset; replaying from the start');
    if (this.started) await this.startLane(lane);
  }

  async status(): Promise<ProjectionStatus[]> {
    const head = await this.options.store.headPosition();
    return [...this.lanes.values()].map((l) => ({
      name: l.projection.name,
      position: l.position,
      head,
      lag: Math.max(0, head - l.position),
      running: l.running,
      ...(l.lastError ? { lastError: l.lastError } : {}),
    }));
  }

  /** Resolve once every projection (or the named one) has processed `position` (default: the current head). */
  async waitFor(position?: number, name?: string, timeoutMs = 30_000): Promise<void> {
    const target = position ?? (await this.options.store.headPosition());
    const lanes = name ? [this.lane(name)] : [...this.lanes.values()];
    const reached = () => lanes.every((l) => l.position >= target);
    if (reached()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new AppError('timeout', `projections did not reach position ${target} in ${timeoutMs} ms`));
      }, timeoutMs);
      const check = () => {
        if (!reached()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  /**
   * Resolve once every projection has processed `position` (default: the head now), however long
   * a catch-up over a large log takes while it moves: rejects only when no projection advanced
   * for `stallMs`. A start that waited a fixed 30 s failed (and took the launcher down) on a log
   * of three million events its read models had to replay. Logs the progress every `stallMs`.
   */
  async catchUp(position?: number, stallMs = 30_000): Promise<void> {
    const target = position ?? (await this.options.store.headPosition());
    const moved = () => [...this.lanes.values()].reduce((sum, l) => sum + Math.max(0, l.position), 0);
    let last = moved();
    for (;;) {
      try {
        await this.waitFor(target, undefined, stallMs);
        return;
      } catch (err) {
        if (!(err instanceof AppError && err.code === 'timeout')) throw err;
        const now = moved();
        const at = Object.fromEntries([...this.lanes.values()].map((l) => [l.projection.name, l.position]));
        if (now <= last)
          throw new AppError('timeout', `projections made no progress toward position ${target} in ${stallMs} ms`, {
            target,
            at,
          });
        this.log?.info({ target, at }, 'projections catching up with the log');
        last = now;
      }
    }
  }

  private lane(name: string): Lane {
    const lane = this.lanes.get(name);
    if (!lane) throw new AppError('not_found', `no projection named ${name}`);
    return lane;
  }

  private async startLane(lane: Lane): Promise<void> {
    const res = await this.pool.query<{ position: string }>(
      `select position from ${this.schema}.checkpoints where name = $1`,
      [lane.projection.name],
    );
    lane.position = lane.stored = Number(res.rows[0]?.position ?? -1);
    lane.stopRequested = false;
    lane.running = true;
    lane.done = this.runLane(lane)
      .catch((err) => {
        // Not expected (the loop handles its failures); recorded rather than crashing the process.
        lane.lastError = err instanceof Error ? err.message : String(err);
        this.log?.error({ err, projection: lane.projection.name }, 'projection loop ended by an error');
      })
      .finally(() => {
        lane.running = false;
      });
  }

  private async stopLane(lane: Lane): Promise<void> {
    lane.stopRequested = true;
    await lane.sub?.close();
    await lane.done;
    lane.done = undefined;
  }

  /** Subscribe from the checkpoint and apply batches until stopped; resubscribe after a lost compare-and-set. */
  private async runLane(lane: Lane): Promise<void> {
    const { projection } = lane;
    const types = new Set(projection.handles);
    const prefixes = projection.streamPrefixes ?? [];
    const handled = (e: RecordedEvent) =>
      types.has(e.type) && (prefixes.length === 0 || prefixes.some((p) => e.streamId.startsWith(p)));
    const log = this.log?.child({ projection: projection.name });
    while (!lane.stopRequested) {
      const buffer: RecordedEvent[] = [];
      /** Every event up to here has been considered by the store: the handled ones are in `buffer` or applied. */
      let scanned = lane.stored;
      let wake: (() => void) | undefined;
      // Filtered where the store reads (task, MCP and other events never reach this process);
      // the store's progress still moves the checkpoint past them, so lag is exact and
      // `waitFor(head)` resolves even when the newest event is not for us.
      let sub: AllSubscription;
      try {
        sub = this.options.store.subscribeToAll({
          from: lane.stored,
          types: projection.handles,
          ...(prefixes.length > 0 && { streamPrefixes: prefixes }),
          onProgress: (position) => {
            scanned = position;
            if (buffer.length === 0) wake?.();
          },
        });
      } catch (err) {
        lane.lastError = err instanceof Error ? err.message : String(err);
        log?.error({ err }, 'cannot subscribe; retrying');
        await new Promise((r) => setTimeout(r, 1_000));
        continue;
      }
      lane.sub = sub;
      lane.position = lane.stored;
      this.notifyWaiters();
      let bufferSince = 0;
      let ended = false;
      let space: (() => void) | undefined;
      // The pump reads ahead into a bounded buffer, so a batch is whatever has arrived.
      const pump = (async () => {
        try {
          for await (const e of sub) {
            if (buffer.push(e) === 1) bufferSince = performance.now();
            if (buffer.length === 1 || buffer.length >= this.batchSize) wake?.();
            if (buffer.length >= this.batchSize * 4) await new Promise<void>((r) => (space = r));
          }
        } catch (err) {
          log?.warn({ err }, 'subscription failed; resubscribing from the checkpoint');
        } finally {
          ended = true;
          wake?.();
        }
      })();
      let resync = false;
      let failures = 0;
      let lastFlush = performance.now();
      while (!resync) {
        if (buffer.length === 0) {
          if (scanned > lane.position) {
            lane.position = scanned;
            this.notifyWaiters();
          }
          // Skipped events move the checkpoint only in memory; persist it about once a second and when stopping.
          if (ended) {
            if (lane.stored < lane.position) await this.commitBatch(lane, [], handled).catch(() => undefined);
            break;
          }
          if (lane.stored < lane.position && performance.now() - lastFlush >= 1_000) {
            resync = !(await this.commitBatch(lane, [], handled).catch(() => true));
            lastFlush = performance.now();
            continue;
          }
          const idleFlush = lane.stored < lane.position;
          await new Promise<void>((r) => {
            wake = r;
            if (idleFlush) setTimeout(r, Math.max(0, 1_000 - (performance.now() - lastFlush)));
          });
          wake = undefined;
          continue;
        }
        const wait = this.gatherMs - (performance.now() - bufferSince);
        if (wait > 0 && buffer.length < this.batchSize && !ended && !lane.stopRequested) {
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, wait);
          });
          wake = undefined;
        }
        const batch = buffer.splice(0, this.batchSize);
        // With nothing left behind it, the batch also covers the skipped events up to `scanned`.
        const to = Math.max(batch[batch.length - 1]!.position, buffer.length === 0 ? scanned : -1);
        if (buffer.length > 0) bufferSince = performance.now();
        space?.();
        space = undefined;
        const relevant = batch.some(handled);
        if (!relevant && performance.now() - lastFlush < 1_000 && !lane.stopRequested) {
          lane.position = to;
          this.notifyWaiters();
          continue;
        }
        for (;;) {
          try {
            const ok = await this.commitBatch(lane, batch, handled, to);
            lastFlush = performance.now();
            failures = 0;
            lane.lastError = undefined;
            if (!ok) resync = true;
            break;
          } catch (err) {
            failures++;
            lane.lastError = err instanceof Error ? err.message : String(err);
            const delay = backoffMs(failures, { maxMs: 10_000 });
            log?.error({ err, position: batch[0]!.position, delay }, 'projection batch failed; retrying');
            if (lane.stopRequested) break;
            await new Promise((r) => setTimeout(r, delay));
            if (lane.stopRequested) break;
          }
        }
        if (lane.stopRequested && buffer.length === 0) break;
        if (lane.stopRequested) {
          // Stopping: what is not committed is simply read again at the next start.
          break;
        }
      }
      await sub.close();
      space?.();
      await pump;
      if (resync) {
        // Routine when several processes run the same projection (two engines, or a standby dispatcher).
        log?.debug({ position: lane.stored }, 'checkpoint moved under us (another runner or a rebuild); resyncing');
        try {
          const res = await this.pool.query<{ position: string }>(
            `select position from ${this.schema}.checkpoints where name = $1`,
            [projection.name],
          );
          lane.stored = Number(res.rows[0]?.position ?? -1);
        } catch (err) {
          // Resubscribing from the old checkpoint is safe: the compare-and-set sends us back here.
          lane.lastError = err instanceof Error ? err.message : String(err);
          await new Promise((r) => setTimeout(r, 1_000));
        }
      } else if (!lane.stopRequested) {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /**
   * Apply `batch` and move the checkpoint in one transaction. Returns false (and changes
   * nothing) when the stored checkpoint is no longer where this lane left it.
   */
  private async commitBatch(
    lane: Lane,
    batch: readonly RecordedEvent[],
    handled: (e: RecordedEvent) => boolean,
    to = batch.length > 0 ? batch[batch.length - 1]!.position : lane.position,
  ): Promise<boolean> {
    // A read model is derived: its batches need not wait for their own WAL flush (see
    // Projection.durableCommit), which on a busy disk queues behind, and delays, event appends.
    const durable = lane.projection.durableCommit ?? lane.projection.afterCommit !== undefined;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(lane.projection)
    const batchStatement = lane.projection.batchStatement;
    const ok = batchStatement
      ? await this.commitPipelined(lane, to, durable, () => {
          const events = batch.filter(handled);
          return events.length > 0 ? batchStatement.call(lane.projection, events) : undefined;
        })
      : await this.commitOnClient(lane, batch, handled, to, durable);
    if (ok) {
      lane.stored = to;
      lane.position = to;
      // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(lane.projection)
      const afterCommit = lane.projection.afterCommit;
      if (afterCommit) {
        const applied = batch.filter(handled);
        if (applied.length > 0) {
          try {
            afterCommit.call(lane.projection, applied);
          } catch (err) {
            this.log?.warn({ err, projection: lane.projection.name }, 'afterCommit failed');
          }
        }
      }
      this.notifyWaiters();
    }
    return ok;
  }

  /**
   * The transaction's start with the checkpoint's move, in one simple-protocol query (the values
   * are literals: the name escaped, the positions integers).
   */
  private startBatch(c: pg.PoolClient, lane: Lane, to: number, durable: boolean, raise: boolean): string {
    const name = c.escapeLiteral(lane.projection.name);
    const from = Math.trunc(lane.stored);
    return (
      `${durable ? 'begin' : 'begin; set local synchronous_commit = off'}; ` +
      (raise
        ? `select ${this.schema}.advance_checkpoint(${name}, ${from}, ${Math.trunc(to)})`
        : `update ${this.schema}.checkpoints set position = ${Math.trunc(to)}, updated_at = now() where name = ${name} and position = ${from}`)
    );
  }

  /**
   * A batch on one pooled client: as one query when the projection gives the batch as SQL text
   * (commitInOne), else in turns (commitInTurns).
   */
  private async commitOnClient(
    lane: Lane,
    batch: readonly RecordedEvent[],
    handled: (e: RecordedEvent) => boolean,
    to: number,
    durable: boolean,
  ): Promise<boolean> {
    const c = await this.pool.connect();
    const used: { broken?: Error } = {};
    try {
      const events = batch.filter(handled);
      const body =
        lane.projection.batchText && events.length > 0
          ? await lane.projection.batchText.call(lane.projection, c, events)
          : undefined;
      // No text for a batch with events (one the projection applies otherwise): in turns.
      if (lane.projection.batchText && (body || events.length === 0))
        return await this.commitInOne(c, lane, body, to, durable, used);
      return await this.commitInTurns(c, lane, events, to, durable);
    } finally {
      c.release(used.broken);
    }
  }

  /**
   * A batch in two to three round trips: the start with the checkpoint's compare-and-set (one
   * query), the projection's statements (`events`: those it handles), the commit.
   */
  private async commitInTurns(
    c: pg.PoolClient,
    lane: Lane,
    events: readonly RecordedEvent[],
    to: number,
    durable: boolean,
  ): Promise<boolean> {
    let ok = false;
    try {
      const results = (await c.query(this.startBatch(c, lane, to, durable, false))) as unknown as
        pg.QueryResult | pg.QueryResult[];
      const moved = Array.isArray(results) ? results[results.length - 1] : results;
      if (moved?.rowCount === 1) {
        if (lane.projection.applyBatch) {
          if (events.length > 0) await lane.projection.applyBatch(c, events);
        } else for (const e of events) await lane.projection.apply(c, e);
        ok = true;
      }
      // A compare-and-set that found nothing leaves nothing to keep.
      await c.query(ok ? 'commit' : 'rollback');
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw err;
    }
    return ok;
  }

  /**
   * A batch in one round trip, for a projection that gives it as SQL text (`body`; none for a
   * batch that only moves the checkpoint): the start with the checkpoint's move, the text and the
   * commit in one simple-protocol query. A statement that fails (a moved checkpoint raises in
   * advance_checkpoint) makes PostgreSQL skip the rest of the query, the commit with it, and the
   * transaction is rolled back here; a lost connection is marked in `used` for the pool to drop.
   */
  private async commitInOne(
    c: pg.PoolClient,
    lane: Lane,
    body: BatchText | undefined,
    to: number,
    durable: boolean,
    used: { broken?: Error },
  ): Promise<boolean> {
    try {
      await c.query(`${this.startBatch(c, lane, to, durable, true)};\n${body?.text ? `${body.text};\n` : ''}commit`);
    } catch (err) {
      body?.settled(false);
      if (isConnectionError(err)) {
        used.broken = err as Error;
        throw err;
      }
      await c.query('rollback').catch(() => undefined);
      if ((err as { code?: unknown }).code === CHECKPOINT_MOVED) return false;
      throw err;
    }
    body?.settled(true);
    return true;
  }

  /**
   * A batch in one round trip, for a projection that gives it as one statement: the start with
   * the checkpoint's move, the statement and the commit are written together (pg's pipeline
   * mode, on this client for this batch only). Each waits for nothing from the others: a
   * checkpoint that moved raises (advance_checkpoint), which aborts the transaction, so the
   * statement fails and the commit rolls back.
   */
  private async commitPipelined(
    lane: Lane,
    to: number,
    durable: boolean,
    statement: () => BatchStatement | undefined,
  ): Promise<boolean> {
    const stmt = statement();
    const c = await this.pool.connect();
    const pipelined = c as pg.PoolClient & { pipeline: boolean };
    let broken: Error | undefined;
    pipelined.pipeline = true;
    try {
      const [moved, applied, committed] = await Promise.allSettled([
        c.query(this.startBatch(c, lane, to, durable, true)),
        stmt ? c.query(stmt.text, [...stmt.values]) : Promise.resolve(undefined),
        c.query('commit'),
      ]);
      if (moved.status === 'rejected') {
        if ((moved.reason as { code?: unknown }).code === CHECKPOINT_MOVED) return false;
        throw moved.reason;
      }
      if (applied.status === 'rejected') throw applied.reason;
      if (committed.status === 'rejected') throw committed.reason;
      return true;
    } catch (err) {
      // A lost connection leaves the client unusable: the pool drops it instead of reusing it.
      if (isConnectionError(err)) broken = err as Error;
      throw err;
    } finally {
      pipelined.pipeline = false;
      c.release(broken);
    }
  }

  private notifyWaiters(): void {
    for (const w of [...this.waiters]) w();
  }
}

/**
 * Reset every given projection (its tables emptied, its checkpoint set back to the start) and
 * replay the log into them to its head; their status after. Beside running runners of the same
 * projections (they lose their checkpoint's compare-and-set and follow). Fails when the replay goes
 * `stallMs` (default 60 s) without moving.
 */
export async function rebuildProjections(o: {
  readonly store: EventStore;
  readonly pool: pg.Pool;
  readonly projections: readonly Projection[];
  readonly schema?: string;
  readonly logger?: Logger;
  readonly stallMs?: number;
}): Promise<ProjectionStatus[]> {
  const runner = new ProjectionRunner({
    store: o.store,
    db: { pool: o.pool },
    projections: o.projections,
    ...(o.schema ? { schema: o.schema } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
  });
  await runner.start();
  try {
    for (const p of o.projections) await runner.rebuild(p.name);
    await runner.catchUp(undefined, o.stallMs ?? 60_000);
    return await runner.status();
  } finally {
    await runner.stop();
  }
}

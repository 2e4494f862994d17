import type { Pool } from 'pg';
import { z } from 'zod';
import { AppError, type Logger } from '@switchyard/platform';
import { textInt } from './query-int.js';

/** The request header naming the event-store position a query must see (a command's answer carries it as `position`). */
export const MIN_POSITION_HEADER = 'x-switchyard-min-position';
/** The answer header saying which database answered a query: `replica` or `primary`. */
export const READ_SOURCE_HEADER = 'x-switchyard-read-source';
/** The answer header `true` on a query given a position that the read model it read had not applied within the wait. */
export const READ_STALE_HEADER = 'x-switchyard-read-stale';
/** With READ_STALE_HEADER: the position that read model had applied (its checkpoint), when it has one. */
export const READ_CHECKPOINT_HEADER = 'x-switchyard-read-checkpoint';

/** A read model's checkpoint row (`<schema>.checkpoints`, by projection name): how far it applied the event log. */
export interface CheckpointRef {
  readonly schema: string;
  readonly name: string;
}

export interface ReadRoutingOptions {
  /** How long a query given a position waits for the replica to have replayed it before it reads the primary. Default READ_REPLICA_WAIT_MS, else 2 000 ms. */
  readonly waitMs?: number;
  /** How often the replica's checkpoint is read while waiting. Default 25 ms. */
  readonly pollMs?: number;
  /** How long a query given a position waits for the primary's read model to have applied it (after the replica's wait, if any). Default 2 000 ms. */
  readonly primaryWaitMs?: number;
  /**
   * The event log's head (the store's `headPosition`): a position past it was never answered by a
   * command (a typo, or a log restored to an earlier point), so a query given it answers at once,
   * stale, instead of waiting for a position no read model will reach. Without it every position waits.
   */
  readonly head?: () => Promise<number>;
}

/** Where a query reads, and whether that read model had applied the position the query was given. */
export interface ReadSource {
  readonly pool: Pool;
  readonly source: 'replica' | 'primary';
  /** Set when the read model read had not applied the position within the wait: its checkpoint then (undefined: none known). */
  readonly stale?: { readonly checkpoint: number | undefined };
}

const PRIMARY_WAIT_MS = 2_000;

const positionSchema = textInt({ min: -1, max: Number.MAX_SAFE_INTEGER });
const envSchema = z.object({ READ_REPLICA_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(2_000) });

/** A position from the header or the `min_position` query parameter (the query parameter wins); 400 naming it when malformed. */
export function minPositionOf(header: string | string[] | undefined, query?: number): number | undefined {
  if (query !== undefined) return query;
  if (header === undefined || header === '') return undefined;
  const parsed = positionSchema.safeParse(Array.isArray(header) ? header[0] : header);
  if (!parsed.success) {
    throw new AppError('validation', `${MIN_POSITION_HEADER} must be an event-store position (an integer)`, {
      errors: [{ path: MIN_POSITION_HEADER, message: 'an integer position', in: 'header' }],
    });
  }
  return parsed.data;
}

/** The `min_position` query parameter, for a route's query schema. */
export const minPositionQuery = { min_position: positionSchema.optional() };

/**
 * Where a query reads: a streaming replica (DATABASE_READ_URL) when there is one and it has
 * replayed what the caller must see, else the primary.
 * - A query without a position: the replica (it may lag by the replication delay), else the primary, at once.
 * - A query with a position (`X-Switchyard-Min-Position`, or `min_position`): the replica once
 *   the read model's checkpoint there is at that position or later (read every `pollMs` by one
 *   reader shared by every caller waiting on that read model, at most `waitMs`); past the wait,
 *   with the replica unreachable, or without a replica, the primary once ITS read model has
 *   applied the position (at most `primaryWaitMs`): the primary's read models are projections that
 *   lag its event log too, so reading them at once would not show the caller its write. Past that
 *   wait the primary is read as it is and the answer says it is stale (`stale`).
 * The checkpoint and the read model rows move in one transaction on the primary, and the replica
 * replays that transaction whole, so a checkpoint seen there means the rows are there too.
 */
export class ReadRouting {
  readonly waitMs: number;
  readonly primaryWaitMs: number;
  /** Waits for the primary's read models (read-your-writes without a replica). */
  readonly primaryCheckpoints: CheckpointWaits;
  private readonly replicaCheckpoints: CheckpointWaits | undefined;
  private readonly head: (() => Promise<number>) | undefined;
  /** The highest head read so far: positions only rise, so one at or below it was issued. */
  private knownHead = -1;

  constructor(
    readonly primary: Pool,
    readonly replica: Pool | undefined,
    logger: Logger,
    o: ReadRoutingOptions = {},
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const parsed = envSchema.safeParse({ READ_REPLICA_WAIT_MS: env.READ_REPLICA_WAIT_MS || undefined });
    if (!parsed.success)
      throw new Error(`READ_REPLICA_WAIT_MS: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    this.waitMs = o.waitMs ?? parsed.data.READ_REPLICA_WAIT_MS;
    this.primaryWaitMs = o.primaryWaitMs ?? PRIMARY_WAIT_MS;
    this.primaryCheckpoints = new CheckpointWaits(primary, logger, 'primary', 20);
    this.replicaCheckpoints = replica && new CheckpointWaits(replica, logger, 'replica', o.pollMs ?? 25);
    this.head = o.head;
  }

  /**
   * Whether the event log has reached `position` (true without a head to ask, or when the head
   * cannot be read: the caller then waits as before). Reads the head only for a position above
   * the highest one seen.
   */
  async issued(position: number): Promise<boolean> {
    if (position <= this.knownHead || !this.head) return true;
    try {
      this.knownHead = Math.max(this.knownHead, await this.head());
    } catch {
      return true;
    }
    return position <= this.knownHead;
  }

  /** The pool to read `ref`'s read model from, for a caller that must see `minPosition` (see the class). */
  async poolFor(ref: CheckpointRef, minPosition?: number): Promise<ReadSource> {
    if (minPosition === undefined)
      return this.replica ? { pool: this.replica, source: 'replica' } : { pool: this.primary, source: 'primary' };
    // A position the log never reached: nothing to wait for; the page as it is, said to be stale.
    if (!(await this.issued(minPosition)))
      return {
        pool: this.primary,
        source: 'primary',
        stale: { checkpoint: await this.primaryCheckpoints.current(ref).catch(() => undefined) },
      };
    const replica = await this.replicaFor(ref, minPosition);
    if (replica) return { pool: replica, source: 'replica' };
    const primary = await this.primaryCheckpoints.applied(ref, minPosition, this.primaryWaitMs);
    return primary.reached
      ? { pool: this.primary, source: 'primary' }
      : { pool: this.primary, source: 'primary', stale: { checkpoint: primary.checkpoint } };
  }

  /** The replica once its read model `ref` has applied `minPosition` (at most `waitMs`); undefined without a replica or past the wait. */
  async replicaFor(ref: CheckpointRef, minPosition: number, waitMs = this.waitMs): Promise<Pool | undefined> {
    if (!this.replica || !this.replicaCheckpoints) return undefined;
    return (await this.replicaCheckpoints.reaches(ref, minPosition, waitMs)) ? this.replica : undefined;
  }
}

/**
 * Waits for a read model's checkpoint in one database to reach a position. Every caller waiting
 * on the same read model shares ONE reader of the checkpoint (a read every `pollMs` while anyone
 * waits): a read per waiter per `pollMs` would put N times 40 or 50 queries a second on the pool
 * under N waiting requests, they would queue before the reads they wait for, and on the primary
 * they would slow the very projection they wait for.
 */
export class CheckpointWaits {
  /** Per read model (`schema.name`): the callers waiting, and what the reader last saw. */
  private readonly watches = new Map<string, CheckpointWatch>();

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    private readonly label: 'primary' | 'replica',
    private readonly pollMs: number,
  ) {}

  /** The read model's checkpoint (undefined: no row). */
  private async checkpoint(ref: CheckpointRef): Promise<number | undefined> {
    const r = await this.pool.query<{ position: string }>(
      `select position from ${ref.schema}.checkpoints where name = $1`,
      [ref.name],
    );
    return r.rows[0] ? Number(r.rows[0].position) : undefined;
  }

  /** The read model's checkpoint now (undefined: no row). */
  current(ref: CheckpointRef): Promise<number | undefined> {
    return this.checkpoint(ref);
  }

  /** Whether the checkpoint of `ref` reaches `minPosition` within `waitMs` (false too when the database does not answer). */
  async reaches(ref: CheckpointRef, minPosition: number, waitMs: number): Promise<boolean> {
    return (await this.applied(ref, minPosition, waitMs)).reached;
  }

  /**
   * Whether the checkpoint of `ref` reaches `minPosition` within `waitMs` (false too when the
   * database does not answer), and the checkpoint last read (undefined: no row, or not read).
   */
  applied(
    ref: CheckpointRef,
    minPosition: number,
    waitMs: number,
  ): Promise<{ reached: boolean; checkpoint: number | undefined }> {
    const key = `${ref.schema}.${ref.name}`;
    let watch = this.watches.get(key);
    if (!watch) this.watches.set(key, (watch = { ref, waiters: new Set(), reading: false }));
    const w = watch;
    // A checkpoint read less than pollMs ago that is far enough answers at once.
    if (w.at !== undefined && w.at >= minPosition && Date.now() - w.readAt! < this.pollMs)
      return Promise.resolve({ reached: true, checkpoint: w.at });
    return new Promise((resolve) => {
      const waiter: CheckpointWaiter = {
        minPosition,
        done: (reached, checkpoint) => {
          clearTimeout(timer);
          w.waiters.delete(waiter);
          resolve({ reached, checkpoint });
        },
      };
      const timer = setTimeout(() => {
        this.logger.debug(
          { checkpoint: ref.name, database: this.label, minPosition, at: w.at, waitedMs: waitMs },
          'the read model has not applied the position in time',
        );
        waiter.done(false, w.at);
      }, waitMs);
      w.waiters.add(waiter);
      if (!w.reading) void this.readWhileWaited(w);
    });
  }

  /** The one reader of a read model's checkpoint: reads now, then every pollMs while anyone waits. */
  private async readWhileWaited(w: CheckpointWatch): Promise<void> {
    w.reading = true;
    try {
      while (w.waiters.size > 0) {
        let at: number | undefined;
        try {
          at = await this.checkpoint(w.ref);
        } catch (err) {
          this.logger.warn(
            { err: (err as Error).message, database: this.label },
            'reading a read model checkpoint failed; the waiting queries go on without it',
          );
          for (const waiter of [...w.waiters]) waiter.done(false, undefined);
          return;
        }
        w.at = at;
        w.readAt = Date.now();
        if (at !== undefined) for (const waiter of [...w.waiters]) if (at >= waiter.minPosition) waiter.done(true, at);
        if (w.waiters.size === 0) return;
        await new Promise((r) => setTimeout(r, this.pollMs));
      }
    } finally {
      w.reading = false;
    }
  }
}

interface CheckpointWaiter {
  readonly minPosition: number;
  readonly done: (reached: boolean, checkpoint: number | undefined) => void;
}

/** Callers waiting for one read model's checkpoint, and what its reader last saw. */
interface CheckpointWatch {
  readonly ref: CheckpointRef;
  readonly waiters: Set<CheckpointWaiter>;
  reading: boolean;
  at?: number | undefined;
  readAt?: number;
}

import type pg from 'pg';
import type { RecordedEvent } from '@switchyard/event-store';

/**
 * A read model kept up to date from the global log. `apply` runs inside the runner's
 * transaction, which also moves the checkpoint: its writes take effect exactly once.
 * It must use only the client it is given (no other connection, no side effects outside
 * the database), otherwise a crash between its effect and the commit would repeat it.
 */
export interface Projection {
  /** Unique, stable: the checkpoint is stored under it. */
  readonly name: string;
  /** Event types it applies; other events only move the checkpoint. */
  readonly handles: readonly string[];
  /** Optionally only events of streams with these id prefixes. */
  readonly streamPrefixes?: readonly string[];
  /** Create its tables; idempotent (runs at every start). */
  setup(client: pg.PoolClient): Promise<void>;
  apply(client: pg.PoolClient, event: RecordedEvent): Promise<void>;
  /**
   * Optional: apply a whole batch (the events it handles, in order) at once, e.g. in one round
   * trip; used instead of `apply` when present. Same rules as `apply`.
   */
  applyBatch?(client: pg.PoolClient, events: readonly RecordedEvent[]): Promise<void>;
  /**
   * Optional: the whole batch (the events it handles, in order) as one statement, or undefined
   * when the batch changes nothing. The runner then writes the transaction's start with the
   * checkpoint's move, this statement and the commit together: one round trip for the batch
   * instead of three. Used instead of `applyBatch` when present; the same rows as `apply`.
   * The move is the `advance_checkpoint` function that the runner's own migration creates: a
   * runner whose checkpoints table another migration makes needs that function there too.
   */
  batchStatement?(events: readonly RecordedEvent[]): BatchStatement | undefined;
  /**
   * Optional: the batch as SQL text without parameters (several statements, simple protocol),
   * built for `client`, or undefined to have this batch applied by `applyBatch`. The runner then
   * sends the transaction's start with the checkpoint's move, this text and the commit as one
   * query: one round trip for the batch instead of three (the same `advance_checkpoint` as for
   * `batchStatement`). `settled` is told whether it committed. Same rows as `apply`.
   */
  batchText?(client: pg.PoolClient, events: readonly RecordedEvent[]): Promise<BatchText | undefined>;
  /**
   * Told, after a batch committed, which events of it `apply` applied: for effects outside
   * the database that must follow the stored state, such as in-memory counters. Never called
   * for a batch that rolled back; what it throws is logged, not retried.
   */
  afterCommit?(applied: readonly RecordedEvent[]): void;
  /**
   * Wait for the WAL flush of every batch's commit (default: only when `afterCommit` is set).
   * Without it a batch commits asynchronously: visible at once, and a crash of PostgreSQL
   * itself can drop the last few hundred ms of batches, effect and checkpoint together, which
   * are then applied again from the durable events. Set it for a read model whose loss, even
   * briefly, is visible outside (an `afterCommit` effect already told someone).
   */
  readonly durableCommit?: boolean;
  /** Empty its tables for a rebuild; without it `rebuild()` refuses. */
  reset?(client: pg.PoolClient): Promise<void>;
  /**
   * Optional: trimming of rows no reader asks for any more, run by the runner every `everyMs`
   * (also once soon after start) outside any batch, so a projection's hot statement stays as it
   * is. It must be idempotent and leave every answer its readers give unchanged; several
   * runners of one projection may run it at once.
   */
  readonly housekeeping?: Housekeeping;
  /**
   * Optional, for a read model that never deletes its rows: whether it holds none. Found empty
   * while its checkpoint says it applied events it handles, its rows were removed outside the
   * projection (a `truncate` by hand, a partial restore), and it would go on serving the loss as
   * truth from where its checkpoint is: the runner rebuilds it from the log (at start and every
   * minute).
   */
  isEmpty?(pool: pg.Pool): Promise<boolean>;
}

/** A projection's periodic trim (see Projection.housekeeping). */
export interface Housekeeping {
  readonly everyMs: number;
  /** Rows removed. */
  run(pool: pg.Pool): Promise<number>;
}

/** A batch as SQL text (see Projection.batchText). */
export interface BatchText {
  readonly text: string;
  settled(committed: boolean): void;
}

/** One SQL statement with its parameters. */
export interface BatchStatement {
  readonly text: string;
  readonly values: readonly unknown[];
}

/**
 * A projection's batches as one statement each: `batchStatement` for the runner, and
 * `applyBatch` running the same statement for whoever applies a batch on a client of its own.
 */
export function oneStatementBatches(
  build: (events: readonly RecordedEvent[]) => BatchStatement | undefined,
): Required<Pick<Projection, 'batchStatement' | 'applyBatch'>> {
  return {
    batchStatement: build,
    async applyBatch(c, events) {
      const statement = build(events);
      if (statement) await c.query(statement.text, [...statement.values]);
    },
  };
}

export interface ProjectionStatus {
  readonly name: string;
  /** Last global position processed (-1: nothing yet). */
  readonly position: number;
  /** Head of the event store when asked. */
  readonly head: number;
  /** head - position, never below 0. */
  readonly lag: number;
  readonly running: boolean;
  /** The last failure, while it keeps failing (cleared by the next successful batch). */
  readonly lastError?: string;
}

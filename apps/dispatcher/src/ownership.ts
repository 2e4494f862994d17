import type pg from 'pg';
import type { Fence } from '@switchyard/event-store';
import { AppError, isPassingDatabaseFailure, type Logger } from '@switchyard/platform';
import { deleteSlotRows, reserveSlotRow } from './placement.js';
import { taskPartition } from './leases.js';
import { untilRecorded } from './task-state.js';
import type { AgentInstance } from './instances.js';

/**
 * Which tasks this dispatcher drives: those whose partition it holds a lease on (see
 * DispatcherLeases). Without one (a Dispatcher made directly) it drives every task, unfenced.
 */
export interface TaskOwnership {
  readonly partitions: number;
  readonly memberId: string;
  /** The fence of a held partition (also while it drains), else undefined. */
  fence(partition: number): Fence | undefined;
  /** Held and not draining: new work of the partition may start here. */
  accepting(partition: number): boolean;
  /** A write was fenced: the partition is someone else's now. */
  dropLost(partition: number): void;
}

export interface OwnershipOptions {
  readonly pool: pg.Pool;
  /** Schema of the delegation read models (and of the slot table). */
  readonly schema: string;
  readonly logger: Logger;
  readonly ownership?: TaskOwnership;
  /** Appends of owned tasks carry their partition's fence (the store supports fences). */
  readonly fencing: boolean;
  readonly agentConcurrency?: Readonly<Record<string, number>>;
  readonly stopped: () => boolean;
}

/**
 * The partitions this dispatcher holds, seen per task (owns, accepting, fenceOf), and the shared
 * agent slots of its attempts (reserveSlot, releaseSlot). Without an ownership every task is ours.
 */
export class Ownership {
  /** Slot releases waiting for the one in flight (see releaseSlot). */
  private readonly releases: { readonly taskId: string; readonly assignment: number; readonly done: () => void }[] = [];
  private releasing: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: OwnershipOptions) {
    this.log = opts.logger;
  }

  /** Work by partitions (leases), not as the only dispatcher. */
  get partitioned(): boolean {
    return this.opts.ownership !== undefined;
  }

  partitionOf(taskId: string): number {
    return this.opts.ownership ? taskPartition(taskId, this.opts.ownership.partitions) : 0;
  }

  /** This dispatcher drives the task (holds its partition, maybe draining). */
  owns(taskId: string): boolean {
    const o = this.opts.ownership;
    return !o || o.fence(taskPartition(taskId, o.partitions)) !== undefined;
  }

  /** New work of the task may start here (its partition is held and not being given back). */
  accepting(taskId: string): boolean {
    const o = this.opts.ownership;
    return !o || o.accepting(taskPartition(taskId, o.partitions));
  }

  fenceOf(taskId: string): Fence | undefined {
    const o = this.opts.ownership;
    if (!o || !this.opts.fencing) return undefined;
    const f = o.fence(taskPartition(taskId, o.partitions));
    if (!f)
      throw new AppError(
        'unavailable',
        `task ${taskId} is in a partition this dispatcher no longer holds`,
        { task_id: taskId },
        true,
      );
    return f;
  }

  /** A write of the task was fenced: its partition is someone else's now. */
  dropLost(taskId: string): void {
    this.opts.ownership?.dropLost(this.partitionOf(taskId));
  }

  /**
   * Shared capacity: reserve the instance's slot for an attempt in `<schema>.assignments`, under
   * a per-agent transaction lock, counting every dispatcher's running attempts of the agent and
   * the instance against their limits, and only while this dispatcher's lease epoch of the task's
   * partition is current (the lease row is read FOR SHARE, so a takeover waits for the commit
   * or the reservation sees the new epoch). The row is the attempt's fenced assignment record.
   */
  async reserveSlot(
    taskId: string,
    inst: AgentInstance,
    assignment: number,
  ): Promise<'ok' | 'agent_full' | 'instance_full' | 'fenced'> {
    const o = this.opts.ownership;
    if (!o) return 'ok';
    const p = taskPartition(taskId, o.partitions);
    const fence = o.fence(p);
    if (!fence) return 'fenced';
    return reserveSlotRow(
      this.opts.pool,
      this.opts.schema,
      { taskId, assignment, partition: p, epoch: fence.epoch, memberId: o.memberId },
      inst,
      this.opts.agentConcurrency,
    ).catch((err) => {
      this.log.warn({ err, taskId }, 'reserving an agent slot failed');
      return 'fenced' as const;
    });
  }

  /**
   * Give an attempt's slot back (a conditional delete: only our own row of that attempt).
   * Releases group: while one delete is in flight the next ones wait and go together in one
   * statement, so concurrent tasks ending cost one round trip and one commit between them.
   */
  releaseSlot(taskId: string, assignment: number): Promise<void> {
    if (!this.opts.ownership) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.releases.push({ taskId, assignment, done: resolve });
      this.flushReleases();
    });
  }

  /** Resolves when no release is in flight (stop(): slots go back before the pool may close). */
  async releasesDone(): Promise<void> {
    while (this.releasing) await this.releasing;
  }

  private flushReleases(): void {
    if (this.releasing || this.releases.length === 0 || !this.opts.ownership) return;
    const memberId = this.opts.ownership.memberId;
    const batch = this.releases.splice(0, 500);
    const del = (rows: readonly { taskId: string; assignment: number }[]) =>
      // Retried through a database outage: a slot row left behind would hold one of the agent's slots for good.
      untilRecorded(rows[0]!.taskId, 'releasing agent slots', this.log, this.opts.stopped, () =>
        deleteSlotRows(this.opts.pool, this.opts.schema, rows, memberId),
      );
    this.releasing = (async () => {
      try {
        await del(batch);
      } catch (err) {
        // A SQL error (say a deadlock with a takeover's delete) rolled the whole batch back: one by one, so one row cannot keep the others.
        if (batch.length === 1 || isPassingDatabaseFailure(err))
          this.log.warn(
            { err, tasks: batch.length },
            'releasing agent slots failed; the next owner of the partition clears them',
          );
        else
          for (const r of batch)
            await del([r]).catch((e) =>
              this.log.warn(
                { err: e, taskId: r.taskId },
                'releasing an agent slot failed; the next owner of the partition clears it',
              ),
            );
      } finally {
        for (const r of batch) r.done();
        this.releasing = undefined;
        this.flushReleases();
      }
    })();
  }
}

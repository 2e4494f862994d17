import { isAppError, logAtMostEvery, type Logger } from '@switchyard/platform';
import type { TimerAction } from '@switchyard/domain';
import { runWorkflowCommand } from '@switchyard/workflow-executions';
import type { PendingTimeout, WorkflowEngineOptions } from './engine-types.js';
import { partitionOf } from './partitions.js';
import type { StateCache } from './state-cache.js';
import { unitIn, type EngineRuntime } from './engine-runtime.js';
import {
  armTimerRows,
  claimDueTimers,
  deleteFiredTimers,
  makeTimersDueNow,
  TIMEOUT_DEFER_MS,
  TIMEOUT_WRITE_AHEAD_MS,
  timerKey,
  writeTimerRows,
} from './timers.js';

/**
 * The engine's timers: arming rows for an execution, the step timeouts kept in memory until they
 * are worth a row (`flushTimeouts`), and the poller that fires due rows of ready partitions.
 */
export class TimerRunner {
  private readonly o: WorkflowEngineOptions;
  private readonly log: Logger;
  // Both run every few hundred ms: a database down or out of disk would log several traces a second.
  private readonly pollFailureLog = logAtMostEvery(60_000);
  private readonly flushFailureLog = logAtMostEvery(60_000);
  private readonly cache: StateCache;
  /** Step timeouts by execution and timer key, written in batches by `flushTimeouts` (most never are: the step ends first). */
  private readonly pendingTimeouts = new Map<string, Map<string, PendingTimeout>>();
  private timerPolling = false;

  constructor(private readonly rt: EngineRuntime) {
    this.o = rt.o;
    this.log = rt.log;
    this.cache = rt.cache;
  }

  /** Keep a step timeout in memory: `flushTimeouts` writes it if its unit is still dispatched by then. */
  defer(executionId: string, partition: number, t: TimerAction, now: number): void {
    const m = this.pendingTimeouts.get(executionId) ?? new Map<string, PendingTimeout>();
    m.set(timerKey(t), { partition, timer: t, since: now });
    this.pendingTimeouts.set(executionId, m);
  }

  /** The execution ended: none of its deferred timeouts is needed. */
  forget(executionId: string): void {
    this.pendingTimeouts.delete(executionId);
  }

  /** The partition's new owner re-arms its timers from the events (recovery). */
  release(p: number): void {
    for (const id of this.pendingTimeouts.keys())
      if (partitionOf(id, this.rt.partitions) === p) this.pendingTimeouts.delete(id);
  }

  async armTimers(executionId: string, partition: number, timers: readonly TimerAction[]): Promise<void> {
    await armTimerRows(this.o.pool, executionId, partition, timers);
    const c = this.cache.get(executionId);
    if (c) c.timersInTable = true;
  }

  /**
   * Fire due timers. Rows are claimed by a lease, not by a lock held while their commands run: one
   * statement moves the due rows' `due_at` TIMER_LEASE_MS ahead (FOR UPDATE SKIP LOCKED, so two
   * engines never claim the same row) and commits; then each command goes through the decider;
   * then the rows are deleted, unless re-armed meanwhile (`due_at` no longer the lease). A crash in
   * between leaves the row: it fires again when the lease runs out (recovery re-arms it sooner), and
   * the decider ignores a repeat. Holding the row locks across the commands instead let an engine
   * deadlock under load: recovery's re-arming upserts of those rows waited on the lock while holding
   * every pool connection the commands needed.
   */
  async pollTimers(): Promise<void> {
    if (this.timerPolling || this.rt.stopped || this.rt.ready.size === 0) return;
    this.timerPolling = true;
    const parts = [...this.rt.ready];
    try {
      for (let more = true; more && !this.rt.stopped;) {
        const due = { rows: await claimDueTimers(this.o.pool, parts, 100) };
        const fired: { execution_id: string; timer_key: string; lease: Date }[] = [];
        const again: { execution_id: string; timer_key: string; lease: Date }[] = [];
        await Promise.all(
          due.rows.map(async (row) => {
            try {
              await runWorkflowCommand(this.o.store, row.execution_id, row.command);
              fired.push(row);
              this.rt.counts.timersFired++;
            } catch (err) {
              if (isAppError(err) && !err.retryable) fired.push(row);
              else again.push(row);
              this.log.warn({ err, executionId: row.execution_id, timer: row.timer_key }, 'timer command failed');
            }
          }),
        );
        if (fired.length > 0) await deleteFiredTimers(this.o.pool, fired);
        // A command that may work later: due again now rather than after the lease.
        if (again.length > 0) await makeTimersDueNow(this.o.pool, again);
        more = due.rows.length === 100;
      }
    } catch (err) {
      this.pollFailureLog((held) => this.log.warn({ err, heldBack: held }, 'timer poll failed'));
    } finally {
      this.timerPolling = false;
    }
  }

  /**
   * Write the step timeouts that are still needed: those whose unit is still dispatched (with
   * that attempt) after TIMEOUT_DEFER_MS, or all of them (`all`, on stop). A step that ends
   * sooner never costs a timer row. One statement for every execution.
   */
  async flushTimeouts(all: boolean): Promise<void> {
    const now = Date.now();
    const rows: { id: string; partition: number; t: TimerAction }[] = [];
    for (const [id, m] of this.pendingTimeouts) {
      const c = this.cache.get(id);
      for (const [k, p] of m) {
        const d = p.timer.command.data as { stepId: string; itemIndex?: number; attempt: number };
        const u = c ? unitIn(c.state, d) : undefined;
        if (c && (u?.phase !== 'dispatched' || u.attempt !== d.attempt)) {
          m.delete(k);
          continue;
        }
        if (!all && now - p.since < TIMEOUT_DEFER_MS && Date.parse(p.timer.dueAt) - now > TIMEOUT_WRITE_AHEAD_MS)
          continue;
        if (!this.rt.owned.has(p.partition)) continue;
        rows.push({ id, partition: p.partition, t: p.timer });
        m.delete(k);
      }
      if (m.size === 0) this.pendingTimeouts.delete(id);
    }
    if (rows.length === 0) return;
    try {
      await writeTimerRows(this.o.pool, rows);
      for (const r of rows) {
        const c = this.cache.get(r.id);
        if (c) c.timersInTable = true;
      }
    } catch (err) {
      // Keep them for the next flush (recovery would re-arm them anyway).
      for (const r of rows) {
        const m = this.pendingTimeouts.get(r.id) ?? new Map<string, PendingTimeout>();
        m.set(timerKey(r.t), { partition: r.partition, timer: r.t, since: 0 });
        this.pendingTimeouts.set(r.id, m);
      }
      this.flushFailureLog((held) => this.log.warn({ err, heldBack: held }, 'timeout flush failed'));
    }
  }
}

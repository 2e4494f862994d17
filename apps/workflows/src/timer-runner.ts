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
  moveClaimedTimers,
  TIMEOUT_DEFER_MS,
  TIMEOUT_WRITE_AHEAD_MS,
  timerKey,
  writeTimerRows,
  type ClaimedTimer,
  type TimerRef,
} from './timers.js';

/** Between two polls the wall clock moved this much more (or less) than the monotonic one: a step of the clock, logged. */
const CLOCK_JUMP_WARN_MS = 5_000;
/** At most this many timers that are due by their monotonic deadline only are asked for in one claim. */
const MONOTONIC_DUE_MAX = 1_000;

/**
 * A timer a decision of this process armed: the due time it was armed with, and its deadline on
 * the monotonic clock (performance.now() then plus the delay), which a step of the wall clock
 * (an NTP step, a resumed VM) does not move.
 */
interface ArmedHere {
  readonly dueAt: string;
  readonly deadline: number;
}

/**
 * The engine's timers: arming rows for an execution, the step timeouts kept in memory until they
 * are worth a row (`flushTimeouts`), and the poller that fires due rows of ready partitions.
 *
 * Clocks: a row's `due_at` is the engine's wall clock (`rt.now()`), and rows are claimed by that
 * clock too, never by PostgreSQL's. A timer armed by a decision of this process also keeps its
 * monotonic deadline in memory: a row claimed before that deadline (the wall clock stepped forward)
 * goes back until it, and a row whose deadline has passed is claimed although its `due_at` is
 * still ahead (the wall clock stepped back). Timers armed elsewhere or before a restart follow the
 * wall clock: the row is all that survives a crash.
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
  /** Timers armed by this process's decisions, by execution and timer key (see ArmedHere). */
  private readonly armedHere = new Map<string, Map<string, ArmedHere>>();
  /** Both clocks at the last poll, to see a step of the wall clock. */
  private lastTick: { wall: number; mono: number } | undefined;
  private timerPolling = false;

  constructor(private readonly rt: EngineRuntime) {
    this.o = rt.o;
    this.log = rt.log;
    this.cache = rt.cache;
  }

  /**
   * Arm the timers a decision of this process set: each keeps its monotonic deadline; a step
   * timeout not due within TIMEOUT_WRITE_AHEAD_MS is kept in memory (`flushTimeouts` writes it if
   * its unit is still dispatched by then), the others are written now. True when rows were written.
   */
  async armDecided(executionId: string, partition: number, timers: readonly TimerAction[]): Promise<boolean> {
    const wall = this.rt.now();
    const mono = performance.now();
    const write: TimerAction[] = [];
    const armed = this.armedHere.get(executionId) ?? new Map<string, ArmedHere>();
    for (const t of timers) {
      const k = timerKey(t);
      // The same timer armed again (an event handled twice): its deadline stands.
      if (armed.get(k)?.dueAt !== t.dueAt)
        armed.set(k, { dueAt: t.dueAt, deadline: mono + Date.parse(t.dueAt) - wall });
      if (t.kind === 'timeout' && Date.parse(t.dueAt) - wall > TIMEOUT_WRITE_AHEAD_MS) {
        const m = this.pendingTimeouts.get(executionId) ?? new Map<string, PendingTimeout>();
        m.set(k, { partition, timer: t, since: mono });
        this.pendingTimeouts.set(executionId, m);
      } else write.push(t);
    }
    if (armed.size > 0) this.armedHere.set(executionId, armed);
    if (write.length === 0) return false;
    await this.armTimers(executionId, partition, write);
    return true;
  }

  /** The execution ended: none of its deferred timeouts is needed. */
  forget(executionId: string): void {
    this.pendingTimeouts.delete(executionId);
    this.armedHere.delete(executionId);
  }

  /** The partition's new owner re-arms its timers from the events (recovery). */
  release(p: number): void {
    for (const m of [this.pendingTimeouts, this.armedHere])
      for (const id of m.keys()) if (partitionOf(id, this.rt.partitions) === p) m.delete(id);
  }

  /** Write (or move) timer rows of an execution (a decision's, or recovery's from the events). */
  async armTimers(executionId: string, partition: number, timers: readonly TimerAction[]): Promise<void> {
    await armTimerRows(this.o.pool, executionId, partition, timers, (t) => this.rowDue(executionId, t));
    const c = this.cache.get(executionId);
    if (c) c.timersInTable = true;
  }

  /** This process's deadline of a timer, if a decision here armed it with this due time. */
  private armedDeadline(executionId: string, key: string, dueAt: string): number | undefined {
    const a = this.armedHere.get(executionId)?.get(key);
    return a && Date.parse(a.dueAt) === Date.parse(dueAt) ? a.deadline : undefined;
  }

  /**
   * A row's `due_at`: when the wall clock will read the monotonic deadline of a timer armed here
   * (the same as its `dueAt` unless the wall clock stepped since), else its `dueAt`.
   */
  private rowDue(executionId: string, t: TimerAction): string {
    const deadline = this.armedDeadline(executionId, timerKey(t), t.dueAt);
    return deadline === undefined
      ? t.dueAt
      : new Date(Math.round(this.rt.now() + deadline - performance.now())).toISOString();
  }

  /** Log a step of the wall clock against the monotonic one since the last poll (once per step). */
  private watchClock(): void {
    const tick = { wall: this.rt.now(), mono: performance.now() };
    const last = this.lastTick;
    this.lastTick = tick;
    if (!last) return;
    const jumpMs = tick.wall - last.wall - (tick.mono - last.mono);
    if (Math.abs(jumpMs) > CLOCK_JUMP_WARN_MS)
      this.log.warn(
        { jumpMs: Math.round(jumpMs) },
        'the wall clock jumped against the monotonic clock: timers this engine armed keep their monotonic deadlines, the others follow the wall clock',
      );
  }

  /**
   * Timers armed here whose monotonic deadline has passed while the wall clock says they are not
   * due yet (it stepped back): claimed all the same. Those whose deadline and due time have both
   * passed are no longer needed here (the row is due by the wall clock), and are dropped.
   */
  private dueByDeadlineOnly(parts: ReadonlySet<number>, wall: number, mono: number): TimerRef[] {
    const out: TimerRef[] = [];
    for (const [id, m] of this.armedHere) {
      for (const [k, a] of m) {
        if (a.deadline > mono) continue;
        if (Date.parse(a.dueAt) <= wall) m.delete(k);
        else if (out.length < MONOTONIC_DUE_MAX && parts.has(partitionOf(id, this.rt.partitions)))
          out.push({ execution_id: id, timer_key: k });
      }
      if (m.size === 0) this.armedHere.delete(id);
    }
    return out;
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
    this.watchClock();
    if (this.timerPolling || this.rt.stopped || this.rt.ready.size === 0) return;
    this.timerPolling = true;
    const parts = [...this.rt.ready];
    try {
      for (let more = true; more && !this.rt.stopped;) {
        const extra = this.dueByDeadlineOnly(new Set(parts), this.rt.now(), performance.now());
        const rows = await claimDueTimers(this.o.pool, parts, 100, this.rt.now(), extra);
        // Claimed before their monotonic deadline (the wall clock stepped forward): back until then.
        const early: { timer: ClaimedTimer; dueAt: number }[] = [];
        const due: ClaimedTimer[] = [];
        const mono = performance.now();
        for (const row of rows) {
          // A timer's command is stamped with its due time.
          const deadline = this.armedDeadline(row.execution_id, row.timer_key, row.command.metadata.timestamp);
          if (deadline !== undefined && deadline > mono)
            early.push({ timer: row, dueAt: Math.ceil(this.rt.now() + deadline - mono) });
          else due.push(row);
        }
        if (early.length > 0) await moveClaimedTimers(this.o.pool, early);
        // Asked for by their deadline but gone (fired, dropped with their execution) and not waiting
        // in memory: not needed. Unless the claim was cut at its limit (it may have left them out).
        const claimed = new Set(rows.map((r) => `${r.execution_id}\n${r.timer_key}`));
        for (const r of rows.length < 100 ? extra : [])
          if (
            !claimed.has(`${r.execution_id}\n${r.timer_key}`) &&
            !this.pendingTimeouts.get(r.execution_id)?.has(r.timer_key)
          )
            this.armedHere.get(r.execution_id)?.delete(r.timer_key);
        const fired: ClaimedTimer[] = [];
        const again: ClaimedTimer[] = [];
        await Promise.all(
          due.map(async (row) => {
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
        for (const f of fired) this.armedHere.get(f.execution_id)?.delete(f.timer_key);
        if (fired.length > 0) await deleteFiredTimers(this.o.pool, fired);
        // A command that may work later: due again now rather than after the lease.
        if (again.length > 0) {
          const now = this.rt.now();
          await moveClaimedTimers(
            this.o.pool,
            again.map((timer) => ({ timer, dueAt: now })),
          );
        }
        more = rows.length === 100;
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
    // Monotonic: a step of the wall clock neither holds a timeout back nor writes it sooner.
    const mono = performance.now();
    const rows: { id: string; partition: number; t: TimerAction; dueAt: string }[] = [];
    for (const [id, m] of this.pendingTimeouts) {
      const c = this.cache.get(id);
      for (const [k, p] of m) {
        const d = p.timer.command.data as { stepId: string; itemIndex?: number; attempt: number };
        const u = c ? unitIn(c.state, d) : undefined;
        if (c && (u?.phase !== 'dispatched' || u.attempt !== d.attempt)) {
          m.delete(k);
          continue;
        }
        const deadline = this.armedDeadline(id, k, p.timer.dueAt);
        const left = deadline === undefined ? Date.parse(p.timer.dueAt) - this.rt.now() : deadline - mono;
        if (!all && mono - p.since < TIMEOUT_DEFER_MS && left > TIMEOUT_WRITE_AHEAD_MS) continue;
        if (!this.rt.owned.has(p.partition)) continue;
        rows.push({ id, partition: p.partition, t: p.timer, dueAt: this.rowDue(id, p.timer) });
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
        m.set(timerKey(r.t), { partition: r.partition, timer: r.t, since: Number.NEGATIVE_INFINITY });
        this.pendingTimeouts.set(r.id, m);
      }
      this.flushFailureLog((held) => this.log.warn({ err, heldBack: held }, 'timeout flush failed'));
    }
  }
}

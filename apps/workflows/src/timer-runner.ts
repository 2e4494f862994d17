import { isAppError, logAtMostEvery, WallClockWatch, type Logger } from '@switchyard/platform';
import type { TimerAction } from '@switchyard/domain';
import { runWorkflowCommand } from '@switchyard/workflow-executions';
import type { PendingTimeout, WorkflowEngineOptions } from './engine-types.js';
import { partitionOf } from './partitions.js';
import type { StateCache } from './state-cache.js';
import { unitIn, type EngineRuntime } from './engine-runtime.js';
import {
  armTimerRows,
  claimDueTimers,
  claimTimersByKey,
  deleteFiredTimers,
  moveClaimedTimers,
  TIMEOUT_DEFER_MS,
  TIMEOUT_WRITE_AHEAD_MS,
  timerKey,
  writeTimerRows,
  type ClaimedTimer,
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
  readonly executionId: string;
  readonly key: string;
  readonly dueAt: string;
  readonly deadline: number;
}

/** Armed timers by monotonic deadline, earliest first (a binary heap): a poll touches only those whose deadline passed. */
class DeadlineHeap {
  private items: ArmedHere[] = [];

  get size(): number {
    return this.items.length;
  }

  push(a: ArmedHere): void {
    const xs = this.items;
    xs.push(a);
    for (let i = xs.length - 1; i > 0;) {
      const up = (i - 1) >> 1;
      if (xs[up]!.deadline <= xs[i]!.deadline) break;
      [xs[up], xs[i]] = [xs[i]!, xs[up]!];
      i = up;
    }
  }

  /** The earliest entry, if its deadline is at or before `mono`, taken out. */
  popPassed(mono: number): ArmedHere | undefined {
    const xs = this.items;
    const top = xs[0];
    if (!top || top.deadline > mono) return undefined;
    const last = xs.pop()!;
    if (xs.length > 0) {
      xs[0] = last;
      this.down(0);
    }
    return top;
  }

  /** Keep only the entries `keep` says (rebuilt in linear time). */
  retain(keep: (a: ArmedHere) => boolean): void {
    this.items = this.items.filter(keep);
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private down(i: number): void {
    const xs = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < xs.length && xs[l]!.deadline < xs[min]!.deadline) min = l;
      if (r < xs.length && xs[r]!.deadline < xs[min]!.deadline) min = r;
      if (min === i) return;
      [xs[min], xs[i]] = [xs[i]!, xs[min]!];
      i = min;
    }
  }
}

const refOf = (id: string, key: string) => `${id}\n${key}`;

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
  /**
   * Timers armed by this process's decisions, by execution and timer key (see ArmedHere). An entry
   * stays until its timer fires, its row is gone, its execution ends or its partition is released:
   * its deadline holds whatever steps the wall clock makes meanwhile (a row moved ahead by a
   * forward step is still claimed at the deadline after the clock came back).
   */
  private readonly armedHere = new Map<string, Map<string, ArmedHere>>();
  private armedCount = 0;
  /** The same entries by deadline; entries no longer in `armedHere` are skipped when they come up. */
  private readonly byDeadline = new DeadlineHeap();
  /** Entries whose deadline has passed, by execution and key, until their timer fires or they are dropped. */
  private readonly passed = new Map<string, ArmedHere>();
  /** The wall clock against the monotonic one from poll to poll, to see a step of the wall clock. */
  private readonly clockWatch = new WallClockWatch();
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
      const before = armed.get(k);
      if (before?.dueAt !== t.dueAt) {
        const a = { executionId, key: k, dueAt: t.dueAt, deadline: mono + Date.parse(t.dueAt) - wall };
        armed.set(k, a);
        this.byDeadline.push(a);
        if (!before) this.armedCount++;
      }
      if (t.kind === 'timeout' && Date.parse(t.dueAt) - wall > TIMEOUT_WRITE_AHEAD_MS) {
        const m = this.pendingTimeouts.get(executionId) ?? new Map<string, PendingTimeout>();
        m.set(k, { partition, timer: t, since: mono });
        this.pendingTimeouts.set(executionId, m);
      } else write.push(t);
    }
    if (armed.size > 0) this.armedHere.set(executionId, armed);
    this.compactDeadlines();
    if (write.length === 0) return false;
    await this.armTimers(executionId, partition, write);
    return true;
  }

  /** The execution ended: none of its deferred timeouts is needed. */
  forget(executionId: string): void {
    this.pendingTimeouts.delete(executionId);
    this.armedCount -= this.armedHere.get(executionId)?.size ?? 0;
    this.armedHere.delete(executionId);
  }

  /** The partition's new owner re-arms its timers from the events (recovery). */
  release(p: number): void {
    for (const id of this.pendingTimeouts.keys())
      if (partitionOf(id, this.rt.partitions) === p) this.pendingTimeouts.delete(id);
    for (const [id, m] of this.armedHere)
      if (partitionOf(id, this.rt.partitions) === p) {
        this.armedCount -= m.size;
        this.armedHere.delete(id);
      }
    this.compactDeadlines();
  }

  private isArmed(a: ArmedHere): boolean {
    return this.armedHere.get(a.executionId)?.get(a.key) === a;
  }

  /** Drop the entry of a timer armed here with this due time (fired, or its row gone). */
  private dropArmed(executionId: string, key: string, dueAt: string): void {
    const m = this.armedHere.get(executionId);
    const a = m?.get(key);
    if (!m || !a || Date.parse(a.dueAt) !== Date.parse(dueAt)) return;
    m.delete(key);
    this.armedCount--;
    if (m.size === 0) this.armedHere.delete(executionId);
    this.passed.delete(refOf(executionId, key));
  }

  /** Entries of ended executions wait in the heap until their deadline: rebuilt once they outnumber the live ones. */
  private compactDeadlines(): void {
    if (this.byDeadline.size <= 2 * this.armedCount + 1_024) return;
    this.byDeadline.retain((a) => this.isArmed(a));
    for (const [r, a] of this.passed) if (!this.isArmed(a)) this.passed.delete(r);
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
    const jumpMs = this.clockWatch.step(this.rt.now());
    if (jumpMs !== undefined && Math.abs(jumpMs) > CLOCK_JUMP_WARN_MS)
      this.log.warn(
        { jumpMs: Math.round(jumpMs) },
        'the wall clock jumped against the monotonic clock: timers this engine armed keep their monotonic deadlines, the others follow the wall clock',
      );
  }

  /**
   * Timers armed here, of these partitions, whose monotonic deadline has passed and that have not
   * fired yet: claimed by key if the claim by `due_at` did not take them (the wall clock stepped
   * back, or a forward step had moved the row ahead).
   */
  private deadlinePassed(parts: ReadonlySet<number>, mono: number): ArmedHere[] {
    for (let a = this.byDeadline.popPassed(mono); a; a = this.byDeadline.popPassed(mono))
      if (this.isArmed(a)) this.passed.set(refOf(a.executionId, a.key), a);
    const out: ArmedHere[] = [];
    for (const [r, a] of this.passed) {
      if (!this.isArmed(a)) this.passed.delete(r);
      else if (out.length < MONOTONIC_DUE_MAX && parts.has(partitionOf(a.executionId, this.rt.partitions))) out.push(a);
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
      const partSet = new Set(parts);
      for (let more = true; more && !this.rt.stopped;) {
        const passed = this.deadlinePassed(partSet, performance.now());
        const rows = await claimDueTimers(this.o.pool, parts, 100, this.rt.now());
        more = rows.length === 100;
        // Deadline passed but not due by `due_at`: by key (only then, so the usual poll is one range scan).
        const byDue = new Set(rows.map((r) => refOf(r.execution_id, r.timer_key)));
        const byKey = passed.filter((a) => !byDue.has(refOf(a.executionId, a.key)));
        const back: { timer: ClaimedTimer; dueAt: number }[] = [];
        if (byKey.length > 0) {
          const refs = byKey.map((a) => ({ execution_id: a.executionId, timer_key: a.key }));
          const { claimed, absent } = await claimTimersByKey(this.o.pool, parts, refs, this.rt.now());
          for (const c of claimed) {
            // Re-armed with another due time than the one armed here: not due, back where it was.
            if (this.armedDeadline(c.execution_id, c.timer_key, c.command.metadata.timestamp) === undefined) {
              back.push({ timer: c, dueAt: c.previous.getTime() });
              const a = this.armedHere.get(c.execution_id)?.get(c.timer_key);
              if (a) this.dropArmed(c.execution_id, c.timer_key, a.dueAt);
            } else rows.push(c);
          }
          // No row (fired, dropped with its execution) and none waiting in memory: not needed. A row
          // locked by another claim is not absent: asked for again at the next poll.
          for (const r of absent) {
            const a = this.armedHere.get(r.execution_id)?.get(r.timer_key);
            if (a && !this.pendingTimeouts.get(r.execution_id)?.has(r.timer_key))
              this.dropArmed(r.execution_id, r.timer_key, a.dueAt);
          }
        }
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
        if (early.length + back.length > 0) await moveClaimedTimers(this.o.pool, [...early, ...back]);
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
        for (const f of fired) this.dropArmed(f.execution_id, f.timer_key, f.command.metadata.timestamp);
        if (fired.length > 0) await deleteFiredTimers(this.o.pool, fired);
        // A command that may work later: due again now rather than after the lease.
        if (again.length > 0) {
          const now = this.rt.now();
          await moveClaimedTimers(
            this.o.pool,
            again.map((timer) => ({ timer, dueAt: now })),
          );
        }
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

import { backoffMs, processMemoryBudget, type Logger } from '@switchyard/platform';
import { nextActions, stepDispatchOf, workflowExecutionStream } from '@switchyard/domain';
import { isTerminal, loadExecution, WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';
import { partitionOf } from './partitions.js';
import type { WorkflowEngineOptions } from './engine-types.js';
import type { EngineRuntime } from './engine-runtime.js';
import type { Saga } from './saga.js';
import type { StepDispatch } from './step-dispatch.js';
import type { TimerRunner } from './timer-runner.js';

/** A quiet execution is looked at once every this many periodic passes (see `quiet`). */
const QUIET_PASSES = 8;
/**
 * Executions folded at once by all of the engine's recoveries together: at start every partition
 * is taken up at the same moment, and each execution's state (its outputs, tens of MB for a large
 * one) is held while it is recovered.
 */
export const RECOVERY_TURN = 8;
/** Longest a turn waits for the memory to fall under the high mark before it goes ahead (slowly, not never). */
export const RECOVERY_MEMORY_WAIT_MS = 30_000;

/**
 * Taking up and letting go of partitions (the lease's onAcquire / onRelease), and driving every
 * active execution of an owned partition from its full state: on acquiring it (start, take-over
 * after a crash or a lease move) and periodically. Scheduled units are dispatched,
 * dispatched-but-unfinished ones re-sent with the same idempotency key, timers re-armed.
 */
export class Recovery {
  private readonly o: WorkflowEngineOptions;
  private readonly log: Logger;
  private acquireChain: Promise<void> = Promise.resolve();
  /** Partitions whose lease this engine holds, owned or still being taken up (see onAcquire). */
  private readonly leased = new Set<number>();
  /**
   * Executions a periodic pass found with nothing to send or stop, the revision it saw, and the
   * passes since it last looked: the next QUIET_PASSES - 1 passes leave it alone, and then one
   * reads its last event only, and folds it whole only when its stream moved. An execution that
   * waits (a signal, a timer) for days was otherwise read and folded whole every pass: a hundred
   * large ones kept the engine busy with nothing else, and thousands of small ones would. The
   * saga handles their events as they come either way; this pass is the net under it.
   */
  private readonly quiet = new Map<string, { revision: number; passes: number }>();
  /** Recoveries in progress and those waiting for a place (see RECOVERY_TURN). */
  private recovering = 0;
  private readonly waitingTurn: (() => void)[] = [];

  constructor(
    private readonly rt: EngineRuntime,
    private readonly saga: Saga,
    private readonly steps: StepDispatch,
    private readonly timers: TimerRunner,
  ) {
    this.o = rt.o;
    this.log = rt.log;
  }

  onAcquire(p: number, attempt = 1): void {
    this.leased.add(p);
    this.acquireChain = this.acquireChain.then(async () => {
      // Released (or stopped) while waiting for a retry: the lease is someone else's to take up.
      if (!this.leased.has(p) || this.rt.stopped || this.rt.owned.has(p)) return;
      try {
        const r = await this.o.pool.query<{ position: string }>(
          `select position from ${WORKFLOW_SCHEMA}.saga_checkpoints where partition = $1`,
          [p],
        );
        const cp = r.rows[0] ? Number(r.rows[0].position) : -1;
        this.rt.owned.add(p);
        this.log.debug({ partition: p, checkpoint: cp }, 'partition acquired');
        this.saga.resume(p, cp);
        this.rt.track(
          this.takeUp(p).finally(() => {
            if (this.rt.owned.has(p)) this.rt.ready.add(p);
          }),
        );
      } catch (err) {
        // The lease is held but the partition not taken up: without a retry nobody would drive
        // its executions until the lease itself is lost (a database restart can do this).
        const delayMs = backoffMs(attempt);
        this.log.error({ err, partition: p, attempt, retryInMs: delayMs }, 'partition acquire failed; retrying');
        setTimeout(() => this.onAcquire(p, attempt + 1), delayMs).unref();
      }
    });
  }

  /**
   * The take-up pass of a partition just acquired, tried again while it stays ours when its
   * listing fails (the database restarting): left to the periodic pass, its executions would wait
   * up to `recoveryIntervalMs`, and their re-sent units would be charged the time no engine ran.
   */
  private async takeUp(p: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.recoverPartition(p, true);
        return;
      } catch (err) {
        if (!this.rt.owned.has(p) || this.rt.stopped) return;
        const retryInMs = backoffMs(attempt);
        this.log.warn({ err, partition: p, attempt, retryInMs }, 'taking up a partition failed; retrying');
        await new Promise((r) => setTimeout(r, retryInMs));
        if (!this.rt.owned.has(p) || this.rt.stopped) return;
      }
    }
  }

  onRelease(p: number): void {
    this.leased.delete(p);
    this.rt.owned.delete(p);
    this.rt.ready.delete(p);
    this.saga.release(p);
    for (const id of this.quiet.keys()) if (partitionOf(id, this.rt.partitions) === p) this.quiet.delete(id);
    // The new owner recovers these executions (and re-arms their timers) from their events.
    for (const id of this.rt.cache.keys()) if (partitionOf(id, this.rt.partitions) === p) this.rt.cache.delete(id);
    this.timers.release(p);
    this.log.info({ partition: p }, 'partition released');
  }

  /**
   * Drive every active execution of a partition from its full state (start, take-over, periodic).
   * `acquired`: the partition was just taken (start, take-over), so nothing of it runs here yet.
   */
  async recoverPartition(p: number, acquired = false): Promise<void> {
    const rows = await this.o.pool.query<{ execution_id: string; no_starter: boolean }>(
      `select execution_id, started_by is null as no_starter from ${WORKFLOW_SCHEMA}.active_executions where partition = $1`,
      [p],
    );
    const ids = rows.rows.map((r) => r.execution_id);
    const noStarter = new Set(rows.rows.filter((r) => r.no_starter).map((r) => r.execution_id));
    if (!acquired) {
      // Those no longer active (ended, or gone to another partition's owner) are forgotten.
      const active = new Set(ids);
      for (const id of this.quiet.keys())
        if (partitionOf(id, this.rt.partitions) === p && !active.has(id)) this.quiet.delete(id);
    }
    for (let i = 0; i < ids.length && this.rt.owned.has(p) && !this.rt.stopped; i += RECOVERY_TURN) {
      await this.roomInMemory(p);
      await Promise.all(
        ids.slice(i, i + RECOVERY_TURN).map((id) =>
          this.inTurn(() => this.recoverExecution(id, p, acquired, noStarter.has(id))).catch((err: unknown) => {
            // One bad execution must not hold up the rest (nor the partition's timers); the periodic pass tries again.
            this.log.warn({ err, executionId: id, partition: p }, 'recovering an execution failed');
          }),
        ),
      );
    }
    this.rt.counts.recoveries++;
  }

  /** Run `work` once fewer than RECOVERY_TURN recoveries of any partition run. */
  private async inTurn<T>(work: () => Promise<T>): Promise<T> {
    if (this.recovering >= RECOVERY_TURN) await new Promise<void>((r) => this.waitingTurn.push(r));
    else this.recovering++;
    try {
      return await work();
    } finally {
      const next = this.waitingTurn.shift();
      if (next) next();
      else this.recovering--;
    }
  }

  /**
   * Before a turn: while the process's memory is past its high mark, drop the cached states and
   * wait (up to RECOVERY_MEMORY_WAIT_MS) for it to fall, so a restart after a kill for memory does
   * not fold every running execution into the same kill.
   */
  private async roomInMemory(p: number): Promise<void> {
    const budget = processMemoryBudget();
    if (!budget.isHigh()) return;
    const started = Date.now();
    this.rt.cache.sweep();
    this.log.warn({ partition: p, memory: budget.read() }, 'memory high: recovery waits for it to fall');
    while (budget.isHigh() && Date.now() - started < RECOVERY_MEMORY_WAIT_MS && !this.rt.stopped)
      await new Promise((r) => setTimeout(r, 500));
  }

  private async recoverExecution(
    executionId: string,
    partition: number,
    acquired: boolean,
    noStarter = false,
  ): Promise<void> {
    const seen = this.quiet.get(executionId);
    if (!acquired && !noStarter && seen !== undefined) {
      if (++seen.passes < QUIET_PASSES) return;
      seen.passes = 0;
      const [last] = await this.o.store.readStream(workflowExecutionStream(executionId), {
        direction: 'backwards',
        maxCount: 1,
      });
      if (last?.revision === seen.revision) return;
    }
    this.quiet.delete(executionId);
    const { state, revision } = await loadExecution(this.o.store, executionId);
    if (state.status === 'not_started') return;
    // A row from before starters were kept (a release that had no `started_by`): its starter,
    // from the events, so a revoked key's sweep and the per-starter cap count it too.
    if (noStarter && state.startedBy)
      await this.o.pool.query(
        `update ${WORKFLOW_SCHEMA}.active_executions set started_by = $2 where execution_id = $1 and started_by is null`,
        [executionId, state.startedBy],
      );
    if (isTerminal(state)) {
      await this.saga.onTerminal(executionId, state);
      return;
    }
    const a = nextActions(state, new Date(this.rt.now()).toISOString());
    const inFlight = state.definition.steps.some((def) =>
      (state.steps[def.id]?.units ?? []).some((u) => u?.phase === 'dispatched'),
    );
    if (a.dispatch.length === 0 && a.stop.length === 0 && !inFlight && state.status === 'running')
      this.quiet.set(executionId, { revision, passes: 0 });
    if (a.timers.length > 0) await this.timers.armTimers(executionId, partition, a.timers);
    for (const d of a.dispatch) this.steps.dispatch(d, false);
    // Canceling when the last owner died: its stop requests may be lost; asking again is harmless.
    if (a.stop.length > 0) await this.steps.stopUnits(a.stop);
    // Dispatched but unfinished: send again with the same key (the executor deduplicates).
    if (state.status === 'running' || state.status === 'canceling') {
      for (const def of state.definition.steps) {
        for (const u of state.steps[def.id]?.units ?? []) {
          if (u?.phase !== 'dispatched') continue;
          const d = stepDispatchOf(state, def, u);
          if (acquired) {
            // Its reply was lost with the process that sent it: the attempt's clock restarts with the
            // re-send (StepRedispatched re-arms the timeout), so the time no engine ran is not charged to
            // the step. Also when the saga's replay of the partition has re-sent it already (in flight here).
            const ref = { stepId: u.stepId, ...(u.itemIndex === undefined ? {} : { itemIndex: u.itemIndex }) };
            await this.saga.command(executionId, {
              type: 'RecordStepRedispatched',
              data: { ...ref, attempt: u.attempt },
              metadata: this.rt.meta(state.correlationId),
            });
          }
          this.steps.dispatch(d, true);
        }
      }
    }
  }
}

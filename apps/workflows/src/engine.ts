import { randomUUID } from 'node:crypto';
import { AppError, processMemoryBudget, type Logger } from '@switchyard/platform';
import { ProjectionRunner, workflowExecutionsProjection } from '@switchyard/read-models';
import { RevokedStarterSweep, revokedStartersProjection } from './revoked-starters.js';
import {
  applyWorkflowLimits,
  BatchWorker,
  DefinitionStore,
  ensureWorkflowSchema,
} from '@switchyard/workflow-executions';
import { PartitionLeases } from './partitions.js';
import { childExecutionId } from './sub-workflows.js';
import type { WorkflowEngineOptions, WorkflowEngineStats } from './engine-types.js';
import { EngineRuntime } from './engine-runtime.js';
import { Saga } from './saga.js';
import { StepDispatch } from './step-dispatch.js';
import { TimerRunner } from './timer-runner.js';
import { Recovery } from './recovery.js';
import { STATE_IDLE_MS } from './state-cache.js';

export type { ParentRef, WorkflowEngineOptions, WorkflowEngineStats } from './engine-types.js';
export { EXECUTION_STREAM_PREFIX } from './saga.js';

/**
 * The durable workflow engine: the saga of WorkflowExecution, driven from a checkpointed
 * subscription to $all (streams `workflow_execution-`), never from an in-memory bus.
 *
 * For each event of an execution in a partition this process owns:
 *  1. compute the pure decision `decideAfter(event, stateAfterEvent)`;
 *  2. persist its timers (table workflows.timers) before moving the checkpoint;
 *  3. dispatch every ready unit in parallel, without blocking the loop: RecordStepDispatched,
 *     then a NATS request (MCP connector, task service) or a child execution (sub-workflow),
 *     then RecordStepSucceeded/Failed through the decider (read, decide, append).
 * Durability: everything is events; on acquiring a partition (start, take-over) and every
 * `recoveryIntervalMs` the engine folds every active execution of it and does `nextActions`:
 * scheduled units are dispatched, dispatched-but-unfinished ones re-sent with the same
 * idempotency key, timers re-armed. Results of duplicates are ignored by the decider.
 * Scale-out: partitions are leased with advisory locks (PartitionLeases).
 *
 * This class is the composition and the public API; the parts are the saga (saga.ts), the
 * dispatch of units (step-dispatch.ts), the timers (timer-runner.ts) and recovery (recovery.ts).
 */
export class WorkflowEngine {
  readonly memberId: string;
  readonly definitions: DefinitionStore;
  private readonly log: Logger;
  private readonly partitions: number;
  private readonly leases: PartitionLeases;
  private readonly rt: EngineRuntime;
  private readonly timerRunner: TimerRunner;
  private readonly saga: Saga;
  private readonly steps: StepDispatch;
  private readonly recovery: Recovery;
  private readonly projections: ProjectionRunner | undefined;
  private readonly batchWorker: BatchWorker | undefined;
  /** Follows the revoked API keys (always, also where the read model runs elsewhere). */
  private readonly revocations: ProjectionRunner;
  private readonly revokedStarters: RevokedStarterSweep;
  private revocationSweep: Promise<unknown> | undefined;
  private timers: NodeJS.Timeout[] = [];
  /** The periodic recovery pass under way, if any. */
  private periodicPass: Promise<void> | undefined;

  constructor(private readonly o: WorkflowEngineOptions) {
    applyWorkflowLimits(o.limits);
    this.memberId = o.memberId ?? `engine-${randomUUID().slice(0, 8)}`;
    this.partitions = o.partitions ?? 16;
    this.log = o.logger.child({ component: 'workflow-engine', memberId: this.memberId });
    this.definitions = new DefinitionStore(o.pool, { store: o.store, logger: o.logger });
    this.rt = new EngineRuntime(o, this.log, this.partitions);
    this.timerRunner = new TimerRunner(this.rt);
    // Saga and dispatch call each other (units go out from the saga's effects, their outcomes come
    // back as commands through the saga's fast path): the saga reaches dispatch through this port.
    this.saga = new Saga(this.rt, this.timerRunner, {
      dispatch: (a, recorded) => this.steps.dispatch(a, recorded),
      stopUnits: (stops) => this.steps.stopUnits(stops),
    });
    this.steps = new StepDispatch(this.rt, this.definitions, this.saga);
    this.recovery = new Recovery(this.rt, this.saga, this.steps, this.timerRunner);
    const url =
      o.databaseUrl ?? (o.pool as unknown as { options: { connectionString?: string } }).options.connectionString;
    if (!url) throw new AppError('validation', 'workflow engine needs databaseUrl (the pool has no connectionString)');
    this.leases = new PartitionLeases({
      connectionString: url,
      memberId: this.memberId,
      partitions: this.partitions,
      logger: this.log,
      tickMs: o.leaseTickMs,
      memberTtlMs: o.memberTtlMs,
      lockIdleMs: o.lockIdleMs,
      onAcquire: (p) => this.recovery.onAcquire(p),
      onRelease: (p) => this.recovery.onRelease(p),
    });
    this.batchWorker =
      o.batches === false
        ? undefined
        : new BatchWorker({
            store: o.store,
            pool: o.pool,
            logger: o.logger,
            itemsPerSec: o.batches?.itemsPerSec,
            pollMs: o.batches?.pollMs,
            workerId: this.memberId,
          });
    this.revocations = new ProjectionRunner({
      store: o.store,
      db: { pool: o.pool },
      projections: [revokedStartersProjection],
      logger: o.logger,
    });
    this.revokedStarters = new RevokedStarterSweep({
      store: o.store,
      pool: o.pool,
      logger: this.log,
      owned: () => [...this.rt.owned],
    });
    this.projections =
      o.readModel === false
        ? undefined
        : new ProjectionRunner({
            store: o.store,
            db: { pool: o.pool },
            projections: [workflowExecutionsProjection],
            logger: o.logger,
          });
  }

  /** Create tables, seed definitions, start the projection, lease partitions, run the saga loop and the timer poller. */
  async start(): Promise<void> {
    // Entering and leaving high memory use (where starts are refused) is logged by the first role that asks.
    const memory = processMemoryBudget().logTo(this.log);
    this.log.info({ memoryCeiling: memory.ceiling }, 'memory ceiling of this process');
    await ensureWorkflowSchema(this.o.pool);
    // The definitions read model runs here too: it seeds the built-ins and answers the engine's reads.
    await this.definitions.start();
    await this.projections?.start();
    await this.revocations.start();
    this.steps.listenForProgress();
    this.saga.start();
    await this.leases.start();
    const every = (ms: number, fn: () => Promise<void> | void) => this.timers.push(setInterval(() => void fn(), ms));
    every(this.o.timerPollMs ?? 200, () => this.timerRunner.pollTimers());
    every(this.o.checkpointIntervalMs ?? 250, async () => {
      await this.timerRunner.flushTimeouts(false);
      await this.saga.flushCheckpoints();
    });
    // One periodic pass at a time, a partition after another: a pass folds every active execution,
    // and passes stacked on a slow one (16 partitions side by side, each 8 executions at once) held
    // hundreds of large states at once, enough to exhaust the heap.
    every(this.o.recoveryIntervalMs ?? 15_000, () => {
      if (this.periodicPass) return;
      const pass = (async () => {
        for (const p of [...this.rt.owned]) {
          if (this.rt.stopped) return;
          // One partition's failure (its listing) must not hold up the others' pass.
          if (this.rt.owned.has(p))
            await this.recovery
              .recoverPartition(p)
              .catch((err: unknown) => this.log.warn({ err, partition: p }, 'periodic recovery of a partition failed'));
        }
      })().finally(() => (this.periodicPass = undefined));
      this.periodicPass = pass;
      this.rt.track(pass);
    });
    every(this.o.revocationSweepMs ?? 2_000, () => {
      if (this.revocationSweep) return;
      this.revocationSweep = this.revokedStarters
        .sweep()
        .catch((err: unknown) =>
          this.log.warn({ err }, 'canceling the executions of revoked keys failed; the next sweep tries again'),
        )
        .finally(() => (this.revocationSweep = undefined));
      this.rt.track(this.revocationSweep);
    });
    every(Math.min(STATE_IDLE_MS, 10_000), () => {
      const { dropped, why } = this.rt.cache.sweep();
      if (why === 'memory' && dropped > 0)
        this.log.warn(
          { dropped, memory: processMemoryBudget().read() },
          "memory past half the process's ceiling: cached execution states dropped (read again when needed)",
        );
    });
    this.batchWorker?.start();
    this.log.info({ partitions: this.partitions }, 'workflow engine started');
  }

  /** Stop taking work, wait for in-flight work (bounded), save checkpoints, release partitions. */
  async stop(): Promise<void> {
    if (this.rt.stopped) return;
    this.rt.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.batchWorker?.stop();
    this.steps.stopListening();
    await this.saga.stop();
    await Promise.race([
      Promise.allSettled([...this.rt.work, ...this.saga.inProgress()]),
      new Promise((r) => setTimeout(r, 5_000)),
    ]);
    await this.timerRunner.flushTimeouts(true);
    await this.saga.flushCheckpoints();
    await this.leases.stop();
    await this.projections?.stop();
    await this.revocations.stop();
    await this.definitions.stop();
    this.log.info(this.rt.counts, 'workflow engine stopped');
  }

  stats(): WorkflowEngineStats {
    return {
      memberId: this.memberId,
      partitions: [...this.rt.owned].sort((a, b) => a - b),
      inflight: this.steps.inflightCount,
      ...this.rt.counts,
    };
  }

  /** Resolves when the read model has processed the current head (tests, `?wait`). */
  async readModelCaughtUp(timeoutMs = 30_000): Promise<void> {
    await this.projections?.waitFor(undefined, undefined, timeoutMs);
  }

  /** Child execution id: derived from the parent unit's idempotency key, so a re-dispatch finds the same child. */
  static childExecutionId(idempotencyKey: string): string {
    return childExecutionId(idempotencyKey);
  }
}

/** Build and start an engine (the launcher's entry point). Stop it with `engine.stop()`. */
export async function startWorkflowEngine(o: WorkflowEngineOptions): Promise<WorkflowEngine> {
  const engine = new WorkflowEngine(o);
  await engine.start();
  return engine;
}

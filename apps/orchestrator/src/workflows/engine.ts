import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { NatsConnection } from '@nats-io/nats-core';
import { AppError, isAppError, type Logger } from '@switchyard/platform';
import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import { ProjectionRunner } from '@switchyard/read-models';
import {
  decideAfter,
  nextActions,
  parseUses,
  unitKey,
  workflowExecutionDecider,
  workflowExecutionStream,
  type CommandMetadata,
  type DispatchAction,
  type TimerAction,
  type UnitState,
  type WorkflowCommand,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { isTerminal, loadExecution, runWorkflowCommand } from './command.js';
import { DefinitionStore } from './definitions.js';
import { executeRemote, type ExecutorSubjects, type StepOutcome } from './executor.js';
import { PartitionLeases, partitionOf } from './partitions.js';
import { workflowExecutionsProjection } from './projection.js';
import { ensureWorkflowSchema, WORKFLOW_SCHEMA } from './schema.js';

export const EXECUTION_STREAM_PREFIX = workflowExecutionStream('');
const ACTOR = 'system:orchestrator';
const TERMINAL_EVENTS = new Set(['WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled']);

/** Where a sub-workflow reports back: kept in the metadata of the child's WorkflowStarted. */
export interface ParentRef {
  readonly executionId: string;
  readonly stepId: string;
  readonly itemIndex?: number;
  readonly attempt: number;
}

export interface WorkflowEngineOptions {
  readonly store: EventStore;
  /** The engine's database (its tables live in schema `workflows`). */
  readonly pool: pg.Pool;
  readonly nats: NatsConnection;
  readonly logger: Logger;
  /** For the dedicated partition-lock connection; default: the pool's connection string. */
  readonly databaseUrl?: string;
  /** Number of partitions executions are hashed into (default 16; every process must agree). */
  readonly partitions?: number;
  readonly memberId?: string;
  readonly leaseTickMs?: number;
  readonly memberTtlMs?: number;
  /** Timer poll interval (default 200 ms). */
  readonly timerPollMs?: number;
  /** Re-check every owned execution this often (default 15 000 ms). */
  readonly recoveryIntervalMs?: number;
  /** Checkpoint flush interval (default 250 ms). */
  readonly checkpointIntervalMs?: number;
  /** Executions whose events are handled at once (default 32; each execution's events stay in order). */
  readonly sagaConcurrency?: number;
  /** Run the workflow_executions read model in this process too (default true). */
  readonly readModel?: boolean;
  /** Replace how mcp/agent units are executed (tests, benches); default NATS request-reply. */
  readonly execute?: (a: DispatchAction) => Promise<StepOutcome>;
  /** Subjects of the MCP connectors and the task service (default the production ones). */
  readonly subjects?: ExecutorSubjects;
}

export interface WorkflowEngineStats {
  readonly memberId: string;
  readonly partitions: number[];
  readonly eventsHandled: number;
  readonly dispatches: number;
  readonly timersFired: number;
  readonly recoveries: number;
  readonly inflight: number;
}

interface CachedState {
  state: WorkflowExecutionState;
  revision: number;
}

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
 */
export class WorkflowEngine {
  readonly memberId: string;
  readonly definitions: DefinitionStore;
  private readonly log: Logger;
  private readonly partitions: number;
  private readonly leases: PartitionLeases;
  private readonly owned = new Set<number>();
  private readonly checkpoints = new Map<number, number>();
  private readonly dirty = new Set<number>();
  private readonly cache = new Map<string, CachedState>();
  private readonly inflight = new Set<string>();
  private readonly work = new Set<Promise<unknown>>();
  private readonly projections: ProjectionRunner | undefined;
  private sub: AllSubscription | undefined;
  private restart = false;
  private lastDelivered = -1;
  private loop: Promise<void> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private acquireChain: Promise<void> = Promise.resolve();
  private timerPolling = false;
  private counts = { eventsHandled: 0, dispatches: 0, timersFired: 0, recoveries: 0 };
  private readonly sagaConcurrency: number;
  private active = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly pending = new Map<number, { position: number; done: boolean }[]>();
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly o: WorkflowEngineOptions) {
    this.memberId = o.memberId ?? `engine-${randomUUID().slice(0, 8)}`;
    this.partitions = o.partitions ?? 16;
    this.sagaConcurrency = o.sagaConcurrency ?? 32;
    this.log = o.logger.child({ component: 'workflow-engine', memberId: this.memberId });
    this.definitions = new DefinitionStore(o.pool);
    const url = o.databaseUrl ?? (o.pool as unknown as { options: { connectionString?: string } }).options.connectionString;
    if (!url) throw new AppError('validation', 'workflow engine needs databaseUrl (the pool has no connectionString)');
    this.leases = new PartitionLeases({
      connectionString: url,
      memberId: this.memberId,
      partitions: this.partitions,
      logger: this.log,
      tickMs: o.leaseTickMs,
      memberTtlMs: o.memberTtlMs,
      onAcquire: (p) => this.onAcquire(p),
      onRelease: (p) => this.onRelease(p),
    });
    this.projections =
      o.readModel === false
        ? undefined
        : new ProjectionRunner({ store: o.store, db: { pool: o.pool }, projections: [workflowExecutionsProjection], logger: o.logger });
  }

  /** Create tables, seed definitions, start the projection, lease partitions, run the saga loop and the timer poller. */
  async start(): Promise<void> {
    await ensureWorkflowSchema(this.o.pool);
    await this.definitions.seedBuiltIns();
    await this.projections?.start();
    this.loop = this.runLoop();
    await this.leases.start();
    const every = (ms: number, fn: () => Promise<void> | void) => this.timers.push(setInterval(() => void fn(), ms));
    every(this.o.timerPollMs ?? 200, () => this.pollTimers());
    every(this.o.checkpointIntervalMs ?? 250, () => this.flushCheckpoints());
    every(this.o.recoveryIntervalMs ?? 15_000, () => {
      for (const p of this.owned) this.track(this.recoverPartition(p));
    });
    this.log.info({ partitions: this.partitions }, 'workflow engine started');
  }

  /** Stop taking work, wait for in-flight work (bounded), save checkpoints, release partitions. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.sub?.close();
    await this.loop?.catch(() => undefined);
    await Promise.race([Promise.allSettled([...this.work, ...this.chains.values()]), new Promise((r) => setTimeout(r, 5_000))]);
    await this.flushCheckpoints();
    await this.leases.stop();
    await this.projections?.stop();
    this.log.info(this.counts, 'workflow engine stopped');
  }

  stats(): WorkflowEngineStats {
    return { memberId: this.memberId, partitions: [...this.owned].sort((a, b) => a - b), inflight: this.inflight.size, ...this.counts };
  }

  /** Resolves when the read model has processed the current head (tests, `?wait`). */
  async readModelCaughtUp(timeoutMs = 30_000): Promise<void> {
    await this.projections?.waitFor(undefined, undefined, timeoutMs);
  }

  // ---- partitions ---------------------------------------------------------------------

  private onAcquire(p: number): void {
    this.acquireChain = this.acquireChain.then(async () => {
      try {
        const r = await this.o.pool.query<{ position: string }>(`select position from ${WORKFLOW_SCHEMA}.saga_checkpoints where partition = $1`, [p]);
        const cp = r.rows[0] ? Number(r.rows[0].position) : -1;
        this.checkpoints.set(p, cp);
        this.owned.add(p);
        this.log.info({ partition: p, checkpoint: cp }, 'partition acquired');
        // Events of this partition before what the subscription has delivered must be seen again.
        if (cp < this.lastDelivered) this.requestRestart();
        this.track(this.recoverPartition(p));
      } catch (err) {
        this.log.error({ err, partition: p }, 'partition acquire failed');
      }
    });
  }

  private onRelease(p: number): void {
    this.owned.delete(p);
    this.dirty.delete(p);
    this.pending.delete(p);
    this.log.info({ partition: p }, 'partition released');
  }

  private requestRestart(): void {
    this.restart = true;
    void this.sub?.close();
  }

  // ---- the saga loop ------------------------------------------------------------------

  private async runLoop(): Promise<void> {
    while (!this.stopped) {
      if (this.owned.size === 0) {
        await sleep(100);
        continue;
      }
      this.restart = false;
      const from = Math.min(...[...this.owned].map((p) => this.checkpoints.get(p) ?? -1));
      this.lastDelivered = from;
      const sub = this.o.store.subscribeToAll({ from, streamPrefixes: [EXECUTION_STREAM_PREFIX] });
      this.sub = sub;
      try {
        for await (const e of sub) {
          if (this.stopped || this.restart) break;
          await this.handle(e);
          this.lastDelivered = e.position;
        }
      } catch (err) {
        if (!this.stopped) this.log.error({ err }, 'saga subscription failed; resubscribing');
        await sleep(500);
      } finally {
        await sub.close().catch(() => undefined);
      }
    }
  }

  /**
   * Events of one execution are handled in order; different executions in parallel (up to
   * `sagaConcurrency`). A partition's checkpoint only moves past an event once it and every
   * earlier event of that partition are done, so a crash never skips unhandled work.
   */
  private async handle(e: RecordedEvent): Promise<void> {
    const executionId = e.streamId.slice(EXECUTION_STREAM_PREFIX.length);
    const p = partitionOf(executionId, this.partitions);
    if (!this.owned.has(p) || e.position <= (this.checkpoints.get(p) ?? -1)) return;
    while (this.active >= this.sagaConcurrency) await new Promise<void>((r) => this.slotWaiters.push(r));
    this.active++;
    const entry = { position: e.position, done: false };
    const queue = this.pending.get(p) ?? [];
    queue.push(entry);
    this.pending.set(p, queue);
    const prev = this.chains.get(executionId) ?? Promise.resolve();
    const run: Promise<void> = prev.then(async () => {
      try {
        // A failing decision stalls this execution (retried) rather than skipping the event.
        for (let attempt = 1; !this.stopped; attempt++) {
          try {
            await this.process(executionId, p, e);
            break;
          } catch (err) {
            this.log.warn({ err, executionId, position: e.position, attempt, correlationId: e.metadata.correlationId }, 'saga step failed; retrying');
            await sleep(Math.min(2_000, 50 * attempt));
          }
        }
      } finally {
        entry.done = true;
        this.counts.eventsHandled++;
        this.advance(p);
        if (this.chains.get(executionId) === run) this.chains.delete(executionId);
        this.active--;
        this.slotWaiters.shift()?.();
      }
    });
    this.chains.set(executionId, run);
  }

  /** Move the partition's checkpoint over the leading run of finished events. */
  private advance(p: number): void {
    const queue = this.pending.get(p);
    if (!queue) return;
    let moved = -1;
    while (queue.length > 0 && queue[0]!.done) moved = queue.shift()!.position;
    if (moved >= 0 && this.owned.has(p) && moved > (this.checkpoints.get(p) ?? -1)) {
      this.checkpoints.set(p, moved);
      this.dirty.add(p);
    }
  }

  private async process(executionId: string, partition: number, e: RecordedEvent): Promise<void> {
    const event = { type: e.type, data: e.data, metadata: e.metadata } as unknown as WorkflowEvent;
    const state = await this.stateAt(executionId, e);
    if (event.type === 'WorkflowStarted') {
      await this.o.pool.query(`insert into ${WORKFLOW_SCHEMA}.active_executions (execution_id, partition) values ($1, $2) on conflict do nothing`, [
        executionId,
        partition,
      ]);
    }
    const actions = decideAfter(event, state);
    // 1. Timers first: durable before the checkpoint moves past the event that armed them.
    if (actions.timers.length > 0) await this.armTimers(executionId, partition, actions.timers);
    if (actions.due.length > 0) setImmediate(() => void this.pollTimers());
    // 2. Dispatches run in the background; recovery covers a crash before they are recorded.
    for (const d of actions.dispatch) this.dispatch(d, false);
    // 3. A cancel reaches running sub-workflows too (their end reports back and lets this one end).
    if (event.type === 'ExecutionCancelRequested') await this.cancelChildren(state, event.data.reason);
    // 4. The end: clean up, tell a parent execution.
    if (TERMINAL_EVENTS.has(event.type) && isTerminal(state)) await this.onTerminal(executionId, state);
  }

  /** The execution's state right after `e`, from the cache when it is exactly one event behind. */
  private async stateAt(executionId: string, e: RecordedEvent): Promise<WorkflowExecutionState> {
    const c = this.cache.get(executionId);
    const event = { type: e.type, data: e.data, metadata: e.metadata } as unknown as WorkflowEvent;
    if (c && c.revision === e.revision - 1) {
      c.state = workflowExecutionDecider.evolve(c.state, event);
      c.revision = e.revision;
      return c.state;
    }
    const events = await this.o.store.readStream(workflowExecutionStream(executionId), { maxCount: e.revision + 1 });
    let state = workflowExecutionDecider.initialState;
    for (const r of events) state = workflowExecutionDecider.evolve(state, { type: r.type, data: r.data, metadata: r.metadata } as unknown as WorkflowEvent);
    if (this.cache.size > 20_000) this.cache.clear(); // a bound, not an LRU: misses only cost a read
    this.cache.set(executionId, { state, revision: e.revision });
    return state;
  }

  private async onTerminal(executionId: string, state: WorkflowExecutionState): Promise<void> {
    await this.o.pool.query(`delete from ${WORKFLOW_SCHEMA}.timers where execution_id = $1`, [executionId]);
    const parent = await this.parentOf(executionId);
    if (parent) await this.notifyParent(parent, state);
    await this.o.pool.query(`delete from ${WORKFLOW_SCHEMA}.active_executions where execution_id = $1`, [executionId]);
    this.cache.delete(executionId);
  }

  private async cancelChildren(state: WorkflowExecutionState, reason: string): Promise<void> {
    if (state.status === 'not_started') return;
    for (const def of state.definition.steps) {
      if (parseUses(def.uses).kind !== 'workflow') continue;
      for (const u of state.steps[def.id]?.units ?? []) {
        if (u?.phase !== 'dispatched') continue;
        const childId = WorkflowEngine.childExecutionId(u.idempotencyKey);
        try {
          await runWorkflowCommand(this.o.store, childId, { type: 'RequestCancel', data: { reason: `parent canceled: ${reason}` }, metadata: this.meta(state.correlationId) });
        } catch (err) {
          // Not started yet or already over: nothing to cancel.
          if (!(isAppError(err) && (err.code === 'not_found' || err.code === 'illegal_state'))) throw err;
        }
      }
    }
  }

  private async parentOf(executionId: string): Promise<ParentRef | undefined> {
    const first = await this.o.store.readStream(workflowExecutionStream(executionId), { maxCount: 1 });
    return (first[0]?.metadata as { parent?: ParentRef } | undefined)?.parent;
  }

  private async notifyParent(parent: ParentRef, child: WorkflowExecutionState): Promise<void> {
    const ref = { stepId: parent.stepId, ...(parent.itemIndex === undefined ? {} : { itemIndex: parent.itemIndex }), attempt: parent.attempt };
    const correlationId = 'correlationId' in child ? child.correlationId : parent.executionId;
    const meta = this.meta(correlationId);
    let command: WorkflowCommand;
    if (child.status === 'completed') command = { type: 'RecordStepSucceeded', data: { ...ref, output: child.outputs }, metadata: meta };
    else if (child.status === 'failed' || child.status === 'canceled') {
      command = {
        type: 'RecordStepFailed',
        data: { ...ref, error: { code: `subworkflow_${child.status}`, message: child.reason, retryable: false } },
        metadata: meta,
      };
    } else return;
    await runWorkflowCommand(this.o.store, parent.executionId, command);
  }

  // ---- dispatch -----------------------------------------------------------------------

  private meta(correlationId: string): CommandMetadata {
    return { timestamp: new Date().toISOString(), actor: ACTOR, correlationId };
  }

  private track<T>(p: Promise<T>): void {
    const q = p.catch((err) => this.log.error({ err }, 'background work failed'));
    this.work.add(q);
    void q.finally(() => this.work.delete(q));
  }

  /** Send one unit at least once; `recorded` = its StepDispatched is already in the stream (re-send). */
  private dispatch(a: DispatchAction, recorded: boolean): void {
    const key = `${a.kind}:${a.idempotencyKey}`;
    if (this.inflight.has(key) || this.stopped) return;
    this.inflight.add(key);
    this.counts.dispatches++;
    this.track(this.runDispatch(a, recorded).finally(() => this.inflight.delete(key)));
  }

  private async runDispatch(a: DispatchAction, recorded: boolean): Promise<void> {
    const ref = { stepId: a.stepId, ...(a.itemIndex === undefined ? {} : { itemIndex: a.itemIndex }) };
    const log = this.log.child({ executionId: a.executionId, unit: unitKey(ref), attempt: a.attempt, correlationId: a.correlationId });
    // 1. Record the dispatch (starts the attempt's timeout); drop the unit if it is no longer scheduled.
    if (a.kind === 'step' && !recorded) {
      const r = await runWorkflowCommand(this.o.store, a.executionId, { type: 'RecordStepDispatched', data: { ...ref, attempt: a.attempt }, metadata: this.meta(a.correlationId) });
      const u = unitIn(r.state, ref);
      if (!u || u.phase !== 'dispatched' || u.attempt !== a.attempt) return;
    }
    // 2. Run it: a child execution for sub-workflows (its end reports back), a NATS request otherwise.
    if (a.target.kind === 'workflow') {
      if (a.kind === 'compensation') {
        await this.record(a, { ok: false, error: { code: 'unsupported', message: 'a compensation cannot be a sub-workflow', retryable: false } });
        return;
      }
      await this.startChild(a, ref);
      return;
    }
    log.debug({ uses: a.uses }, 'dispatching unit');
    const outcome = await (this.o.execute ?? ((x: DispatchAction) => executeRemote(this.o.nats, x, this.o.subjects)))(a);
    // 3. Record the outcome (the decider ignores it if the attempt is no longer in flight).
    await this.record(a, outcome);
  }

  private async record(a: DispatchAction, outcome: StepOutcome): Promise<void> {
    const ref = { stepId: a.stepId, ...(a.itemIndex === undefined ? {} : { itemIndex: a.itemIndex }) };
    const metadata = this.meta(a.correlationId);
    const command: WorkflowCommand =
      a.kind === 'compensation'
        ? outcome.ok
          ? { type: 'RecordCompensationSucceeded', data: { stepId: a.stepId, output: outcome.output }, metadata }
          : { type: 'RecordCompensationFailed', data: { stepId: a.stepId, error: outcome.error }, metadata }
        : outcome.ok
          ? { type: 'RecordStepSucceeded', data: { ...ref, attempt: a.attempt, output: outcome.output }, metadata }
          : { type: 'RecordStepFailed', data: { ...ref, attempt: a.attempt, error: outcome.error }, metadata };
    for (let attempt = 1; ; attempt++) {
      try {
        await runWorkflowCommand(this.o.store, a.executionId, command);
        return;
      } catch (err) {
        // Lost results are recovered (re-dispatch with the same key), but try a few times first.
        if ((isAppError(err) && !err.retryable) || attempt >= 5 || this.stopped) throw err;
        await sleep(100 * attempt);
      }
    }
  }

  /** Child execution id: derived from the parent unit's idempotency key, so a re-dispatch finds the same child. */
  static childExecutionId(idempotencyKey: string): string {
    return `sub-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32)}`;
  }

  private async startChild(a: DispatchAction, ref: { stepId: string; itemIndex?: number }): Promise<void> {
    if (a.target.kind !== 'workflow') return;
    const childId = WorkflowEngine.childExecutionId(a.idempotencyKey);
    const parent: ParentRef = { executionId: a.executionId, ...ref, attempt: a.attempt };
    let def;
    try {
      def = (await this.definitions.get(a.target.definitionId)).definition;
    } catch (err) {
      await this.record(a, { ok: false, error: { code: 'not_found', message: (err as Error).message, retryable: false } });
      return;
    }
    const input = a.input && typeof a.input === 'object' && !Array.isArray(a.input) ? a.input : {};
    let r;
    try {
      r = await runWorkflowCommand(this.o.store, childId, {
        type: 'StartWorkflow',
        data: { executionId: childId, definition: def, input },
        metadata: { ...this.meta(a.correlationId), causationId: a.idempotencyKey, parent } as CommandMetadata,
      });
    } catch (err) {
      if (isAppError(err) && err.code === 'validation') {
        await this.record(a, { ok: false, error: { code: 'validation', message: err.message, retryable: false } });
        return;
      }
      throw err;
    }
    // Already over (a re-dispatch after the child ended): report now.
    if (isTerminal(r.state)) await this.notifyParent(parent, r.state);
  }

  // ---- timers -------------------------------------------------------------------------

  private async armTimers(executionId: string, partition: number, timers: readonly TimerAction[]): Promise<void> {
    const keys: string[] = [];
    const dues: string[] = [];
    const commands: string[] = [];
    for (const t of timers) {
      const d = t.command.data as { stepId: string; itemIndex?: number; attempt?: number };
      keys.push(`${t.kind}:${unitKey(d)}:${d.attempt ?? 1}`);
      dues.push(t.dueAt);
      commands.push(JSON.stringify(t.command));
    }
    await this.o.pool.query(
      `insert into ${WORKFLOW_SCHEMA}.timers (execution_id, timer_key, partition, due_at, command)
       select $1, k, $2, d::timestamptz, c::jsonb from unnest($3::text[], $4::text[], $5::text[]) as t(k, d, c)
       on conflict (execution_id, timer_key) do update set due_at = excluded.due_at, command = excluded.command`,
      [executionId, partition, keys, dues, commands],
    );
  }

  /**
   * Fire due timers: claim rows with FOR UPDATE SKIP LOCKED (two engines never fire the same
   * row at once), send each command through the decider, delete the row in the same transaction.
   * A crash before commit leaves the row: it fires again, and the decider ignores a repeat.
   */
  private async pollTimers(): Promise<void> {
    if (this.timerPolling || this.stopped) return;
    this.timerPolling = true;
    let client: pg.PoolClient | undefined;
    try {
      for (let more = true; more && !this.stopped; ) {
        client = await this.o.pool.connect();
        await client.query('begin');
        const due = await client.query<{ execution_id: string; timer_key: string; command: WorkflowCommand }>(
          `select execution_id, timer_key, command from ${WORKFLOW_SCHEMA}.timers
           where due_at <= now() order by due_at limit 100 for update skip locked`,
        );
        const fired: { execution_id: string; timer_key: string }[] = [];
        await Promise.all(
          due.rows.map(async (row) => {
            try {
              await runWorkflowCommand(this.o.store, row.execution_id, row.command);
              fired.push(row);
              this.counts.timersFired++;
            } catch (err) {
              if (isAppError(err) && !err.retryable) fired.push(row);
              this.log.warn({ err, executionId: row.execution_id, timer: row.timer_key }, 'timer command failed');
            }
          }),
        );
        if (fired.length > 0) {
          await client.query(
            `delete from ${WORKFLOW_SCHEMA}.timers t using unnest($1::text[], $2::text[]) as f(e, k) where t.execution_id = f.e and t.timer_key = f.k`,
            [fired.map((f) => f.execution_id), fired.map((f) => f.timer_key)],
          );
        }
        await client.query('commit');
        client.release();
        client = undefined;
        more = due.rows.length === 100;
      }
    } catch (err) {
      this.log.warn({ err }, 'timer poll failed');
      await client?.query('rollback').catch(() => undefined);
    } finally {
      client?.release();
      this.timerPolling = false;
    }
  }

  private async flushCheckpoints(): Promise<void> {
    const parts = [...this.dirty].filter((p) => this.owned.has(p));
    this.dirty.clear();
    if (parts.length === 0) return;
    try {
      await this.o.pool.query(
        `insert into ${WORKFLOW_SCHEMA}.saga_checkpoints (partition, position)
         select p, pos from unnest($1::int[], $2::bigint[]) as t(p, pos)
         on conflict (partition) do update set position = greatest(saga_checkpoints.position, excluded.position), updated_at = now()`,
        [parts, parts.map((p) => this.checkpoints.get(p) ?? -1)],
      );
    } catch (err) {
      for (const p of parts) this.dirty.add(p);
      this.log.warn({ err }, 'checkpoint flush failed');
    }
  }

  // ---- recovery -----------------------------------------------------------------------

  /** Drive every active execution of a partition from its full state (start, take-over, periodic). */
  private async recoverPartition(p: number): Promise<void> {
    const rows = await this.o.pool.query<{ execution_id: string }>(`select execution_id from ${WORKFLOW_SCHEMA}.active_executions where partition = $1`, [p]);
    const ids = rows.rows.map((r) => r.execution_id);
    for (let i = 0; i < ids.length && this.owned.has(p) && !this.stopped; i += 8) {
      await Promise.all(ids.slice(i, i + 8).map((id) => this.recoverExecution(id, p)));
    }
    this.counts.recoveries++;
  }

  private async recoverExecution(executionId: string, partition: number): Promise<void> {
    const { state, revision } = await loadExecution(this.o.store, executionId);
    if (state.status === 'not_started') return;
    this.cache.set(executionId, { state, revision });
    if (isTerminal(state)) {
      await this.onTerminal(executionId, state);
      return;
    }
    const a = nextActions(state, new Date().toISOString());
    if (a.timers.length > 0) await this.armTimers(executionId, partition, a.timers);
    for (const d of a.dispatch) this.dispatch(d, false);
    // Dispatched but unfinished: send again with the same key (the executor deduplicates).
    if (state.status === 'running' || state.status === 'canceling') {
      for (const def of state.definition.steps) {
        for (const u of state.steps[def.id]?.units ?? []) {
          if (u?.phase !== 'dispatched') continue;
          this.dispatch(
            {
              kind: 'step',
              executionId,
              stepId: u.stepId,
              ...(u.itemIndex === undefined ? {} : { itemIndex: u.itemIndex }),
              attempt: u.attempt,
              idempotencyKey: u.idempotencyKey,
              uses: def.uses,
              target: parseUses(def.uses),
              input: u.input,
              timeoutMs: u.timeoutMs,
              correlationId: state.correlationId,
            },
            true,
          );
        }
      }
    }
  }
}

function unitIn(state: WorkflowExecutionState, ref: { stepId: string; itemIndex?: number }): UnitState | undefined {
  if (state.status === 'not_started') return undefined;
  return state.steps[ref.stepId]?.units[ref.itemIndex ?? 0];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Build and start an engine (the launcher's entry point). Stop it with `engine.stop()`. */
export async function startWorkflowEngine(o: WorkflowEngineOptions): Promise<WorkflowEngine> {
  const engine = new WorkflowEngine(o);
  await engine.start();
  return engine;
}

import { randomUUID } from 'node:crypto';
import { createInbox, type Subscription } from '@nats-io/nats-core';
import { callProgressSchema } from '@switchyard/contracts';
import { AppError, backoffMs, isAppError, type Logger } from '@switchyard/platform';
import { toDomainEvent, type AllSubscription, type RecordedEvent } from '@switchyard/event-store';
import { ProjectionRunner } from '@switchyard/read-models';
import {
  decideAfter,
  nextActions,
  stepDispatchOf,
  unitKey,
  workflowExecutionDecider,
  workflowExecutionStream,
  workflowLimits,
  type CommandMetadata,
  type DispatchAction,
  type StopAction,
  type TimerAction,
  type UnitState,
  type WorkflowCommand,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import {
  decideWithDispatches,
  isTerminal,
  loadExecution,
  runWorkflowCommand,
  runWorkflowCommandOnNewStream,
} from '@switchyard/workflow-executions';
import { DefinitionStore } from '@switchyard/workflow-executions';
import { executeRemote, stopRemote, type StepOutcome } from './executor.js';
import { PartitionLeases, partitionOf } from './partitions.js';
import { Batcher } from './batcher.js';
import { StateCache } from './state-cache.js';
import { childExecutionId, childOutcomeCommand, joinTree } from './sub-workflows.js';
import type {
  CachedState,
  ParentRef,
  PendingTimeout,
  TrackedCall,
  WorkflowEngineOptions,
  WorkflowEngineStats,
} from './engine-types.js';
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

export type { ParentRef, WorkflowEngineOptions, WorkflowEngineStats } from './engine-types.js';
import { workflowExecutionsProjection } from '@switchyard/read-models';
import { ensureWorkflowSchema, WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';
import { applyWorkflowLimits } from '@switchyard/workflow-executions';
import { BatchWorker } from '@switchyard/workflow-executions';

export const EXECUTION_STREAM_PREFIX = workflowExecutionStream('');
const ACTOR = 'system:orchestrator';
const TERMINAL_EVENTS = new Set(['WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled']);

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
  /**
   * Owned partitions whose executions were recovered since they were acquired: only their timers
   * fire. A timeout armed before a crash must not fire before recovery has re-sent its unit (and
   * restarted its clock), or the downtime would be charged to the step.
   */
  private readonly ready = new Set<number>();
  private readonly checkpoints = new Map<number, number>();
  private readonly dirty = new Set<number>();
  private readonly cache = new StateCache();
  private readonly inflight = new Set<string>();
  private readonly work = new Set<Promise<unknown>>();
  private readonly projections: ProjectionRunner | undefined;
  private readonly batchWorker: BatchWorker | undefined;
  private sub: AllSubscription | undefined;
  private restart = false;
  private lastDelivered = -1;
  private loop: Promise<void> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  /** Where workers send notices about this process's calls (see listenForProgress). */
  private readonly progressSubject = createInbox();
  private progressSub: Subscription | undefined;
  /** Step calls in flight over NATS, by idempotency key: whom a notice is about, and what its worker said last. */
  private readonly calls = new Map<string, TrackedCall>();
  private acquireChain: Promise<void> = Promise.resolve();
  /** Partitions whose lease this engine holds, owned or still being taken up (see onAcquire). */
  private readonly leased = new Set<number>();
  private timerPolling = false;
  private counts = { eventsHandled: 0, dispatches: 0, timersFired: 0, recoveries: 0, resends: 0 };
  private readonly sagaConcurrency: number;
  private active = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly pending = new Map<number, { position: number; done: boolean }[]>();
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Step timeouts by execution and timer key, written in batches by `flushTimeouts` (most never are: the step ends first). */
  private readonly pendingTimeouts = new Map<string, Map<string, PendingTimeout>>();
  /** active_executions inserts and deletes of many executions go in one statement each (group commit). */
  private readonly activeInserts = new Batcher<{ id: string; partition: number }>((rows) =>
    this.o.pool
      .query(
        `insert into ${WORKFLOW_SCHEMA}.active_executions (execution_id, partition)
         select * from unnest($1::text[], $2::int[]) on conflict do nothing`,
        [rows.map((r) => r.id), rows.map((r) => r.partition)],
      )
      .then(() => undefined),
  );
  private readonly activeDeletes = new Batcher<string>((ids) =>
    this.o.pool
      .query(`delete from ${WORKFLOW_SCHEMA}.active_executions where execution_id = any($1::text[])`, [ids])
      .then(() => undefined),
  );
  private readonly timerDeletes = new Batcher<string>((ids) =>
    this.o.pool
      .query(`delete from ${WORKFLOW_SCHEMA}.timers where execution_id = any($1::text[])`, [ids])
      .then(() => undefined),
  );

  constructor(private readonly o: WorkflowEngineOptions) {
    applyWorkflowLimits(o.limits);
    this.memberId = o.memberId ?? `engine-${randomUUID().slice(0, 8)}`;
    this.partitions = o.partitions ?? 16;
    this.sagaConcurrency = o.sagaConcurrency ?? 32;
    this.log = o.logger.child({ component: 'workflow-engine', memberId: this.memberId });
    this.definitions = new DefinitionStore(o.pool, { store: o.store, logger: o.logger });
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
      onAcquire: (p) => this.onAcquire(p),
      onRelease: (p) => this.onRelease(p),
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
    await ensureWorkflowSchema(this.o.pool);
    // The definitions read model runs here too: it seeds the built-ins and answers the engine's reads.
    await this.definitions.start();
    await this.projections?.start();
    this.listenForProgress();
    this.loop = this.runLoop();
    await this.leases.start();
    const every = (ms: number, fn: () => Promise<void> | void) => this.timers.push(setInterval(() => void fn(), ms));
    every(this.o.timerPollMs ?? 200, () => this.pollTimers());
    every(this.o.checkpointIntervalMs ?? 250, async () => {
      await this.flushTimeouts(false);
      await this.flushCheckpoints();
    });
    every(this.o.recoveryIntervalMs ?? 15_000, () => {
      for (const p of this.owned) this.track(this.recoverPartition(p));
    });
    this.batchWorker?.start();
    this.log.info({ partitions: this.partitions }, 'workflow engine started');
  }

  /** Stop taking work, wait for in-flight work (bounded), save checkpoints, release partitions. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.batchWorker?.stop();
    await this.sub?.close();
    this.progressSub?.unsubscribe();
    await this.loop?.catch(() => undefined);
    await Promise.race([
      Promise.allSettled([...this.work, ...this.chains.values()]),
      new Promise((r) => setTimeout(r, 5_000)),
    ]);
    await this.flushTimeouts(true);
    await this.flushCheckpoints();
    await this.leases.stop();
    await this.projections?.stop();
    await this.definitions.stop();
    this.log.info(this.counts, 'workflow engine stopped');
  }

  stats(): WorkflowEngineStats {
    return {
      memberId: this.memberId,
      partitions: [...this.owned].sort((a, b) => a - b),
      inflight: this.inflight.size,
      ...this.counts,
    };
  }

  /** Resolves when the read model has processed the current head (tests, `?wait`). */
  async readModelCaughtUp(timeoutMs = 30_000): Promise<void> {
    await this.projections?.waitFor(undefined, undefined, timeoutMs);
  }

  /**
   * Workers' notices about the calls this process sent (`queued` for a slot, `started` after the
   * wait; see executeRemote): recorded as RecordStepQueued / RecordStepStarted, which move the
   * attempt's deadline, so its timeout counts the call's own work and not its wait in a queue. A
   * notice for a call no longer in flight here is dropped (a re-send after recovery brings a new one).
   */
  private listenForProgress(): void {
    if (this.o.execute) return; // units do not go over NATS: nobody sends notices
    this.progressSub = this.o.nats.subscribe(this.progressSubject, {
      callback: (err, msg) => {
        if (err || this.stopped) return;
        let body: unknown;
        try {
          body = msg.json();
        } catch {
          body = undefined;
        }
        const parsed = callProgressSchema.safeParse(body);
        if (!parsed.success) {
          this.log.warn({ issues: parsed.error.issues }, 'ignoring a malformed call progress notice');
          return;
        }
        const call = this.calls.get(parsed.data.idempotency_key);
        if (!call) return;
        const a = call.action;
        // `queued` is repeated while the call waits (a heartbeat): only a new state is recorded.
        call.heardAt = Date.now();
        if (call.state === parsed.data.state || (call.state === 'started' && parsed.data.state === 'queued')) return;
        call.state = parsed.data.state;
        const ref = {
          stepId: a.stepId,
          ...(a.itemIndex === undefined ? {} : { itemIndex: a.itemIndex }),
          attempt: a.attempt,
        };
        const type = parsed.data.state === 'queued' ? 'RecordStepQueued' : 'RecordStepStarted';
        this.track(
          this.command(a.executionId, { type, data: ref, metadata: this.meta(a.correlationId) }).catch((e: unknown) => {
            // Not worth failing anything over: the attempt keeps its older (shorter) deadline.
            this.log.warn(
              {
                err: e,
                executionId: a.executionId,
                unit: unitKey(ref),
                state: parsed.data.state,
                correlationId: a.correlationId,
              },
              'recording a call progress notice failed',
            );
          }),
        );
      },
    });
  }

  // ---- partitions ---------------------------------------------------------------------

  private onAcquire(p: number, attempt = 1): void {
    this.leased.add(p);
    this.acquireChain = this.acquireChain.then(async () => {
      // Released (or stopped) while waiting for a retry: the lease is someone else's to take up.
      if (!this.leased.has(p) || this.stopped || this.owned.has(p)) return;
      try {
        const r = await this.o.pool.query<{ position: string }>(
          `select position from ${WORKFLOW_SCHEMA}.saga_checkpoints where partition = $1`,
          [p],
        );
        const cp = r.rows[0] ? Number(r.rows[0].position) : -1;
        this.checkpoints.set(p, cp);
        this.owned.add(p);
        this.log.debug({ partition: p, checkpoint: cp }, 'partition acquired');
        // Events of this partition before what the subscription has delivered must be seen again.
        if (cp < this.lastDelivered) this.requestRestart();
        this.track(
          this.recoverPartition(p, true).finally(() => {
            if (this.owned.has(p)) this.ready.add(p);
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

  private onRelease(p: number): void {
    this.leased.delete(p);
    this.owned.delete(p);
    this.ready.delete(p);
    this.dirty.delete(p);
    this.pending.delete(p);
    // The new owner recovers these executions (and re-arms their timers) from their events.
    for (const id of this.cache.keys()) if (partitionOf(id, this.partitions) === p) this.cache.delete(id);
    for (const id of this.pendingTimeouts.keys())
      if (partitionOf(id, this.partitions) === p) this.pendingTimeouts.delete(id);
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
    // An execution with work queued already joins its chain without a slot of its own: the events
    // of one append then queue in order before anything their handling starts (a start's dispatch
    // record is handled before the engine records that dispatch itself, which then appends nothing).
    const joined = this.chains.has(executionId);
    if (!joined) {
      while (this.active >= this.sagaConcurrency) await new Promise<void>((r) => this.slotWaiters.push(r));
      this.active++;
    }
    const entry = { position: e.position, done: false };
    const queue = this.pending.get(p) ?? [];
    queue.push(entry);
    this.pending.set(p, queue);
    void this.onChain(executionId, async () => {
      try {
        // A failing decision stalls this execution (retried) rather than skipping the event.
        for (let attempt = 1; !this.stopped; attempt++) {
          try {
            await this.process(executionId, p, e);
            break;
          } catch (err) {
            this.log.warn(
              { err, executionId, position: e.position, attempt, correlationId: e.metadata.correlationId },
              'saga step failed; retrying',
            );
            await sleep(Math.min(2_000, 50 * attempt));
          }
        }
      } finally {
        entry.done = true;
        this.counts.eventsHandled++;
        this.advance(p);
        if (!joined) {
          this.active--;
          this.slotWaiters.shift()?.();
        }
      }
    });
  }

  /** Run `fn` after everything queued for this execution (saga events, local commands): one at a time per execution. */
  private onChain<T>(executionId: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(executionId) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.chains.set(executionId, tail);
    void tail.then(() => {
      if (this.chains.get(executionId) === tail) this.chains.delete(executionId);
    });
    return run;
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
    const c = this.cache.get(executionId);
    // Appended by this process and handled right after its commit (see `command`).
    if (c && e.revision <= c.revision) {
      // The end was handled at its commit; its state was kept only until the event came by.
      if (e.revision === c.revision && isTerminal(c.state)) this.cache.delete(executionId);
      return;
    }
    const event = toDomainEvent<WorkflowEvent>(e);
    let entry: CachedState;
    if (c && c.revision === e.revision - 1) {
      entry = { ...c, state: workflowExecutionDecider.evolve(c.state, event), revision: e.revision };
    } else if (e.revision === 0) {
      // The first event is the whole history: nothing to read. No timer can exist yet.
      entry = {
        state: workflowExecutionDecider.evolve(workflowExecutionDecider.initialState, event),
        revision: 0,
        timersInTable: false,
      };
    } else {
      const events = await this.o.store.readStream(workflowExecutionStream(executionId), { maxCount: e.revision + 1 });
      let state = workflowExecutionDecider.initialState;
      for (const r of events) state = workflowExecutionDecider.evolve(state, toDomainEvent<WorkflowEvent>(r));
      const first = events[0]?.revision === 0 ? events[0] : undefined;
      // At revision 0 nothing can have armed a timer yet.
      entry = {
        state,
        revision: e.revision,
        timersInTable: e.revision > 0,
        parent: first ? parentIn(first) : undefined,
      };
    }
    if (event.type === 'WorkflowStarted') entry.parent = parentIn(e);
    this.cache.remember(executionId, entry);
    try {
      await this.effects(executionId, partition, [{ event, state: entry.state }], entry);
    } catch (err) {
      // Forget the state, so the retry handles the event again.
      this.cache.delete(executionId);
      throw err;
    }
    if (isTerminal(entry.state)) this.cache.delete(executionId);
  }

  /**
   * The I/O that appended events ask for (`items`: each event with the state right after it;
   * `entry`: the state after the last one). Steps:
   *  1. a new execution joins active_executions (what a new owner recovers);
   *  2. timers: step timeouts wait in memory (`flushTimeouts`), the others are written now;
   *  3. units go out in the background (already recorded as dispatched, or recorded first);
   *  4. a cancel reaches running sub-workflows; the end drops timers and tells a parent.
   */
  private async effects(
    executionId: string,
    partition: number,
    items: readonly { event: WorkflowEvent; state: WorkflowExecutionState }[],
    entry: CachedState,
  ): Promise<void> {
    const timers = new Map<string, TimerAction>();
    const dispatches: DispatchAction[] = [];
    const stops: StopAction[] = [];
    let due = false;
    for (const { event, state } of items) {
      // A retried execution is active again: recovery must find it like a new one.
      if (event.type === 'WorkflowStarted' || event.type === 'ExecutionRetried')
        await this.activeInserts.add({ id: executionId, partition });
      const actions = decideAfter(event, state);
      for (const t of actions.timers) timers.set(timerKey(t), t);
      if (actions.due.length > 0) due = true;
      dispatches.push(...actions.dispatch);
      stops.push(...actions.stop);
    }
    // 2. Durable before the checkpoint moves past the events. A step timeout may wait: if this process
    //    dies first, the partition's next owner re-arms every timer from the events (recovery).
    const now = Date.now();
    const write: TimerAction[] = [];
    for (const t of timers.values()) {
      if (t.kind === 'timeout' && Date.parse(t.dueAt) - now > TIMEOUT_WRITE_AHEAD_MS) {
        const m = this.pendingTimeouts.get(executionId) ?? new Map<string, PendingTimeout>();
        m.set(timerKey(t), { partition, timer: t, since: now });
        this.pendingTimeouts.set(executionId, m);
      } else write.push(t);
    }
    if (write.length > 0) {
      await this.armTimers(executionId, partition, write);
      entry.timersInTable = true;
    }
    if (due) setImmediate(() => void this.pollTimers());
    // 3. A unit the same append already recorded as dispatched goes out at once; a scheduled one is recorded first.
    for (const d of dispatches) {
      if (d.kind === 'compensation') {
        this.dispatch(d, false);
        continue;
      }
      const u = unitIn(entry.state, d);
      if (u?.attempt !== d.attempt) continue;
      if (u.phase === 'dispatched') this.dispatch(d, true);
      else if (u.phase === 'scheduled') this.dispatch(d, false);
    }
    // 4. Cancel (running units are asked to stop) and end.
    if (stops.length > 0) await this.stopUnits(stops);
    if (items.some((i) => TERMINAL_EVENTS.has(i.event.type)) && isTerminal(entry.state))
      await this.onTerminal(executionId, entry.state, entry);
  }

  /**
   * Run a command for an execution. When this process owns it and holds its state, the fast
   * path: decide against the cached state, fold in the dispatch record of every unit the
   * decision scheduled (one append, not two), append with the known revision expected, and do
   * the effects right after the commit instead of waiting for the event to come back through
   * the subscription. A revision conflict (another writer: timer, gateway, another process)
   * falls back to read-decide-append, and the subscription handles those events as usual.
   */
  private async command(executionId: string, command: WorkflowCommand): Promise<{ state: WorkflowExecutionState }> {
    const partition = partitionOf(executionId, this.partitions);
    if (!this.owned.has(partition)) return runWorkflowCommand(this.o.store, executionId, command);
    // On the chain: the saga may be handling an event of this execution right now.
    return this.onChain(executionId, async () => {
      const c = this.cache.get(executionId);
      if (!c || !this.owned.has(partition)) return runWorkflowCommand(this.o.store, executionId, command);
      // 1. Decide, then record the dispatch of every unit the decision scheduled (each event with
      //    the state right after it, for the effects). The owner's cached state is trusted: its
      //    refusal or empty decision stands without a read.
      let items: { event: WorkflowEvent; state: WorkflowExecutionState }[] = [];
      const r = await runWorkflowCommand(this.o.store, executionId, command, {
        known: c,
        decideKnown: (cmd, s) => {
          items = decideWithDispatches(cmd, s);
          return { events: items.map((i) => i.event), state: items.length > 0 ? items[items.length - 1]!.state : s };
        },
        trust: { refusal: true, empty: true },
      });
      // 2. Someone else wrote first (timer, gateway, another process): the subscription handles those events.
      if (r.decidedOn === 'read' || r.events.length === 0) return { state: r.state };
      // 3. Effects now; should they fail, forget the state so the subscription handles these events again.
      const entry: CachedState = { ...c, state: r.state, revision: r.revision };
      this.cache.remember(executionId, entry);
      try {
        await this.effects(executionId, partition, items, entry);
      } catch (err) {
        this.cache.delete(executionId);
        this.log.warn(
          { err, executionId, correlationId: 'correlationId' in r.state ? r.state.correlationId : undefined },
          'effects after append failed; left to the subscription',
        );
      }
      return { state: r.state };
    });
  }

  /**
   * The end: drop timers (only if any may exist), tell a parent, leave active_executions. With
   * `entry` (handled at the commit) the state stays cached until the subscription brings the end
   * by, so those events are skipped rather than read and handled again.
   */
  private async onTerminal(executionId: string, state: WorkflowExecutionState, entry?: CachedState): Promise<void> {
    this.pendingTimeouts.delete(executionId);
    if (entry?.timersInTable !== false) await this.timerDeletes.add(executionId);
    const parent = entry?.parent === undefined ? await this.parentOf(executionId) : (entry.parent ?? undefined);
    if (parent) await this.notifyParent(parent, state);
    await this.activeDeletes.add(executionId);
    if (!entry) this.cache.delete(executionId);
  }

  /**
   * Ask running units to stop (see decideAfter: the cancel names them): sub-workflows are canceled
   * here, MCP calls and agent tasks through their workers (stopRemote). Failures are logged: a unit
   * that does not stop still ends by itself or by its timeout.
   */
  private async stopUnits(stops: readonly StopAction[]): Promise<void> {
    for (const s of stops) {
      const log = {
        executionId: s.executionId,
        stepId: s.stepId,
        itemIndex: s.itemIndex,
        correlationId: s.correlationId,
      };
      if (s.target.kind === 'workflow') {
        const childId = WorkflowEngine.childExecutionId(s.idempotencyKey);
        try {
          await runWorkflowCommand(this.o.store, childId, {
            type: 'RequestCancel',
            data: { reason: `parent canceled: ${s.reason}` },
            metadata: this.meta(s.correlationId),
          });
        } catch (err) {
          // Not started yet or already over: nothing to cancel.
          if (!(isAppError(err) && (err.code === 'not_found' || err.code === 'illegal_state'))) throw err;
        }
        continue;
      }
      this.log.info({ ...log, uses: s.target.kind }, 'asking a running unit to stop');
      this.track((this.o.stop ?? ((x: StopAction) => stopRemote(this.o.nats, x, ACTOR, this.o.subjects)))(s));
    }
  }

  private async parentOf(executionId: string): Promise<ParentRef | undefined> {
    const first = await this.o.store.readStream(workflowExecutionStream(executionId), { maxCount: 1 });
    return (first[0]?.metadata as { parent?: ParentRef } | undefined)?.parent;
  }

  private async notifyParent(parent: ParentRef, child: WorkflowExecutionState): Promise<void> {
    const correlationId = 'correlationId' in child ? child.correlationId : parent.executionId;
    const command = childOutcomeCommand(parent, child, this.meta(correlationId));
    if (!command) return;
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
    // 1. Record the dispatch (starts the attempt's timeout); drop the unit if it is no longer scheduled.
    if (a.kind === 'step' && !recorded) {
      const r = await this.command(a.executionId, {
        type: 'RecordStepDispatched',
        data: { ...ref, attempt: a.attempt },
        metadata: this.meta(a.correlationId),
      });
      const u = unitIn(r.state, ref);
      if (!u || u.phase !== 'dispatched' || u.attempt !== a.attempt) return;
      // Recorded as dispatched with its schedule (see decideWithDispatches), and canceled before this
      // engine sent it: it ends here unsent, as a unit canceled while scheduled does. Sent anyway, a
      // sub-workflow unit would start a child of a canceled execution, and that child the next one.
      // Should an earlier owner have sent it after all (a take-over replays the schedule), its worker
      // is asked to stop it, as the cancel did.
      if (r.state.status === 'canceling') {
        await this.record(a, {
          ok: false,
          error: {
            code: 'canceled',
            message: 'the execution was canceled before this unit was sent',
            retryable: false,
          },
        });
        if (a.target.kind !== 'workflow') {
          const reason = r.state.cancel.reason;
          const stop: StopAction = {
            executionId: a.executionId,
            ...ref,
            attempt: a.attempt,
            idempotencyKey: a.idempotencyKey,
            target: a.target,
            reason,
            correlationId: a.correlationId,
          };
          this.track((this.o.stop ?? ((x: StopAction) => stopRemote(this.o.nats, x, ACTOR, this.o.subjects)))(stop));
        }
        return;
      }
      // Recorded as dispatched by whoever scheduled it (a start records its first units' dispatch,
      // see decideWithDispatches) a while ago (this engine was busy or away): the attempt's clock
      // restarts with this send, as after a take-over, so the wait is not charged to the step.
      const since = u.queuedAt || u.startedAt || !u.timeoutAt ? undefined : Date.parse(u.timeoutAt) - u.timeoutMs;
      if (since !== undefined && Date.now() - since > LATE_PICKUP_MS) {
        await this.command(a.executionId, {
          type: 'RecordStepRedispatched',
          data: { ...ref, attempt: a.attempt },
          metadata: this.meta(a.correlationId),
        });
      }
    }
    // 2. Run it: a child execution for sub-workflows (its end reports back), a NATS request otherwise.
    if (a.target.kind === 'workflow') {
      if (a.kind === 'compensation') {
        await this.record(a, {
          ok: false,
          error: { code: 'unsupported', message: 'a compensation cannot be a sub-workflow', retryable: false },
        });
        return;
      }
      await this.startChild(a, ref);
      return;
    }
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug(
        {
          executionId: a.executionId,
          unit: unitKey(ref),
          attempt: a.attempt,
          uses: a.uses,
          correlationId: a.correlationId,
        },
        'dispatching unit',
      );
    }
    let outcome: StepOutcome;
    if (this.o.execute) outcome = await this.o.execute(a);
    else {
      const tracked = a.kind === 'step' && (a.target.kind === 'mcp' || a.target.kind === 'agent');
      const call: TrackedCall = { action: a, heardAt: Date.now() };
      if (tracked) this.calls.set(a.idempotencyKey, call);
      // A call its worker said is queued, and then nothing for a while: the worker may have died
      // with its queue. executeRemote then sends it again under the same key (see CALL_QUEUED_SILENCE_MS).
      const queuedSilenceMs = () => (call.state === 'queued' ? Date.now() - call.heardAt : 0);
      const onResend = () => {
        call.heardAt = Date.now();
        this.counts.resends++;
        this.log.info(
          { executionId: a.executionId, unit: unitKey(ref), attempt: a.attempt, correlationId: a.correlationId },
          'queued call silent: sending it again',
        );
      };
      try {
        outcome = await executeRemote(
          this.o.nats,
          a,
          this.o.subjects,
          tracked
            ? {
                progressSubject: this.progressSubject,
                queuedSilenceMs,
                onResend,
                ...(this.o.queuedCallSilenceMs ? { silenceLimitMs: this.o.queuedCallSilenceMs } : {}),
              }
            : {},
        );
      } finally {
        if (tracked && this.calls.get(a.idempotencyKey) === call) this.calls.delete(a.idempotencyKey);
      }
    }
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
        await this.command(a.executionId, command);
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
    return childExecutionId(idempotencyKey);
  }

  private async startChild(a: DispatchAction, ref: { stepId: string; itemIndex?: number }): Promise<void> {
    if (a.target.kind !== 'workflow') return;
    const childId = WorkflowEngine.childExecutionId(a.idempotencyKey);
    const parent: ParentRef = { executionId: a.executionId, ...ref, attempt: a.attempt };
    // Bounds on the tree (a workflow starting itself through another one would never end).
    const limits = workflowLimits();
    const depth = (a.depth ?? 0) + 1;
    const rootExecutionId = a.rootExecutionId ?? a.executionId;
    if (depth > limits.maxSubworkflowDepth) {
      const message = `sub-workflow "${a.target.definitionId}" would run at depth ${depth}; at most ${limits.maxSubworkflowDepth} (WORKFLOW_MAX_SUBWORKFLOW_DEPTH)`;
      this.log.warn(
        { executionId: a.executionId, rootExecutionId, depth, correlationId: a.correlationId },
        'sub-workflow depth limit reached',
      );
      await this.record(a, { ok: false, error: { code: 'subworkflow_depth_exceeded', message, retryable: false } });
      return;
    }
    let def;
    try {
      def = (await this.definitions.get(a.target.definitionId)).definition;
    } catch (err) {
      await this.record(a, {
        ok: false,
        error: { code: 'not_found', message: (err as Error).message, retryable: false },
      });
      return;
    }
    if (!(await joinTree(this.o.pool, childId, rootExecutionId, a.executionId, depth, limits.maxExecutionsPerRoot))) {
      const message = `root execution ${rootExecutionId} already has ${limits.maxExecutionsPerRoot} sub-workflow executions (WORKFLOW_MAX_EXECUTIONS_PER_ROOT)`;
      this.log.warn(
        { executionId: a.executionId, rootExecutionId, correlationId: a.correlationId },
        'sub-workflow executions-per-root limit reached',
      );
      await this.record(a, { ok: false, error: { code: 'subworkflow_limit_exceeded', message, retryable: false } });
      return;
    }
    const input = a.input && typeof a.input === 'object' && !Array.isArray(a.input) ? a.input : {};
    let r;
    try {
      r = await runWorkflowCommandOnNewStream(this.o.store, childId, {
        type: 'StartWorkflow',
        data: {
          executionId: childId,
          definition: def,
          input,
          lineage: { rootExecutionId, parentExecutionId: a.executionId, depth },
        },
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
    if (isTerminal(r.state)) {
      await this.notifyParent(parent, r.state);
      return;
    }
    // A cancel of the parent appended before the child existed found nothing to cancel (stopUnits):
    // look again now that it exists. Either the cancel came after this read, and then its stop
    // reaches the child, or this read sees it.
    if (!(await this.parentStillWaits(a, ref))) {
      try {
        await runWorkflowCommand(this.o.store, childId, {
          type: 'RequestCancel',
          data: { reason: 'parent is no longer running' },
          metadata: this.meta(a.correlationId),
        });
      } catch (err) {
        if (!(isAppError(err) && (err.code === 'not_found' || err.code === 'illegal_state'))) throw err;
      }
    }
  }

  /** Whether the parent still runs and still waits on this unit (read from the store, not the cache). */
  private async parentStillWaits(a: DispatchAction, ref: { stepId: string; itemIndex?: number }): Promise<boolean> {
    const c = this.cache.get(a.executionId);
    let state = c ? c.state : workflowExecutionDecider.initialState;
    const newer = await this.o.store.readStream(
      workflowExecutionStream(a.executionId),
      c ? { fromRevision: c.revision + 1 } : {},
    );
    for (const e of newer) state = workflowExecutionDecider.evolve(state, toDomainEvent<WorkflowEvent>(e));
    const u = unitIn(state, ref);
    return state.status === 'running' && u?.phase === 'dispatched' && u.attempt === a.attempt;
  }

  // ---- timers -------------------------------------------------------------------------

  private async armTimers(executionId: string, partition: number, timers: readonly TimerAction[]): Promise<void> {
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
  private async pollTimers(): Promise<void> {
    if (this.timerPolling || this.stopped || this.ready.size === 0) return;
    this.timerPolling = true;
    const parts = [...this.ready];
    try {
      for (let more = true; more && !this.stopped;) {
        const due = { rows: await claimDueTimers(this.o.pool, parts, 100) };
        const fired: { execution_id: string; timer_key: string; lease: Date }[] = [];
        const again: { execution_id: string; timer_key: string; lease: Date }[] = [];
        await Promise.all(
          due.rows.map(async (row) => {
            try {
              await runWorkflowCommand(this.o.store, row.execution_id, row.command);
              fired.push(row);
              this.counts.timersFired++;
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
      this.log.warn({ err }, 'timer poll failed');
    } finally {
      this.timerPolling = false;
    }
  }

  /**
   * Write the step timeouts that are still needed: those whose unit is still dispatched (with
   * that attempt) after TIMEOUT_DEFER_MS, or all of them (`all`, on stop). A step that ends
   * sooner never costs a timer row. One statement for every execution.
   */
  private async flushTimeouts(all: boolean): Promise<void> {
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
        if (!this.owned.has(p.partition)) continue;
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
      this.log.warn({ err }, 'timeout flush failed');
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

  /**
   * Drive every active execution of a partition from its full state (start, take-over, periodic).
   * `acquired`: the partition was just taken (start, take-over), so nothing of it runs here yet.
   */
  private async recoverPartition(p: number, acquired = false): Promise<void> {
    const rows = await this.o.pool.query<{ execution_id: string }>(
      `select execution_id from ${WORKFLOW_SCHEMA}.active_executions where partition = $1`,
      [p],
    );
    const ids = rows.rows.map((r) => r.execution_id);
    for (let i = 0; i < ids.length && this.owned.has(p) && !this.stopped; i += 8) {
      await Promise.all(
        ids.slice(i, i + 8).map((id) =>
          this.recoverExecution(id, p, acquired).catch((err: unknown) => {
            // One bad execution must not hold up the rest (nor the partition's timers); the periodic pass tries again.
            this.log.warn({ err, executionId: id, partition: p }, 'recovering an execution failed');
          }),
        ),
      );
    }
    this.counts.recoveries++;
  }

  private async recoverExecution(executionId: string, partition: number, acquired: boolean): Promise<void> {
    const { state } = await loadExecution(this.o.store, executionId);
    if (state.status === 'not_started') return;
    if (isTerminal(state)) {
      await this.onTerminal(executionId, state);
      return;
    }
    const a = nextActions(state, new Date().toISOString());
    if (a.timers.length > 0) await this.armTimers(executionId, partition, a.timers);
    for (const d of a.dispatch) this.dispatch(d, false);
    // Canceling when the last owner died: its stop requests may be lost; asking again is harmless.
    if (a.stop.length > 0) await this.stopUnits(a.stop);
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
            await this.command(executionId, {
              type: 'RecordStepRedispatched',
              data: { ...ref, attempt: u.attempt },
              metadata: this.meta(state.correlationId),
            });
          }
          this.dispatch(d, true);
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

/** A unit recorded as dispatched this long before this engine sends it has its clock restarted (see runDispatch). */
const LATE_PICKUP_MS = 1_000;

const parentIn = (e: RecordedEvent): ParentRef | null => (e.metadata as { parent?: ParentRef }).parent ?? null;

/** Build and start an engine (the launcher's entry point). Stop it with `engine.stop()`. */
export async function startWorkflowEngine(o: WorkflowEngineOptions): Promise<WorkflowEngine> {
  const engine = new WorkflowEngine(o);
  await engine.start();
  return engine;
}

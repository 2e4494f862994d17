import { type Logger } from '@switchyard/platform';
import { toDomainEvent, type AllSubscription, type RecordedEvent } from '@switchyard/event-store';
import {
  decideAfter,
  workflowExecutionDecider,
  workflowExecutionStream,
  type DispatchAction,
  type StopAction,
  type TimerAction,
  type WorkflowCommand,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { decideWithDispatches, isTerminal, runWorkflowCommand, WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';
import { partitionOf } from './partitions.js';
import { Batcher } from './batcher.js';
import type { StateCache } from './state-cache.js';
import { childOutcomeCommand } from './sub-workflows.js';
import type { CachedState, ParentRef, WorkflowEngineOptions } from './engine-types.js';
import { sleep, unitIn, type EngineRuntime } from './engine-runtime.js';
import type { TimerRunner } from './timer-runner.js';
import { timerKey } from './timers.js';

export const EXECUTION_STREAM_PREFIX = workflowExecutionStream('');
const TERMINAL_EVENTS = new Set(['WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled']);

/** What the saga needs of step dispatch: sending units, and asking running ones to stop. */
export interface UnitDispatch {
  dispatch(a: DispatchAction, recorded: boolean): void;
  stopUnits(stops: readonly StopAction[]): Promise<void>;
}

/**
 * The saga of WorkflowExecution: a checkpointed subscription to $all (streams
 * `workflow_execution-`) whose events of owned partitions are folded into the execution's state
 * and turned into effects (timers, dispatches, stops, the end); the command fast path of the
 * owner (`command`); the partitions' checkpoints.
 */
export class Saga {
  private readonly o: WorkflowEngineOptions;
  private readonly log: Logger;
  private readonly cache: StateCache;
  private readonly checkpoints = new Map<number, number>();
  private readonly dirty = new Set<number>();
  private sub: AllSubscription | undefined;
  private restart = false;
  private lastDelivered = -1;
  private loop: Promise<void> | undefined;
  private readonly sagaConcurrency: number;
  private active = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly pending = new Map<number, { position: number; done: boolean }[]>();
  private readonly chains = new Map<string, Promise<unknown>>();
  /** active_executions inserts and deletes of many executions go in one statement each (group commit). */
  private readonly activeInserts = new Batcher<{ id: string; partition: number; startedBy: string | null }>((rows) =>
    this.o.pool
      .query(
        `insert into ${WORKFLOW_SCHEMA}.active_executions (execution_id, partition, started_by)
         select * from unnest($1::text[], $2::int[], $3::text[]) on conflict do nothing`,
        [rows.map((r) => r.id), rows.map((r) => r.partition), rows.map((r) => r.startedBy)],
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

  constructor(
    private readonly rt: EngineRuntime,
    private readonly timers: TimerRunner,
    private readonly units: UnitDispatch,
  ) {
    this.o = rt.o;
    this.log = rt.log;
    this.cache = rt.cache;
    this.sagaConcurrency = rt.o.sagaConcurrency ?? 32;
  }

  /** Run the loop until stop (it idles while no partition is owned). */
  start(): void {
    this.loop = this.runLoop();
  }

  /** End the loop (the engine is stopping): close the subscription, wait for the loop to leave. */
  async stop(): Promise<void> {
    await this.sub?.close();
    await this.loop?.catch(() => undefined);
  }

  /** Work queued on executions' chains (the engine's stop waits for it, bounded). */
  inProgress(): Promise<unknown>[] {
    return [...this.chains.values()];
  }

  /** A partition taken up (see Recovery): its events after `checkpoint` are handled. */
  resume(p: number, checkpoint: number): void {
    this.checkpoints.set(p, checkpoint);
    // Events of this partition before what the subscription has delivered must be seen again.
    if (checkpoint < this.lastDelivered) this.requestRestart();
  }

  /** A partition released: its unsaved checkpoint and queued positions are the new owner's business. */
  release(p: number): void {
    this.dirty.delete(p);
    this.pending.delete(p);
  }

  private requestRestart(): void {
    this.restart = true;
    void this.sub?.close();
  }

  private async runLoop(): Promise<void> {
    while (!this.rt.stopped) {
      if (this.rt.owned.size === 0) {
        await sleep(100);
        continue;
      }
      this.restart = false;
      const from = Math.min(...[...this.rt.owned].map((p) => this.checkpoints.get(p) ?? -1));
      this.lastDelivered = from;
      const sub = this.o.store.subscribeToAll({ from, streamPrefixes: [EXECUTION_STREAM_PREFIX] });
      this.sub = sub;
      try {
        for await (const e of sub) {
          if (this.rt.stopped || this.restart) break;
          await this.handle(e);
          this.lastDelivered = e.position;
        }
      } catch (err) {
        if (!this.rt.stopped) this.log.error({ err }, 'saga subscription failed; resubscribing');
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
    const p = partitionOf(executionId, this.rt.partitions);
    if (!this.rt.owned.has(p) || e.position <= (this.checkpoints.get(p) ?? -1)) return;
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
        for (let attempt = 1; !this.rt.stopped; attempt++) {
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
        this.rt.counts.eventsHandled++;
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
    if (moved >= 0 && this.rt.owned.has(p) && moved > (this.checkpoints.get(p) ?? -1)) {
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
   *  4. stops (a cancel, a timed-out attempt, units given up by StepStopped) reach whoever runs
   *     each sent unit, a sub-workflow's child included; the end drops timers and tells a parent.
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
        await this.activeInserts.add({
          id: executionId,
          partition,
          startedBy: state.status === 'not_started' ? null : (state.startedBy ?? null),
        });
      const actions = decideAfter(event, state);
      for (const t of actions.timers) timers.set(timerKey(t), t);
      if (actions.due.length > 0) due = true;
      dispatches.push(...actions.dispatch);
      stops.push(...actions.stop);
    }
    // 2. Durable before the checkpoint moves past the events. A step timeout may wait: if this process
    //    dies first, the partition's next owner re-arms every timer from the events (recovery).
    if (await this.timers.armDecided(executionId, partition, [...timers.values()])) entry.timersInTable = true;
    if (due) setImmediate(() => void this.timers.pollTimers());
    // 3. A unit the same append already recorded as dispatched goes out at once; a scheduled one is recorded first.
    for (const d of dispatches) {
      if (d.kind === 'compensation') {
        this.units.dispatch(d, false);
        continue;
      }
      const u = unitIn(entry.state, d);
      if (u?.attempt !== d.attempt) continue;
      if (u.phase === 'dispatched') this.units.dispatch(d, true);
      else if (u.phase === 'scheduled') this.units.dispatch(d, false);
    }
    // 4. Stops (sent units of a cancel, a timeout or a StepStopped are asked to stop), then the end.
    if (stops.length > 0) await this.units.stopUnits(stops);
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
  async command(executionId: string, command: WorkflowCommand): Promise<{ state: WorkflowExecutionState }> {
    const partition = partitionOf(executionId, this.rt.partitions);
    if (!this.rt.owned.has(partition)) return runWorkflowCommand(this.o.store, executionId, command);
    // On the chain: the saga may be handling an event of this execution right now.
    return this.onChain(executionId, async () => {
      const c = this.cache.get(executionId);
      if (!c || !this.rt.owned.has(partition)) return runWorkflowCommand(this.o.store, executionId, command);
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
  async onTerminal(executionId: string, state: WorkflowExecutionState, entry?: CachedState): Promise<void> {
    this.timers.forget(executionId);
    if (entry?.timersInTable !== false) await this.timerDeletes.add(executionId);
    const parent = entry?.parent === undefined ? await this.parentOf(executionId) : (entry.parent ?? undefined);
    if (parent) await this.notifyParent(parent, state);
    await this.activeDeletes.add(executionId);
    if (!entry) this.cache.delete(executionId);
  }

  private async parentOf(executionId: string): Promise<ParentRef | undefined> {
    const first = await this.o.store.readStream(workflowExecutionStream(executionId), { maxCount: 1 });
    return (first[0]?.metadata as { parent?: ParentRef } | undefined)?.parent;
  }

  async notifyParent(parent: ParentRef, child: WorkflowExecutionState): Promise<void> {
    const correlationId = 'correlationId' in child ? child.correlationId : parent.executionId;
    const command = childOutcomeCommand(parent, child, this.rt.meta(correlationId));
    if (!command) return;
    await runWorkflowCommand(this.o.store, parent.executionId, command);
  }

  async flushCheckpoints(): Promise<void> {
    const parts = [...this.dirty].filter((p) => this.rt.owned.has(p));
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
}

const parentIn = (e: RecordedEvent): ParentRef | null => (e.metadata as { parent?: ParentRef }).parent ?? null;

import type { Subscription } from '@nats-io/nats-core';
import { callProgressSchema } from '@switchyard/contracts';
import { isAppError, type Logger } from '@switchyard/platform';
import { newInbox, noticeBody } from '@switchyard/messaging';
import { toDomainEvent } from '@switchyard/event-store';
import {
  compensationKey,
  unitKey,
  workflowExecutionDecider,
  workflowExecutionStream,
  workflowLimits,
  type CommandMetadata,
  type DispatchAction,
  type StopAction,
  type WorkflowCommand,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import {
  isTerminal,
  loadExecution,
  runWorkflowCommand,
  runWorkflowCommandOnNewStream,
  type DefinitionStore,
} from '@switchyard/workflow-executions';
import { executeRemote, stopRemote, type StepOutcome } from './executor.js';
import type { StateCache } from './state-cache.js';
import { childExecutionId, joinTree } from './sub-workflows.js';
import type { ParentRef, TrackedCall, WorkflowEngineOptions } from './engine-types.js';
import { ACTOR, sleep, unitIn, type EngineRuntime } from './engine-runtime.js';

/** What dispatch needs of the saga: its command path (see Saga.command) and a child's report to its parent. */
export interface ExecutionCommands {
  command(executionId: string, command: WorkflowCommand): Promise<{ state: WorkflowExecutionState }>;
  notifyParent(parent: ParentRef, child: WorkflowExecutionState): Promise<void>;
}

/** A unit recorded as dispatched this long before this engine sends it has its clock restarted (see runDispatch). */
const LATE_PICKUP_MS = 1_000;
/** When a unit's attempt clock started (its dispatch record, or its last re-send): its deadline less its timeout. */
const clockStartOf = (u: { readonly timeoutAt?: string; readonly timeoutMs: number }): number | undefined =>
  u.timeoutAt ? Date.parse(u.timeoutAt) - u.timeoutMs : undefined;
/** A call its worker says started (never queued) sooner than this after its attempt's clock started keeps that clock (see listenForProgress). */
const STARTED_RECORD_AFTER_MS = 1_000;

/** Waits before each new send of a compensation that failed for a passing reason (about a minute in all). */
const COMPENSATION_RETRY_DELAYS_MS = [500, 1_000, 2_000, 4_000, 8_000, 15_000, 30_000];

/** An error another try may get past: the target unreachable or busy, or out of time. */
const isPassing = (error: { readonly code: string; readonly retryable?: boolean }): boolean =>
  error.retryable === true || error.code === 'unavailable' || error.code === 'timeout' || error.code === 'rate_limited';

/**
 * Dispatch of units: record the dispatch, send the MCP call or agent task over NATS (or start a
 * child execution for a sub-workflow), record the outcome; the workers' progress notices about
 * those calls; and asking running units to stop on a cancel.
 */
export class StepDispatch {
  private readonly o: WorkflowEngineOptions;
  private readonly log: Logger;
  private readonly cache: StateCache;
  private readonly inflight = new Set<string>();
  /**
   * Units this engine already asked to stop. A cancel that lands while a unit is being sent is
   * seen twice (by the cancel's own handling and by the send, which finds the execution
   * canceling); the worker is asked once. Bounded: the oldest are forgotten first.
   */
  private readonly stopsAsked = new Set<string>();
  /** Where workers send notices about this process's calls (see listenForProgress). */
  private readonly progressSubject: string;
  private progressSub: Subscription | undefined;
  /** Step calls in flight over NATS, by idempotency key: whom a notice is about, and what its worker said last. */
  private readonly calls = new Map<string, TrackedCall>();

  constructor(
    private readonly rt: EngineRuntime,
    private readonly definitions: DefinitionStore,
    private readonly saga: ExecutionCommands,
  ) {
    this.o = rt.o;
    this.log = rt.log;
    this.cache = rt.cache;
    this.progressSubject = newInbox(this.o.nats);
  }

  /** Units being sent or awaited by this process. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /**
   * Workers' notices about the calls this process sent (`queued` for a slot, `started` after the
   * wait; see executeRemote): recorded as RecordStepQueued / RecordStepStarted, which move the
   * attempt's deadline, so its timeout counts the call's own work and not its wait in a queue. A
   * notice for a call no longer in flight here is dropped (a re-send after recovery brings a new one).
   */
  listenForProgress(): void {
    if (this.o.execute) return; // units do not go over NATS: nobody sends notices
    this.progressSub = this.o.nats.subscribe(this.progressSubject, {
      callback: (err, msg) => {
        if (err || this.rt.stopped) return;
        const parsed = callProgressSchema.safeParse(noticeBody(msg));
        if (!parsed.success) {
          this.log.warn({ issues: parsed.error.issues }, 'ignoring a malformed call progress notice');
          return;
        }
        const call = this.calls.get(parsed.data.idempotency_key);
        if (!call) return;
        const a = call.action;
        // Heartbeats (`queued` again while the call waits, `running` while it runs) say the worker
        // holds the call; only a new state is recorded.
        const now = Date.now();
        call.heardAt = now;
        const state = parsed.data.state;
        if (state === 'running' || call.state === state || (call.state === 'started' && state === 'queued')) return;
        const before = call.state;
        call.state = state;
        const ref = {
          stepId: a.stepId,
          ...(a.itemIndex === undefined ? {} : { itemIndex: a.itemIndex }),
          attempt: a.attempt,
        };
        // Started, never queued, within a second of when the attempt's clock started (its dispatch
        // record, or the last re-send's): a clock counted from now would say the same. Recording it
        // would be an append per step for nothing. A unit sent late after its record (a busy
        // engine, a recovery) still has its start recorded, which re-arms its timeout.
        if (before === undefined && state === 'started') {
          const c = this.cache.get(a.executionId);
          const u = c ? unitIn(c.state, ref) : undefined;
          const clockFrom = u?.attempt === a.attempt ? clockStartOf(u) : undefined;
          if (clockFrom !== undefined && now - clockFrom < STARTED_RECORD_AFTER_MS) return;
        }
        const type = state === 'queued' ? 'RecordStepQueued' : 'RecordStepStarted';
        this.rt.track(
          this.saga
            .command(a.executionId, { type, data: ref, metadata: this.rt.meta(a.correlationId) })
            .catch((e: unknown) => {
              // Not worth failing anything over: the attempt keeps its older deadline. The call is
              // taken to be where it was, so a repeated `queued` is recorded again and a `started`
              // that could not be recorded leaves the call followed by its silence (re-sent under
              // its key when the worker goes quiet) rather than waiting out the queue budget.
              if (call.state === parsed.data.state) call.state = before;
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

  /** No more progress notices (the engine is stopping). */
  stopListening(): void {
    this.progressSub?.unsubscribe();
  }

  /**
   * Ask sent units to stop (see decideAfter: a cancel, a timed-out attempt or a StepStopped names
   * them): sub-workflows are canceled here, MCP calls and agent tasks through their workers
   * (stopRemote). Failures are logged: a unit that does not stop still ends by itself or by its timeout.
   */
  async stopUnits(stops: readonly StopAction[]): Promise<void> {
    for (const s of stops) {
      if (s.target.kind === 'workflow') {
        const childId = childExecutionId(s.idempotencyKey);
        const reason = (s.cause ?? 'canceled') === 'canceled' ? `parent canceled: ${s.reason}` : `parent: ${s.reason}`;
        try {
          await runWorkflowCommand(this.o.store, childId, {
            type: 'RequestCancel',
            data: { reason },
            metadata: this.rt.meta(s.correlationId),
          });
        } catch (err) {
          // Not started yet or already over: nothing to cancel.
          if (!(isAppError(err) && (err.code === 'not_found' || err.code === 'illegal_state'))) throw err;
        }
        continue;
      }
      this.askToStop(s);
    }
  }

  /** Ask a unit's worker to stop it, once per unit and attempt. */
  private askToStop(s: StopAction): void {
    const key = `${s.target.kind}:${s.idempotencyKey}:${s.attempt}`;
    if (this.stopsAsked.has(key)) return;
    this.stopsAsked.add(key);
    if (this.stopsAsked.size > 10_000) this.stopsAsked.delete(this.stopsAsked.values().next().value!);
    this.log.info(
      {
        executionId: s.executionId,
        stepId: s.stepId,
        itemIndex: s.itemIndex,
        correlationId: s.correlationId,
        uses: s.target.kind,
      },
      'asking a running unit to stop',
    );
    this.rt.track((this.o.stop ?? ((x: StopAction) => stopRemote(this.o.nats, x, ACTOR, this.o.subjects)))(s));
  }

  /** Send one unit at least once; `recorded` = its StepDispatched is already in the stream (re-send). */
  dispatch(a: DispatchAction, recorded: boolean): void {
    const key = `${a.kind}:${a.idempotencyKey}`;
    if (this.inflight.has(key) || this.rt.stopped) return;
    this.inflight.add(key);
    this.rt.counts.dispatches++;
    this.rt.track(this.runDispatch(a, recorded).finally(() => this.inflight.delete(key)));
  }

  private async runDispatch(a: DispatchAction, recorded: boolean): Promise<void> {
    const ref = { stepId: a.stepId, ...(a.itemIndex === undefined ? {} : { itemIndex: a.itemIndex }) };
    // 1. Record the dispatch (starts the attempt's timeout); drop the unit if it is no longer scheduled.
    if (a.kind === 'step' && !recorded) {
      const r = await this.saga.command(a.executionId, {
        type: 'RecordStepDispatched',
        data: { ...ref, attempt: a.attempt },
        metadata: this.rt.meta(a.correlationId),
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
          this.askToStop(stop);
        }
        return;
      }
      // Recorded as dispatched by whoever scheduled it (a start records its first units' dispatch,
      // see decideWithDispatches) a while ago (this engine was busy or away): the attempt's clock
      // restarts with this send, as after a take-over, so the wait is not charged to the step.
      const since = u.queuedAt || u.startedAt ? undefined : clockStartOf(u);
      if (since !== undefined && Date.now() - since > LATE_PICKUP_MS) {
        await this.saga.command(a.executionId, {
          type: 'RecordStepRedispatched',
          data: { ...ref, attempt: a.attempt },
          metadata: this.rt.meta(a.correlationId),
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
    let outcome = await this.callOnce(a, ref);
    // A compensation that failed for a passing reason (its server restarting, a timeout) is sent
    // again under the same key while it is still running in its execution and its own time allows:
    // it has no retry policy of its own, and ended on a first `unavailable` it left behind what it
    // was to undo (customers a canceled onboarding made).
    const sentAt = Date.now();
    for (let retry = 0; a.kind === 'compensation' && !outcome.ok && isPassing(outcome.error); retry++) {
      const delay = COMPENSATION_RETRY_DELAYS_MS[retry];
      if (delay === undefined || this.rt.stopped) break;
      const cached = this.cache.get(a.executionId)?.state;
      const c = cached && 'compensations' in cached ? cached.compensations[compensationKey(ref)] : undefined;
      // Ended meanwhile (its timeout recorded it failed; a retry of the execution), or another run of it: not ours to send.
      if (c && (c.status !== 'running' || c.idempotencyKey !== a.idempotencyKey)) return;
      const deadline = c ? Date.parse(c.startedAt) + c.timeoutMs : sentAt + a.timeoutMs;
      if (Date.now() + delay >= deadline) break;
      this.log.info(
        { executionId: a.executionId, stepId: a.stepId, code: outcome.error.code, correlationId: a.correlationId },
        'compensation failed for a passing reason: sending it again',
      );
      await sleep(delay);
      outcome = await this.callOnce(a, ref);
    }
    // 3. Record the outcome (the decider ignores it if the attempt is no longer in flight).
    await this.record(a, outcome);
  }

  /**
   * Whether a unit's call is still wanted: this engine running, its execution running (not
   * canceling, not ended) and this attempt still dispatched. Not in the cache, the stream says:
   * an ended execution leaves the cache at once, and a worker that woke from a freeze long after
   * its attempt timed out and the execution completed on a retry would otherwise run the call again.
   * Asked only before a re-send to a silent worker, so the read is rare.
   */
  private async stillWanted(a: DispatchAction, ref: { stepId: string; itemIndex?: number }): Promise<boolean> {
    // A stopping engine sends nothing more: the engine that takes its partitions over re-sends.
    if (this.rt.stopped) return false;
    let state = this.cache.get(a.executionId)?.state;
    if (!state) {
      try {
        ({ state } = await loadExecution(this.o.store, a.executionId));
      } catch (err) {
        // Not known either way: sent again, as a call whose execution is running would be.
        this.log.warn(
          { err, executionId: a.executionId, correlationId: a.correlationId },
          'reading an execution before sending a call again failed: sending it',
        );
        return true;
      }
    }
    if (state.status !== 'running') return false;
    const u = unitIn(state, ref);
    return u !== undefined && u.attempt === a.attempt && u.phase === 'dispatched';
  }

  /** One call of a unit's target over NATS (or the execute hook), to its outcome. */
  private async callOnce(a: DispatchAction, ref: { stepId: string; itemIndex?: number }): Promise<StepOutcome> {
    let outcome: StepOutcome;
    if (this.o.execute) outcome = await this.o.execute(a);
    else {
      const tracked = a.kind === 'step' && (a.target.kind === 'mcp' || a.target.kind === 'agent');
      const call: TrackedCall = { action: a, heardAt: Date.now() };
      if (tracked) this.calls.set(a.idempotencyKey, call);
      // A call of which its worker said nothing for a while (it tells every heartbeat while it holds
      // the call, queued or running): the worker may have died with it. executeRemote then sends it
      // again under the same key (see CALL_SILENCE_MS).
      const silenceMs = () => Date.now() - call.heardAt;
      const onResend = () => {
        call.heardAt = Date.now();
        this.rt.counts.resends++;
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
                silenceMs,
                stillWanted: () => this.stillWanted(a, ref),
                onResend,
                ...(this.o.callSilenceMs ? { silenceLimitMs: this.o.callSilenceMs } : {}),
              }
            : {},
        );
      } finally {
        if (tracked && this.calls.get(a.idempotencyKey) === call) this.calls.delete(a.idempotencyKey);
      }
    }
    return outcome;
  }

  private async record(a: DispatchAction, outcome: StepOutcome): Promise<void> {
    const ref = { stepId: a.stepId, ...(a.itemIndex === undefined ? {} : { itemIndex: a.itemIndex }) };
    const metadata = this.rt.meta(a.correlationId);
    const command: WorkflowCommand =
      a.kind === 'compensation'
        ? outcome.ok
          ? { type: 'RecordCompensationSucceeded', data: { ...ref, output: outcome.output }, metadata }
          : { type: 'RecordCompensationFailed', data: { ...ref, error: outcome.error }, metadata }
        : outcome.ok
          ? { type: 'RecordStepSucceeded', data: { ...ref, attempt: a.attempt, output: outcome.output }, metadata }
          : { type: 'RecordStepFailed', data: { ...ref, attempt: a.attempt, error: outcome.error }, metadata };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.saga.command(a.executionId, command);
        return;
      } catch (err) {
        // Lost results are recovered (re-dispatch with the same key), but try a few times first.
        if ((isAppError(err) && !err.retryable) || attempt >= 5 || this.rt.stopped) throw err;
        await sleep(100 * attempt);
      }
    }
  }

  /** Child execution id: derived from the parent unit's idempotency key, so a re-dispatch finds the same child. */

  private async startChild(a: DispatchAction, ref: { stepId: string; itemIndex?: number }): Promise<void> {
    if (a.target.kind !== 'workflow') return;
    const childId = childExecutionId(a.idempotencyKey);
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
          ...(a.startedBy ? { onBehalfOf: a.startedBy } : {}),
        },
        metadata: { ...this.rt.meta(a.correlationId), causationId: a.idempotencyKey, parent } as CommandMetadata,
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
      await this.saga.notifyParent(parent, r.state);
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
          metadata: this.rt.meta(a.correlationId),
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
}

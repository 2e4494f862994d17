/**
 * The saga's decision, pure: from an execution's state (and the event just
 * appended) to the I/O the orchestrator must do. Scheduling decisions are already events
 * (StepScheduled, StepRetryScheduled, CompensationStarted...); this turns them into
 *  - dispatches: send this unit to its executor, with its idempotency key (at least once: the
 *    executor deduplicates by key, the decider ignores duplicate results);
 *  - timers: send this command at `dueAt` (durable: recomputed from state after a crash);
 *  - whether the execution has ended.
 * `nextActions(state, now)` is the full picture (use it on recovery and after every append);
 * `decideAfter(event, state)` is the part caused by one event (use it in a subscription).
 */
import type { CommandMetadata } from '../../decider.js';
import { parseUses, type ParsedUses } from '../definition/schema.js';
import { idempotencyKey } from './decider.js';
import type {
  StartedExecution,
  RecordCompensationFailed,
  RecordStepTimedOut,
  RecordWaitTimedOut,
  RetryStep,
  StepError,
  UnitState,
  WorkflowEvent,
  WorkflowExecutionState,
  WorkflowStatus,
} from './types.js';

/** Send one unit (or compensation) to whatever runs it. */
export interface DispatchAction {
  readonly kind: 'step' | 'compensation';
  readonly executionId: string;
  readonly stepId: string;
  readonly itemIndex?: number;
  readonly attempt: number;
  readonly idempotencyKey: string;
  readonly uses: string;
  readonly target: ParsedUses;
  readonly input: unknown;
  readonly timeoutMs: number;
  readonly correlationId: string;
  /** Who started the execution (see ExecutionData.startedBy): whose turn its calls take at a busy server. */
  readonly startedBy?: string;
  /** The tree the dispatching execution belongs to: its root (itself when it is one) and its depth. */
  readonly rootExecutionId?: string;
  readonly depth?: number;
}

/** A durable timer: send `command` at `dueAt`. Already due when `dueAt <= now`. */
export interface TimerAction {
  readonly kind: 'timeout' | 'retry' | 'compensation_timeout' | 'wait_timeout';
  readonly dueAt: string;
  readonly command: RecordStepTimedOut | RetryStep | RecordCompensationFailed | RecordWaitTimedOut;
}

/**
 * A sent unit to ask to stop, by its key, whoever runs it: the execution is being canceled, the
 * unit's attempt timed out, or what it was for has settled (StepStopped).
 */
export interface StopAction {
  readonly executionId: string;
  readonly stepId: string;
  readonly itemIndex?: number;
  readonly attempt: number;
  readonly idempotencyKey: string;
  readonly target: ParsedUses;
  readonly reason: string;
  readonly correlationId: string;
  /** Why: a cancel of the execution (also when absent), a timeout of this attempt, or StepStopped. */
  readonly cause?: 'canceled' | 'timed_out' | 'stopped';
}

export interface SagaActions {
  readonly status: WorkflowStatus;
  /** Units and compensations to send now. */
  readonly dispatch: readonly DispatchAction[];
  /** Sent units to ask to stop (canceling, an attempt timed out, StepStopped); asking twice is harmless. */
  readonly stop: readonly StopAction[];
  /** Timers to (re-)arm; those already due are also in `due`. */
  readonly timers: readonly TimerAction[];
  /** Timer commands whose time has come (send them now). */
  readonly due: readonly TimerAction['command'][];
  /** The execution has ended (completed, failed or canceled): drop its timers. */
  readonly terminal: boolean;
}

const orchestrator = 'system:orchestrator';

function timerMeta(correlationId: string, dueAt: string): CommandMetadata {
  return { timestamp: dueAt, actor: orchestrator, correlationId };
}

/** The dispatch of one step unit: the same whether it is sent for the first time or again after a crash. */
export function stepDispatchOf(state: StartedExecution, def: { readonly uses?: string }, u: UnitState): DispatchAction {
  const uses = def.uses!; // only steps with `uses` have units (wait steps have none)
  return {
    kind: 'step',
    executionId: state.executionId,
    stepId: u.stepId,
    ...(u.itemIndex === undefined ? {} : { itemIndex: u.itemIndex }),
    attempt: u.attempt,
    idempotencyKey: u.idempotencyKey,
    uses,
    target: parseUses(uses),
    input: u.input,
    timeoutMs: u.timeoutMs,
    correlationId: state.correlationId,
    ...(state.startedBy ? { startedBy: state.startedBy } : {}),
    rootExecutionId: state.lineage?.rootExecutionId ?? state.executionId,
    depth: state.lineage?.depth ?? 0,
  };
}

/** Everything the orchestrator should be doing for this execution at `now`. */
/** What one unit asks for in `nextActions` (pushed onto the given lists). */
function unitActions(
  state: StartedExecution,
  def: { readonly uses?: string },
  u: UnitState,
  dispatch: DispatchAction[],
  stop: StopAction[],
  timers: TimerAction[],
): void {
  const ref = u.itemIndex === undefined ? { stepId: u.stepId } : { stepId: u.stepId, itemIndex: u.itemIndex };
  if (u.phase === 'scheduled') dispatch.push(stepDispatchOf(state, def, u));
  if (u.phase === 'dispatched' && state.status === 'canceling') {
    stop.push({
      executionId: state.executionId,
      ...ref,
      attempt: u.attempt,
      idempotencyKey: u.idempotencyKey,
      target: parseUses(def.uses!),
      reason: state.cancel.reason,
      correlationId: state.correlationId,
    });
  }
  if (u.phase === 'dispatched' && u.timeoutAt) {
    timers.push({
      kind: 'timeout',
      dueAt: u.timeoutAt,
      command: {
        type: 'RecordStepTimedOut',
        data: { ...ref, attempt: u.attempt },
        metadata: timerMeta(state.correlationId, u.timeoutAt),
      },
    });
  } else if (u.phase === 'retry_wait' && u.dueAt) {
    timers.push({
      kind: 'retry',
      dueAt: u.dueAt,
      command: {
        type: 'RetryStep',
        data: { ...ref, attempt: u.attempt },
        metadata: timerMeta(state.correlationId, u.dueAt),
      },
    });
  }
}

export function nextActions(state: WorkflowExecutionState, now: string): SagaActions {
  if (state.status === 'not_started')
    return { status: state.status, dispatch: [], stop: [], timers: [], due: [], terminal: false };
  const terminal = state.status === 'completed' || state.status === 'failed' || state.status === 'canceled';
  if (terminal) return { status: state.status, dispatch: [], stop: [], timers: [], due: [], terminal };

  const dispatch: DispatchAction[] = [];
  const stop: StopAction[] = [];
  const timers: TimerAction[] = [];

  // 1. Units: scheduled ones go out; dispatched ones get their timeout (and, when canceling, are
  //    asked to stop); waiting ones their retry timer.
  for (const def of state.definition.steps) {
    for (const u of state.steps[def.id]?.units ?? []) {
      if (u) unitActions(state, def, u, dispatch, stop, timers);
    }
  }

  // 2. Running compensations (a step's, or one for_each item's) are (re-)sent; their deadline counts from their start.
  for (const c of Object.values(state.compensations)) {
    if (c.status !== 'running') continue;
    const item = c.itemIndex === undefined ? {} : { itemIndex: c.itemIndex };
    dispatch.push({
      kind: 'compensation',
      executionId: state.executionId,
      stepId: c.stepId,
      ...item,
      attempt: 1,
      idempotencyKey: c.idempotencyKey,
      uses: c.uses,
      target: parseUses(c.uses),
      input: c.input,
      timeoutMs: c.timeoutMs,
      correlationId: state.correlationId,
      ...(state.startedBy ? { startedBy: state.startedBy } : {}),
    });
    const dueAt = new Date(Date.parse(c.startedAt) + c.timeoutMs).toISOString();
    const error: StepError = {
      code: 'timeout',
      message: `compensation timed out after ${c.timeoutMs} ms`,
      retryable: false,
    };
    timers.push({
      kind: 'compensation_timeout',
      dueAt,
      command: {
        type: 'RecordCompensationFailed',
        data: { stepId: c.stepId, ...item, error },
        metadata: timerMeta(state.correlationId, dueAt),
      },
    });
  }

  // 3. Wait steps still waiting get their timeout timer.
  timers.push(...waitTimers(state));

  const nowMs = Date.parse(now);
  timers.sort((a, b) => Date.parse(a.dueAt) - Date.parse(b.dueAt));
  const due = timers.filter((t) => Date.parse(t.dueAt) <= nowMs).map((t) => t.command);
  return { status: state.status, dispatch, stop, timers, due, terminal: false };
}

/**
 * What one appended event asks for, given the state after it: the dispatch of the unit it
 * scheduled, the timer it armed, or the end. Time is the event's own timestamp.
 */
export function decideAfter(event: WorkflowEvent, state: WorkflowExecutionState): SagaActions {
  const terminal = state.status === 'completed' || state.status === 'failed' || state.status === 'canceled';
  const none: SagaActions = { status: state.status, dispatch: [], stop: [], timers: [], due: [], terminal };
  if (state.status === 'not_started' || terminal) return none;
  switch (event.type) {
    // Events about one unit ask only for that unit's actions: computed for it alone, not for the
    // whole execution (this runs for every appended event, on the engine's hot path).
    case 'StepScheduled':
    case 'StepDispatched':
    case 'StepRedispatched':
    case 'StepQueued':
    case 'StepStarted':
    case 'StepRetryScheduled': {
      const def = state.definition.steps.find((d) => d.id === event.data.stepId);
      const u =
        state.steps[event.data.stepId]?.units[('itemIndex' in event.data ? event.data.itemIndex : undefined) ?? 0];
      if (!def || !u || u.stepId !== event.data.stepId) return none;
      const dispatch: DispatchAction[] = [];
      const timers: TimerAction[] = [];
      unitActions(state, def, u, dispatch, [], timers);
      if (event.type === 'StepScheduled') return { ...none, dispatch };
      const kind = event.type === 'StepRetryScheduled' ? 'retry' : 'timeout';
      const mine = timers.filter((t) => t.kind === kind);
      return {
        ...none,
        timers: mine,
        due: mine.filter((t) => Date.parse(t.dueAt) <= Date.parse(event.metadata.timestamp)).map((t) => t.command),
      };
    }
    case 'ExecutionCancelRequested':
      return { ...none, stop: nextActions(state, event.metadata.timestamp).stop };
    // A timed-out attempt is over for the execution (retried under a new key, or failed), but not
    // for whoever runs it: a sub-workflow's child would go on and do its effects. Stopped as on a cancel.
    case 'StepTimedOut':
      return {
        ...none,
        stop: stopOf(
          state,
          event.data,
          `attempt ${event.data.attempt} of step "${event.data.stepId}" timed out`,
          'timed_out',
        ),
      };
    case 'StepStopped':
      return event.data.dispatched ? { ...none, stop: stopOf(state, event.data, event.data.reason, 'stopped') } : none;
    case 'WaitStarted': {
      const timers = nextActions(state, event.metadata.timestamp).timers.filter(
        (t) => t.kind === 'wait_timeout' && t.command.data.stepId === event.data.stepId,
      );
      return {
        ...none,
        timers,
        due: timers.filter((t) => Date.parse(t.dueAt) <= Date.parse(event.metadata.timestamp)).map((t) => t.command),
      };
    }
    case 'CompensationStarted': {
      const all = nextActions(state, event.metadata.timestamp);
      const mine = (c: { stepId: string; itemIndex?: number }) =>
        c.stepId === event.data.stepId && c.itemIndex === event.data.itemIndex;
      return {
        ...none,
        dispatch: all.dispatch.filter((d) => d.kind === 'compensation' && mine(d)),
        timers: all.timers.filter(
          (t) => t.kind === 'compensation_timeout' && mine(t.command.data as { stepId: string; itemIndex?: number }),
        ),
      };
    }
    default:
      return none;
  }
}

/** The stop of one attempt of a unit that was sent (its key follows from the attempt). */
function stopOf(
  state: StartedExecution,
  unit: { readonly stepId: string; readonly itemIndex?: number; readonly attempt: number },
  reason: string,
  cause: 'timed_out' | 'stopped',
): StopAction[] {
  const uses = state.definition.steps.find((d) => d.id === unit.stepId)?.uses;
  if (!uses || unit.attempt < 1) return [];
  const ref =
    unit.itemIndex === undefined ? { stepId: unit.stepId } : { stepId: unit.stepId, itemIndex: unit.itemIndex };
  return [
    {
      executionId: state.executionId,
      ...ref,
      attempt: unit.attempt,
      idempotencyKey: idempotencyKey(state.executionId, ref, unit.attempt),
      target: parseUses(uses),
      reason,
      correlationId: state.correlationId,
      cause,
    },
  ];
}

/** The timeout timer of every wait step still waiting (only while the execution runs forward). */
function waitTimers(state: StartedExecution): TimerAction[] {
  if (state.status !== 'running' || state.failing) return [];
  const out: TimerAction[] = [];
  for (const def of state.definition.steps) {
    const w = state.steps[def.id]?.wait;
    if (!def.wait || state.steps[def.id]?.status !== 'running' || !w || w.ended) continue;
    out.push({
      kind: 'wait_timeout',
      dueAt: w.timeoutAt,
      command: {
        type: 'RecordWaitTimedOut',
        data: { stepId: def.id },
        metadata: timerMeta(state.correlationId, w.timeoutAt),
      },
    });
  }
  return out;
}

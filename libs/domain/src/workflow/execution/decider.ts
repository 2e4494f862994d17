/**
 * The WorkflowExecution decider. Every decision about what runs next is taken here, inside
 * `decide`, so that it is appended atomically with the fact that caused it: after the primary
 * events of a command, `progress` keeps deriving follow-up events (schedule, skip, expand,
 * complete, fail, cancel) until the execution is quiet. The saga (./saga.ts) only turns the
 * resulting state into I/O: dispatches and timers.
 *
 * At-least-once safety: results for a unit that is not in flight for that attempt (duplicates,
 * late results of an old attempt, anything after the end) produce no events.
 *
 * Rules worth knowing (also in the README of this folder's index):
 *  - A step is ready when every step in `needs` has settled (succeeded, failed with on_error
 *    continue, or skipped). If one of them failed or was skipped, the step is skipped too, unless
 *    it has an `if`, which then decides alone (it can look at `steps.<id>.status`).
 *  - All ready steps are scheduled at once (parallel); for_each items up to `concurrency`.
 *  - `on_error: { compensate: X }`: X is the undo of this step. It runs when the step fails for good
 *    (then the workflow fails once X settles) and, on cancel, when the step has succeeded.
 *  - `for_each: { compensate: Y }`: Y is the undo of one item. On cancel it runs once for each item
 *    that has succeeded (or succeeds later, having been in flight), resolved against that item. An
 *    item stopped by its step's failure while it was sent may still succeed at its server: that
 *    late success is recorded (StepSucceeded `late`), leaving the step failed, and undone likewise.
 *  - While failing or canceling nothing new is scheduled and nothing is retried; canceling waits for
 *    dispatched units (bounded by their timeouts) and compensations, then ends canceled.
 *  - Nothing is left under way once what it was for has settled (StepStopped): when a for_each step
 *    fails, its other items in flight; when the execution ends, every unit still in flight and every
 *    step still running. A stopped unit that had been sent is asked to stop (see saga.ts).
 */
import { assertNever, DomainError, type CommandMetadata, type Decider } from '../../decider.js';
import {
  evaluateCondition,
  ExpressionError,
  ExpressionLimitError,
  MappingLimitError,
  evaluateItems,
  resolveMapping,
  withExpressionBudget,
  type ExpressionContext,
  type StepView,
} from '../definition/expressions.js';
import { validateInput } from '../definition/input.js';
import {
  DEFAULT_STEP_TIMEOUT_MS,
  MAX_WAIT_TIMEOUT_MS,
  type StepDefinition,
  type WorkflowDefinition,
} from '../definition/schema.js';
import { compensationStepIds, validateDefinition } from '../definition/validate.js';
import { workflowLimits } from '../definition/limits.js';
import { canonicalJson } from '../definition/registration.js';
import {
  addMs,
  backoffDelay,
  hash32,
  notBefore,
  queueWaitBudgetMs,
  transientDelay,
  TRANSIENT_RETRY_BUDGET_MS,
} from './timing.js';
import type {
  ActiveExecution,
  ExecutionData,
  ForkWorkflow,
  RetryExecution,
  StartedExecution,
  ReceivedSignal,
  SendSignal,
  StepError,
  StepScheduled,
  StepState,
  UnitRef,
  UnitState,
  WorkflowCommand,
  WorkflowEvent,
  WorkflowExecutionState,
} from './types.js';

/** `${executionId}:${stepId}:${attempt}`, with `[i]` after the step id for for_each items. */
export function idempotencyKey(executionId: string, ref: UnitRef, attempt: number): string {
  return `${executionId}:${unitKey(ref)}:${attempt}`;
}

/** `step` or `step[3]`. */
export function unitKey(ref: UnitRef): string {
  return ref.itemIndex === undefined ? ref.stepId : `${ref.stepId}[${ref.itemIndex}]`;
}

/**
 * Where a compensation run is kept (ExecutionData.compensations): its step id, or `step[3]` for
 * the compensation of item 3 of a for_each step (`itemIndex` of its events and commands).
 */
export const compensationKey = (c: { readonly stepId: string; readonly itemIndex?: number }): string => unitKey(c);

export const initialWorkflowState: WorkflowExecutionState = { status: 'not_started' };

const stepDef = (d: WorkflowDefinition, id: string): StepDefinition | undefined => d.steps.find((s) => s.id === id);

const timeoutOf = (s: StepDefinition): number => s.timeout_ms ?? DEFAULT_STEP_TIMEOUT_MS;

const inFlight = (u: UnitState | undefined): boolean =>
  u !== undefined && (u.phase === 'scheduled' || u.phase === 'dispatched' || u.phase === 'retry_wait');

/** Units (step attempts, for_each items) in flight in the whole execution. */
function unitsInFlight(state: ExecutionData): number {
  let n = 0;
  for (const st of Object.values(state.steps)) for (const u of st.units) if (inFlight(u)) n += 1;
  return n;
}

const settled = (s: StepState): boolean => s.status === 'succeeded' || s.status === 'failed' || s.status === 'skipped';

/** The unit a command or event addresses, if it exists. */
function unitOf(state: ExecutionData, ref: UnitRef): UnitState | undefined {
  const step = state.steps[ref.stepId];
  if (!step) return undefined;
  const isForEach = stepDef(state.definition, ref.stepId)?.for_each !== undefined;
  if (isForEach !== (ref.itemIndex !== undefined)) return undefined;
  return step.units[ref.itemIndex ?? 0];
}

// One view per (immutable) step state, so the expression layer can reuse its conversion of it.
const stepViews = new WeakMap<StepState, StepView>();
function viewOf(s: StepState): StepView {
  let v = stepViews.get(s);
  if (!v) {
    v = {
      status: s.status,
      output: s.output ?? null,
      error: s.error ? { code: s.error.code, message: s.error.message } : null,
      item_outputs: s.items
        ? s.items.map((_, i) => {
            const u = s.units[i];
            return u?.phase === 'succeeded' ? (u.output ?? null) : null;
          })
        : null,
    };
    stepViews.set(s, v);
  }
  return v;
}

// A read-only record of views over one (immutable) steps record, built on access: an expression
// reads a few steps, and building all the views for each of 500 steps starting was quadratic.
const viewRecords = new WeakMap<object, Readonly<Record<string, StepView>>>();
function viewsOf(steps: Readonly<Record<string, StepState>>): Readonly<Record<string, StepView>> {
  let r = viewRecords.get(steps);
  if (!r) {
    r = new Proxy(steps, {
      get: (t, k) => (typeof k === 'string' && Object.hasOwn(t, k) ? viewOf(t[k]!) : undefined),
      set: () => false,
      deleteProperty: () => false,
      defineProperty: () => false,
    });
    viewRecords.set(steps, r);
  }
  return r;
}

/** What expressions see: every step's status, output and error. */
export function expressionContext(
  state: ExecutionData,
  extra: { item?: unknown; index?: number } = {},
): ExpressionContext {
  const steps = viewsOf(state.steps);
  const execution = {
    id: state.executionId,
    definition_id: state.definition.id,
    definition_version: state.definition.version,
    correlation_id: state.correlationId,
    started_at: state.startedAt,
  };
  const base = { input: state.input, steps, execution };
  return 'item' in extra ? { ...base, item: extra.item, index: extra.index ?? 0 } : base;
}

const expressionFailure = (e: unknown): StepError => ({
  code:
    e instanceof ExpressionLimitError || e instanceof MappingLimitError
      ? e.code
      : e instanceof ForEachLimitError
        ? 'for_each_limit_exceeded'
        : 'expression_error',
  message: e instanceof Error ? e.message : String(e),
  retryable: false,
});

/** A for_each expression gave more items than WORKFLOW_MAX_FOR_EACH_ITEMS allows. */
class ForEachLimitError extends Error {}

// ---- decide -----------------------------------------------------------------

function requireStarted(state: WorkflowExecutionState): Exclude<WorkflowExecutionState, { status: 'not_started' }> {
  if (state.status === 'not_started') throw new DomainError('not_found', 'workflow execution not found');
  return state;
}

function requireStep(state: ExecutionData, stepId: string): StepDefinition {
  const s = stepDef(state.definition, stepId);
  if (!s)
    throw new DomainError('not_found', `step "${stepId}" is not part of workflow "${state.definition.id}"`, { stepId });
  return s;
}

const isActive = (s: WorkflowExecutionState): s is ActiveExecution =>
  s.status === 'running' || s.status === 'canceling';

/**
 * Decide the events for one command. Pure: time comes from `command.metadata.timestamp`. All
 * expressions evaluated for one decision share one budget (see withExpressionBudget).
 */
export function decideWorkflow(command: WorkflowCommand, state: WorkflowExecutionState): WorkflowEvent[] {
  return withExpressionBudget(() => decideUnbudgeted(command, state));
}

function decideUnbudgeted(command: WorkflowCommand, state: WorkflowExecutionState): WorkflowEvent[] {
  // TypeScript cannot correlate the command's type with its handler's parameter: the map's type does.
  const decide = commandDeciders[command.type] as
    ((c: WorkflowCommand, s: WorkflowExecutionState) => WorkflowEvent[] | undefined) | undefined;
  if (!decide) return assertNever(command as never, 'command');
  const primary = decide(command, state);
  // Undefined: nothing to do (a repeat, a late message); else what follows from the new state comes too.
  if (!primary) return [];
  return [...primary, ...progress(evolveAll(state, primary), command.metadata)];
}

type CommandOf<T extends WorkflowCommand['type']> = Extract<WorkflowCommand, { type: T }>;

/**
 * One decision per command: the command's own events, or undefined when it changes nothing
 * (decideUnbudgeted then skips the progress check too).
 */
type CommandDeciders = {
  readonly [T in WorkflowCommand['type']]: (
    command: CommandOf<T>,
    state: WorkflowExecutionState,
  ) => WorkflowEvent[] | undefined;
};

function decideStartWorkflow(
  command: CommandOf<'StartWorkflow'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  // A repeated start (client retry, redelivery) is a no-op, not an error.
  if (state.status !== 'not_started') return undefined;
  const v = validateDefinition(command.data.definition);
  if (!v.ok) throw new DomainError('validation', 'invalid workflow definition', { problems: v.problems });
  const input = validateInput(v.definition.input, command.data.input);
  if (!input.ok) throw new DomainError('validation', 'invalid workflow input', { problems: input.problems });
  return [
    {
      type: 'WorkflowStarted',
      data: {
        executionId: command.data.executionId,
        definition: v.definition,
        input: input.value,
        seed: command.data.seed ?? hash32(command.data.executionId),
        startedAt: now,
        ...(command.data.lineage ? { lineage: command.data.lineage } : {}),
        ...(command.data.onBehalfOf ? { onBehalfOf: command.data.onBehalfOf } : {}),
        maxUnitsInFlight: command.data.maxUnitsInFlight ?? workflowLimits().maxUnitsInFlight,
      },
      metadata: meta,
    },
  ];
}

function decideRecordStepDispatched(
  command: CommandOf<'RecordStepDispatched'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  const s = requireStarted(state);
  requireStep(s, command.data.stepId);
  const u = unitOf(s, command.data);
  if (!isActive(s) || !u || u.phase !== 'scheduled' || u.attempt !== command.data.attempt) return undefined;
  return [
    {
      type: 'StepDispatched',
      data: {
        ...ref(command.data),
        attempt: u.attempt,
        idempotencyKey: u.idempotencyKey,
        dispatchedAt: now,
        timeoutAt: addMs(now, u.timeoutMs),
      },
      metadata: meta,
    },
  ];
}

/**
 * Characters of `value` as JSON (what the log stores of it). Counted once when decided and
 * recorded in the event (`inputChars`, `outputChars`): folding a 100 MB execution serialised every
 * payload again, a third of a second of one thread on each read of its stream.
 */
const jsonChars = (value: unknown): number => JSON.stringify(value ?? null).length;

/** An event's recorded count of `value`, when it is one (a count), else counted again: a bad one never lifts a bound. */
const recordedChars = (recorded: unknown, value: unknown): number =>
  Number.isSafeInteger(recorded) && (recorded as number) >= 0 ? (recorded as number) : jsonChars(value);

/** Throws a MappingLimitError when `more` characters of input would take the execution's stored inputs past their bound. */
function checkStoredInput(s: ExecutionData, more: number): void {
  const max = workflowLimits().maxExecutionInputChars;
  const stored = s.inputChars ?? 0;
  if (stored + more > max)
    throw new MappingLimitError(
      '',
      `the execution has stored ${stored} characters of JSON of step inputs; ${more} more would take it past ${max} (WORKFLOW_MAX_EXECUTION_INPUT_BYTES)`,
      'input_limit_exceeded',
    );
}

function decideRecordStepSucceeded(
  command: CommandOf<'RecordStepSucceeded'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  const s = requireStarted(state);
  const def = requireStep(s, command.data.stepId);
  const u = unitOf(s, command.data);
  if (!isActive(s)) return undefined;
  const late = takesLateSuccess(u, command.data.attempt);
  if (!late && !accepting(u, command.data.attempt)) return undefined;
  // An output past what the execution may still hold fails the step (not retried: the same call
  // would answer the same), so no execution can make the engine hold, or the log keep, without end.
  // A late one is not kept: its step has failed already.
  const maxOutputChars = workflowLimits().maxOutputChars;
  const outputChars = jsonChars(command.data.output);
  if ((s.outputChars ?? 0) + outputChars > maxOutputChars) {
    if (late) return undefined;
    return attemptFailed(
      s,
      def,
      command.data,
      command.data.attempt,
      {
        code: 'output_limit_exceeded',
        message: `the step's output (${outputChars} characters of JSON) would take the execution's outputs past ${maxOutputChars} (WORKFLOW_MAX_OUTPUT_BYTES)`,
        retryable: false,
      },
      meta,
      [],
      false,
    );
  }
  const primary: WorkflowEvent[] = [
    {
      type: 'StepSucceeded',
      data: {
        ...ref(command.data),
        attempt: command.data.attempt,
        output: command.data.output ?? null,
        outputChars,
        at: now,
        ...(late ? { late: true as const } : {}),
      },
      metadata: meta,
    },
  ];
  // Something finished while canceling: it had an effect, so undo it too (an item by its own compensation).
  if (s.status === 'canceling') {
    const after = evolveAll(s, primary);
    const more = startCompensation(after, command.data.stepId, 'canceled', meta);
    primary.push(...more);
    if (command.data.itemIndex !== undefined)
      primary.push(...startItemCompensation(evolveAll(after, more), command.data.stepId, command.data.itemIndex, meta));
  }
  return primary;
}

function decideRecordStepFailed(
  command: CommandOf<'RecordStepFailed'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const s = requireStarted(state);
  const def = requireStep(s, command.data.stepId);
  const u = unitOf(s, command.data);
  // A late failure of a stopped item records nothing: it had no effect to undo, and its stop says why it ended.
  if (!isActive(s) || !accepting(u, command.data.attempt)) return undefined;
  // A worker that timed the call out (the connector, at the step's deadline) says it may have run,
  // as the step's own timeout does: only the step's policy may run it again. Retried as transient,
  // a write with no retry policy ran eleven times in two minutes.
  const transientOk = command.data.error.code !== 'timeout';
  return attemptFailed(s, def, command.data, command.data.attempt, command.data.error, meta, [], transientOk);
}

function decideRecordStepRedispatched(
  command: CommandOf<'RecordStepRedispatched'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  const s = requireStarted(state);
  requireStep(s, command.data.stepId);
  const u = unitOf(s, command.data);
  if (!isActive(s) || !u || u.phase !== 'dispatched' || u.attempt !== command.data.attempt) return undefined;
  return [
    {
      type: 'StepRedispatched',
      data: {
        ...ref(command.data),
        attempt: u.attempt,
        idempotencyKey: u.idempotencyKey,
        dispatchedAt: now,
        timeoutAt: addMs(now, u.timeoutMs),
      },
      metadata: meta,
    },
  ];
}

function decideStepQueuedOrStarted(
  command: CommandOf<'RecordStepQueued' | 'RecordStepStarted'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  let primary: WorkflowEvent[];
  // The worker's word on when the call really runs (see STEP_QUEUE_WAIT_BUDGET_MS). Only for the
  // attempt in flight, once each, and "queued" never after "started" (a repeat or a late message).
  const s = requireStarted(state);
  const def = requireStep(s, command.data.stepId);
  const u = unitOf(s, command.data);
  if (!isActive(s) || !u || u.phase !== 'dispatched' || u.attempt !== command.data.attempt || u.startedAt !== undefined)
    return undefined;
  const base = { ...ref(command.data), attempt: u.attempt };
  if (command.type === 'RecordStepQueued') {
    if (u.queuedAt !== undefined) return undefined;
    primary = [
      {
        type: 'StepQueued',
        data: { ...base, queuedAt: now, timeoutAt: addMs(now, queueWaitBudgetMs(def.uses ?? '') + u.timeoutMs) },
        metadata: meta,
      },
    ];
  } else {
    primary = [
      { type: 'StepStarted', data: { ...base, startedAt: now, timeoutAt: addMs(now, u.timeoutMs) }, metadata: meta },
    ];
  }
  return primary;
}

function decideRecordStepTimedOut(
  command: CommandOf<'RecordStepTimedOut'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  const s = requireStarted(state);
  const def = requireStep(s, command.data.stepId);
  const u = unitOf(s, command.data);
  // Only a dispatched attempt can time out, and only once its deadline has passed
  // (an early timer is ignored; nextActions still lists it, so it is re-armed).
  if (!isActive(s) || !u || u.phase !== 'dispatched' || u.attempt !== command.data.attempt) return undefined;
  if (u.timeoutAt && !notBefore(now, u.timeoutAt)) return undefined;
  const error: StepError = {
    code: 'timeout',
    message: `attempt ${u.attempt} timed out after ${u.timeoutMs} ms`,
    retryable: true,
  };
  const timedOut: WorkflowEvent = {
    type: 'StepTimedOut',
    data: { ...ref(command.data), attempt: u.attempt, at: now },
    metadata: meta,
  };
  // The step's own timeout is its own work taking too long: only its retry policy retries it.
  return attemptFailed(s, def, command.data, u.attempt, error, meta, [timedOut], false);
}

function decideRetryStep(command: CommandOf<'RetryStep'>, state: WorkflowExecutionState): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  const s = requireStarted(state);
  const def = requireStep(s, command.data.stepId);
  const u = unitOf(s, command.data);
  if (s.status !== 'running' || s.failing || !u || u.phase !== 'retry_wait' || u.attempt !== command.data.attempt)
    return undefined;
  if (u.dueAt && !notBefore(now, u.dueAt)) return undefined;
  try {
    return [scheduled(s, def, command.data, u.attempt, u.input, meta)];
  } catch (e) {
    // The execution has stored all the input it may: this attempt is not made, and the unit fails.
    if (!(e instanceof MappingLimitError)) throw e;
    return attemptFailed(s, def, command.data, u.attempt, expressionFailure(e), meta, [], false);
  }
}

function decideRequestCancel(
  command: CommandOf<'RequestCancel'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  const s = requireStarted(state);
  // Already ending: canceling, or failing with compensations under way.
  if (s.status === 'canceling' || (s.status === 'running' && s.failing)) return undefined;
  if (s.status !== 'running') {
    throw new DomainError('illegal_state', `workflow execution is already ${s.status}`, { status: s.status });
  }
  const primary: WorkflowEvent[] = [
    {
      type: 'ExecutionCancelRequested',
      data: { reason: command.data.reason, actor: meta.actor ?? null, requestedAt: now },
      metadata: meta,
    },
  ];
  // Undo what already happened: succeeded steps (or items) that name a compensation. A step a
  // fork copied did nothing here: its effect belongs to the source execution, and its
  // compensation would resolve against the fork's input (which may name someone else's records).
  let after = evolveAll(s, primary);
  for (const step of s.definition.steps) {
    const st = s.steps[step.id];
    const hadEffect =
      st && !st.copiedFrom && (st.status === 'succeeded' || st.units.some((x) => x?.phase === 'succeeded'));
    if (hadEffect) {
      const more = startCompensation(after, step.id, 'canceled', meta);
      primary.push(...more);
      after = evolveAll(after, more);
    }
    // Each item that succeeded is undone by its own compensation (one still in flight is undone
    // once it succeeds, see decideRecordStepSucceeded; one that failed or was never sent is not).
    if (st && !st.copiedFrom && step.for_each?.compensate !== undefined) {
      for (const u of st.units) {
        if (u?.phase !== 'succeeded' || u.itemIndex === undefined) continue;
        const more = startItemCompensation(after, step.id, u.itemIndex, meta);
        primary.push(...more);
        after = evolveAll(after, more);
      }
    }
  }
  return primary;
}

function decideCompensationEnded(
  command: CommandOf<'RecordCompensationSucceeded' | 'RecordCompensationFailed'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  const meta = command.metadata;
  const now = meta.timestamp;
  const s = requireStarted(state);
  requireStep(s, command.data.stepId);
  const c = s.compensations[compensationKey(command.data)];
  if (!isActive(s) || !c || c.status !== 'running') return undefined;
  const item = c.itemIndex === undefined ? {} : { itemIndex: c.itemIndex };
  return command.type === 'RecordCompensationSucceeded'
    ? [
        {
          type: 'CompensationSucceeded',
          data: { stepId: c.stepId, ...item, output: command.data.output ?? null, at: now },
          metadata: meta,
        },
      ]
    : [
        {
          type: 'CompensationFailed',
          data: { stepId: c.stepId, ...item, error: command.data.error, at: now },
          metadata: meta,
        },
      ];
}

// Operations on executions (fork, retry): see the section below.
function decideForkWorkflow(
  command: CommandOf<'ForkWorkflow'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  if (state.status !== 'not_started') return undefined; // a repeated fork (client retry) is a no-op
  return decideFork(command);
}

function decideRetryExecution(
  command: CommandOf<'RetryExecution'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  return decideRetry(requireStarted(state), command);
}

function decideSignal(command: CommandOf<'SendSignal'>, state: WorkflowExecutionState): WorkflowEvent[] | undefined {
  const primary = decideSendSignal(requireStarted(state), command.data, command.metadata);
  return primary.length === 0 ? undefined : primary;
}

function decideRecordWaitTimedOut(
  command: CommandOf<'RecordWaitTimedOut'>,
  state: WorkflowExecutionState,
): WorkflowEvent[] | undefined {
  return decideWaitTimedOut(requireStarted(state), command.data.stepId, command.metadata);
}

const commandDeciders: CommandDeciders = {
  StartWorkflow: decideStartWorkflow,
  RecordStepDispatched: decideRecordStepDispatched,
  RecordStepSucceeded: decideRecordStepSucceeded,
  RecordStepFailed: decideRecordStepFailed,
  RecordStepRedispatched: decideRecordStepRedispatched,
  RecordStepQueued: decideStepQueuedOrStarted,
  RecordStepStarted: decideStepQueuedOrStarted,
  RecordStepTimedOut: decideRecordStepTimedOut,
  RetryStep: decideRetryStep,
  RequestCancel: decideRequestCancel,
  RecordCompensationSucceeded: decideCompensationEnded,
  RecordCompensationFailed: decideCompensationEnded,
  ForkWorkflow: decideForkWorkflow,
  RetryExecution: decideRetryExecution,
  SendSignal: decideSignal,
  RecordWaitTimedOut: decideRecordWaitTimedOut,
};

const ref = (r: UnitRef): UnitRef =>
  r.itemIndex === undefined ? { stepId: r.stepId } : { stepId: r.stepId, itemIndex: r.itemIndex };

/** A result is accepted only for the attempt in flight (scheduled counts: the dispatch record may be lost). */
const accepting = (u: UnitState | undefined, attempt: number): boolean =>
  u !== undefined && (u.phase === 'scheduled' || u.phase === 'dispatched') && u.attempt === attempt;

/**
 * An item its step's failure stopped while it was sent (UnitState.stoppedWhileSent), for the
 * attempt it was stopped at: its worker let the call already at its server finish, so its effect
 * happened, and a success is recorded (late) for a later cancel to undo.
 */
const takesLateSuccess = (u: UnitState | undefined, attempt: number): boolean =>
  u?.phase === 'canceled' && u.stoppedWhileSent === true && u.attempt === attempt;

function evolveAll(state: WorkflowExecutionState, events: readonly WorkflowEvent[]): WorkflowExecutionState {
  return events.reduce(evolveWorkflow, state);
}

/**
 * A unit's StepScheduled, which stores its input. Throws a MappingLimitError when that input would
 * take the execution's stored inputs (`pendingChars` more already in this decision) past
 * WORKFLOW_MAX_EXECUTION_INPUT_BYTES.
 */
function scheduled(
  s: ExecutionData,
  def: StepDefinition,
  unit: UnitRef,
  attempt: number,
  input: unknown,
  meta: CommandMetadata,
  pendingChars = 0,
): StepScheduled {
  const inputChars = jsonChars(input);
  checkStoredInput(s, inputChars + pendingChars);
  return {
    type: 'StepScheduled',
    data: {
      ...ref(unit),
      attempt,
      idempotencyKey: idempotencyKey(s.executionId, unit, attempt),
      uses: def.uses!, // wait steps are never scheduled (startWait)
      input,
      inputChars,
      timeoutMs: timeoutOf(def),
      scheduledAt: meta.timestamp,
    },
    metadata: meta,
  };
}

/**
 * How long an attempt refused from its worker's queue (`rate_limited`, never started) waited
 * there: it said the server was busy, not failing (see UnitState.queueWaitedMs). 0 otherwise.
 */
function refusedQueueWait(u: UnitState | undefined, error: StepError, now: string): number {
  if (!u || error.code !== 'rate_limited' || u.queuedAt === undefined || u.startedAt !== undefined) return 0;
  return Math.max(0, Date.parse(now) - Date.parse(u.queuedAt));
}

/**
 * An attempt failed (or timed out): retry if the policy allows and the workflow is still going
 * forward, otherwise the unit has failed for good, and with it the step.
 *
 * A transient error the worker reported (`retryable`: full queue, server or agent unreachable,
 * open circuit) is retried whatever the step's policy says, with jittered exponential backoff
 * and at least the worker's `retryAfterMs`, for TRANSIENT_RETRY_BUDGET_MS from the unit's first
 * schedule: load or a short outage delays a step instead of failing it, and a server that stays
 * down still ends it. Such retries do not use up the policy's attempts (the policy adds to them).
 * `transientOk` is false for the step's own timeout, which only its policy retries.
 */
function attemptFailed(
  s: ActiveExecution,
  def: StepDefinition,
  unit: UnitRef,
  attempt: number,
  error: StepError,
  meta: CommandMetadata,
  prefix: WorkflowEvent[],
  transientOk: boolean,
): WorkflowEvent[] {
  const now = meta.timestamp;
  const policy = def.retry;
  const u = unitOf(s, unit);
  const goingForward = s.status === 'running' && !s.failing && s.steps[def.id]?.status === 'running';
  const codeMatches = !policy?.on || policy.on.includes(error.code);
  const policyAttempt = attempt - (s.steps[def.id]?.attemptBase ?? 0) - (u?.transientRetries ?? 0);
  const canRetry =
    goingForward && error.retryable && codeMatches && policy !== undefined && policyAttempt < policy.attempts;
  const firstAt = u?.firstScheduledAt;
  const waited = (u?.queueWaitedMs ?? 0) + refusedQueueWait(u, error, now);
  const withinBudget =
    firstAt === undefined || Date.parse(now) - Date.parse(firstAt) - waited < TRANSIENT_RETRY_BUDGET_MS;
  const transient = !canRetry && transientOk && goingForward && error.retryable && withinBudget;
  const events: WorkflowEvent[] = [...prefix];
  events.push({
    type: 'StepFailed',
    data: { ...ref(unit), attempt, error, final: !canRetry && !transient, at: now },
    metadata: meta,
  });
  if (canRetry || transient) {
    const base = canRetry
      ? backoffDelay(policy.backoff, policyAttempt + 1, s.seed, unitKey(unit))
      : transientDelay((u?.transientRetries ?? 0) + 1, s.seed, unitKey(unit));
    const delayMs = Math.max(base, Math.min(error.retryAfterMs ?? 0, TRANSIENT_RETRY_BUDGET_MS));
    events.push({
      type: 'StepRetryScheduled',
      data: {
        ...ref(unit),
        attempt: attempt + 1,
        delayMs,
        dueAt: addMs(now, delayMs),
        ...(transient ? { transient: true } : {}),
      },
      metadata: meta,
    });
    return events;
  }
  // An item's final failure fails its for_each step (once), and its other items in flight are
  // given up: their results could change nothing for the step (a success is still recorded, for a
  // later cancel to undo: see takesLateSuccess). While canceling they are not: the cancel asked
  // them to stop, and one that succeeds anyway is compensated.
  if (unit.itemIndex !== undefined) {
    if (s.steps[def.id]?.status !== 'running') return events;
    events.push({
      type: 'StepFailed',
      data: { stepId: unit.stepId, attempt, error, final: true, at: now },
      metadata: meta,
    });
    if (s.status === 'running')
      events.push(...stopUnitsOf(evolveAll(s, events), def.id, `step "${def.id}" failed`, meta));
  }
  return [...events, ...onStepFailed(evolveAll(s, events), def, error, meta)];
}

/** What a step's final failure means for the workflow, by its on_error. */
function onStepFailed(
  state: WorkflowExecutionState,
  def: StepDefinition,
  error: StepError,
  meta: CommandMetadata,
): WorkflowEvent[] {
  if (!isActive(state)) return [];
  const policy = def.on_error;
  if (policy === 'continue') return [];
  if (policy === 'fail') {
    // Canceling already has its own ending; a failing workflow is ending anyway.
    if (state.status !== 'running' || state.failing) return [];
    const reason = `step "${def.id}" failed: ${error.message}`;
    return ending(
      state,
      { type: 'WorkflowFailed', data: { reason, stepId: def.id, error, failedAt: meta.timestamp }, metadata: meta },
      `the execution failed: ${reason}`,
      meta,
    );
  }
  return startCompensation(state, def.id, state.status === 'canceling' ? 'canceled' : 'step_failed', meta);
}

/** Start the compensation named by `forStepId`'s on_error, once per compensation step. */
function startCompensation(
  state: WorkflowExecutionState,
  forStepId: string,
  cause: 'step_failed' | 'canceled',
  meta: CommandMetadata,
): WorkflowEvent[] {
  if (!isActive(state)) return [];
  const def = stepDef(state.definition, forStepId);
  if (!def || typeof def.on_error !== 'object') return [];
  const comp = stepDef(state.definition, def.on_error.compensate)!;
  if (state.compensations[comp.id]) return [];
  return compensationStarted(
    state,
    comp,
    forStepId,
    cause,
    expressionContext(state),
    undefined,
    `${state.executionId}:compensate:${comp.id}:1`,
    meta,
  );
}

/**
 * Start the compensation of item `itemIndex` of the for_each step `forStepId` (its
 * `for_each.compensate`), once per item and only for an item that succeeded: its mapping sees
 * that item's `item`, `index` and `output`. The key names the item's attempt that succeeded, so a
 * re-run of the item (a retried execution) is undone under a key of its own.
 */
function startItemCompensation(
  state: WorkflowExecutionState,
  forStepId: string,
  itemIndex: number,
  meta: CommandMetadata,
): WorkflowEvent[] {
  if (!isActive(state)) return [];
  const compId = stepDef(state.definition, forStepId)?.for_each?.compensate;
  const st = state.steps[forStepId];
  const u = st?.units[itemIndex];
  if (compId === undefined || !st || u?.phase !== 'succeeded') return [];
  const comp = stepDef(state.definition, compId)!;
  if (state.compensations[compensationKey({ stepId: comp.id, itemIndex })]) return [];
  const ctx = {
    ...expressionContext(state, { item: st.items?.[itemIndex] ?? null, index: itemIndex }),
    output: u.output ?? null,
  };
  const key = `${state.executionId}:compensate:${unitKey({ stepId: comp.id, itemIndex })}:${u.attempt}`;
  return compensationStarted(state, comp, forStepId, 'canceled', ctx, itemIndex, key, meta);
}

/** A CompensationStarted with its input resolved, followed by CompensationFailed when that input cannot be. */
function compensationStarted(
  state: ActiveExecution,
  comp: StepDefinition,
  forStepId: string,
  cause: 'step_failed' | 'canceled',
  ctx: ExpressionContext,
  itemIndex: number | undefined,
  idempotencyKey: string,
  meta: CommandMetadata,
): WorkflowEvent[] {
  const now = meta.timestamp;
  let input: unknown;
  let inputChars: number;
  let inputError: StepError | undefined;
  try {
    input = resolveMapping(comp.with, ctx);
    inputChars = jsonChars(input);
    checkStoredInput(state, inputChars);
  } catch (e) {
    input = null;
    inputChars = jsonChars(null);
    inputError = expressionFailure(e);
  }
  const item = itemIndex === undefined ? {} : { itemIndex };
  const started: WorkflowEvent = {
    type: 'CompensationStarted',
    data: {
      stepId: comp.id,
      ...item,
      forStepId,
      cause,
      uses: comp.uses!, // the validator refuses a wait step as a compensation
      input,
      inputChars,
      idempotencyKey,
      timeoutMs: timeoutOf(comp),
      startedAt: now,
    },
    metadata: meta,
  };
  if (!inputError) return [started];
  return [
    started,
    { type: 'CompensationFailed', data: { stepId: comp.id, ...item, error: inputError, at: now }, metadata: meta },
  ];
}

// ---- stops: nothing left under way once what it was for has settled ------------------

function stopped(
  ref: UnitRef,
  attempt: number,
  dispatched: boolean,
  reason: string,
  meta: CommandMetadata,
): WorkflowEvent {
  return { type: 'StepStopped', data: { ...ref, attempt, dispatched, reason, at: meta.timestamp }, metadata: meta };
}

/** A StepStopped for each unit of `stepId` still in flight (the other items of a for_each step that failed). */
function stopUnitsOf(
  state: WorkflowExecutionState,
  stepId: string,
  reason: string,
  meta: CommandMetadata,
): WorkflowEvent[] {
  if (state.status === 'not_started') return [];
  const out: WorkflowEvent[] = [];
  for (const u of state.steps[stepId]?.units ?? []) {
    if (u && inFlight(u)) out.push(stopped(ref(u), u.attempt, u.phase === 'dispatched', reason, meta));
  }
  return out;
}

/**
 * The execution's end `end`, after a StepStopped for whatever is still under way: each unit in
 * flight (one a failing step left running in parallel, an item of a for_each step), then each main
 * step still running with no unit of its own stopped (a wait step, a for_each step, a step whose
 * units a failure or a cancel abandoned). An ended execution then shows nothing dispatched or
 * running, its late results are ignored, and the units that were sent are asked to stop.
 */
function ending(state: ExecutionData, end: WorkflowEvent, reason: string, meta: CommandMetadata): WorkflowEvent[] {
  const events: WorkflowEvent[] = [];
  const comp = compensationStepIds(state.definition);
  for (const def of state.definition.steps) {
    const st = state.steps[def.id];
    if (!st || comp.has(def.id)) continue;
    let stepStopped = false;
    for (const u of st.units) {
      if (!u || !inFlight(u)) continue;
      events.push(stopped(ref(u), u.attempt, u.phase === 'dispatched', reason, meta));
      if (u.itemIndex === undefined) stepStopped = true;
    }
    if (st.status === 'running' && !stepStopped) events.push(stopped({ stepId: def.id }, 0, false, reason, meta));
  }
  return [...events, end];
}

// ---- progress: follow-up decisions after any change ---------------------------

/** Derive follow-up events until nothing more follows (each round sees the previous round applied). */
function progress(state: WorkflowExecutionState, meta: CommandMetadata): WorkflowEvent[] {
  const out: WorkflowEvent[] = [];
  let s = state;
  for (let round = 0; round < 10_000; round++) {
    const next = progressOnce(s, meta);
    if (next.length === 0) return out;
    out.push(...next);
    s = evolveAll(s, next);
  }
  throw new Error('workflow progress did not settle'); // a bug, never a user error
}

function progressOnce(state: WorkflowExecutionState, meta: CommandMetadata): WorkflowEvent[] {
  const now = meta.timestamp;
  if (state.status === 'canceling') {
    const busy = Object.values(state.steps).some((st) => st.units.some((u) => u?.phase === 'dispatched'));
    const compensating = Object.values(state.compensations).some((c) => c.status === 'running');
    if (busy || compensating) return [];
    return ending(
      state,
      { type: 'WorkflowCanceled', data: { reason: state.cancel.reason, canceledAt: now }, metadata: meta },
      `the execution was canceled: ${state.cancel.reason}`,
      meta,
    );
  }
  if (state.status !== 'running') return [];
  if (state.failing) {
    if (Object.values(state.compensations).some((c) => c.status === 'running')) return [];
    const f = state.failing;
    return ending(
      state,
      {
        type: 'WorkflowFailed',
        data: { reason: f.reason, stepId: f.stepId, error: f.error, failedAt: now },
        metadata: meta,
      },
      `the execution failed: ${f.reason}`,
      meta,
    );
  }

  const compensationOnly = compensationStepIds(state.definition);
  // Units the execution may still put in flight (WORKFLOW_MAX_UNITS_IN_FLIGHT, as recorded at its
  // start): a step that would dispatch one waits while there is no room, and a for_each fills only
  // the room there is.
  const room = (state.maxUnitsInFlight ?? workflowLimits().maxUnitsInFlight) - unitsInFlight(state);
  const events: WorkflowEvent[] = [];
  for (const def of state.definition.steps) {
    if (compensationOnly.has(def.id)) continue;
    const st = state.steps[def.id]!;
    if (st.status === 'pending') {
      const needs = def.needs.map((n) => state.steps[n]!);
      if (!needs.every(settled)) continue;
      if (room <= 0 && !def.wait && !def.for_each) continue;
      events.push(...startStep(state, def, needs, meta));
      // One step per round: its events may end the workflow (on_error fail), so re-check from the top.
      if (events.length > 0) return events;
    } else if (st.status === 'running' && def.for_each && st.items) {
      events.push(...continueForEach(state, def, st, room, meta));
      if (events.length > 0) return events;
    }
  }
  const main = state.definition.steps.filter((d) => !compensationOnly.has(d.id));
  if (main.every((d) => settled(state.steps[d.id]!))) {
    try {
      const outputs = resolveMapping(state.definition.outputs, expressionContext(state), 'outputs') as Record<
        string,
        unknown
      >;
      return ending(
        state,
        { type: 'WorkflowCompleted', data: { outputs, completedAt: now }, metadata: meta },
        'the execution completed',
        meta,
      );
    } catch (e) {
      const error = expressionFailure(e);
      const reason = `outputs: ${error.message}`;
      return ending(
        state,
        { type: 'WorkflowFailed', data: { reason, stepId: null, error, failedAt: now }, metadata: meta },
        `the execution failed: ${reason}`,
        meta,
      );
    }
  }
  return [];
}

/** A pending step whose needs have all settled: skip it, fail it (bad expression), or start it. */
function startStep(
  state: Extract<ActiveExecution, { status: 'running' }>,
  def: StepDefinition,
  needs: StepState[],
  meta: CommandMetadata,
): WorkflowEvent[] {
  const now = meta.timestamp;
  const skip = (reason: 'condition_false' | 'dependency_skipped' | 'dependency_failed'): WorkflowEvent[] => [
    { type: 'StepSkipped', data: { stepId: def.id, reason, at: now }, metadata: meta },
  ];
  const failNow = (e: unknown): WorkflowEvent[] => {
    const error = expressionFailure(e);
    const failed: WorkflowEvent = {
      type: 'StepFailed',
      data: { stepId: def.id, attempt: 0, error, final: true, at: now },
      metadata: meta,
    };
    return [failed, ...onStepFailed(evolveAll(state, [failed]), def, error, meta)];
  };
  const ctx = expressionContext(state);
  if (def.if !== undefined) {
    try {
      if (!evaluateCondition(def.if, ctx)) return skip('condition_false');
    } catch (e) {
      return failNow(e);
    }
  } else if (needs.some((n) => n.status === 'failed')) {
    return skip('dependency_failed');
  } else if (needs.some((n) => n.status === 'skipped')) {
    return skip('dependency_skipped');
  }

  if (def.wait) return startWait(state, def, ctx, meta, failNow);
  if (!def.for_each) {
    try {
      return [
        scheduled(state, def, { stepId: def.id }, firstAttempt(state, def.id), resolveMapping(def.with, ctx), meta),
      ];
    } catch (e) {
      return failNow(e);
    }
  }
  let items: unknown;
  try {
    items = evaluateItems(def.for_each.items, ctx);
  } catch (e) {
    return failNow(e);
  }
  if (!Array.isArray(items)) {
    return failNow(
      new ExpressionError(
        def.for_each.items,
        `for_each.items "${def.for_each.items}" gave ${typeof items}, not a list`,
      ),
    );
  }
  const maxItems = workflowLimits().maxForEachItems;
  if (items.length > maxItems) {
    return failNow(
      new ForEachLimitError(
        `for_each.items "${def.for_each.items}" gave ${items.length} items; at most ${maxItems} (WORKFLOW_MAX_FOR_EACH_ITEMS)`,
      ),
    );
  }
  const keptItems = itemsToKeep(state, def, items);
  return [
    {
      type: 'StepExpanded',
      data: { stepId: def.id, items, ...(keptItems.length > 0 ? { keptItems } : {}) },
      metadata: meta,
    },
  ];
}

/**
 * The items of a for_each step that succeeded in a run before the execution's retry (the units the
 * retry left it) and would run the same now: the same item at the same index, the same resolved
 * input. They are not run again: a second run would repeat their effect, and a cancel would undo
 * only the second. An item whose item or input changed (what it reads ran again and answered
 * differently) runs again.
 */
function itemsToKeep(state: ExecutionData, def: StepDefinition, items: readonly unknown[]): number[] {
  const st = state.steps[def.id];
  const kept: number[] = [];
  if (!st) return kept;
  st.units.forEach((u, i) => {
    if (u?.phase !== 'succeeded' || i >= items.length) return;
    if (canonicalJson(items[i]) !== canonicalJson(st.items?.[i])) return;
    try {
      const input = resolveMapping(def.with, expressionContext(state, { item: items[i], index: i }));
      if (canonicalJson(input) === canonicalJson(u.input)) kept.push(i);
    } catch {
      // It fails again when scheduled, as an item of this run.
    }
  });
  return kept;
}

/**
 * Keep `concurrency` items in flight, within the execution's `room` for more units; when all
 * succeeded, the step succeeds with their outputs in order.
 */
function continueForEach(
  state: Extract<ActiveExecution, { status: 'running' }>,
  def: StepDefinition,
  st: StepState,
  room: number,
  meta: CommandMetadata,
): WorkflowEvent[] {
  const items = st.items!;
  // Items not started yet, in order (after a retry, the ones that had succeeded are kept: see itemsToKeep).
  const unstarted: number[] = [];
  for (let i = 0; i < items.length; i++) if (st.units[i] === undefined) unstarted.push(i);
  if (unstarted.length === 0 && st.units.every((u) => u?.phase === 'succeeded')) {
    return [
      {
        type: 'StepSucceeded',
        data: { stepId: def.id, attempt: 0, output: st.units.map((u) => u!.output ?? null), at: meta.timestamp },
        metadata: meta,
      },
    ];
  }
  const running = st.units.filter(inFlight).length;
  const next = Math.min(def.for_each!.concurrency - running, unstarted.length, room);
  const events: WorkflowEvent[] = [];
  let pendingChars = 0;
  for (const i of unstarted.slice(0, Math.max(0, next))) {
    const unit = { stepId: def.id, itemIndex: i };
    try {
      const input = resolveMapping(def.with, expressionContext(state, { item: items[i], index: i }));
      const event = scheduled(state, def, unit, firstAttempt(state, def.id), input, meta, pendingChars);
      events.push(event);
      pendingChars += event.data.inputChars!;
    } catch (e) {
      const error = expressionFailure(e);
      const failed: WorkflowEvent[] = [
        { type: 'StepFailed', data: { ...unit, attempt: 0, error, final: true, at: meta.timestamp }, metadata: meta },
        {
          type: 'StepFailed',
          data: { stepId: def.id, attempt: 0, error, final: true, at: meta.timestamp },
          metadata: meta,
        },
      ];
      // The items already started are given up with the step (see attemptFailed).
      failed.push(...stopUnitsOf(evolveAll(state, [...events, ...failed]), def.id, `step "${def.id}" failed`, meta));
      return [...events, ...failed, ...onStepFailed(evolveAll(state, [...events, ...failed]), def, error, meta)];
    }
  }
  return events;
}

// ---- operations on executions: fork, retry ------------------------------------

/** The first attempt number of a step's (next) run: 1, or on after the attempts of the runs before a retry. */
const firstAttempt = (s: ExecutionData, stepId: string): number => (s.steps[stepId]?.attemptBase ?? 0) + 1;

/** Steps that need `stepId`, directly or through others (not including it). */
export function downstreamOf(definition: WorkflowDefinition, stepIds: Iterable<string>): Set<string> {
  const out = new Set<string>();
  const frontier = [...stepIds];
  while (frontier.length > 0) {
    const id = frontier.pop()!;
    for (const d of definition.steps) {
      if (d.needs.includes(id) && !out.has(d.id)) {
        out.add(d.id);
        frontier.push(d.id);
      }
    }
  }
  return out;
}

/**
 * ForkWorkflow: WorkflowStarted, then one StepOutputCopied per copy; `progress` then runs what is
 * left. 409 (illegal_state) naming every copied step the definition lacks; 400 when a copy is the
 * fork point or downstream of it in this definition.
 *
 * The fork point may be a step only the source's definition has (the target renamed or dropped
 * it): what followed it in the source runs again (planFork leaves it out of the copies, and
 * refuses a fork point of neither definition, which this command does not carry), and the
 * target's steps the source never ran have nothing to copy, so they run too.
 */
function decideFork(command: ForkWorkflow): WorkflowEvent[] {
  const meta = command.metadata;
  const d = command.data;
  const v = validateDefinition(d.definition);
  if (!v.ok) throw new DomainError('validation', 'invalid workflow definition', { problems: v.problems });
  const def = v.definition;
  if (d.fromStep.length === 0) throw new DomainError('validation', 'a fork needs the step it runs again from');
  const missing = d.copies.map((c) => c.stepId).filter((id) => !stepDef(def, id));
  if (missing.length > 0) {
    throw new DomainError(
      'illegal_state',
      `steps to copy do not exist in workflow "${def.id}" version ${def.version}: ${missing.join(', ')}`,
      { missing_steps: missing },
    );
  }
  // Downstream in this definition; none when the fork point is not one of its steps.
  const rerun = new Set([d.fromStep, ...downstreamOf(def, [d.fromStep])]);
  const wrong = d.copies.map((c) => c.stepId).filter((id) => rerun.has(id));
  if (wrong.length > 0) {
    throw new DomainError(
      'validation',
      `steps ${wrong.join(', ')} run again from "${d.fromStep}": they cannot be copied`,
      { stepIds: wrong },
    );
  }
  const input = validateInput(def.input, d.input);
  if (!input.ok) throw new DomainError('validation', 'invalid workflow input', { problems: input.problems });
  return [
    {
      type: 'WorkflowStarted',
      data: {
        executionId: d.executionId,
        definition: def,
        input: input.value,
        seed: d.seed ?? hash32(d.executionId),
        startedAt: meta.timestamp,
        forkedFrom: { executionId: d.fromExecutionId, fromStep: d.fromStep },
        maxUnitsInFlight: workflowLimits().maxUnitsInFlight,
      },
      metadata: meta,
    },
    ...d.copies.map((c): WorkflowEvent => ({
      type: 'StepOutputCopied',
      data: {
        stepId: c.stepId,
        output: c.output ?? null,
        fromExecutionId: d.fromExecutionId,
        revision: c.revision,
        at: meta.timestamp,
      },
      metadata: meta,
    })),
  ];
}

/**
 * The steps a retry runs again: every main step that did not succeed (failed, timed out, skipped
 * because of a failure, or never reached), except steps skipped by their own condition, plus every
 * step downstream of those. Succeeded steps upstream or beside them keep their outputs.
 */
export function stepsToRetry(s: StartedExecution): string[] {
  const comp = compensationStepIds(s.definition);
  const seeds = s.definition.steps
    .filter((d) => !comp.has(d.id))
    .filter((d) => {
      const st = s.steps[d.id];
      return (
        st !== undefined &&
        st.status !== 'succeeded' &&
        !(st.status === 'skipped' && st.skipReason === 'condition_false')
      );
    })
    .map((d) => d.id);
  const all = new Set([...seeds, ...downstreamOf(s.definition, seeds)]);
  return s.definition.steps.filter((d) => all.has(d.id) && !comp.has(d.id)).map((d) => d.id);
}

/** RetryExecution: 409 unless the execution failed; ExecutionRetried names the steps that run again. */
function decideRetry(s: StartedExecution, command: RetryExecution): WorkflowEvent[] {
  const retries = s.retries ?? 0;
  if (command.data.ifRetries !== undefined && command.data.ifRetries !== retries) {
    throw new DomainError(
      'illegal_state',
      `workflow execution was retried since (${retries} retries, expected ${command.data.ifRetries})`,
      { retries, expected: command.data.ifRetries },
    );
  }
  if (s.status !== 'failed') {
    throw new DomainError(
      'illegal_state',
      `workflow execution is ${s.status}: only a failed execution can be retried`,
      { status: s.status },
    );
  }
  const meta = command.metadata;
  return [
    {
      type: 'ExecutionRetried',
      data: {
        steps: stepsToRetry(s),
        reason: command.data.reason ?? 'retried by request',
        actor: meta.actor ?? null,
        retriedAt: meta.timestamp,
      },
      metadata: meta,
    },
  ];
}

/**
 * Running again: the named steps go back to pending with their attempt count kept as a base; their
 * compensations are forgotten. A for_each step keeps the items that succeeded (with its items, to
 * compare), unless its own compensation ran when it failed (that undid them): when it is expanded
 * again, those that would run the same are not run again (itemsToKeep).
 */
function evolveRetried(s: StartedExecution, ids: readonly string[]): WorkflowExecutionState {
  const reset = new Set(ids);
  const steps: Record<string, StepState> = { ...s.steps };
  for (const id of reset) {
    const st = s.steps[id];
    if (!st) continue;
    const used = Math.max(st.attemptBase ?? 0, ...st.units.map((u) => u?.attempt ?? 0));
    const undone = Object.values(s.compensations).some((c) => c.forStepId === id);
    const keep = stepDef(s.definition, id)?.for_each !== undefined && !undone && st.items !== undefined;
    const succeeded = keep ? st.units.map((u) => (u?.phase === 'succeeded' ? u : undefined)) : [];
    const kept = succeeded.some((u) => u !== undefined);
    steps[id] = {
      id,
      status: 'pending',
      output: null,
      error: null,
      units: kept ? succeeded : [],
      ...(kept ? { items: st.items } : {}),
      ...(used > 0 ? { attemptBase: used } : {}),
    };
  }
  const compensations = Object.fromEntries(Object.entries(s.compensations).filter(([, c]) => !reset.has(c.forStepId)));
  return { ...stripPhase(s), status: 'running', steps, compensations, retries: (s.retries ?? 0) + 1 };
}

// ---- evolve -------------------------------------------------------------------

function withStep(s: ExecutionData, id: string, f: (st: StepState) => StepState): Readonly<Record<string, StepState>> {
  return { ...s.steps, [id]: f(s.steps[id]!) };
}

function withUnit(st: StepState, index: number, f: (u: UnitState | undefined) => UnitState): StepState {
  const units = [...st.units];
  units[index] = f(units[index]);
  return { ...st, units };
}

/** Abandon every unit not yet dispatched (workflow failing or canceling). */
function abandonUndispatched(s: ExecutionData): Readonly<Record<string, StepState>> {
  const steps: Record<string, StepState> = {};
  for (const [id, st] of Object.entries(s.steps)) {
    steps[id] = {
      ...st,
      units: st.units.map((u) =>
        u && (u.phase === 'scheduled' || u.phase === 'retry_wait') ? { ...u, phase: 'canceled' as const } : u,
      ),
    };
  }
  return steps;
}

/** Fold one event into the state. Total: an event that does not apply leaves the state as it is. */
export function evolveWorkflow(state: WorkflowExecutionState, event: WorkflowEvent): WorkflowExecutionState {
  if (event.type === 'WorkflowStarted') {
    const d = event.data;
    const steps: Record<string, StepState> = {};
    for (const s of d.definition.steps)
      steps[s.id] = { id: s.id, status: 'pending', output: null, error: null, units: [] };
    return {
      status: 'running',
      executionId: d.executionId,
      definition: d.definition,
      input: d.input,
      seed: d.seed,
      startedAt: d.startedAt,
      correlationId: event.metadata.correlationId,
      ...(d.lineage ? { lineage: d.lineage } : {}),
      ...(d.forkedFrom ? { forkedFrom: d.forkedFrom } : {}),
      ...(d.maxUnitsInFlight !== undefined ? { maxUnitsInFlight: d.maxUnitsInFlight } : {}),
      ...((d.onBehalfOf ?? event.metadata.actor) ? { startedBy: d.onBehalfOf ?? event.metadata.actor } : {}),
      steps,
      compensations: {},
    };
  }
  if (state.status === 'not_started') return state;
  const s = state;
  const isForEachStep = (id: string) => stepDef(s.definition, id)?.for_each !== undefined;
  switch (event.type) {
    case 'StepExpanded': {
      // Only the kept items of an earlier run stay (none on a first run, nor in older streams).
      const d = event.data;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) => {
          const units: (UnitState | undefined)[] = [];
          for (const i of d.keptItems ?? []) units[i] = st.units[i];
          return { ...st, status: 'running', items: d.items, units };
        }),
      };
    }
    case 'StepScheduled': {
      const d = event.data;
      const unit: UnitState = {
        stepId: d.stepId,
        ...(d.itemIndex === undefined ? {} : { itemIndex: d.itemIndex }),
        attempt: d.attempt,
        phase: 'scheduled',
        input: d.input,
        idempotencyKey: d.idempotencyKey,
        timeoutMs: d.timeoutMs,
      };
      return {
        ...s,
        inputChars: (s.inputChars ?? 0) + recordedChars(d.inputChars, d.input),
        steps: withStep(s, d.stepId, (st) =>
          withUnit({ ...st, status: 'running' }, d.itemIndex ?? 0, (prev) => {
            // A later attempt of the same unit keeps when the first was scheduled and how many retries were transient.
            const first = d.attempt > 1 && prev ? prev.firstScheduledAt : d.scheduledAt;
            const transientRetries = d.attempt > 1 && prev ? (prev.transientRetries ?? 0) : 0;
            const queueWaitedMs = d.attempt > 1 && prev ? (prev.queueWaitedMs ?? 0) : 0;
            return {
              ...unit,
              ...(first !== undefined && { firstScheduledAt: first }),
              ...(transientRetries > 0 && { transientRetries }),
              ...(queueWaitedMs > 0 && { queueWaitedMs }),
            };
          }),
        ),
      };
    }
    case 'StepDispatched': {
      const d = event.data;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) =>
          withUnit(st, d.itemIndex ?? 0, (u) => ({ ...u!, phase: 'dispatched', timeoutAt: d.timeoutAt })),
        ),
      };
    }
    case 'StepSucceeded': {
      const d = event.data;
      // Step-level results without a unit: a for_each step's (its items' outputs again, not
      // counted twice), or a wait step's (attempt 0).
      if (d.itemIndex === undefined && (isForEachStep(d.stepId) || d.attempt === 0)) {
        return {
          ...s,
          ...(isForEachStep(d.stepId) ? {} : { outputChars: (s.outputChars ?? 0) + jsonChars(d.output) }),
          steps: withStep(s, d.stepId, (st) => ({ ...st, status: 'succeeded', output: d.output })),
        };
      }
      // A late success (of an item its step's failure stopped) changes the unit, not its failed step.
      return {
        ...s,
        outputChars: (s.outputChars ?? 0) + recordedChars(d.outputChars, d.output),
        steps: withStep(s, d.stepId, (st) => {
          const next = withUnit(st, d.itemIndex ?? 0, (u) => {
            const { error: _error, stoppedWhileSent: _stopped, ...rest } = u!;
            return { ...rest, phase: 'succeeded', output: d.output };
          });
          return d.itemIndex === undefined ? { ...next, status: 'succeeded', output: d.output } : next;
        }),
      };
    }
    case 'StepFailed': {
      const d = event.data;
      const stepLevel = d.itemIndex === undefined;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) => {
          let next = st;
          const touchesUnit = !(stepLevel && isForEachStep(d.stepId)) && d.attempt > 0 && st.units[d.itemIndex ?? 0];
          if (touchesUnit)
            next = withUnit(next, d.itemIndex ?? 0, (u) => {
              const waited = refusedQueueWait(u, d.error, d.at);
              return {
                ...u!,
                phase: 'failed',
                error: d.error,
                ...(waited > 0 && { queueWaitedMs: (u!.queueWaitedMs ?? 0) + waited }),
              };
            });
          return stepLevel && d.final ? { ...next, status: 'failed', error: d.error } : next;
        }),
      };
    }
    case 'StepTimedOut': {
      const d = event.data;
      const err: StepError = { code: 'timeout', message: 'timed out', retryable: true };
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) =>
          withUnit(st, d.itemIndex ?? 0, (u) => ({ ...u!, phase: 'failed', error: err, timedOut: true })),
        ),
      };
    }
    case 'StepStopped': {
      const d = event.data;
      const error: StepError = { code: 'canceled', message: `stopped: ${d.reason}`, retryable: false };
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) => {
          let next = st;
          const u = st.units[d.itemIndex ?? 0];
          const addressesUnit = (d.itemIndex !== undefined) === isForEachStep(d.stepId);
          // An item sent (or maybe sent: scheduled) may still finish at its server: see takesLateSuccess.
          const sent = d.itemIndex !== undefined && (u?.phase === 'scheduled' || u?.phase === 'dispatched');
          if (addressesUnit && u && u.attempt === d.attempt && inFlight(u))
            next = withUnit(next, d.itemIndex ?? 0, () => ({
              ...u,
              phase: 'canceled',
              error,
              ...(sent ? { stoppedWhileSent: true as const } : {}),
            }));
          return d.itemIndex === undefined && next.status === 'running' ? { ...next, status: 'failed', error } : next;
        }),
      };
    }
    case 'StepRetryScheduled': {
      const d = event.data;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) =>
          withUnit(st, d.itemIndex ?? 0, (u) => ({
            ...u!,
            phase: 'retry_wait',
            attempt: d.attempt,
            retryOf: { attempt: u!.attempt, idempotencyKey: u!.idempotencyKey },
            dueAt: d.dueAt,
            idempotencyKey: idempotencyKey(s.executionId, d, d.attempt),
            ...(d.transient && { transientRetries: (u?.transientRetries ?? 0) + 1 }),
          })),
        ),
      };
    }
    case 'StepRedispatched': {
      // Sent again: whatever its worker said of the old send no longer holds; it will say it again.
      const d = event.data;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) =>
          withUnit(st, d.itemIndex ?? 0, (u) => {
            const { queuedAt: _q, startedAt: _s, ...rest } = u!;
            return { ...rest, timeoutAt: d.timeoutAt };
          }),
        ),
      };
    }
    case 'StepQueued': {
      const d = event.data;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) =>
          withUnit(st, d.itemIndex ?? 0, (u) => ({ ...u!, queuedAt: d.queuedAt, timeoutAt: d.timeoutAt })),
        ),
      };
    }
    case 'StepStarted': {
      const d = event.data;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) =>
          withUnit(st, d.itemIndex ?? 0, (u) => ({ ...u!, startedAt: d.startedAt, timeoutAt: d.timeoutAt })),
        ),
      };
    }
    case 'StepSkipped':
      return {
        ...s,
        steps: withStep(s, event.data.stepId, (st) => ({ ...st, status: 'skipped', skipReason: event.data.reason })),
      };
    case 'ExecutionCancelRequested':
      return {
        ...s,
        status: 'canceling',
        steps: abandonUndispatched(s),
        cancel: { reason: event.data.reason, actor: event.data.actor, requestedAt: event.data.requestedAt },
      };
    case 'CompensationStarted': {
      const d = event.data;
      const compensations = {
        ...s.compensations,
        [compensationKey(d)]: {
          stepId: d.stepId,
          ...(d.itemIndex === undefined ? {} : { itemIndex: d.itemIndex }),
          forStepId: d.forStepId,
          status: 'running' as const,
          uses: d.uses,
          input: d.input,
          idempotencyKey: d.idempotencyKey,
          timeoutMs: d.timeoutMs,
          startedAt: d.startedAt,
        },
      };
      const inputChars = (s.inputChars ?? 0) + recordedChars(d.inputChars, d.input);
      if (s.status === 'running' && d.cause === 'step_failed' && !s.failing) {
        const failed = s.steps[d.forStepId];
        const error = failed?.error ?? { code: 'failed', message: 'step failed', retryable: false };
        return {
          ...s,
          inputChars,
          compensations,
          steps: abandonUndispatched(s),
          failing: { stepId: d.forStepId, reason: `step "${d.forStepId}" failed: ${error.message}`, error },
        };
      }
      return { ...s, inputChars, compensations };
    }
    case 'CompensationSucceeded':
    case 'CompensationFailed': {
      const key = compensationKey(event.data);
      const c = s.compensations[key];
      if (!c) return s;
      const done =
        event.type === 'CompensationSucceeded'
          ? { ...c, status: 'succeeded' as const, output: event.data.output }
          : { ...c, status: 'failed' as const, error: event.data.error };
      return { ...s, compensations: { ...s.compensations, [key]: done } };
    }
    case 'WaitStarted':
    case 'SignalReceived':
    case 'SignalConsumed':
    case 'WaitTimedOut':
      return evolveSignals(s, event);
    case 'WorkflowCompleted':
      return {
        ...stripPhase(s),
        status: 'completed',
        outputs: event.data.outputs,
        completedAt: event.data.completedAt,
      };
    case 'WorkflowFailed':
      return { ...stripPhase(s), status: 'failed', reason: event.data.reason, failedAt: event.data.failedAt };
    case 'WorkflowCanceled':
      return { ...stripPhase(s), status: 'canceled', reason: event.data.reason, canceledAt: event.data.canceledAt };
    case 'StepOutputCopied': {
      const d = event.data;
      return {
        ...s,
        outputChars: (s.outputChars ?? 0) + jsonChars(d.output),
        steps: withStep(s, d.stepId, (st) => ({
          ...st,
          status: 'succeeded',
          output: d.output,
          copiedFrom: { executionId: d.fromExecutionId, revision: d.revision },
        })),
      };
    }
    case 'ExecutionRetried':
      return evolveRetried(s, event.data.steps);
    default:
      return assertNever(event, 'event');
  }
}

/** Keep only the shared execution data when moving to a terminal status. */
function stripPhase(s: ExecutionData): ExecutionData {
  return {
    executionId: s.executionId,
    definition: s.definition,
    input: s.input,
    seed: s.seed,
    startedAt: s.startedAt,
    correlationId: s.correlationId,
    ...(s.lineage ? { lineage: s.lineage } : {}),
    ...(s.forkedFrom ? { forkedFrom: s.forkedFrom } : {}),
    ...(s.maxUnitsInFlight !== undefined ? { maxUnitsInFlight: s.maxUnitsInFlight } : {}),
    ...(s.startedBy !== undefined ? { startedBy: s.startedBy } : {}),
    steps: s.steps,
    compensations: s.compensations,
    ...(s.signals ? { signals: s.signals } : {}),
    ...(s.outputChars !== undefined ? { outputChars: s.outputChars } : {}),
    ...(s.inputChars !== undefined ? { inputChars: s.inputChars } : {}),
    ...(s.retries !== undefined ? { retries: s.retries } : {}),
  };
}

/** The WorkflowExecution aggregate as a Decider. */
export const workflowExecutionDecider: Decider<WorkflowCommand, WorkflowEvent, WorkflowExecutionState> = {
  decide: decideWorkflow,
  evolve: evolveWorkflow,
  initialState: initialWorkflowState,
};

/** Stream name of one execution. */
export const WORKFLOW_EXECUTION_STREAM_PREFIX = 'workflow_execution-';
export const workflowExecutionStream = (executionId: string): string =>
  `${WORKFLOW_EXECUTION_STREAM_PREFIX}${executionId}`;

// ---- signals and wait steps -----------------------------------------------------
// Kept apart from the rest of the decider: a wait step has no unit and is never dispatched. It
// starts (WaitStarted, a durable timer until timeoutAt), and ends by a signal (StepSucceeded with
// the payload, attempt 0) or by its timer (WaitTimedOut, then what `on_timeout` says).

type StartedState = Exclude<WorkflowExecutionState, { status: 'not_started' }>;
type WaitEvent = Extract<WorkflowEvent, { type: 'WaitStarted' | 'SignalReceived' | 'SignalConsumed' | 'WaitTimedOut' }>;

const waitStepsFor = (d: WorkflowDefinition, name: string): StepDefinition[] =>
  d.steps.filter((x) => x.wait?.signal === name);

/** A wait step reached: arm its timeout and take a signal that came before it, if one did. */
function startWait(
  state: Extract<ActiveExecution, { status: 'running' }>,
  def: StepDefinition,
  ctx: ExpressionContext,
  meta: CommandMetadata,
  failNow: (e: unknown) => WorkflowEvent[],
): WorkflowEvent[] {
  const w = def.wait!;
  const now = meta.timestamp;
  let timeoutMs: unknown;
  try {
    timeoutMs = typeof w.timeout_ms === 'number' ? w.timeout_ms : resolveMapping(w.timeout_ms, ctx);
  } catch (e) {
    return failNow(e);
  }
  if (typeof timeoutMs === 'bigint') timeoutMs = Number(timeoutMs);
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isInteger(timeoutMs) ||
    timeoutMs < 1 ||
    timeoutMs > MAX_WAIT_TIMEOUT_MS
  ) {
    return failNow(
      new ExpressionError(
        String(w.timeout_ms),
        `wait.timeout_ms gave ${JSON.stringify(timeoutMs)}; an integer of 1..${MAX_WAIT_TIMEOUT_MS} ms is needed`,
      ),
    );
  }
  const events: WorkflowEvent[] = [
    {
      type: 'WaitStarted',
      data: { stepId: def.id, signal: w.signal, startedAt: now, timeoutAt: addMs(now, timeoutMs) },
      metadata: meta,
    },
  ];
  const early = (state.signals ?? []).find(
    (x) => x.name === w.signal && x.disposition === 'buffered' && x.consumedBy === undefined,
  );
  if (early) {
    events.push(
      {
        type: 'SignalConsumed',
        data: { signalId: early.signalId, name: early.name, stepId: def.id, at: now },
        metadata: meta,
      },
      { type: 'StepSucceeded', data: { stepId: def.id, attempt: 0, output: early.payload, at: now }, metadata: meta },
    );
  }
  return events;
}

/**
 * Room for one more signal that no waiting step takes (buffered or ignored): such signals are
 * bounded per execution (WORKFLOW_MAX_SIGNALS, WORKFLOW_MAX_SIGNAL_BYTES), each stays in the
 * stream every command folds. A signal a waiting step takes is always recorded: their number is
 * bounded by the definition, and junk sent first must not lock a real one out.
 */
function assertSignalRoom(s: StartedState, c: SendSignal['data']): void {
  const limits = workflowLimits();
  const recorded = s.signals ?? [];
  if (recorded.length >= limits.maxSignals)
    throw new DomainError(
      'illegal_state',
      `execution has recorded ${recorded.length} signals; at most ${limits.maxSignals} (WORKFLOW_MAX_SIGNALS)`,
      { limit: limits.maxSignals, setting: 'WORKFLOW_MAX_SIGNALS' },
    );
  const payloadChars = (p: unknown) => JSON.stringify(p ?? null).length;
  const chars = recorded.reduce((n, x) => n + payloadChars(x.payload), payloadChars(c.payload));
  if (chars > limits.maxSignalChars)
    throw new DomainError(
      'illegal_state',
      `the execution's signal payloads would hold ${chars} characters of JSON; at most ${limits.maxSignalChars} (WORKFLOW_MAX_SIGNAL_BYTES)`,
      { limit: limits.maxSignalChars, setting: 'WORKFLOW_MAX_SIGNAL_BYTES' },
    );
}

/**
 * SendSignal: 409 once the execution has ended, 404 when no wait step of its definition takes
 * that signal; otherwise always recorded, with what it did (see SignalDisposition). A repeated
 * signal id records nothing.
 */
function decideSendSignal(s: StartedState, c: SendSignal['data'], meta: CommandMetadata): WorkflowEvent[] {
  if ((s.signals ?? []).some((x) => x.signalId === c.signalId)) return [];
  if (s.status === 'completed' || s.status === 'failed' || s.status === 'canceled') {
    throw new DomainError('illegal_state', `workflow execution is already ${s.status}`, { status: s.status });
  }
  const waits = waitStepsFor(s.definition, c.name);
  if (waits.length === 0) {
    const known = [...new Set(s.definition.steps.flatMap((x) => (x.wait ? [x.wait.signal] : [])))];
    throw new DomainError('not_found', `workflow "${s.definition.id}" has no wait step for signal "${c.name}"`, {
      signal: c.name,
      signals: known,
    });
  }
  const now = meta.timestamp;
  const base = { signalId: c.signalId, name: c.name, payload: c.payload, receivedAt: now, actor: meta.actor ?? null };
  const received = (extra: {
    disposition: 'consumed' | 'buffered' | 'ignored';
    stepId?: string;
    reason?: string;
  }): WorkflowEvent => ({
    type: 'SignalReceived',
    data: { ...base, ...extra },
    metadata: meta,
  });
  if (s.status !== 'running' || s.failing) {
    assertSignalRoom(s, c);
    return [
      received({ disposition: 'ignored', reason: `the execution is ${s.status === 'running' ? 'failing' : s.status}` }),
    ];
  }
  const waiting = waits.find(
    (d) => s.steps[d.id]?.status === 'running' && s.steps[d.id]?.wait && !s.steps[d.id]?.wait?.ended,
  );
  // Only the wait's timer ends a wait: a signal that comes while the wait is open is taken, even
  // when its time is past `timeoutAt`. That time is the sender's clock (a gateway, maybe on another
  // host or just after a step of its clock); the engine arms the timer and fires it on its own
  // monotonic deadline, so a late timer only means the wait is still open.
  if (waiting) {
    return [
      received({ disposition: 'consumed', stepId: waiting.id }),
      { type: 'StepSucceeded', data: { stepId: waiting.id, attempt: 0, output: c.payload, at: now }, metadata: meta },
    ];
  }
  assertSignalRoom(s, c);
  const pending = waits.filter((d) => s.steps[d.id]?.status === 'pending').length;
  const buffered = (s.signals ?? []).filter(
    (x) => x.name === c.name && x.disposition === 'buffered' && x.consumedBy === undefined,
  ).length;
  if (pending > buffered) return [received({ disposition: 'buffered' })];
  const why = waits.map((d) => {
    const st = s.steps[d.id];
    if (st?.wait?.ended === 'timed_out') return `wait step "${d.id}" timed out at ${st.wait.timeoutAt}`;
    if (st?.wait?.ended === 'signaled') return `wait step "${d.id}" already got its signal`;
    if (st?.status === 'skipped') return `wait step "${d.id}" was skipped`;
    if (st?.status === 'pending') return `a signal already waits for wait step "${d.id}"`;
    return `wait step "${d.id}" is ${st?.status ?? 'unknown'}`;
  });
  return [
    received({ disposition: 'ignored', reason: `${why.join('; ')}: the signal is recorded but changes nothing` }),
  ];
}

/** The wait timer fired: only for a step still waiting, and never before its deadline. */
function decideWaitTimedOut(s: StartedState, stepId: string, meta: CommandMetadata): WorkflowEvent[] {
  const def = requireStep(s, stepId);
  const st = s.steps[stepId];
  if (s.status !== 'running' || s.failing || !def.wait || st?.status !== 'running' || !st.wait || st.wait.ended)
    return [];
  const now = meta.timestamp;
  if (!notBefore(now, st.wait.timeoutAt)) return [];
  const onTimeout = def.wait.on_timeout;
  const kind = typeof onTimeout === 'object' ? 'default_output' : onTimeout;
  const timedOut: WorkflowEvent = {
    type: 'WaitTimedOut',
    data: { stepId, signal: def.wait.signal, onTimeout: kind, at: now },
    metadata: meta,
  };
  if (typeof onTimeout === 'object' || onTimeout === 'continue') {
    const output = typeof onTimeout === 'object' ? onTimeout.default_output : null;
    return [timedOut, { type: 'StepSucceeded', data: { stepId, attempt: 0, output, at: now }, metadata: meta }];
  }
  const error: StepError = {
    code: 'wait_timeout',
    message: `no signal "${def.wait.signal}" before ${st.wait.timeoutAt}`,
    retryable: false,
  };
  const failed: WorkflowEvent = {
    type: 'StepFailed',
    data: { stepId, attempt: 0, error, final: true, at: now },
    metadata: meta,
  };
  return [timedOut, failed, ...onStepFailed(evolveAll(s, [timedOut, failed]), def, error, meta)];
}

function evolveSignals(s: StartedState, event: WaitEvent): WorkflowExecutionState {
  const signals = s.signals ?? [];
  const endWait = (stepId: string, ended: 'signaled' | 'timed_out') =>
    withStep(s, stepId, (st) => (st.wait ? { ...st, wait: { ...st.wait, ended } } : st));
  switch (event.type) {
    case 'WaitStarted': {
      const d = event.data;
      return {
        ...s,
        steps: withStep(s, d.stepId, (st) => ({
          ...st,
          status: 'running',
          wait: { signal: d.signal, startedAt: d.startedAt, timeoutAt: d.timeoutAt },
        })),
      };
    }
    case 'SignalReceived': {
      const d = event.data;
      const consumed = d.disposition === 'consumed' && d.stepId !== undefined;
      const rec: ReceivedSignal = {
        signalId: d.signalId,
        name: d.name,
        payload: d.payload,
        receivedAt: d.receivedAt,
        disposition: d.disposition,
        ...(d.reason !== undefined ? { reason: d.reason } : {}),
        ...(consumed ? { consumedBy: d.stepId } : {}),
      };
      return { ...s, signals: [...signals, rec], ...(consumed ? { steps: endWait(d.stepId, 'signaled') } : {}) };
    }
    case 'SignalConsumed': {
      const d = event.data;
      return {
        ...s,
        signals: signals.map((x) => (x.signalId === d.signalId ? { ...x, consumedBy: d.stepId } : x)),
        steps: endWait(d.stepId, 'signaled'),
      };
    }
    case 'WaitTimedOut':
      return { ...s, steps: endWait(event.data.stepId, 'timed_out') };
    default:
      return assertNever(event, 'event');
  }
}

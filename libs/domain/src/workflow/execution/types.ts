/**
 * Commands, events and state of one workflow execution (stream `workflow_execution-<id>`).
 * A "unit" is one dispatchable piece of work: a plain step, or one item of a for_each step.
 */
import type { Command, Event } from '../../decider.js';
import type { WorkflowDefinition, WorkflowDefinitionInput } from '../definition/schema.js';

/** Why a step attempt failed, as reported by whoever ran it. `retryable` says if trying again can help. */
export interface StepError {
  readonly code: string;
  readonly message: string;
  readonly retryable: boolean;
  /** The worker asked not to be called again before this many ms (e.g. a full queue); a floor for the next delay. */
  readonly retryAfterMs?: number;
}

/** Addresses one unit: a step, and for for_each steps the item index. */
export interface UnitRef {
  readonly stepId: string;
  readonly itemIndex?: number;
}

/**
 * Where a sub-workflow execution sits in its tree: the root execution (started by a person or a
 * client), its parent, and its depth (the root is 0 and has no lineage). Absent on old streams.
 */
export interface ExecutionLineage {
  readonly rootExecutionId: string;
  readonly parentExecutionId: string;
  readonly depth: number;
}

// ---- commands -------------------------------------------------------------

export type StartWorkflow = Command<
  'StartWorkflow',
  {
    readonly executionId: string;
    /** The definition as it was when started: later edits never change a running execution. */
    readonly definition: WorkflowDefinitionInput;
    readonly input: unknown;
    /** Seed for retry jitter; derived from the execution id when absent. */
    readonly seed?: number;
    /** Set when a parent execution starts this one as a sub-workflow. */
    readonly lineage?: ExecutionLineage;
    /** The units cap to record instead of this process's (a replay check repeats a recorded start). */
    readonly maxUnitsInFlight?: number;
    /**
     * Whom it runs for when a part of the system starts it: a sub-workflow's parent's starter (the
     * engine starts it), a trigger's caller or a schedule's owner (the trigger starter starts it).
     */
    readonly onBehalfOf?: string;
  }
>;
/** The orchestrator handed the unit to its executor (NATS request sent). */
export type RecordStepDispatched = Command<'RecordStepDispatched', UnitRef & { readonly attempt: number }>;
export type RecordStepSucceeded = Command<
  'RecordStepSucceeded',
  UnitRef & { readonly attempt: number; readonly output: unknown }
>;
export type RecordStepFailed = Command<
  'RecordStepFailed',
  UnitRef & { readonly attempt: number; readonly error: StepError }
>;
/** The timeout timer of a dispatched attempt fired. */
export type RecordStepTimedOut = Command<'RecordStepTimedOut', UnitRef & { readonly attempt: number }>;
/**
 * The engine came back (start, take-over) and sent a dispatched attempt that had no reply again,
 * with its idempotency key: the attempt's timeout restarts from now, so downtime is not charged to it.
 */
export type RecordStepRedispatched = Command<'RecordStepRedispatched', UnitRef & { readonly attempt: number }>;
/**
 * The worker of a dispatched attempt said its call waits for a slot (a full MCP server): the
 * attempt's deadline becomes now + its queue-wait budget (queueWaitBudgetMs: 60 s for MCP, 10 min for agent tasks) + its timeout.
 */
export type RecordStepQueued = Command<'RecordStepQueued', UnitRef & { readonly attempt: number }>;
/** The worker of a dispatched attempt said its call has started running: the timeout counts from now. */
export type RecordStepStarted = Command<'RecordStepStarted', UnitRef & { readonly attempt: number }>;
/** The backoff timer of a retry fired: schedule that attempt. */
export type RetryStep = Command<'RetryStep', UnitRef & { readonly attempt: number }>;
export type RequestCancel = Command<'RequestCancel', { readonly reason: string }>;
/** `itemIndex`: the compensation of that item of a for_each step (see CompensationStarted). */
export type RecordCompensationSucceeded = Command<
  'RecordCompensationSucceeded',
  { readonly stepId: string; readonly itemIndex?: number; readonly output: unknown }
>;
export type RecordCompensationFailed = Command<
  'RecordCompensationFailed',
  { readonly stepId: string; readonly itemIndex?: number; readonly error: StepError }
>;

// ---- operations on executions (fork, retry) ---------------------------------

/** One recorded step output a fork takes over from its source execution instead of running the step. */
export interface CopiedStep {
  readonly stepId: string;
  readonly output: unknown;
  /** Revision of the source's event that recorded the output (StepSucceeded, or StepOutputCopied of an earlier fork). */
  readonly revision: number;
}
/**
 * Start a new execution that takes over the outputs of some steps of another one (`copies`,
 * chosen by `planFork`) and runs the rest. Every copied step must exist in `definition`.
 */
export type ForkWorkflow = Command<
  'ForkWorkflow',
  {
    readonly executionId: string;
    readonly definition: WorkflowDefinitionInput;
    readonly input: unknown;
    readonly fromExecutionId: string;
    readonly fromStep: string;
    readonly copies: readonly CopiedStep[];
    readonly seed?: number;
  }
>;
/** Re-run a failed execution's failed, timed-out and unfinished steps and everything downstream of them; keep the rest. */
export type RetryExecution = Command<
  'RetryExecution',
  {
    readonly reason?: string;
    /**
     * Retry only the failure of the run the caller saw: the execution has been retried exactly this
     * many times (ExecutionData.retries). Else `illegal_state` with `details.expected`: someone retried it since, and that
     * run's failure is not the one the caller meant. Absent: any failure.
     */
    readonly ifRetries?: number;
  }
>;

/**
 * A named signal for an execution (`POST .../executions/{id}/signals/{name}`). `signalId` makes it
 * idempotent: the same id twice records it once. Its payload becomes a waiting step's output.
 */
export type SendSignal = Command<
  'SendSignal',
  { readonly signalId: string; readonly name: string; readonly payload: Record<string, unknown> }
>;
/** The durable timer of a wait step fired. */
export type RecordWaitTimedOut = Command<'RecordWaitTimedOut', { readonly stepId: string }>;

export type WorkflowCommand =
  | SendSignal
  | RecordWaitTimedOut
  | StartWorkflow
  | RecordStepDispatched
  | RecordStepSucceeded
  | RecordStepFailed
  | RecordStepTimedOut
  | RecordStepRedispatched
  | RecordStepQueued
  | RecordStepStarted
  | RetryStep
  | RequestCancel
  | RecordCompensationSucceeded
  | RecordCompensationFailed
  | ForkWorkflow
  | RetryExecution;

// ---- events ---------------------------------------------------------------

export type WorkflowStarted = Event<
  'WorkflowStarted',
  {
    readonly executionId: string;
    readonly definition: WorkflowDefinition;
    /** The input after validation, defaults applied. */
    readonly input: Record<string, unknown>;
    readonly seed: number;
    readonly startedAt: string;
    /** Only on sub-workflow executions (optional: older streams have none). */
    readonly lineage?: ExecutionLineage;
    /** Only on forks: the execution it was forked from and the step it runs again from. */
    readonly forkedFrom?: { readonly executionId: string; readonly fromStep: string };
    /**
     * WORKFLOW_MAX_UNITS_IN_FLIGHT where it started: every later decision (the engine's, a gateway's
     * command, a replay) holds the execution to this one, whatever its own process is set to.
     * Absent in older streams: the deciding process's limit.
     */
    readonly maxUnitsInFlight?: number;
    /**
     * Whom it runs for when a part of the system started it: a sub-workflow's parent's starter, a
     * trigger's caller or a schedule's owner; see ExecutionData.startedBy.
     */
    readonly onBehalfOf?: string;
  }
>;
/** A for_each step resolved its item list. */
/**
 * A for_each step's items resolved. `keptItems`: the indices of items that succeeded in a run before
 * the execution's retry and would run the same (the same item, the same resolved input): they keep
 * their output and are not run again (absent: none, every item runs).
 */
export type StepExpanded = Event<
  'StepExpanded',
  { readonly stepId: string; readonly items: readonly unknown[]; readonly keptItems?: readonly number[] }
>;
/** Dispatch decided: the orchestrator must send this unit (at least once, with the idempotency key). */
export type StepScheduled = Event<
  'StepScheduled',
  UnitRef & {
    readonly attempt: number;
    readonly idempotencyKey: string;
    readonly uses: string;
    readonly input: unknown;
    /** Characters of `input` as JSON, counted once when decided (a fold reads it, not the input); absent in older events. */
    readonly inputChars?: number;
    readonly timeoutMs: number;
    readonly scheduledAt: string;
  }
>;
export type StepDispatched = Event<
  'StepDispatched',
  UnitRef & {
    readonly attempt: number;
    readonly idempotencyKey: string;
    readonly dispatchedAt: string;
    readonly timeoutAt: string;
  }
>;
/**
 * Without itemIndex on a for_each step: all items succeeded and `output` is their list. `late`: the
 * success of an item its step's failure had stopped while it was sent (UnitState.stoppedWhileSent):
 * its call finished at its server anyway, so the item is succeeded (and undone on a later cancel),
 * while its step stays failed.
 */
export type StepSucceeded = Event<
  'StepSucceeded',
  UnitRef & {
    readonly attempt: number;
    readonly output: unknown;
    /** Characters of `output` as JSON, counted once when decided; absent in older events and where not counted. */
    readonly outputChars?: number;
    readonly at: string;
    readonly late?: true;
  }
>;
/**
 * An attempt failed. `final` = no more attempts: the step (or item) has failed. Without itemIndex on a
 * for_each step it is the step-level failure. attempt 0 = failed before dispatch (bad expression).
 */
export type StepFailed = Event<
  'StepFailed',
  UnitRef & { readonly attempt: number; readonly error: StepError; readonly final: boolean; readonly at: string }
>;
/**
 * The next attempt waits for a durable timer due at `dueAt`. `transient`: a retry of a transient
 * error (retryable, reported by the worker) that the engine makes on its own, outside the step's
 * retry policy, within a time budget; it does not use up one of the policy's attempts.
 */
export type StepRetryScheduled = Event<
  'StepRetryScheduled',
  UnitRef & { readonly attempt: number; readonly delayMs: number; readonly dueAt: string; readonly transient?: boolean }
>;
/** A dispatched attempt was sent again after the engine recovered it; its timeout counts from `dispatchedAt`. */
export type StepRedispatched = Event<
  'StepRedispatched',
  UnitRef & {
    readonly attempt: number;
    readonly idempotencyKey: string;
    readonly dispatchedAt: string;
    readonly timeoutAt: string;
  }
>;
/** The attempt's call waits in its worker's queue; its deadline allows for the wait (`timeoutAt`). */
export type StepQueued = Event<
  'StepQueued',
  UnitRef & { readonly attempt: number; readonly queuedAt: string; readonly timeoutAt: string }
>;
/** The attempt's call started running after waiting in its worker's queue; its timeout counts from `startedAt`. */
export type StepStarted = Event<
  'StepStarted',
  UnitRef & { readonly attempt: number; readonly startedAt: string; readonly timeoutAt: string }
>;
export type StepTimedOut = Event<'StepTimedOut', UnitRef & { readonly attempt: number; readonly at: string }>;
/**
 * Work still in flight was given up because what it was for has settled: the other items of a
 * for_each step that failed, or whatever still ran when the execution ended (completed, failed,
 * canceled). With `itemIndex`: that item's unit (`attempt`: the one in flight, or the one a retry
 * waited for) ends `canceled`; its late result is ignored, but a success of an item that was sent
 * (or scheduled) is recorded while the execution has not ended (StepSucceeded `late`). Without it: the step's unit of that
 * attempt likewise (attempt 0: none, a wait step or a for_each step), and a step still running ends
 * failed with code `canceled`. `dispatched`: the unit had been sent, so whoever runs it is asked to
 * stop it, as on a cancel (a sub-workflow's child is canceled). Absent from older streams.
 */
export type StepStopped = Event<
  'StepStopped',
  UnitRef & { readonly attempt: number; readonly dispatched: boolean; readonly reason: string; readonly at: string }
>;
export type SkipReason = 'condition_false' | 'dependency_skipped' | 'dependency_failed';
export type StepSkipped = Event<
  'StepSkipped',
  { readonly stepId: string; readonly reason: SkipReason; readonly at: string }
>;
export type ExecutionCancelRequested = Event<
  'ExecutionCancelRequested',
  { readonly reason: string; readonly actor: string | null; readonly requestedAt: string }
>;
/**
 * A compensation step was started, for a failed step (`forStepId`) or for a cancel. With
 * `itemIndex`: the compensation of that item of the for_each step `forStepId` (its
 * `for_each.compensate`), one per item that succeeded, each with its own key.
 */
export type CompensationStarted = Event<
  'CompensationStarted',
  {
    readonly stepId: string;
    readonly itemIndex?: number;
    readonly forStepId: string;
    readonly cause: 'step_failed' | 'canceled';
    readonly uses: string;
    readonly input: unknown;
    /** Characters of `input` as JSON, counted once when decided; absent in older events. */
    readonly inputChars?: number;
    readonly idempotencyKey: string;
    readonly timeoutMs: number;
    readonly startedAt: string;
  }
>;
export type CompensationSucceeded = Event<
  'CompensationSucceeded',
  { readonly stepId: string; readonly itemIndex?: number; readonly output: unknown; readonly at: string }
>;
export type CompensationFailed = Event<
  'CompensationFailed',
  { readonly stepId: string; readonly itemIndex?: number; readonly error: StepError; readonly at: string }
>;
export type WorkflowCompleted = Event<
  'WorkflowCompleted',
  { readonly outputs: Record<string, unknown>; readonly completedAt: string }
>;
export type WorkflowFailed = Event<
  'WorkflowFailed',
  {
    readonly reason: string;
    readonly stepId: string | null;
    readonly error: StepError | null;
    readonly failedAt: string;
  }
>;
export type WorkflowCanceled = Event<'WorkflowCanceled', { readonly reason: string; readonly canceledAt: string }>;
/** A fork took this step's output over from its source execution: the step is succeeded without running. */
export type StepOutputCopied = Event<
  'StepOutputCopied',
  {
    readonly stepId: string;
    readonly output: unknown;
    readonly fromExecutionId: string;
    readonly revision: number;
    readonly at: string;
  }
>;
/**
 * A failed execution runs again: `steps` go back to pending (their next attempt numbers follow the
 * old ones, so both runs stay in the history), everything else keeps its result.
 */
export type ExecutionRetried = Event<
  'ExecutionRetried',
  {
    readonly steps: readonly string[];
    readonly reason: string;
    readonly actor: string | null;
    readonly retriedAt: string;
  }
>;

/** A wait step started waiting for its signal, until `timeoutAt`. */
export type WaitStarted = Event<
  'WaitStarted',
  { readonly stepId: string; readonly signal: string; readonly startedAt: string; readonly timeoutAt: string }
>;
/**
 * What happened to a signal when it arrived: `consumed` by the step waiting for it now (`stepId`),
 * `buffered` for a wait step not reached yet, or `ignored` (`reason`: the wait it was meant for
 * timed out or already got its signal, or the execution is ending). Always recorded (audit).
 */
export type SignalDisposition = 'consumed' | 'buffered' | 'ignored';
export type SignalReceived = Event<
  'SignalReceived',
  {
    readonly signalId: string;
    readonly name: string;
    readonly payload: Record<string, unknown>;
    readonly receivedAt: string;
    readonly actor: string | null;
    readonly disposition: SignalDisposition;
    readonly stepId?: string;
    readonly reason?: string;
  }
>;
/** A buffered signal was taken by the wait step that just started (its output follows as StepSucceeded). */
export type SignalConsumed = Event<
  'SignalConsumed',
  { readonly signalId: string; readonly name: string; readonly stepId: string; readonly at: string }
>;
/** A wait step's timeout passed without its signal; `onTimeout` says what follows (StepSucceeded or StepFailed). */
export type WaitTimedOut = Event<
  'WaitTimedOut',
  {
    readonly stepId: string;
    readonly signal: string;
    readonly onTimeout: 'fail' | 'continue' | 'default_output';
    readonly at: string;
  }
>;

export type WorkflowEvent =
  | WaitStarted
  | SignalReceived
  | SignalConsumed
  | WaitTimedOut
  | WorkflowStarted
  | StepExpanded
  | StepScheduled
  | StepDispatched
  | StepSucceeded
  | StepFailed
  | StepRetryScheduled
  | StepRedispatched
  | StepQueued
  | StepStarted
  | StepTimedOut
  | StepStopped
  | StepSkipped
  | ExecutionCancelRequested
  | CompensationStarted
  | CompensationSucceeded
  | CompensationFailed
  | WorkflowCompleted
  | WorkflowFailed
  | WorkflowCanceled
  | StepOutputCopied
  | ExecutionRetried;

export const workflowEventTypes: readonly WorkflowEvent['type'][] = [
  'WaitStarted',
  'SignalReceived',
  'SignalConsumed',
  'WaitTimedOut',
  'WorkflowStarted',
  'StepExpanded',
  'StepScheduled',
  'StepDispatched',
  'StepSucceeded',
  'StepFailed',
  'StepRetryScheduled',
  'StepRedispatched',
  'StepQueued',
  'StepStarted',
  'StepTimedOut',
  'StepStopped',
  'StepSkipped',
  'ExecutionCancelRequested',
  'CompensationStarted',
  'CompensationSucceeded',
  'CompensationFailed',
  'WorkflowCompleted',
  'WorkflowFailed',
  'WorkflowCanceled',
  'StepOutputCopied',
  'ExecutionRetried',
];

// ---- state ----------------------------------------------------------------

/**
 * One attempt-carrying unit. `canceled` = abandoned before dispatch (workflow failing or
 * canceling), or stopped in flight (StepStopped).
 */
export interface UnitState {
  readonly stepId: string;
  readonly itemIndex?: number;
  readonly attempt: number;
  readonly phase: 'scheduled' | 'dispatched' | 'retry_wait' | 'succeeded' | 'failed' | 'canceled';
  readonly input: unknown;
  readonly idempotencyKey: string;
  readonly timeoutMs: number;
  readonly timeoutAt?: string;
  readonly dueAt?: string;
  readonly output?: unknown;
  readonly error?: StepError;
  /** This attempt failed because its own timeout fired (StepTimedOut), not by its worker's answer. */
  readonly timedOut?: boolean;
  /**
   * An item stopped (StepStopped) while it was sent, or scheduled and so maybe sent: its worker
   * lets a call already at its server finish, so its success may still come, and is recorded
   * (StepSucceeded `late`) while the execution has not ended.
   */
  readonly stoppedWhileSent?: true;
  /**
   * The attempt made before the retry this unit waits for (StepRetryScheduled), kept when a cancel
   * or a failure abandons that wait: `attempt` and `idempotencyKey` are then the retry's, which no
   * StepScheduled began, and its input, error and timedOut are still this attempt's (it failed).
   */
  readonly retryOf?: { readonly attempt: number; readonly idempotencyKey: string };
  /** When the unit's first attempt was scheduled: the transient-retry budget counts from here. */
  readonly firstScheduledAt?: string;
  /** Attempts that were transient retries (not counted against the step's retry policy). */
  readonly transientRetries?: number;
  /**
   * Time the unit's attempts spent waiting in their worker's queue and were refused without
   * running (`rate_limited`): the server was busy, not failing, so it does not use up the
   * transient-retry budget (under load the work waits instead of failing).
   */
  readonly queueWaitedMs?: number;
  /** This attempt's call waits in its worker's queue (since then), or has started running after it. */
  readonly queuedAt?: string;
  readonly startedAt?: string;
}

export interface StepState {
  readonly id: string;
  readonly status: 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';
  readonly output: unknown;
  readonly error: StepError | null;
  readonly skipReason?: SkipReason;
  /** A wait step that started waiting: for which signal, until when; `ended` once signaled or timed out. */
  readonly wait?: {
    readonly signal: string;
    readonly startedAt: string;
    readonly timeoutAt: string;
    readonly ended?: 'signaled' | 'timed_out';
  };
  /** for_each: the resolved items (unset until expanded; after a retry, the last run's until expanded again). */
  readonly items?: readonly unknown[];
  /**
   * Plain step: at most one unit at [0]. for_each: one per started item, by index; after a retry, the
   * items that had succeeded stay until the step is expanded again (see StepExpanded.keptItems).
   */
  readonly units: readonly (UnitState | undefined)[];
  /** Attempts used before the execution's last retry: the next run's attempts count on from here. */
  readonly attemptBase?: number;
  /** Set when a fork took the output over from another execution. */
  readonly copiedFrom?: { readonly executionId: string; readonly revision: number };
}

/** One compensation run, under `compensations[compensationKey(...)]` (`step`, or `step[i]` for an item's). */
export interface CompensationState {
  readonly stepId: string;
  /** The for_each item it undoes (absent: a step's compensation). */
  readonly itemIndex?: number;
  readonly forStepId: string;
  readonly status: 'running' | 'succeeded' | 'failed';
  readonly uses: string;
  readonly input: unknown;
  readonly idempotencyKey: string;
  readonly timeoutMs: number;
  readonly startedAt: string;
  readonly output?: unknown;
  readonly error?: StepError;
}

/** What every started execution knows. */
export interface ExecutionData {
  readonly executionId: string;
  readonly definition: WorkflowDefinition;
  readonly input: Record<string, unknown>;
  readonly seed: number;
  readonly startedAt: string;
  readonly correlationId: string;
  /** Only on sub-workflow executions. */
  readonly lineage?: ExecutionLineage;
  /** Only on forks. */
  readonly forkedFrom?: { readonly executionId: string; readonly fromStep: string };
  /** See WorkflowStarted (absent in older streams). */
  readonly maxUnitsInFlight?: number;
  /** Who started it: the actor of its WorkflowStarted (an API key's `apikey:<id>`, `system:...`), or whom the system started it for (a sub-workflow's parent's starter, a trigger's caller, a schedule's owner). */
  readonly startedBy?: string;
  readonly steps: Readonly<Record<string, StepState>>;
  readonly compensations: Readonly<Record<string, CompensationState>>;
  /** Signals received, in order (absent until the first). */
  readonly signals?: readonly ReceivedSignal[];
  /**
   * Characters of JSON of the step outputs the execution has stored (each unit's, each wait's,
   * each copied one, a re-run's again; not a for_each step's list of its items' outputs, which
   * repeats them), checked
   * against WorkflowLimits.maxOutputChars. Absent: none yet.
   */
  readonly outputChars?: number;
  /**
   * Characters of JSON of the inputs the execution has stored (each StepScheduled's, each
   * CompensationStarted's), checked against WorkflowLimits.maxExecutionInputChars. Absent: none yet.
   */
  readonly inputChars?: number;
  /** Times the execution was retried (ExecutionRetried); absent: never. */
  readonly retries?: number;
}

/** A recorded signal; `consumedBy` once a wait step took it. */
export interface ReceivedSignal {
  readonly signalId: string;
  readonly name: string;
  readonly payload: Record<string, unknown>;
  readonly receivedAt: string;
  readonly disposition: SignalDisposition;
  readonly reason?: string;
  readonly consumedBy?: string;
}

export type WorkflowExecutionState =
  | { readonly status: 'not_started' }
  /** `failing` set: a step failed with a compensation; no new steps, ends failed once compensations settle. */
  | (ExecutionData & {
      readonly status: 'running';
      readonly failing?: { readonly stepId: string; readonly reason: string; readonly error: StepError };
    })
  /** No new steps; waits for dispatched units and compensations, then ends canceled. */
  | (ExecutionData & {
      readonly status: 'canceling';
      readonly cancel: { readonly reason: string; readonly actor: string | null; readonly requestedAt: string };
    })
  | (ExecutionData & {
      readonly status: 'completed';
      readonly outputs: Record<string, unknown>;
      readonly completedAt: string;
    })
  | (ExecutionData & { readonly status: 'failed'; readonly reason: string; readonly failedAt: string })
  | (ExecutionData & { readonly status: 'canceled'; readonly reason: string; readonly canceledAt: string });

export type WorkflowStatus = WorkflowExecutionState['status'];
export type StartedExecution = Exclude<WorkflowExecutionState, { status: 'not_started' }>;
export type ActiveExecution = Extract<WorkflowExecutionState, { status: 'running' | 'canceling' }>;

/**
 * Commands, events and state of one delegated task (stream `task-<task_id>`): a piece of work
 * handed to an AI agent, queued until an instance can take it, retried on another instance
 * when one fails, and ended by completion, failure, cancellation or timeout.
 *
 * Two counters, on purpose:
 * - `assignment` numbers every hand-over to an instance (1, 2, ...). Results, starts, failures
 *   and timeouts name the assignment they belong to, so a late answer from an earlier
 *   assignment is recognised and ignored.
 * - `attempts` counts the assignments that used up one of `max_attempts` (a "busy" refusal
 *   does not, nor always a dispatcher restart: see abandonedAttemptCounts).
 */
import type { Command, Event } from '../decider.js';

/** Priorities, most urgent first (the order the queue serves them in). */
export const taskPriorities = ['critical', 'high', 'normal', 'low'] as const;
export type TaskPriority = (typeof taskPriorities)[number];

/** Why an attempt failed, as reported by the agent or the dispatcher. */
export interface TaskError {
  readonly code: string;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

/**
 * Codes an agent answers when the task's input is at fault, not the agent: the context does not
 * fit (validation), names what does not exist (not_found), or asks what the data's state does not
 * allow (illegal_state, e.g. a proposal for a customer without an active subscription). Another
 * attempt would end the same, and the failure says nothing about how well the agent works.
 */
const CALLER_ERROR_CODES: ReadonlySet<string> = new Set(['validation', 'not_found', 'illegal_state']);
/**
 * `details.reason` of the errors with those codes that the system or an agent raises for a fault
 * of its own rather than of the input: a result the store refuses, an attempt that collides with
 * another of the same task on its instance (running, superseded, canceled), a task type the
 * instance does not handle, an external agent's own failure. Such an error must carry one of these
 * reasons, or it counts against the caller.
 */
export const SYSTEM_ERROR_REASONS: ReadonlySet<string> = new Set([
  'result_unrecordable',
  'already_running',
  'superseded',
  'canceled',
  'unhandled_task_type',
  // An A2A agent's task that ended failed, canceled or asking for credentials; its card unusable.
  'agent_ended_task',
  'unusable_card',
  // The agents' business data not loaded: the deployment's, whatever the input.
  'business_data_missing',
]);

/**
 * Whether a task failed through its caller's input (see CALLER_ERROR_CODES) rather than its
 * agent: an exception of the handler (`internal`, a `handler_error` among them), a timeout, an
 * agent unavailable or refusing its own answer are the agent's.
 */
export function isCallerError(error: TaskError): boolean {
  const reason = error.details?.['reason'];
  return CALLER_ERROR_CODES.has(error.code) && !(typeof reason === 'string' && SYSTEM_ERROR_REASONS.has(reason));
}

// ---- commands -------------------------------------------------------------

export type SubmitTask = Command<
  'SubmitTask',
  {
    readonly task_id: string;
    /** The canonical task type (an alias is resolved before the command). */
    readonly task_type: string;
    /** The name the submitter gave when it was an alias of `task_type` (TASK_TYPE_ALIASES); absent otherwise. */
    readonly requested_task_type?: string;
    readonly context: Record<string, unknown>;
    readonly priority: TaskPriority;
    /** Only this agent may run it (by name); otherwise any agent whose card lists the task type. */
    readonly agent?: string;
    readonly max_attempts: number;
    /** Limit of one attempt, counted from its assignment. Time spent queued does not count. */
    readonly timeout_ms: number;
    readonly idempotency_key?: string;
  }
>;
/** Defaults of a submission that names no limits: three attempts of at most a minute each. */
export const TASK_SUBMIT_DEFAULTS = { max_attempts: 3, timeout_ms: 60_000 } as const;

/** What a submitter asks for; what it leaves out is filled from `defaults`. */
export interface TaskSubmission {
  readonly context?: Record<string, unknown>;
  readonly priority: TaskPriority;
  readonly agent?: string;
  readonly max_attempts?: number;
  readonly timeout_ms?: number;
  readonly idempotency_key?: string;
}

/** SubmitTask's data, with no key for what is absent (events keep no `undefined` fields). */
export const submitTaskData = (
  taskId: string,
  taskType: string,
  alias: string | undefined,
  req: TaskSubmission,
  defaults: { readonly max_attempts: number; readonly timeout_ms: number } = TASK_SUBMIT_DEFAULTS,
): SubmitTask['data'] => ({
  task_id: taskId,
  task_type: taskType,
  ...(alias !== undefined ? { requested_task_type: alias } : {}),
  context: req.context ?? {},
  priority: req.priority,
  ...(req.agent !== undefined ? { agent: req.agent } : {}),
  max_attempts: req.max_attempts ?? defaults.max_attempts,
  timeout_ms: req.timeout_ms ?? defaults.timeout_ms,
  ...(req.idempotency_key !== undefined ? { idempotency_key: req.idempotency_key } : {}),
});

export type AssignTask = Command<'AssignTask', { readonly agent: string; readonly instance: string }>;
/** The instance admitted the task and its handler runs. */
export type StartTask = Command<'StartTask', { readonly assignment: number }>;
export type CompleteTask = Command<'CompleteTask', { readonly assignment: number; readonly result: unknown }>;
export type FailTask = Command<
  'FailTask',
  {
    readonly assignment: number;
    readonly error: TaskError;
    /** Whether another attempt can help (the agent's verdict, or the dispatcher's for lost instances). */
    readonly retryable: boolean;
    /** Record the instance so the next selection avoids it (default true; false for "busy" or a dispatcher restart). */
    readonly avoid_instance?: boolean;
    /** Whether this attempt uses up one of max_attempts (default true; false when the instance refused before running). */
    readonly count_attempt?: boolean;
  }
>;
export type CancelTask = Command<'CancelTask', { readonly actor: string; readonly reason: string }>;
export type TimeOutTask = Command<'TimeOutTask', { readonly assignment: number }>;

export type TaskCommand = SubmitTask | AssignTask | StartTask | CompleteTask | FailTask | CancelTask | TimeOutTask;

// ---- events ---------------------------------------------------------------

export type TaskSubmitted = Event<'TaskSubmitted', SubmitTask['data'] & { readonly submitted_at: string }>;
export type TaskQueued = Event<
  'TaskQueued',
  { readonly task_id: string; readonly reason: 'submitted' | 'retry'; readonly queued_at: string }
>;
export type TaskAssigned = Event<
  'TaskAssigned',
  {
    readonly task_id: string;
    readonly agent: string;
    readonly instance: string;
    readonly assignment: number;
    /** 1-based attempt this assignment would count as. */
    readonly attempt: number;
    readonly assigned_at: string;
    /** assigned_at + timeout_ms: the agent aborts at this instant, the dispatcher times the task out. */
    readonly deadline: string;
  }
>;
export type TaskStarted = Event<
  'TaskStarted',
  { readonly task_id: string; readonly assignment: number; readonly instance: string; readonly started_at: string }
>;
export type TaskCompleted = Event<
  'TaskCompleted',
  {
    readonly task_id: string;
    readonly task_type: string;
    readonly agent: string;
    readonly instance: string;
    readonly assignment: number;
    readonly result: unknown;
    /** From assignment to completion. */
    readonly duration_ms: number;
    readonly completed_at: string;
  }
>;
export type TaskFailed = Event<
  'TaskFailed',
  {
    readonly task_id: string;
    readonly task_type: string;
    readonly agent: string;
    readonly instance: string;
    readonly assignment: number;
    readonly attempts: number;
    readonly error: TaskError;
    readonly duration_ms: number;
    readonly failed_at: string;
  }
>;
export type TaskRetryScheduled = Event<
  'TaskRetryScheduled',
  {
    readonly task_id: string;
    readonly agent: string;
    readonly instance: string;
    readonly assignment: number;
    readonly error: TaskError;
    readonly avoid_instance: boolean;
    readonly counted: boolean;
    /** Attempts used after this one. */
    readonly attempts: number;
  }
>;
export type TaskCanceled = Event<
  'TaskCanceled',
  {
    readonly task_id: string;
    readonly actor: string;
    readonly reason: string;
    readonly previous_status: ActiveStatus;
    /** The instance running it, if it was running: the dispatcher tells it to stop. */
    readonly instance?: string;
    readonly agent?: string;
    readonly canceled_at: string;
  }
>;
export type TaskTimedOut = Event<
  'TaskTimedOut',
  {
    readonly task_id: string;
    readonly task_type: string;
    readonly agent: string;
    readonly instance: string;
    readonly assignment: number;
    readonly timeout_ms: number;
    readonly timed_out_at: string;
  }
>;

export type TaskEvent =
  | TaskSubmitted
  | TaskQueued
  | TaskAssigned
  | TaskStarted
  | TaskCompleted
  | TaskFailed
  | TaskRetryScheduled
  | TaskCanceled
  | TaskTimedOut;

export const taskEventTypes = [
  'TaskSubmitted',
  'TaskQueued',
  'TaskAssigned',
  'TaskStarted',
  'TaskCompleted',
  'TaskFailed',
  'TaskRetryScheduled',
  'TaskCanceled',
  'TaskTimedOut',
] as const satisfies readonly TaskEvent['type'][];

/** Stream of one task. */
export const taskStreamId = (taskId: string): string => `task-${taskId}`;
export const TASK_STREAM_PREFIX = 'task-';

// ---- state ----------------------------------------------------------------

export type ActiveStatus = 'submitted' | 'queued' | 'assigned' | 'working';
export type TerminalStatus = 'completed' | 'failed' | 'canceled' | 'timed_out';
export type TaskStatus = ActiveStatus | TerminalStatus;

/** What every existing task knows. */
export interface TaskBase {
  readonly task_id: string;
  readonly task_type: string;
  readonly requested_task_type?: string;
  readonly context: Record<string, unknown>;
  readonly priority: TaskPriority;
  readonly agent?: string;
  readonly max_attempts: number;
  readonly timeout_ms: number;
  readonly idempotency_key?: string;
  readonly submitted_at: string;
  readonly attempts: number;
  /** Number of the latest assignment (0: never assigned). */
  readonly assignment: number;
  /** Instances that failed this task: the dispatcher does not pick them again. */
  readonly failed_instances: readonly string[];
  /** The error of the last attempt that failed, while the task goes on or once it ended otherwise than completed. */
  readonly last_error?: TaskError;
}

/** Where the current (or last) assignment went. */
export interface Placement {
  readonly assigned_agent: string;
  readonly instance: string;
  readonly assigned_at: string;
  readonly deadline: string;
}

/** When the last assignment's agent said it started: kept after the task ends (absent when no start was recorded). */
export interface Started {
  readonly started_at?: string;
}

export type TaskState =
  | { readonly status: 'initial' }
  | (TaskBase & { readonly status: 'submitted' })
  | (TaskBase & { readonly status: 'queued'; readonly queued_at: string })
  | (TaskBase & Placement & { readonly status: 'assigned' })
  | (TaskBase & Placement & { readonly status: 'working'; readonly started_at: string })
  | (TaskBase &
      Placement &
      Started & {
        readonly status: 'completed';
        readonly result: unknown;
        readonly completed_at: string;
        readonly duration_ms: number;
      })
  | (TaskBase &
      Placement &
      Started & { readonly status: 'failed'; readonly error: TaskError; readonly completed_at: string })
  | (TaskBase &
      Partial<Placement> &
      Started & {
        readonly status: 'canceled';
        readonly reason: string;
        readonly actor: string;
        readonly completed_at: string;
      })
  | (TaskBase & Placement & Started & { readonly status: 'timed_out'; readonly completed_at: string });

export type ExistingTaskState = Exclude<TaskState, { status: 'initial' }>;

export const isTerminal = (s: TaskState): boolean =>
  s.status === 'completed' || s.status === 'failed' || s.status === 'canceled' || s.status === 'timed_out';

/**
 * Whether an attempt a dispatcher abandons (it restarted, or another took its partition over)
 * used up one of `max_attempts`.
 * - An agent that says when it starts (our agents over NATS) and whose instance is still there is
 *   asked to stop: no attempt. Once started on an instance that is gone, it counts (the task may
 *   be what killed it).
 * - An agent that says nothing before its answer (an external one, HTTP contract or A2A) cannot be
 *   stopped: its request goes out right after the assignment is recorded, so the attempt was
 *   made and counts. Left uncounted, every restart would run the task there again, without bound.
 */
export function abandonedAttemptCounts(
  s: Extract<ExistingTaskState, { status: 'assigned' | 'working' }>,
  o: { readonly sendsStartNotice: boolean; readonly instanceLost: boolean },
): boolean {
  return o.sendsStartNotice ? o.instanceLost && s.status === 'working' : true;
}

/**
 * The attempts made so far, the one under way or that ended the task included (the `attempt` of
 * its TaskAssigned): `attempts` counts only those that failed and used up one of `max_attempts`.
 * A hand-over the instance refused before running (busy), or one a dispatcher restart abandoned
 * without using one up (abandonedAttemptCounts), is no attempt.
 */
export function attemptsMade(s: ExistingTaskState): number {
  switch (s.status) {
    case 'submitted':
    case 'queued':
    case 'failed': // TaskFailed counts its own attempt already (when it used one up)
      return s.attempts;
    case 'assigned':
    case 'working':
    case 'completed':
    case 'timed_out':
      return s.attempts + 1;
    case 'canceled': // stopped while it ran: that attempt was made
      return s.attempts + (s.instance !== undefined ? 1 : 0);
  }
}

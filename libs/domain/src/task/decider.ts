/**
 * The TaskDelegation decider: the life of one delegated task. Pure: time comes from the
 * command's metadata, selection of the agent instance happens outside (the dispatcher) and
 * arrives as AssignTask.
 */
import { assertNever, DomainError, type Decider, type EventMetadata } from '../decider.js';
import {
  isTerminal,
  taskPriorities,
  type ExistingTaskState,
  type Placement,
  type TaskBase,
  type TaskCommand,
  type TaskEvent,
  type TaskState,
} from './types.js';

const ms = (iso: string): number => Date.parse(iso);
const plusMs = (iso: string, delta: number): string => new Date(ms(iso) + delta).toISOString();
const since = (from: string, to: string): number => Math.max(0, ms(to) - ms(from));

/** Events keep the command's metadata so correlation survives replay. */
const meta = (m: EventMetadata): EventMetadata => m;

/** The assignment a result/start/failure/timeout talks about is the live one. */
const isLive = (
  s: TaskState,
  assignment: number,
): s is Extract<ExistingTaskState, { status: 'assigned' | 'working' }> =>
  (s.status === 'assigned' || s.status === 'working') && s.assignment === assignment;

function decide(command: TaskCommand, state: TaskState): TaskEvent[] {
  const m = meta(command.metadata);
  const now = command.metadata.timestamp;
  switch (command.type) {
    case 'SubmitTask': {
      // A second submit of the same task (same id: same idempotency key) is a duplicate, not an error.
      if (state.status !== 'initial') return [];
      const d = command.data;
      if (!d.task_id) throw new DomainError('validation', 'task_id is required');
      if (!d.task_type) throw new DomainError('validation', 'task_type is required');
      if (!taskPriorities.includes(d.priority))
        throw new DomainError('validation', `unknown priority ${String(d.priority)}`, { valid: taskPriorities });
      if (!Number.isInteger(d.max_attempts) || d.max_attempts < 1)
        throw new DomainError('validation', 'max_attempts must be an integer >= 1');
      if (!(d.timeout_ms > 0)) throw new DomainError('validation', 'timeout_ms must be positive');
      return [
        { type: 'TaskSubmitted', data: { ...d, submitted_at: now }, metadata: m },
        { type: 'TaskQueued', data: { task_id: d.task_id, reason: 'submitted', queued_at: now }, metadata: m },
      ];
    }
    case 'AssignTask': {
      if (state.status === 'initial') throw new DomainError('not_found', 'no such task');
      if (state.status !== 'queued')
        throw new DomainError('illegal_state', `cannot assign a task that is ${state.status}`, {
          status: state.status,
        });
      const { agent, instance } = command.data;
      if (state.agent !== undefined && state.agent !== agent) {
        throw new DomainError('illegal_state', `task asked for agent ${state.agent}, not ${agent}`, {
          wanted: state.agent,
          agent,
        });
      }
      // failed_instances is a preference for the dispatcher's selection, not a rule: when the
      // only capable instance left is one that failed before, trying it again beats waiting forever.
      return [
        {
          type: 'TaskAssigned',
          data: {
            task_id: state.task_id,
            agent,
            instance,
            assignment: state.assignment + 1,
            attempt: state.attempts + 1,
            assigned_at: now,
            deadline: plusMs(now, state.timeout_ms),
          },
          metadata: m,
        },
      ];
    }
    case 'StartTask': {
      if (state.status === 'initial') throw new DomainError('not_found', 'no such task');
      // Only the live assignment can start, once; anything else is late or a duplicate.
      if (state.status !== 'assigned' || state.assignment !== command.data.assignment) return [];
      return [
        {
          type: 'TaskStarted',
          data: { task_id: state.task_id, assignment: state.assignment, instance: state.instance, started_at: now },
          metadata: m,
        },
      ];
    }
    case 'CompleteTask': {
      if (state.status === 'initial') throw new DomainError('not_found', 'no such task');
      if (!isLive(state, command.data.assignment)) return [];
      return [
        {
          type: 'TaskCompleted',
          data: {
            task_id: state.task_id,
            task_type: state.task_type,
            agent: state.assigned_agent,
            instance: state.instance,
            assignment: state.assignment,
            result: command.data.result,
            duration_ms: since(state.assigned_at, now),
            completed_at: now,
          },
          metadata: m,
        },
      ];
    }
    case 'FailTask': {
      if (state.status === 'initial') throw new DomainError('not_found', 'no such task');
      if (!isLive(state, command.data.assignment)) return [];
      const counted = command.data.count_attempt ?? true;
      const avoid = command.data.avoid_instance ?? true;
      const attempts = state.attempts + (counted ? 1 : 0);
      if (command.data.retryable && attempts < state.max_attempts) {
        return [
          {
            type: 'TaskRetryScheduled',
            data: {
              task_id: state.task_id,
              agent: state.assigned_agent,
              instance: state.instance,
              assignment: state.assignment,
              error: command.data.error,
              avoid_instance: avoid,
              counted,
              attempts,
            },
            metadata: m,
          },
          { type: 'TaskQueued', data: { task_id: state.task_id, reason: 'retry', queued_at: now }, metadata: m },
        ];
      }
      return [
        {
          type: 'TaskFailed',
          data: {
            task_id: state.task_id,
            task_type: state.task_type,
            agent: state.assigned_agent,
            instance: state.instance,
            assignment: state.assignment,
            attempts,
            error: command.data.error,
            duration_ms: since(state.assigned_at, now),
            failed_at: now,
          },
          metadata: m,
        },
      ];
    }
    case 'CancelTask': {
      if (state.status === 'initial') throw new DomainError('not_found', 'no such task');
      if (state.status === 'canceled') return [];
      if (isTerminal(state))
        throw new DomainError('illegal_state', `task already ${state.status}`, { status: state.status });
      const running = state.status === 'assigned' || state.status === 'working';
      return [
        {
          type: 'TaskCanceled',
          data: {
            task_id: state.task_id,
            actor: command.data.actor,
            reason: command.data.reason,
            previous_status: state.status as 'submitted' | 'queued' | 'assigned' | 'working',
            ...(running ? { instance: state.instance, agent: state.assigned_agent } : {}),
            canceled_at: now,
          },
          metadata: m,
        },
      ];
    }
    case 'TimeOutTask': {
      if (state.status === 'initial') throw new DomainError('not_found', 'no such task');
      if (!isLive(state, command.data.assignment)) return [];
      return [
        {
          type: 'TaskTimedOut',
          data: {
            task_id: state.task_id,
            task_type: state.task_type,
            agent: state.assigned_agent,
            instance: state.instance,
            assignment: state.assignment,
            timeout_ms: state.timeout_ms,
            timed_out_at: now,
          },
          metadata: m,
        },
      ];
    }
    default:
      return assertNever(command, 'task command');
  }
}

const base = (s: TaskState): TaskBase => {
  if (s.status === 'initial') throw new Error('task event on an empty stream');
  return s;
};
const placement = (s: TaskState): Placement => {
  if (s.status !== 'assigned' && s.status !== 'working') throw new Error(`no live assignment in state ${s.status}`);
  return { assigned_agent: s.assigned_agent, instance: s.instance, assigned_at: s.assigned_at, deadline: s.deadline };
};
/** The start of the live assignment, carried into the state that ends it. */
const started = (s: TaskState): { started_at?: string } => (s.status === 'working' ? { started_at: s.started_at } : {});

/** Drop the status-specific fields when moving to another status. */
const core = (s: TaskState): TaskBase => {
  const b = base(s);
  return {
    task_id: b.task_id,
    task_type: b.task_type,
    ...(b.requested_task_type !== undefined ? { requested_task_type: b.requested_task_type } : {}),
    context: b.context,
    priority: b.priority,
    ...(b.agent !== undefined ? { agent: b.agent } : {}),
    max_attempts: b.max_attempts,
    timeout_ms: b.timeout_ms,
    ...(b.idempotency_key !== undefined ? { idempotency_key: b.idempotency_key } : {}),
    submitted_at: b.submitted_at,
    attempts: b.attempts,
    assignment: b.assignment,
    failed_instances: b.failed_instances,
    ...(b.last_error !== undefined ? { last_error: b.last_error } : {}),
  };
};

function evolve(state: TaskState, event: TaskEvent): TaskState {
  switch (event.type) {
    case 'TaskSubmitted': {
      const { submitted_at, ...d } = event.data;
      return { ...d, submitted_at, status: 'submitted', attempts: 0, assignment: 0, failed_instances: [] };
    }
    case 'TaskQueued':
      return { ...core(state), status: 'queued', queued_at: event.data.queued_at };
    case 'TaskAssigned':
      return {
        ...core(state),
        assignment: event.data.assignment,
        status: 'assigned',
        assigned_agent: event.data.agent,
        instance: event.data.instance,
        assigned_at: event.data.assigned_at,
        deadline: event.data.deadline,
      };
    case 'TaskStarted':
      return { ...core(state), ...placement(state), status: 'working', started_at: event.data.started_at };
    case 'TaskCompleted': {
      // A task that completed has no error: an abandoned or failed earlier attempt's stays in
      // its TaskRetryScheduled.
      const { last_error: _earlier, ...b } = core(state);
      return {
        ...b,
        ...placement(state),
        ...started(state),
        status: 'completed',
        result: event.data.result,
        completed_at: event.data.completed_at,
        duration_ms: event.data.duration_ms,
      };
    }
    case 'TaskFailed':
      return {
        ...core(state),
        ...placement(state),
        ...started(state),
        attempts: event.data.attempts,
        last_error: event.data.error,
        status: 'failed',
        error: event.data.error,
        completed_at: event.data.failed_at,
      };
    case 'TaskRetryScheduled': {
      // Status stays as it is until the TaskQueued that always follows.
      const b = core(state);
      const failed =
        event.data.avoid_instance && !b.failed_instances.includes(event.data.instance)
          ? [...b.failed_instances, event.data.instance]
          : b.failed_instances;
      return {
        ...(state as ExistingTaskState),
        attempts: event.data.attempts,
        failed_instances: failed,
        last_error: event.data.error,
      };
    }
    case 'TaskCanceled': {
      const running = state.status === 'assigned' || state.status === 'working';
      return {
        ...core(state),
        ...(running ? placement(state) : {}),
        ...started(state),
        status: 'canceled',
        reason: event.data.reason,
        actor: event.data.actor,
        completed_at: event.data.canceled_at,
      };
    }
    case 'TaskTimedOut':
      return {
        ...core(state),
        ...placement(state),
        ...started(state),
        status: 'timed_out',
        completed_at: event.data.timed_out_at,
      };
    default:
      return assertNever(event, 'task event');
  }
}

export const initialTaskState: TaskState = { status: 'initial' };

/** The TaskDelegation aggregate (stream `task-<task_id>`). */
export const taskDelegationDecider: Decider<TaskCommand, TaskEvent, TaskState> = {
  decide,
  evolve,
  initialState: initialTaskState,
};

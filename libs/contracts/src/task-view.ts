import { AppError, isErrorCode } from '@switchyard/platform';
import { attemptsMade, type ExistingTaskState } from '@switchyard/domain';
import type { TaskView } from './tasks.js';

/** The state as the public task view. */
export function taskViewOf(s: ExistingTaskState): TaskView {
  const placed = 'instance' in s && s.instance !== undefined ? s : undefined;
  return {
    task_id: s.task_id,
    task_type: s.task_type,
    ...(s.requested_task_type !== undefined ? { requested_task_type: s.requested_task_type } : {}),
    status: s.status,
    priority: s.priority,
    requested_agent: s.agent ?? null,
    agent: placed?.assigned_agent ?? null,
    instance: placed?.instance ?? null,
    attempts: attemptsMade(s),
    max_attempts: s.max_attempts,
    timeout_ms: s.timeout_ms,
    failed_instances: [...s.failed_instances],
    submitted_at: s.submitted_at,
    assigned_at: placed?.assigned_at ?? null,
    // The last attempt's start, also once the task has ended; null while that attempt has not started.
    started_at:
      s.status !== 'submitted' && s.status !== 'queued' && s.status !== 'assigned' ? (s.started_at ?? null) : null,
    completed_at: 'completed_at' in s ? s.completed_at : null,
    duration_ms: s.status === 'completed' ? s.duration_ms : null,
    ...(s.status === 'completed' ? { result: s.result } : {}),
    error:
      s.status === 'failed'
        ? s.error
        : s.status === 'timed_out'
          ? { code: 'timeout', message: `no result within ${s.timeout_ms} ms` }
          : (s.last_error ?? null),
    ...(s.status === 'canceled' ? { canceled: { reason: s.reason, by: s.actor } } : {}),
  };
}

const TRANSIENT_TASK_CODES = new Set(['unavailable', 'rate_limited']);

/**
 * The AppError a caller of `execute` gets for a task that did not complete: the dispatcher's
 * answer, and the gateway's when it reads the end from the task's stream.
 */
export function taskEndError(s: ExistingTaskState): AppError {
  const v = taskViewOf(s);
  const details = { task_id: s.task_id, status: s.status, agent: v.agent, instance: v.instance, error: v.error };
  switch (s.status) {
    case 'timed_out':
      return new AppError('timeout', `task ${s.task_id} timed out after ${s.timeout_ms} ms`, details, false);
    case 'canceled':
      // The work was stopped on request (its workflow canceled, its agent removed): not a state error.
      return new AppError('canceled', `task ${s.task_id} was canceled: ${s.reason}`, details, false);
    case 'failed':
      // A task that failed because no agent could take it (lost, unreachable, refusing for load) may succeed
      // when asked again: say so, so a workflow step retries it rather than failing.
      return new AppError(
        isErrorCode(s.error.code) ? s.error.code : 'internal',
        `task ${s.task_id} failed: ${s.error.message}`,
        details,
        TRANSIENT_TASK_CODES.has(s.error.code),
      );
    default:
      return new AppError('internal', `task ${s.task_id} has not ended (${s.status})`, details, false);
  }
}

import type { WorkflowEvent } from '@switchyard/domain';
import type { StepAttemptView } from './workflow-executions.js';

/**
 * The attempt rows of one execution's events, per step, as the executions read model holds them
 * after applying the same events (`applyEvent`'s statements on its attempts table, case by case):
 * for time travel (`?at=`), whose decider state keeps only each unit's current attempt, while the
 * read model keeps every attempt of every run (a retried execution's first run too). Ordered as
 * the read model's detail reads them: by item, then attempt.
 */
export function attemptHistoryOf(events: readonly WorkflowEvent[]): Map<string, StepAttemptView[]> {
  const rows = new Map<string, Row>();
  const key = (stepId: string, itemIndex: number | undefined, attempt: number) =>
    `${stepId}\u0000${itemIndex ?? -1}\u0000${attempt}`;
  const unitRow = (d: { stepId: string; itemIndex?: number; attempt: number }) =>
    rows.get(key(d.stepId, d.itemIndex, d.attempt));
  const end = (r: Row, status: string, at: string, fields: Partial<Row> = {}) => {
    Object.assign(r, { status, ended_at: at, ...fields });
    r.duration_ms = elapsed(r.dispatched_at ?? r.scheduled_at, at);
  };
  for (const e of events) {
    switch (e.type) {
      case 'StepScheduled': {
        const k = key(e.data.stepId, e.data.itemIndex, e.data.attempt);
        if (!rows.has(k))
          rows.set(k, {
            step_id: e.data.stepId,
            item_index: e.data.itemIndex ?? null,
            attempt: e.data.attempt,
            status: 'scheduled',
            idempotency_key: e.data.idempotencyKey,
            input: e.data.input ?? null,
            output: null,
            error: null,
            scheduled_at: e.data.scheduledAt ?? null,
            dispatched_at: null,
            timeout_at: null,
            ended_at: null,
            duration_ms: null,
          });
        break;
      }
      case 'StepDispatched':
      case 'StepRedispatched': {
        const r = unitRow(e.data);
        if (r)
          Object.assign(r, { status: 'dispatched', dispatched_at: e.data.dispatchedAt, timeout_at: e.data.timeoutAt });
        break;
      }
      case 'StepQueued':
      case 'StepStarted': {
        const r = unitRow(e.data);
        if (r) r.timeout_at = e.data.timeoutAt ?? null;
        break;
      }
      case 'StepSucceeded': {
        const r = unitRow(e.data);
        if (r) end(r, 'succeeded', e.data.at, { output: e.data.output ?? null, error: null });
        break;
      }
      case 'StepFailed': {
        const r = unitRow(e.data);
        // A timed-out attempt keeps its status and end; its duration runs to the failure.
        if (r) {
          const endedAt = r.ended_at;
          end(r, r.status === 'timed_out' ? 'timed_out' : 'failed', e.data.at, { error: e.data.error });
          r.ended_at = endedAt ?? e.data.at;
        }
        break;
      }
      case 'StepTimedOut': {
        const r = unitRow(e.data);
        if (r) Object.assign(r, { status: 'timed_out', ended_at: e.data.at });
        break;
      }
      case 'StepStopped': {
        // Given up in flight: without an item, every live attempt of the step.
        const error = { code: 'canceled', message: `stopped: ${e.data.reason}`, retryable: false };
        const live = (r: Row) => r.status === 'scheduled' || r.status === 'dispatched';
        if (e.data.itemIndex === undefined) {
          for (const r of rows.values())
            if (r.step_id === e.data.stepId && live(r)) end(r, 'canceled', e.data.at, { error });
        } else {
          const r = unitRow({ stepId: e.data.stepId, itemIndex: e.data.itemIndex, attempt: e.data.attempt });
          if (r && live(r)) end(r, 'canceled', e.data.at, { error });
        }
        break;
      }
      case 'CompensationStarted': {
        const k = key(e.data.stepId, e.data.itemIndex, 1);
        if (!rows.has(k))
          rows.set(k, {
            step_id: e.data.stepId,
            item_index: e.data.itemIndex ?? null,
            attempt: 1,
            status: 'dispatched',
            idempotency_key: e.data.idempotencyKey,
            input: e.data.input ?? null,
            output: null,
            error: null,
            scheduled_at: e.data.startedAt,
            dispatched_at: e.data.startedAt,
            timeout_at: null,
            ended_at: null,
            duration_ms: null,
          });
        break;
      }
      case 'CompensationSucceeded':
      case 'CompensationFailed': {
        const r = rows.get(key(e.data.stepId, e.data.itemIndex, 1));
        if (r)
          end(
            r,
            e.type === 'CompensationSucceeded' ? 'succeeded' : 'failed',
            e.data.at,
            e.type === 'CompensationSucceeded'
              ? { output: e.data.output ?? null, error: null }
              : { output: null, error: e.data.error },
          );
        break;
      }
      default:
        break;
    }
  }
  const byStep = new Map<string, StepAttemptView[]>();
  const sorted = [...rows.values()].sort(
    (a, b) => (a.item_index ?? -1) - (b.item_index ?? -1) || a.attempt - b.attempt,
  );
  for (const { step_id, ...view } of sorted) {
    const list = byStep.get(step_id) ?? [];
    list.push(view);
    byStep.set(step_id, list);
  }
  return byStep;
}

type Row = { -readonly [K in keyof StepAttemptView]: StepAttemptView[K] } & { step_id: string };

/** As the read model's `greatest(0, end - start)` in whole milliseconds (null without a start). */
function elapsed(start: string | null, end: string): number | null {
  if (start === null) return null;
  const ms = Date.parse(end) - Date.parse(start);
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms)) : null;
}

/**
 * The execution's `error` as the read model keeps it after the same events: a cancel request's
 * reason, actor and time while it cancels (and once canceled, with the end's reason); a failure's
 * reason, step and error; none again after a retry.
 */
export function executionErrorOf(events: readonly WorkflowEvent[]): Record<string, unknown> | null {
  let status = 'running';
  let error: Record<string, unknown> | null = null;
  for (const e of events) {
    switch (e.type) {
      case 'ExecutionCancelRequested':
        if (status === 'running') {
          status = 'canceling';
          error = defined({ reason: e.data.reason, actor: e.data.actor, requestedAt: e.data.requestedAt });
        }
        break;
      case 'WorkflowFailed':
        status = 'failed';
        error = defined({ reason: e.data.reason, stepId: e.data.stepId, error: e.data.error });
        break;
      case 'WorkflowCanceled':
        status = 'canceled';
        error = { ...(error ?? {}), reason: e.data.reason };
        break;
      case 'WorkflowCompleted':
        status = 'completed';
        break;
      case 'ExecutionRetried':
        status = 'running';
        error = null;
        break;
      default:
        break;
    }
  }
  return error;
}

/** Without the fields that are undefined, as JSON (and the read model's jsonb) keeps the object. */
const defined = (o: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/**
 * When each step started, as the read model keeps it: its first schedule, wait or compensation
 * start, never moved by a retry (the state holds the current run's only).
 */
export function stepStartsOf(events: readonly WorkflowEvent[]): Map<string, string> {
  const starts = new Map<string, string>();
  const first = (stepId: string, at: string | undefined) => {
    if (at !== undefined && !starts.has(stepId)) starts.set(stepId, at);
  };
  for (const e of events) {
    if (e.type === 'StepScheduled') first(e.data.stepId, e.data.scheduledAt);
    else if (e.type === 'WaitStarted' || e.type === 'CompensationStarted') first(e.data.stepId, e.data.startedAt);
  }
  return starts;
}

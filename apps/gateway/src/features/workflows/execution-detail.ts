/**
 * The one answer of `GET /api/v1/workflows/executions/{id}`, whichever path serves it: the read
 * model's rows (`source: "read_model"`) or the execution's stream folded by the decider
 * (`source: "stream"`: a read model lagging behind, and time travel with `?at=`). Both paths
 * build it here, and the route documents this schema, so the document and the answers agree.
 */
import { z } from 'zod';
import {
  compensationStepIds,
  stepUsesLabel,
  type CompensationState,
  type UnitState,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { attemptHistoryOf, executionErrorOf, stepStartsOf } from './deps.js';

const nullableText = z.string().nullable();
const links = z.strictObject({ self: z.string(), events: z.string(), cancel: z.string() });

export const executionAttempt = z.strictObject({
  item_index: z.number().int().nullable().describe('The for_each item, null for a plain step'),
  attempt: z.number().int(),
  status: z.string(),
  idempotency_key: nullableText,
  input: z.unknown(),
  output: z.unknown(),
  error: z.unknown(),
  scheduled_at: nullableText,
  dispatched_at: nullableText,
  timeout_at: nullableText,
  ended_at: nullableText,
  duration_ms: z.number().nullable(),
});

export const executionStep = z.strictObject({
  step_id: z.string(),
  uses: z.string(),
  kind: z.enum(['step', 'for_each', 'wait', 'compensation']),
  status: z.string(),
  skip_reason: nullableText,
  attempts: z.number().int(),
  items: z.number().int().nullable(),
  output: z.unknown(),
  error: z.unknown(),
  compensation_for: nullableText,
  next_retry_at: nullableText,
  started_at: nullableText,
  ended_at: nullableText,
  copied_from: z
    .strictObject({ execution_id: z.string(), revision: z.number().int() })
    .optional()
    .describe('A fork copied this output from another execution (told by the stream; the read model does not keep it)'),
  attempt_history: z.array(executionAttempt),
});

export const executionDetailResponse = z.strictObject({
  execution_id: z.string(),
  definition_id: z.string(),
  definition_version: z.number().int(),
  definition_name: z.string(),
  status: z.enum(['running', 'canceling', 'completed', 'failed', 'canceled']),
  input: z.unknown(),
  output: z.unknown(),
  error: z.unknown(),
  correlation_id: nullableText,
  parent_execution_id: nullableText,
  started_at: z.string(),
  ended_at: nullableText,
  duration_ms: z.number().nullable(),
  steps: z.array(executionStep),
  forked_from: z
    .strictObject({ execution_id: z.string(), from_step: z.string() })
    .optional()
    .describe('This execution is a fork of that one (told by the stream; the read model does not keep it)'),
  source: z
    .enum(['read_model', 'stream'])
    .describe('read_model: the projection answered; stream: the events were folded (a lagging read model, or `?at=`)'),
  at_revision: z.number().int().optional().describe('With `?at=`: the revision this state is as of'),
  last_revision: z.number().int().optional().describe('With `?at=`: the last revision of the stream'),
  links,
});
/** Its name among the OpenAPI document's components. */
export const EXECUTION_DETAIL_COMPONENT = 'ExecutionDetail';

export type ExecutionDetail = z.infer<typeof executionDetailResponse>;
type Links = z.infer<typeof links>;
type StartedState = Exclude<WorkflowExecutionState, { status: 'not_started' }>;

/** The read model's view (getExecutionView) in the answer's shape. */
export function detailFromReadModel(row: { readonly steps: readonly object[] }, l: Links): ExecutionDetail {
  const view = row as unknown as Record<string, unknown> & { steps: readonly Record<string, unknown>[] };
  return {
    execution_id: view.execution_id as string,
    definition_id: view.definition_id as string,
    definition_version: view.definition_version as number,
    definition_name: view.definition_name as string,
    status: view.status as ExecutionDetail['status'],
    input: view.input ?? null,
    output: view.output ?? null,
    error: view.error ?? null,
    correlation_id: (view.correlation_id as string | null) ?? null,
    parent_execution_id: (view.parent_execution_id as string | null) ?? null,
    started_at: view.started_at as string,
    ended_at: (view.ended_at as string | null) ?? null,
    duration_ms: (view.duration_ms as number | null) ?? null,
    steps: view.steps.map((s) => ({
      step_id: s.step_id as string,
      uses: s.uses as string,
      kind: s.kind as ExecutionDetail['steps'][number]['kind'],
      status: s.status as string,
      skip_reason: (s.skip_reason as string | null) ?? null,
      attempts: s.attempts as number,
      items: (s.items as number | null) ?? null,
      output: s.output ?? null,
      error: s.error ?? null,
      compensation_for: (s.compensation_for as string | null) ?? null,
      next_retry_at: (s.next_retry_at as string | null) ?? null,
      started_at: (s.started_at as string | null) ?? null,
      ended_at: (s.ended_at as string | null) ?? null,
      ...(s.copied_from ? { copied_from: s.copied_from as { execution_id: string; revision: number } } : {}),
      attempt_history: ((s.attempt_history as Record<string, unknown>[] | undefined) ?? []).map((a) => ({
        item_index: (a.item_index as number | null) ?? null,
        attempt: a.attempt as number,
        status: a.status as string,
        idempotency_key: (a.idempotency_key as string | null) ?? null,
        input: a.input ?? null,
        output: a.output ?? null,
        error: a.error ?? null,
        scheduled_at: (a.scheduled_at as string | null) ?? null,
        dispatched_at: (a.dispatched_at as string | null) ?? null,
        timeout_at: (a.timeout_at as string | null) ?? null,
        ended_at: (a.ended_at as string | null) ?? null,
        duration_ms: (a.duration_ms as number | null) ?? null,
      })),
    })),
    ...(view.forked_from ? { forked_from: view.forked_from as { execution_id: string; from_step: string } } : {}),
    source: 'read_model',
    links: l,
  };
}

const endedAt = (s: StartedState): string | null =>
  s.status === 'completed'
    ? s.completedAt
    : s.status === 'failed'
      ? s.failedAt
      : s.status === 'canceled'
        ? s.canceledAt
        : null;

/**
 * The last attempt a unit made, as its events tell it (and the read model keeps it): a unit waiting
 * for its retry, or abandoned while it waited, made the attempt before (it failed) and not the
 * retry it carries the number of.
 */
function attemptMade(u: UnitState): { attempt: number; idempotencyKey: string; status: string } {
  if (u.retryOf) return { ...u.retryOf, status: u.timedOut ? 'timed_out' : 'failed' };
  return {
    attempt: u.attempt,
    idempotencyKey: u.idempotencyKey,
    status: u.phase === 'failed' && u.timedOut ? 'timed_out' : u.phase,
  };
}

type StepDetail = ExecutionDetail['steps'][number];

/**
 * A for_each step's compensation, run once per item it undoes (kept under `step[i]`), as the read
 * model shows it: an attempt row per item; the step failed once any run failed, else running
 * while one runs, else succeeded; its error the first failed run's. The state keeps no end
 * instants, so the step's and the rows' `ended_at` stay null.
 */
function itemCompensationDetail(
  runs: readonly CompensationState[],
): Pick<StepDetail, 'status' | 'attempts' | 'error' | 'compensation_for' | 'started_at' | 'attempt_history'> {
  const sorted = [...runs].sort((a, b) => (a.itemIndex ?? -1) - (b.itemIndex ?? -1));
  const failed = sorted.find((c) => c.status === 'failed');
  return {
    status: failed ? 'failed' : sorted.some((c) => c.status === 'running') ? 'running' : 'succeeded',
    attempts: 1,
    error: failed?.error ?? null,
    compensation_for: sorted[0]!.forStepId,
    started_at: sorted.map((c) => c.startedAt).sort()[0]!,
    attempt_history: sorted.map((c) => ({
      item_index: c.itemIndex ?? null,
      attempt: 1,
      status: c.status === 'running' ? 'dispatched' : c.status,
      idempotency_key: c.idempotencyKey,
      input: c.input ?? null,
      output: c.output ?? null,
      error: c.error ?? null,
      scheduled_at: c.startedAt,
      dispatched_at: c.startedAt,
      timeout_at: null,
      ended_at: null,
      duration_ms: null,
    })),
  };
}

/**
 * The decider's state in the answer's shape. What the state does not keep (when a step or an
 * attempt ended, when an attempt was dispatched) is null; the read model has it.
 */
export function detailFromState(
  executionId: string,
  s: StartedState,
  l: Links,
  events?: readonly WorkflowEvent[],
): ExecutionDetail {
  // Every attempt of every run, as the read model keeps them, when the events are at hand.
  const history = events && attemptHistoryOf(events);
  const starts = events && stepStartsOf(events);
  const ended = endedAt(s);
  const compensating = compensationStepIds(s.definition);
  // A for_each step's compensation runs per item, kept under `step[i]` and not under its step id.
  const itemCompensating = new Set(s.definition.steps.flatMap((d) => d.for_each?.compensate ?? []));
  const runsOf = (stepId: string) => Object.values(s.compensations).filter((c) => c.stepId === stepId);
  return {
    execution_id: executionId,
    definition_id: s.definition.id,
    definition_version: s.definition.version,
    definition_name: s.definition.name,
    status: s.status,
    input: s.input,
    output: s.status === 'completed' ? s.outputs : null,
    // As the read model has it when the events are at hand (the state keeps only the reason).
    error: events
      ? executionErrorOf(events)
      : s.status === 'failed' || s.status === 'canceled'
        ? { reason: s.reason }
        : null,
    correlation_id: s.correlationId ?? null,
    parent_execution_id: s.lineage?.parentExecutionId ?? null,
    started_at: s.startedAt,
    ended_at: ended,
    // Wall-clock instants: a step of the clock back between them is no negative duration.
    duration_ms: ended !== null ? Math.max(0, Date.parse(ended) - Date.parse(s.startedAt)) : null,
    steps: s.definition.steps.map((d) => {
      const st = s.steps[d.id];
      const comp = s.compensations[d.id];
      const units = (st?.units ?? []).filter((u) => u !== undefined);
      const retrying = units.find((u) => u.phase === 'retry_wait');
      const itemRuns = itemCompensating.has(d.id) ? runsOf(d.id) : [];
      const step: StepDetail = {
        step_id: d.id,
        uses: stepUsesLabel(d),
        kind: compensating.has(d.id) ? 'compensation' : d.for_each ? 'for_each' : d.wait ? 'wait' : 'step',
        status: comp?.status ?? st?.status ?? 'pending',
        skip_reason: st?.skipReason ?? null,
        attempts: Math.max(0, ...units.map((u) => attemptMade(u).attempt)),
        items: st?.items ? st.items.length : null,
        output: st?.output ?? null,
        error: st?.error ?? null,
        compensation_for: comp?.forStepId ?? null,
        next_retry_at: retrying?.dueAt ?? null,
        started_at: starts ? (starts.get(d.id) ?? null) : (units[0]?.firstScheduledAt ?? st?.wait?.startedAt ?? null),
        ended_at: null,
        ...(st?.copiedFrom
          ? { copied_from: { execution_id: st.copiedFrom.executionId, revision: st.copiedFrom.revision } }
          : {}),
        attempt_history:
          history?.get(d.id) ??
          units.map((u) => {
            const made = attemptMade(u);
            return {
              item_index: u.itemIndex ?? null,
              attempt: made.attempt,
              status: made.status,
              idempotency_key: made.idempotencyKey,
              input: u.input ?? null,
              output: u.output ?? null,
              error: u.error ?? null,
              scheduled_at: null,
              dispatched_at: u.startedAt ?? null,
              timeout_at: u.timeoutAt ?? null,
              ended_at: null,
              duration_ms: null,
            };
          }),
      };
      if (itemRuns.length === 0) return step;
      const items = itemCompensationDetail(itemRuns);
      return {
        ...step,
        ...items,
        attempt_history: history?.get(d.id) ?? items.attempt_history,
        started_at: starts?.get(d.id) ?? items.started_at,
      };
    }),
    ...(s.forkedFrom
      ? { forked_from: { execution_id: s.forkedFrom.executionId, from_step: s.forkedFrom.fromStep } }
      : {}),
    source: 'stream',
    links: l,
  };
}

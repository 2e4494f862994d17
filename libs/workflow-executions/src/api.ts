import { randomUUID } from 'node:crypto';

import { AppError } from '@switchyard/platform';
import type { EventStore, RecordedEvent } from '@switchyard/event-store';
import {
  validateInput,
  workflowExecutionStream,
  type WorkflowDefinition,
  type WorkflowDefinitionInput,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { isTerminal, loadExecution, runWorkflowCommand, runWorkflowCommandOnNewStream } from './command.js';

/**
 * What the HTTP edge (or any other process) does to executions: append commands through the
 * decider. The engine process picks the resulting events up from $all and drives them.
 */

export interface StartRequest {
  readonly definition: WorkflowDefinition | WorkflowDefinitionInput;
  readonly input: unknown;
  readonly correlationId: string;
  readonly actor?: string;
  /** Client-chosen id (idempotent start); a new UUID when absent. */
  readonly executionId?: string;
  /** What caused the start (e.g. an automation trigger's id), kept in the events' metadata. */
  readonly causationId?: string;
  /** The person a part of the system starts it for (a trigger's caller, a schedule's owner): its `startedBy`. */
  readonly onBehalfOf?: string;
}

/**
 * The input as the definition's input schema takes it (defaults applied), or a validation
 * AppError (400) naming each field. Whatever starts an execution checks with this, and so may a
 * route that only records a start for later (an automation trigger), so its caller hears of a bad
 * input at once rather than never.
 */
export function checkedWorkflowInput(
  definition: WorkflowDefinition | WorkflowDefinitionInput,
  input: unknown,
): unknown {
  const def = definition as WorkflowDefinition;
  const checked = validateInput(def.input ?? { type: 'object', properties: {} }, input);
  if (checked.ok) return checked.value;
  throw new AppError(
    'validation',
    `invalid workflow input: ${checked.problems.map((p) => `${p.path || '(root)'}: ${p.message}`).join('; ')}`,
    {
      errors: checked.problems.map((p) => ({
        path: p.path || '(root)',
        message: p.message,
        code: 'invalid_input',
        in: 'body',
      })),
    },
  );
}

/** Validate the input against the definition (400 naming each field), then append StartWorkflow. */
export async function startExecution(
  store: EventStore,
  req: StartRequest,
): Promise<{ executionId: string; position?: number; created: boolean }> {
  const input = checkedWorkflowInput(req.definition, req.input);
  const executionId = req.executionId ?? randomUUID();
  // Usually a new stream: no read before the append (a repeated start falls back to one).
  const r = await runWorkflowCommandOnNewStream(store, executionId, {
    type: 'StartWorkflow',
    data: {
      executionId,
      definition: req.definition,
      input,
      ...(req.onBehalfOf !== undefined ? { onBehalfOf: req.onBehalfOf } : {}),
    },
    metadata: {
      timestamp: new Date().toISOString(),
      actor: req.actor ?? 'api',
      correlationId: req.correlationId,
      ...(req.causationId !== undefined ? { causationId: req.causationId } : {}),
    },
  });
  return { executionId, ...(r.position === undefined ? {} : { position: r.position }), created: r.events.length > 0 };
}

/** RequestCancel: 404 unknown execution, 409 already ended; a second cancel is a no-op. */
export async function cancelExecution(
  store: EventStore,
  executionId: string,
  req: { reason: string; correlationId: string; actor?: string },
): Promise<{ status: WorkflowExecutionState['status'] }> {
  const r = await runWorkflowCommand(store, executionId, {
    type: 'RequestCancel',
    data: { reason: req.reason },
    metadata: { timestamp: new Date().toISOString(), actor: req.actor ?? 'api', correlationId: req.correlationId },
  });
  return { status: r.state.status };
}

/** Poll the stream until the execution ends or `timeoutMs` passes; returns the last state seen. */
export async function waitForExecution(
  store: EventStore,
  executionId: string,
  timeoutMs: number,
): Promise<WorkflowExecutionState> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(500, delay * 2)) {
    const { state } = await loadExecution(store, executionId);
    if (state.status === 'not_started')
      throw new AppError('not_found', `workflow execution ${executionId} not found`, { executionId });
    if (isTerminal(state) || Date.now() >= deadline) return state;
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))));
  }
}

/** The full event history of one execution (audit, replay); 404 when there is none. */
export async function executionEvents(store: EventStore, executionId: string): Promise<RecordedEvent[]> {
  const events = await store.readStream(workflowExecutionStream(executionId));
  if (events.length === 0)
    throw new AppError('not_found', `workflow execution ${executionId} not found`, { executionId });
  return events;
}

/** A compact result view of a state (for `?wait=true`). */
export function executionResult(executionId: string, s: WorkflowExecutionState): Record<string, unknown> {
  if (s.status === 'not_started') return { execution_id: executionId, status: s.status };
  const base = { execution_id: executionId, status: s.status, definition_id: s.definition.id, started_at: s.startedAt };
  switch (s.status) {
    case 'completed':
      return { ...base, output: s.outputs, ended_at: s.completedAt };
    case 'failed':
      return { ...base, error: { reason: s.reason }, ended_at: s.failedAt };
    case 'canceled':
      return { ...base, error: { reason: s.reason }, ended_at: s.canceledAt };
    default:
      return base;
  }
}

/** What became of a signal (the answer of POST .../signals/{name}). */
export interface SignalResult {
  readonly execution_id: string;
  readonly signal_id: string;
  readonly name: string;
  /** consumed: a waiting step took it; buffered: kept for a wait step not reached yet; ignored: recorded, changes nothing. */
  readonly disposition: 'consumed' | 'buffered' | 'ignored';
  readonly step_id: string | null;
  readonly reason: string | null;
  /** The execution's status after the signal. */
  readonly status: WorkflowExecutionState['status'];
  /** False when this signal id was recorded before (a repeat): nothing new was recorded. */
  readonly recorded: boolean;
}

/**
 * SendSignal: 404 unknown execution or a signal no wait step takes, 409 ended execution. Always
 * recorded otherwise (`SignalReceived`), with what it did. `signalId` makes it idempotent.
 */
export async function signalExecution(
  store: EventStore,
  executionId: string,
  req: { name: string; payload: Record<string, unknown>; signalId?: string; correlationId: string; actor?: string },
): Promise<SignalResult> {
  const signalId = req.signalId ?? randomUUID();
  const r = await runWorkflowCommand(store, executionId, {
    type: 'SendSignal',
    data: { signalId, name: req.name, payload: req.payload },
    metadata: { timestamp: new Date().toISOString(), actor: req.actor ?? 'api', correlationId: req.correlationId },
  });
  const s = r.state;
  const rec = s.status === 'not_started' ? undefined : s.signals?.find((x) => x.signalId === signalId);
  if (!rec) throw new AppError('internal', `signal ${signalId} was not recorded`);
  return {
    execution_id: executionId,
    signal_id: signalId,
    name: rec.name,
    disposition: rec.disposition === 'buffered' && rec.consumedBy ? 'consumed' : rec.disposition,
    step_id: rec.consumedBy ?? null,
    reason: rec.reason ?? null,
    status: s.status,
    recorded: r.events.length > 0,
  };
}

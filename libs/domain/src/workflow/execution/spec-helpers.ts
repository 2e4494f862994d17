/**
 * Builders for the execution specs (and for anyone simulating executions, e.g. template runs).
 * Pure: timestamps are computed from a fixed origin.
 */
import type { CommandMetadata } from '../../decider.js';
import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { decideWorkflow, evolveWorkflow, initialWorkflowState } from './decider.js';
import type { StepError, UnitRef, WorkflowCommand, WorkflowEvent, WorkflowExecutionState } from './types.js';

export const T0 = '2026-01-01T00:00:00.000Z';
/** T0 plus `ms` milliseconds. */
export const at = (ms: number): string => new Date(Date.parse(T0) + ms).toISOString();
export const meta = (timestamp = T0, actor = 'user:tester'): CommandMetadata => ({
  timestamp,
  actor,
  correlationId: 'corr-1',
});

export const cmd = {
  start: (definition: WorkflowDefinitionInput, input: unknown = {}, t = T0, executionId = 'ex1'): WorkflowCommand => ({
    type: 'StartWorkflow',
    data: { executionId, definition, input, seed: 42 },
    metadata: meta(t),
  }),
  dispatched: (u: UnitRef, attempt = 1, t = T0): WorkflowCommand => ({
    type: 'RecordStepDispatched',
    data: { ...u, attempt },
    metadata: meta(t),
  }),
  succeeded: (u: UnitRef, output: unknown, attempt = 1, t = T0): WorkflowCommand => ({
    type: 'RecordStepSucceeded',
    data: { ...u, attempt, output },
    metadata: meta(t),
  }),
  failed: (u: UnitRef, error: StepError, attempt = 1, t = T0): WorkflowCommand => ({
    type: 'RecordStepFailed',
    data: { ...u, attempt, error },
    metadata: meta(t),
  }),
  queued: (u: UnitRef, attempt = 1, t = T0): WorkflowCommand => ({
    type: 'RecordStepQueued',
    data: { ...u, attempt },
    metadata: meta(t),
  }),
  started: (u: UnitRef, attempt = 1, t = T0): WorkflowCommand => ({
    type: 'RecordStepStarted',
    data: { ...u, attempt },
    metadata: meta(t),
  }),
  timedOut: (u: UnitRef, attempt = 1, t = T0): WorkflowCommand => ({
    type: 'RecordStepTimedOut',
    data: { ...u, attempt },
    metadata: meta(t),
  }),
  retry: (u: UnitRef, attempt: number, t = T0): WorkflowCommand => ({
    type: 'RetryStep',
    data: { ...u, attempt },
    metadata: meta(t),
  }),
  cancel: (reason = 'no longer needed', t = T0): WorkflowCommand => ({
    type: 'RequestCancel',
    data: { reason },
    metadata: meta(t),
  }),
  compensated: (stepId: string, output: unknown = { ok: true }, t = T0): WorkflowCommand => ({
    type: 'RecordCompensationSucceeded',
    data: { stepId, output },
    metadata: meta(t),
  }),
  compensationFailed: (stepId: string, error: StepError, t = T0): WorkflowCommand => ({
    type: 'RecordCompensationFailed',
    data: { stepId, error },
    metadata: meta(t),
  }),
};

export const unavailable: StepError = { code: 'unavailable', message: 'server down', retryable: true };
export const invalid: StepError = { code: 'validation', message: 'bad arguments', retryable: false };

/** The events a sequence of commands produces (each decided on the state the previous ones left). */
export function history(...commands: WorkflowCommand[]): WorkflowEvent[] {
  let state: WorkflowExecutionState = initialWorkflowState;
  const out: WorkflowEvent[] = [];
  for (const c of commands) {
    const events = decideWorkflow(c, state);
    out.push(...events);
    state = events.reduce(evolveWorkflow, state);
  }
  return out;
}

export const fold = (events: readonly WorkflowEvent[]): WorkflowExecutionState =>
  events.reduce(evolveWorkflow, initialWorkflowState);

export const types = (events: readonly WorkflowEvent[]): string[] =>
  events.map((e) => {
    const d = e.data as { stepId?: string; itemIndex?: number };
    if (!d.stepId || e.type.startsWith('Workflow')) return e.type;
    return `${e.type}:${d.stepId}${d.itemIndex === undefined ? '' : `[${d.itemIndex}]`}`;
  });

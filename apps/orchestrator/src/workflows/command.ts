import { AppError } from '@switchyard/platform';
import { handleCommand, WrongExpectedVersionError, type DeciderLike, type DomainEventLike, type EventMetadata, type EventStore, type RecordedEvent } from '@switchyard/event-store';
import {
  isDomainError,
  workflowExecutionDecider,
  workflowExecutionStream,
  type WorkflowCommand,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';

export interface WorkflowCommandResult {
  readonly events: readonly WorkflowEvent[];
  readonly state: WorkflowExecutionState;
  readonly revision: number;
  readonly position?: number;
}

const toEvent = (e: RecordedEvent): WorkflowEvent => ({ type: e.type, data: e.data, metadata: e.metadata }) as unknown as WorkflowEvent;

/** Fold an execution's stream into its state. */
export async function loadExecution(store: EventStore, executionId: string): Promise<{ state: WorkflowExecutionState; revision: number }> {
  const recorded = await store.readStream(workflowExecutionStream(executionId));
  let state = workflowExecutionDecider.initialState;
  for (const e of recorded) state = workflowExecutionDecider.evolve(state, toEvent(e));
  return { state, revision: recorded.length ? recorded[recorded.length - 1]!.revision : -1 };
}

/**
 * The command-handler loop for one execution, through `handleCommand` of @switchyard/event-store: read,
 * decide, append with the expected revision, and on a revision conflict read and decide again.
 * Domain errors become AppErrors so their code reaches HTTP unchanged.
 */
export async function runWorkflowCommand(store: EventStore, executionId: string, command: WorkflowCommand, maxAttempts = 20): Promise<WorkflowCommandResult> {
  try {
    // The domain's event metadata has no index signature; the store's type wants one. Same values.
    const decider = workflowExecutionDecider as unknown as DeciderLike<WorkflowCommand, DomainEventLike, WorkflowExecutionState>;
    const r = await handleCommand(store, workflowExecutionStream(executionId), decider, command, { maxAttempts });
    return r as unknown as WorkflowCommandResult;
  } catch (err) {
    if (isDomainError(err)) throw new AppError(err.code, err.message, err.details, false);
    throw err;
  }
}

/**
 * The same for a command that usually creates the stream (StartWorkflow with a fresh id): decide
 * against the initial state and append with `no_stream` expected, without reading first. If the
 * stream exists after all (a repeated start), the usual read-decide-append answers.
 */
export async function runWorkflowCommandOnNewStream(store: EventStore, executionId: string, command: WorkflowCommand): Promise<WorkflowCommandResult> {
  let events: WorkflowEvent[];
  try {
    // The first units' dispatch goes in the same append (see decideWithDispatches): the engine
    // that picks the execution up sends them without appending first.
    events = decideWithDispatches(command, workflowExecutionDecider.initialState).map((i) => i.event);
  } catch (err) {
    if (isDomainError(err)) throw new AppError(err.code, err.message, err.details, false);
    throw err;
  }
  if (events.length === 0) return runWorkflowCommand(store, executionId, command);
  try {
    const r = await store.append(
      workflowExecutionStream(executionId),
      events.map((e) => ({ type: e.type, data: e.data, metadata: e.metadata as unknown as EventMetadata })),
      { expectedRevision: 'no_stream' },
    );
    const state = events.reduce(workflowExecutionDecider.evolve, workflowExecutionDecider.initialState);
    return { events, state, revision: r.nextExpectedRevision, position: r.position };
  } catch (err) {
    if (err instanceof WrongExpectedVersionError) return runWorkflowCommand(store, executionId, command);
    throw err;
  }
}

/** Who records dispatches (the engine's actor). */
const ORCHESTRATOR = 'system:orchestrator';

/**
 * Decide `command`, then record the dispatch of every unit the decision scheduled: each event
 * with the state right after it. One append then carries both, instead of one for the decision
 * and another per unit for its dispatch. "Dispatched" means "sent at least once from now on":
 * whoever handles these events sends such a unit (the engine's saga, or its recovery), with the
 * unit's idempotency key. Throws the decider's DomainError.
 */
export function decideWithDispatches(command: WorkflowCommand, initial: WorkflowExecutionState): { event: WorkflowEvent; state: WorkflowExecutionState }[] {
  const items: { event: WorkflowEvent; state: WorkflowExecutionState }[] = [];
  let state = initial;
  const apply = (events: readonly WorkflowEvent[]) => {
    for (const event of events) {
      state = workflowExecutionDecider.evolve(state, event);
      items.push({ event, state });
    }
  };
  apply(workflowExecutionDecider.decide(command, state));
  for (let i = 0; i < items.length; i++) {
    const ev = items[i]!.event;
    if (ev.type !== 'StepScheduled' || state.status === 'not_started') continue;
    const ref = { stepId: ev.data.stepId, ...(ev.data.itemIndex === undefined ? {} : { itemIndex: ev.data.itemIndex }) };
    let recorded: WorkflowEvent[];
    try {
      recorded = workflowExecutionDecider.decide(
        { type: 'RecordStepDispatched', data: { ...ref, attempt: ev.data.attempt }, metadata: { timestamp: command.metadata.timestamp, actor: ORCHESTRATOR, correlationId: state.correlationId } },
        state,
      );
    } catch {
      continue; // not for the command to fail: the unit stays scheduled and the engine records its dispatch itself
    }
    apply(recorded);
  }
  return items;
}

export const isTerminal = (s: WorkflowExecutionState): boolean => s.status === 'completed' || s.status === 'failed' || s.status === 'canceled';

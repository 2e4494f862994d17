import { AppError } from '@switchyard/platform';
import { WrongExpectedVersionError, type EventStore, type RecordedEvent } from '@switchyard/event-store';
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
 * STYLE habit 6 for one execution: read, decide, append with the expected revision, and on a
 * revision conflict read and decide again. Same algorithm as `handleCommand` of
 * @switchyard/event-store (restated here because that package's index does not export it at
 * the moment). Domain errors become AppErrors so their code reaches HTTP unchanged.
 */
export async function runWorkflowCommand(store: EventStore, executionId: string, command: WorkflowCommand, maxAttempts = 20): Promise<WorkflowCommandResult> {
  const streamId = workflowExecutionStream(executionId);
  for (let attempt = 1; ; attempt++) {
    const { state, revision } = await loadExecution(store, executionId);
    let events: WorkflowEvent[];
    try {
      events = workflowExecutionDecider.decide(command, state);
    } catch (err) {
      if (isDomainError(err)) throw new AppError(err.code, err.message, err.details, false);
      throw err;
    }
    if (events.length === 0) return { events, state, revision };
    try {
      const r = await store.append(
        streamId,
        events.map((e) => ({ type: e.type, data: e.data, metadata: e.metadata as never })),
        { expectedRevision: revision === -1 ? 'no_stream' : revision },
      );
      return { events, state: events.reduce(workflowExecutionDecider.evolve, state), revision: r.nextExpectedRevision, position: r.position };
    } catch (err) {
      if (!(err instanceof WrongExpectedVersionError) || attempt >= maxAttempts) throw err;
      // Jittered pause so two writers of a hot stream do not collide again in lockstep.
      await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    }
  }
}

export const isTerminal = (s: WorkflowExecutionState): boolean => s.status === 'completed' || s.status === 'failed' || s.status === 'canceled';

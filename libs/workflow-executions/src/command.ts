import { AppError } from '@switchyard/platform';
import {
  aggregateStream,
  handleCommand,
  type CommandResult,
  type Decision,
  type EventStore,
  type HandleCommandOptions,
} from '@switchyard/event-store';
import {
  isDomainError,
  workflowExecutionDecider,
  workflowExecutionStream,
  type WorkflowCommand,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';

export type WorkflowCommandResult = CommandResult<WorkflowEvent, WorkflowExecutionState>;

/** Fold an execution's stream into its state. */
export function loadExecution(
  store: EventStore,
  executionId: string,
): Promise<{ state: WorkflowExecutionState; revision: number }> {
  return aggregateStream(store, workflowExecutionStream(executionId), workflowExecutionDecider);
}

/**
 * The command-handler loop for one execution, through `handleCommand` of @switchyard/event-store: decide
 * (against `options.known` when the caller holds the state, else a fresh read), append with the
 * expected revision, and on a revision conflict read and decide again. Domain errors become
 * AppErrors so their code reaches HTTP unchanged.
 */
export async function runWorkflowCommand(
  store: EventStore,
  executionId: string,
  command: WorkflowCommand,
  options: HandleCommandOptions<WorkflowCommand, WorkflowEvent, WorkflowExecutionState> = {},
): Promise<WorkflowCommandResult> {
  try {
    return await handleCommand(store, workflowExecutionStream(executionId), workflowExecutionDecider, command, {
      maxAttempts: 20,
      ...options,
    });
  } catch (err) {
    if (isDomainError(err)) throw new AppError(err.code, err.message, err.details, false);
    throw err;
  }
}

/** decideWithDispatches as a Decision for handleCommand's decideKnown: its events, and the state after them (already folded). */
export function decisionWithDispatches(
  command: WorkflowCommand,
  state: WorkflowExecutionState,
): Decision<WorkflowEvent, WorkflowExecutionState> {
  const items = decideWithDispatches(command, state);
  return { events: items.map((i) => i.event), state: items.length > 0 ? items[items.length - 1]!.state : state };
}

/**
 * The same for a command that usually creates the stream (StartWorkflow with a fresh id): decide
 * against the initial state and append with `no_stream` expected, without reading first. If the
 * stream exists after all (a repeated start), the usual read-decide-append answers.
 */
export function runWorkflowCommandOnNewStream(
  store: EventStore,
  executionId: string,
  command: WorkflowCommand,
): Promise<WorkflowCommandResult> {
  // The first units' dispatch goes in the same append (see decideWithDispatches): the engine
  // that picks the execution up sends them without appending first. A refusal of the initial
  // state is final; a decision to do nothing is checked against the stream.
  return runWorkflowCommand(store, executionId, command, {
    known: { state: workflowExecutionDecider.initialState, revision: -1 },
    decideKnown: decisionWithDispatches,
    trust: { refusal: true },
  });
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
export function decideWithDispatches(
  command: WorkflowCommand,
  initial: WorkflowExecutionState,
): { event: WorkflowEvent; state: WorkflowExecutionState }[] {
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
    const ref = {
      stepId: ev.data.stepId,
      ...(ev.data.itemIndex === undefined ? {} : { itemIndex: ev.data.itemIndex }),
    };
    let recorded: WorkflowEvent[];
    try {
      recorded = workflowExecutionDecider.decide(
        {
          type: 'RecordStepDispatched',
          data: { ...ref, attempt: ev.data.attempt },
          metadata: { timestamp: command.metadata.timestamp, actor: ORCHESTRATOR, correlationId: state.correlationId },
        },
        state,
      );
    } catch {
      continue; // not for the command to fail: the unit stays scheduled and the engine records its dispatch itself
    }
    apply(recorded);
  }
  return items;
}

export const isTerminal = (s: WorkflowExecutionState): boolean =>
  s.status === 'completed' || s.status === 'failed' || s.status === 'canceled';

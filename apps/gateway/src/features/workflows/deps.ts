/** The workflow application layer (@switchyard/workflow-executions, @switchyard/read-models) as this feature uses it, plus definition validation that answers 400 with every problem. */
import { AppError } from '@switchyard/platform';
import type { DefinitionValidation, WorkflowDefinition } from '@switchyard/domain';
export {
  applyWorkflowLimits,
  batchView,
  buildCatalog,
  DefinitionStore,
  ensureWorkflowSchema,
  executionHistoryPage,
  executionStateAt,
  executionWithEvents,
  forkExecution,
  retryExecution,
  checkDefinitionVersion,
  executionResult,
  loadExecution,
  OpenExecutionsBound,
  type StoredDefinition,
  type ToolCaller,
} from '@switchyard/workflow-executions';
export {
  attemptHistoryOf,
  executionErrorOf,
  stepStartsOf,
  executionStoredPayloadBytes,
  getExecutionView,
  listExecutions,
  setupWorkflowReadModel,
} from '@switchyard/read-models';
// What the command handlers (commands/) call.
export {
  cancelBatch,
  cancelExecution,
  signalExecution,
  startBatch,
  startExecution,
  type SignalResult,
} from '@switchyard/workflow-executions';

/** The normalised definition of a verdict, or the 400 that names every problem. */
export function definitionOrThrow(v: DefinitionValidation): WorkflowDefinition {
  if (v.ok) return v.definition;
  throw new AppError(
    'validation',
    `invalid workflow definition: ${v.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
    {
      problems: v.problems,
      errors: v.problems.map((p) => ({ path: p.path, message: p.message, code: p.code, in: 'body' })),
    },
  );
}

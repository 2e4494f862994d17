/**
 * The workflow application layer shared by the gateway and the workflow engine: the commands on
 * executions (start, cancel, signal, fork, retry, batches) appended through the decider, the
 * definition store, the workflow tables' schema and the definition limits. The execution read
 * model and its queries are in @switchyard/read-models.
 */
export {
  DefinitionStore,
  buildCatalog,
  MAX_VERSION,
  type StoredDefinition,
  type DefinitionStoreOptions,
  type DefinitionCommandMeta,
} from './definitions.js';
export { ensureWorkflowSchema, WORKFLOW_SCHEMA } from './schema.js';
export {
  loadExecution,
  runWorkflowCommand,
  runWorkflowCommandOnNewStream,
  decideWithDispatches,
  isTerminal,
  type WorkflowCommandResult,
} from './command.js';
export {
  checkedWorkflowInput,
  startExecution,
  cancelExecution,
  signalExecution,
  waitForExecution,
  executionEvents,
  executionResult,
  type StartRequest,
  type SignalResult,
} from './api.js';
export { runExecutionAction, ExecutionActionError, type ExecutionActionContext } from './actions.js';
export { guardedToolsUsed, rerunRefusal, toolRefusal, type ToolCaller } from './tool-policy.js';
export {
  BatchWorker,
  batchConfigFromEnv,
  batchEnvSchema,
  batchView,
  batchViewOf,
  cancelBatch,
  loadBatch,
  matchExecutions,
  runBatchCommand,
  startBatch,
  BATCH_STREAM_PREFIX,
  type BatchConfig,
  type BatchWorkerOptions,
} from './batches.js';
export { applyWorkflowLimits, workflowLimitsFromEnv, workflowLimitsEnvSchema } from './limits.js';
export {
  executionHistoryPage,
  executionStateAt,
  executionWithEvents,
  forkExecution,
  retryExecution,
  checkDefinitionVersion,
  type ForkRequest,
} from './operations.js';
export { OpenExecutionsBound, openExecutionsConfigFromEnv, openExecutionsEnvSchema } from './open-executions.js';

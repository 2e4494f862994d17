/**
 * The durable workflow engine (saga of WorkflowExecution from a checkpointed $all subscription,
 * durable timers, partition leases), its definition store, read model and the command API
 * the gateway uses.
 */
export { startWorkflowEngine, WorkflowEngine, EXECUTION_STREAM_PREFIX, type WorkflowEngineOptions, type WorkflowEngineStats, type ParentRef } from './engine.js';
export { DefinitionStore, buildCatalog, MCP_REGISTRY_LIST_SUBJECT, type StoredDefinition } from './definitions.js';
export { executeRemote, mcpCallToolSubject, mcpOutput, toStepError, MCP_SUBJECT_PREFIX, TASKS_EXECUTE_SUBJECT, type StepOutcome, type ExecutorSubjects } from './executor.js';
export { PartitionLeases, partitionOf, type PartitionLeaseOptions } from './partitions.js';
export {
  workflowExecutionsProjection,
  setupWorkflowReadModel,
  listExecutions,
  getExecutionView,
  executionReadPosition,
  READ_SCHEMA,
  type ExecutionSummary,
  type ExecutionQuery,
  type StepView,
  type StepAttemptView,
} from './projection.js';
export { ensureWorkflowSchema, WORKFLOW_SCHEMA } from './schema.js';
export { startReadModelThread, readModelThreadConfigSchema, type ReadModelThread, type ReadModelThreadConfig } from './read-model-thread.js';
export { loadExecution, runWorkflowCommand, isTerminal, type WorkflowCommandResult } from './command.js';
export { startExecution, cancelExecution, signalExecution, waitForExecution, executionEvents, executionResult, type StartRequest, type SignalResult } from './api.js';
export { runExecutionAction, ExecutionActionError, type ExecutionActionContext } from './actions.js';
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
export { TriggerStarter, startTriggerStarter, type TriggerStarterOptions, type TriggerPass } from './triggers.js';
export {
  executionHistoryPage,
  executionStateAt,
  forkExecution,
  retryExecution,
  checkDefinitionVersion,
  type ForkRequest,
} from './operations.js';
export { Responders, type Behaviour, type ResponderCall } from './test-responders.js';

/**
 * The durable workflow engine (saga of WorkflowExecution from a checkpointed $all subscription,
 * durable timers, partition leases), its step executor, the read-model thread and the trigger
 * starter. The commands and the definition store it shares with the gateway are in
 * @switchyard/workflow-executions.
 */
export {
  startWorkflowEngine,
  WorkflowEngine,
  EXECUTION_STREAM_PREFIX,
  type WorkflowEngineOptions,
  type WorkflowEngineStats,
  type ParentRef,
} from './engine.js';
export { executeRemote, mcpOutput, toStepError, type StepOutcome, type ExecutorSubjects } from './executor.js';
export { PartitionLeases, partitionOf, type PartitionLeaseOptions } from './partitions.js';
export {
  startReadModelThread,
  readModelThreadConfigSchema,
  type ReadModelThread,
  type ReadModelThreadConfig,
} from './read-model-thread.js';
export { TriggerStarter, startTriggerStarter, type TriggerStarterOptions, type TriggerPass } from './triggers.js';
export { Responders, TEST_ENGINE_TIMINGS, type Behaviour, type ResponderCall } from './test-responders.js';
export { revokedStartersProjection, REVOKED_STARTERS_PROJECTION } from './revoked-starters.js';

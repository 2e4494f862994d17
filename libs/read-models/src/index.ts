export * from './projection.js';
export { ProjectionRunner, rebuildProjections, type ProjectionRunnerOptions } from './projection-runner.js';
export {
  workflowExecutionsProjection,
  setupWorkflowReadModel,
  listExecutions,
  executionStoredPayloadBytes,
  getExecutionView,
  READ_SCHEMA,
  type ExecutionSummary,
  type ExecutionQuery,
  type StepView,
  type StepAttemptView,
} from './workflow-executions.js';
export { attemptHistoryOf, executionErrorOf, stepStartsOf } from './workflow-detail-from-events.js';
export {
  tasksProjection,
  performanceProjection,
  queryPerformance,
  delegationProjections,
  trimTaskLatency,
  LATENCY_KEPT_MS,
  LATENCY_KEPT_SUCCESSES,
} from './delegation.js';
export * from './status/index.js';
export {
  workflowDefinitionsProjection,
  WORKFLOW_DEFINITIONS_PROJECTION,
  WORKFLOW_DEFINITIONS_DDL,
  DEFINITIONS_TABLE,
} from './workflow-definitions.js';

/** The workflow feature's commands: one class and one handler per file. */
import { CancelExecutionBatchHandler } from './cancel-execution-batch.js';
import { CancelWorkflowExecutionHandler } from './cancel-workflow-execution.js';
import { DeleteWorkflowDefinitionHandler } from './delete-workflow-definition.js';
import { ForkWorkflowExecutionHandler } from './fork-workflow-execution.js';
import { RegisterWorkflowDefinitionHandler } from './register-workflow-definition.js';
import { RetryWorkflowExecutionHandler } from './retry-workflow-execution.js';
import { SignalWorkflowExecutionHandler } from './signal-workflow-execution.js';
import { StartExecutionBatchHandler } from './start-execution-batch.js';
import { StartWorkflowExecutionHandler } from './start-workflow-execution.js';

export { CancelExecutionBatch } from './cancel-execution-batch.js';
export { CancelWorkflowExecution } from './cancel-workflow-execution.js';
export { DeleteWorkflowDefinition } from './delete-workflow-definition.js';
export { ForkWorkflowExecution } from './fork-workflow-execution.js';
export { RegisterWorkflowDefinition } from './register-workflow-definition.js';
export { RetryWorkflowExecution } from './retry-workflow-execution.js';
export { SignalWorkflowExecution } from './signal-workflow-execution.js';
export { StartExecutionBatch } from './start-execution-batch.js';
export { StartWorkflowExecution } from './start-workflow-execution.js';

export const WORKFLOW_COMMAND_HANDLERS = [
  StartWorkflowExecutionHandler,
  CancelWorkflowExecutionHandler,
  ForkWorkflowExecutionHandler,
  RetryWorkflowExecutionHandler,
  SignalWorkflowExecutionHandler,
  StartExecutionBatchHandler,
  CancelExecutionBatchHandler,
  RegisterWorkflowDefinitionHandler,
  DeleteWorkflowDefinitionHandler,
];

/** The workflow feature's queries: one class and one handler per file. */
import { CheckDefinitionVersionHandler } from './check-definition-version.js';
import { GetExecutionBatchHandler } from './get-execution-batch.js';
import { GetExecutionEventsHandler } from './get-execution-events.js';
import { GetExecutionHistoryHandler } from './get-execution-history.js';
import { GetExecutionHandler } from './get-execution.js';
import { GetWorkflowDefinitionHandler } from './get-workflow-definition.js';
import { ListExecutionsHandler } from './list-executions.js';
import { ListWorkflowDefinitionsHandler } from './list-workflow-definitions.js';
import { ListWorkflowTemplatesHandler } from './list-workflow-templates.js';
import { ReadExecutionStreamHandler } from './read-execution-stream.js';
import { ValidateWorkflowDefinitionHandler } from './validate-workflow-definition.js';
import { WaitForExecutionHandler } from './wait-for-execution.js';

export { CheckDefinitionVersion } from './check-definition-version.js';
export { GetExecutionBatch } from './get-execution-batch.js';
export { GetExecutionEvents } from './get-execution-events.js';
export { GetExecutionHistory } from './get-execution-history.js';
export { GetExecution } from './get-execution.js';
export { GetWorkflowDefinition } from './get-workflow-definition.js';
export { ListExecutions } from './list-executions.js';
export { ListWorkflowDefinitions } from './list-workflow-definitions.js';
export { ListWorkflowTemplates } from './list-workflow-templates.js';
export { ReadExecutionStream } from './read-execution-stream.js';
export { ValidateWorkflowDefinition } from './validate-workflow-definition.js';
export { WaitForExecution } from './wait-for-execution.js';

export const WORKFLOW_QUERY_HANDLERS = [
  ListWorkflowTemplatesHandler,
  GetWorkflowDefinitionHandler,
  ListWorkflowDefinitionsHandler,
  ValidateWorkflowDefinitionHandler,
  CheckDefinitionVersionHandler,
  ListExecutionsHandler,
  GetExecutionHandler,
  GetExecutionHistoryHandler,
  GetExecutionEventsHandler,
  ReadExecutionStreamHandler,
  GetExecutionBatchHandler,
  WaitForExecutionHandler,
];

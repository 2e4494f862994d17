export { WorkflowsFeatureModule } from './workflows.module.js';
export { WorkflowsService, WORKFLOWS_BASE } from './workflows.service.js';
export { StartWorkflowExecution, CancelWorkflowExecution } from './commands.js';

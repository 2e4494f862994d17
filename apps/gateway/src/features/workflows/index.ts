export { WorkflowsFeatureModule } from './workflows.module.js';
export { WorkflowsService, WORKFLOWS_BASE } from './workflows.service.js';
export * from './commands/index.js';
export * from './queries/index.js';
export { executionDetailResponse, EXECUTION_DETAIL_COMPONENT, type ExecutionDetail } from './execution-detail.js';
export { ExecutionWaits } from './execution-waits.js';

import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import {
  CancelExecutionBatchHandler,
  CancelWorkflowExecutionHandler,
  ForkWorkflowExecutionHandler,
  RetryWorkflowExecutionHandler,
  SignalWorkflowExecutionHandler,
  StartExecutionBatchHandler,
  StartWorkflowExecutionHandler,
} from './commands.js';
import { BatchesController } from './batches.controller.js';
import { AdHocWorkflowController, WorkflowsController } from './workflows.controller.js';
import { WorkflowsService } from './workflows.service.js';

/**
 * The workflow endpoints (/api/v1/workflows/*, /api/v1/integration/agents/workflow). Commands go
 * through the CQRS CommandBus to handlers that append through the decider; an orchestrator
 * process (startWorkflowEngine) drives the executions. Plug in with `createGateway(deps, { modules: [WorkflowsFeatureModule] })`.
 */
@Module({
  imports: [CqrsModule.forRoot()],
  controllers: [WorkflowsController, AdHocWorkflowController, BatchesController],
  providers: [
    WorkflowsService,
    StartWorkflowExecutionHandler,
    CancelWorkflowExecutionHandler,
    ForkWorkflowExecutionHandler,
    RetryWorkflowExecutionHandler,
    SignalWorkflowExecutionHandler,
    StartExecutionBatchHandler,
    CancelExecutionBatchHandler,
  ],
  exports: [WorkflowsService],
})
export class WorkflowsFeatureModule {}

import { Module } from '@nestjs/common';
import type { Pool } from 'pg';
import { WORKFLOW_COMMAND_HANDLERS } from './commands/index.js';
import { WORKFLOW_QUERY_HANDLERS } from './queries/index.js';
import { BatchesController } from './batches.controller.js';
import { ExecutionFolds } from './execution-folds.js';
import { ExecutionWaits } from './execution-waits.js';
import { AdHocWorkflowController, WorkflowsController } from './workflows.controller.js';
import { WorkflowsService } from './workflows.service.js';
import { DefinitionChecks } from './definition-checks.js';
import { PG_POOL } from '../../tokens.js';
import { OpenExecutionsBound } from './deps.js';

/**
 * The workflow endpoints (/api/v1/workflows/*, /api/v1/integration/agents/workflow). Commands go
 * through the CQRS CommandBus to handlers that append through the decider, reads through the
 * QueryBus (commands/, queries/); an orchestrator process (startWorkflowEngine) drives the
 * executions. Plug in with `createGateway(deps, { modules: [WorkflowsFeatureModule] })`.
 */
@Module({
  controllers: [WorkflowsController, AdHocWorkflowController, BatchesController],
  providers: [
    DefinitionChecks,
    // WORKFLOW_MAX_OPEN_PER_STARTER, read once when the gateway starts.
    { provide: OpenExecutionsBound, useFactory: (pool: Pool) => new OpenExecutionsBound(pool), inject: [PG_POOL] },
    WorkflowsService,
    ExecutionFolds,
    ExecutionWaits,
    ...WORKFLOW_COMMAND_HANDLERS,
    ...WORKFLOW_QUERY_HANDLERS,
  ],
  exports: [WorkflowsService, ExecutionFolds, ExecutionWaits],
})
export class WorkflowsFeatureModule {}

import { Module } from '@nestjs/common';
import { AgentsClient } from './agents.client.js';
import { AgentsController, QuickActionsController } from './agents.controller.js';

/**
 * The agent endpoints (/api/v1/integration/agents/*, /api/v1/integration/quick/*). They talk to
 * the task dispatcher (`startDispatcher` of @switchyard/orchestrator) over NATS, never in-process.
 * Plug in with `createGateway(deps, { modules: [AgentsFeatureModule] })`.
 */
@Module({ controllers: [AgentsController, QuickActionsController], providers: [AgentsClient], exports: [AgentsClient] })
export class AgentsFeatureModule {}

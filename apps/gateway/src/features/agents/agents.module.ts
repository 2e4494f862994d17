import { Module, type DynamicModule } from '@nestjs/common';
import { AGENTS_FEATURE_OPTIONS, AgentsClient, type AgentsFeatureOptions } from './agents.client.js';
import { AgentsController, QuickActionsController } from './agents.controller.js';
import { AGENT_COMMAND_HANDLERS } from './commands/index.js';
import { AGENT_QUERY_HANDLERS } from './queries/index.js';
import { TaskMoves } from './task-moves.js';

/**
 * The agent endpoints (/api/v1/integration/agents/*, /api/v1/integration/quick/*). They talk to
 * the task dispatcher (`startDispatcher` of @switchyard/dispatcher) over NATS, never in-process.
 * Commands and reads go through the CQRS buses (commands/, queries/).
 * Plug in with `createGateway(deps, { modules: [AgentsFeatureModule] })`.
 */
@Module({
  controllers: [AgentsController, QuickActionsController],
  providers: [AgentsClient, TaskMoves, ...AGENT_COMMAND_HANDLERS, ...AGENT_QUERY_HANDLERS],
  exports: [AgentsClient, TaskMoves],
})
export class AgentsFeatureModule {
  /** The module with options (e.g. the submit reply timeout). */
  static withOptions(options: AgentsFeatureOptions): DynamicModule {
    return { module: AgentsFeatureModule, providers: [{ provide: AGENTS_FEATURE_OPTIONS, useValue: options }] };
  }
}

import { Module, type DynamicModule } from '@nestjs/common';
import { AGENTS_FEATURE_OPTIONS, AgentsClient, type AgentsFeatureOptions } from './agents.client.js';
import { AgentsController, QuickActionsController } from './agents.controller.js';

/**
 * The agent endpoints (/api/v1/integration/agents/*, /api/v1/integration/quick/*). They talk to
 * the task dispatcher (`startDispatcher` of @switchyard/dispatcher) over NATS, never in-process.
 * Plug in with `createGateway(deps, { modules: [AgentsFeatureModule] })`.
 */
@Module({ controllers: [AgentsController, QuickActionsController], providers: [AgentsClient], exports: [AgentsClient] })
export class AgentsFeatureModule {
  /** The module with options (e.g. the submit reply timeout). */
  static withOptions(options: AgentsFeatureOptions): DynamicModule {
    return { module: AgentsFeatureModule, providers: [{ provide: AGENTS_FEATURE_OPTIONS, useValue: options }] };
  }
}

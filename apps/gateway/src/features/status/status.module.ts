import { Module, type DynamicModule } from '@nestjs/common';
import { InfrastructureRefresher } from './infra-refresher.js';
import { STATUS_FEATURE_OPTIONS, type StatusFeatureOptions } from './options.js';
import { StatusController } from './status.controller.js';
import { STATUS_QUERY_HANDLERS } from './queries/index.js';

/**
 * GET /api/v1/integration/status (role viewer): the whole system in one call, from read models
 * (status projection, delegation, workflow executions, the monitor's tables) and cached probes.
 * Plug in with `createGateway(deps, { modules: [StatusFeatureModule] })` or
 * `StatusFeatureModule.forRoot({ refreshMs })`. The MCP figures need the status projection
 * running somewhere (`statusProjections()` / `startStatusProjections()` of @switchyard/read-models).
 * The route reads through the QueryBus (queries/).
 */
@Module({
  controllers: [StatusController],
  providers: [InfrastructureRefresher, ...STATUS_QUERY_HANDLERS],
  exports: [InfrastructureRefresher],
})
export class StatusFeatureModule {
  static forRoot(options: StatusFeatureOptions): DynamicModule {
    return {
      module: StatusFeatureModule,
      providers: [{ provide: STATUS_FEATURE_OPTIONS, useValue: options }],
    };
  }
}

import { Module, type DynamicModule } from '@nestjs/common';
import { MetricsController, SystemController } from './system.controller.js';
import { SYSTEM_FEATURE_OPTIONS, SystemMonitorClient, type SystemFeatureOptions } from './system-client.js';
import { SYSTEM_COMMAND_HANDLERS } from './commands/index.js';
import { SYSTEM_QUERY_HANDLERS } from './queries/index.js';

/**
 * The monitoring endpoints (/api/v1/system/*, /metrics), served by the monitor over NATS
 * (`startMonitoring` of @switchyard/monitor, in this process or another).
 * Commands and reads go through the CQRS buses (commands/, queries/).
 * Plug in with `createGateway(deps, { modules: [SystemFeatureModule] })`, or
 * `SystemFeatureModule.forRoot({ serviceName, timeoutMs })` to point at another monitor service.
 */
@Module({
  controllers: [SystemController, MetricsController],
  providers: [SystemMonitorClient, ...SYSTEM_COMMAND_HANDLERS, ...SYSTEM_QUERY_HANDLERS],
  exports: [SystemMonitorClient],
})
export class SystemFeatureModule {
  static forRoot(options: SystemFeatureOptions): DynamicModule {
    return {
      module: SystemFeatureModule,
      providers: [{ provide: SYSTEM_FEATURE_OPTIONS, useValue: options }],
    };
  }
}

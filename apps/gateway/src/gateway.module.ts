import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule } from '@nestjs/core';
import { EventsController } from './events/events.controller.js';
import { LiveEventsService } from './events/sse.service.js';
import { HealthController } from './health/health.controller.js';
import { ReadinessService } from './health/readiness.service.js';
import { ProblemFilter } from './http/problem-filter.js';
import { DocsController } from './openapi/docs.controller.js';
import { OpenApiExplorer } from './openapi/explorer.js';
import { OpenApiRegistry } from './openapi/registry.js';
import {
  EVENT_STORE,
  GATEWAY_CONFIG,
  GATEWAY_OPTIONS,
  LOGGER,
  NATS_CONNECTION,
  PG_POOL,
  READINESS_EXTRA,
  type FeatureModule,
  type GatewayDeps,
  type ResolvedGatewayOptions,
} from './tokens.js';

/**
 * Global module holding the host's dependencies and the shared gateway services,
 * so feature modules can inject EVENT_STORE, PG_POOL, NATS_CONNECTION, LOGGER,
 * OpenApiRegistry and ReadinessService without importing anything.
 */
@Module({})
export class GatewayCoreModule {
  static forRoot(deps: GatewayDeps, options: ResolvedGatewayOptions): DynamicModule {
    const values = [
      { provide: EVENT_STORE, useValue: deps.eventStore },
      { provide: PG_POOL, useValue: deps.pgPool },
      { provide: NATS_CONNECTION, useValue: deps.nats },
      { provide: LOGGER, useValue: deps.logger },
      { provide: GATEWAY_CONFIG, useValue: deps.config },
      { provide: GATEWAY_OPTIONS, useValue: options },
      { provide: READINESS_EXTRA, useValue: deps.readiness ?? {} },
    ];
    const services = [OpenApiRegistry, ReadinessService];
    return {
      module: GatewayCoreModule,
      global: true,
      providers: [...values, ...services],
      exports: [...values.map((v) => v.provide), ...services],
    };
  }
}

/** The root module: built-in routes (health, events, docs), the problem filter, the OpenAPI explorer, and the feature modules. */
@Module({})
export class GatewayModule {
  static forRoot(deps: GatewayDeps, options: ResolvedGatewayOptions, modules: readonly FeatureModule[] = []): DynamicModule {
    return {
      module: GatewayModule,
      imports: [DiscoveryModule, GatewayCoreModule.forRoot(deps, options), ...modules],
      controllers: [HealthController, EventsController, DocsController],
      providers: [LiveEventsService, OpenApiExplorer, { provide: APP_FILTER, useClass: ProblemFilter }],
    };
  }
}

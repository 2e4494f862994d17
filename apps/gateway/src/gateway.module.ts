import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { CqrsModule } from '@nestjs/cqrs';
import type { Pool } from 'pg';
import type { EventStore } from '@switchyard/event-store';
import type { Logger } from '@switchyard/platform';
import { AuditController } from './audit/audit.controller.js';
import { AUDIT_QUERY_HANDLERS } from './audit/queries/index.js';
import { EVENTS_QUERY_HANDLERS } from './events/queries/index.js';
import { API_KEY_COMMAND_HANDLERS } from './security/commands/index.js';
import { API_KEY_QUERY_HANDLERS } from './security/queries/index.js';
import { ApiKeysController } from './security/api-keys.controller.js';
import { ApiKeyService } from './security/api-keys.js';
import { WhoamiController } from './security/whoami.controller.js';
import { RoleGuard } from './security/auth.guard.js';
import { EventsController } from './events/events.controller.js';
import { LiveEventsService } from './events/sse.service.js';
import { ReadinessService } from './health/readiness.service.js';
import { ProblemFilter } from './http/problem-filter.js';
import { ReadRouting } from './http/read-routing.js';
import { IdempotencyStore, resolveIdempotencyOptions } from './idempotency/index.js';
import { DocsController } from './openapi/docs.controller.js';
import { PayloadReads } from './http/payload-reads.js';
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
    const keys = {
      provide: ApiKeyService,
      useFactory: (store: EventStore, pool: Pool, logger: Logger, o: ResolvedGatewayOptions) =>
        new ApiKeyService(store, pool, logger.child({ component: 'api-keys' }), { cacheTtlMs: o.auth.keyCacheTtlMs }),
      inject: [EVENT_STORE, PG_POOL, LOGGER, GATEWAY_OPTIONS],
    };
    const idempotency = {
      provide: IdempotencyStore,
      useFactory: (pool: Pool, logger: Logger, o: ResolvedGatewayOptions) =>
        new IdempotencyStore(
          pool,
          logger.child({ component: 'idempotency' }),
          resolveIdempotencyOptions(o.idempotency),
        ),
      inject: [PG_POOL, LOGGER, GATEWAY_OPTIONS],
    };
    // Queries of the read models: the replica (deps.readPool) when it has what the caller must see.
    const reads = {
      provide: ReadRouting,
      useFactory: (pool: Pool, logger: Logger, o: ResolvedGatewayOptions, store: EventStore) =>
        new ReadRouting(pool, deps.readPool, logger.child({ component: 'read-routing' }), {
          ...o.readReplica,
          head: () => store.headPosition(),
        }),
      inject: [PG_POOL, LOGGER, GATEWAY_OPTIONS, EVENT_STORE],
    };
    // One gate per gateway for the reads that load whole stored payloads.
    const payloadReads = {
      provide: PayloadReads,
      useFactory: (o: ResolvedGatewayOptions) =>
        new PayloadReads(o.payloadReads.concurrency, o.payloadReads.queue, o.requestTimeoutMs),
      inject: [GATEWAY_OPTIONS],
    };
    return {
      module: GatewayCoreModule,
      global: true,
      providers: [...values, ...services, keys, idempotency, reads, payloadReads],
      exports: [
        ...values.map((v) => v.provide),
        ...services,
        ApiKeyService,
        IdempotencyStore,
        ReadRouting,
        PayloadReads,
      ],
    };
  }
}

/**
 * The root module: built-in routes (events, docs, audit, API keys; the probes are Fastify routes,
 * see health.routes.ts), the problem
 * filter, the role guard (enforcing `@ApiRoute({ role })` when auth is enabled), the
 * OpenAPI explorer, and the feature modules. The Idempotency-Key interceptor is put on the
 * command routes by createGateway (interceptCommandRoutes), not globally: reads skip it.
 */
@Module({})
export class GatewayModule {
  static forRoot(
    deps: GatewayDeps,
    options: ResolvedGatewayOptions,
    modules: readonly FeatureModule[] = [],
  ): DynamicModule {
    return {
      module: GatewayModule,
      // The command and query buses (global): every feature's controllers send to them, its handlers register on them.
      imports: [DiscoveryModule, CqrsModule.forRoot(), GatewayCoreModule.forRoot(deps, options), ...modules],
      controllers: [EventsController, DocsController, AuditController, ApiKeysController, WhoamiController],
      providers: [
        // The built-in routes' handlers (API keys, audit trail, event log); each feature module registers its own.
        ...API_KEY_COMMAND_HANDLERS,
        ...API_KEY_QUERY_HANDLERS,
        ...AUDIT_QUERY_HANDLERS,
        ...EVENTS_QUERY_HANDLERS,
        LiveEventsService,
        OpenApiExplorer,
        { provide: APP_FILTER, useClass: ProblemFilter },
        { provide: APP_GUARD, useClass: RoleGuard },
      ],
    };
  }
}

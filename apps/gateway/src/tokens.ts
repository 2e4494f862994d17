import type { DynamicModule, ForwardReference, Type } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Pool } from 'pg';
import type { EventStore } from '@switchyard/event-store';
import type { Config, EdgePolicy, Logger } from '@switchyard/platform';
import type { IdempotencyOptions } from './idempotency/store.js';
import type { ReadRoutingOptions } from './http/read-routing.js';
import { resolveSecurityOptions, type ResolvedSecurityOptions, type SecurityOptionsInput } from './security/options.js';

/**
 * Nest DI tokens for what the host process hands to the gateway. Feature modules
 * inject them with `@Inject(EVENT_STORE)` etc.; the core module is global, so a
 * feature module needs no import to see them.
 */
export const EVENT_STORE = Symbol.for('switchyard.gateway.eventStore');
export const PG_POOL = Symbol.for('switchyard.gateway.pgPool');
export const NATS_CONNECTION = Symbol.for('switchyard.gateway.nats');
export const LOGGER = Symbol.for('switchyard.gateway.logger');
export const GATEWAY_CONFIG = Symbol.for('switchyard.gateway.config');
export const GATEWAY_OPTIONS = Symbol.for('switchyard.gateway.options');
/** The host's extra readiness probes (GatewayDeps.readiness), by name. */
export const READINESS_EXTRA = Symbol.for('switchyard.gateway.readinessExtra');

/** The part of the process config the gateway reads. A full `Config` fits. */
export type GatewayConfig = Pick<Config, 'GATEWAY_PORT' | 'GATEWAY_HOST'> &
  Partial<Pick<Config, 'DATABASE_ALLOW_WRITES' | 'GATEWAY_ACCESS_LOG'>>;

/**
 * One extra readiness probe: resolves when the dependency is usable, rejects (or times out) when not.
 * Resolving with `{ degraded: '<why>' }` reports the check `degraded` without making the process
 * unready (it serves, some part of it is being restarted).
 */
export type ReadinessProbe = () => Promise<unknown>;

/** What the host process owns and lends to the gateway. `close()` on the gateway does not close them. */
export interface GatewayDeps {
  readonly eventStore: EventStore;
  readonly pgPool: Pool;
  readonly nats: NatsConnection;
  readonly logger: Logger;
  readonly config: GatewayConfig;
  /** Extra /readyz checks by name, next to the built-in `postgres`, `nats` and `eventStore`. */
  readonly readiness?: Readonly<Record<string, ReadinessProbe>>;
  /**
   * A pool on a streaming replica of `pgPool`'s database (DATABASE_READ_URL), for queries of the
   * read models (see ReadRouting); without it every query reads the primary.
   */
  readonly readPool?: Pool;
}

/** A Nest module a feature plugs in: a class, a `forRoot()` result or a forward reference. */
export type FeatureModule = Type<unknown> | DynamicModule | Promise<DynamicModule> | ForwardReference;

export interface GatewayOptions extends SecurityOptionsInput {
  /** Feature modules (controllers, providers). Their routes are validated and documented like the built-in ones. */
  readonly modules?: readonly FeatureModule[];
  /** Largest accepted JSON body (a bytes string such as '1mb' or a number of bytes). Default '1mb'. */
  readonly bodyLimit?: string | number;
  /** Interval of SSE heartbeat comments. Default 15 000 ms. */
  readonly sseHeartbeatMs?: number;
  /**
   * How long an SSE stream waits for a client that stopped reading (its socket buffer full) before
   * it ends the stream; the client resumes with Last-Event-ID. Default 60 000 ms.
   */
  readonly sseDrainTimeoutMs?: number;
  /** Each readiness probe fails when it takes longer than this. Default 2 000 ms. */
  readonly readinessTimeoutMs?: number;
  /** The `info` block of the OpenAPI document. */
  readonly openapi?: { readonly title?: string; readonly version?: string; readonly description?: string };
  /** Idempotency-Key storage: key lifetime (default IDEMPOTENCY_TTL_SEC or 24 h), lease, purge interval. */
  readonly idempotency?: IdempotencyOptions;
  /** Reads from the replica (`GatewayDeps.readPool`): how long a query given a position waits for it. */
  readonly readReplica?: ReadRoutingOptions;
  /** Accepted Host / Origin values besides loopback with the listening port (added to ALLOWED_HOSTS / ALLOWED_ORIGINS); others get 403. */
  readonly edge?: Partial<EdgePolicy>;
  /** The operator console's build (index.html and assets/) served at /ui. Default apps/console/dist. */
  readonly consoleDir?: string;
  // From SecurityOptionsInput:
  // auth: { enabled } (default false here; launchers use securityOptionsFromEnv(), AUTH_ENABLED default true),
  // rateLimit: false | { perIp, perKey, authFailuresPerIp } (default off), requestTimeoutMs (default 30 000, 0 = none).
}

/** Options after defaults, as injected under GATEWAY_OPTIONS. */
export interface ResolvedGatewayOptions extends ResolvedSecurityOptions {
  readonly bodyLimit: string | number;
  readonly sseHeartbeatMs: number;
  readonly sseDrainTimeoutMs: number;
  readonly readinessTimeoutMs: number;
  readonly openapi: { readonly title: string; readonly version: string; readonly description: string };
  readonly idempotency?: IdempotencyOptions;
  readonly readReplica?: ReadRoutingOptions;
}

export function resolveOptions(o: GatewayOptions = {}): ResolvedGatewayOptions {
  return {
    ...resolveSecurityOptions(o),
    bodyLimit: o.bodyLimit ?? '1mb',
    sseHeartbeatMs: o.sseHeartbeatMs ?? 15_000,
    sseDrainTimeoutMs: o.sseDrainTimeoutMs ?? 60_000,
    readinessTimeoutMs: o.readinessTimeoutMs ?? 2_000,
    ...(o.idempotency ? { idempotency: o.idempotency } : {}),
    ...(o.readReplica ? { readReplica: o.readReplica } : {}),
    openapi: {
      title: o.openapi?.title ?? 'Switchyard API',
      version: o.openapi?.version ?? '0.1.0',
      description: o.openapi?.description ?? 'HTTP gateway of Switchyard: health, audit and replay of the event log.',
    },
  };
}

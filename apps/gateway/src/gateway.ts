import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import express from 'express';
import { edgePolicyFromEnv, mergeEdgePolicies, migrateUnderLock, newId } from '@switchyard/platform';
import { correlationMiddleware, rebindContextMiddleware } from './http/context.js';
import { httpLogger, NestPinoLogger } from './http/logging.js';
import { GatewayHttpMetrics } from './http/metrics.js';
import { problemErrorMiddleware } from './http/problem-filter.js';
import { GatewayModule } from './gateway.module.js';
import { documentIdempotencyKeys, IdempotencyStore } from './idempotency/index.js';
import { DOCS_ASSETS_PATH, swaggerUiDir } from './openapi/docs.controller.js';
import { OpenApiRegistry } from './openapi/registry.js';
import { adminKeyBanner, ApiKeyService } from './security/api-keys.js';
import { answerClientErrorsWithProblems } from './security/client-error.js';
import { documentEnforcedRoles } from './security/document.js';
import { inputHygieneError } from './security/hygiene.js';
import { deferCheck, deferInputErrors } from './http/route-checks.js';
import { authenticationMiddleware, timeoutMiddleware } from './security/middleware.js';
import { RATE_LIMIT_SCHEMA_SQL, RateLimits } from './security/rate-limits.js';
import { hostOriginMiddleware } from './security/host-origin.js';
import { CONSOLE_PATH, consoleRouter } from './ui/console.js';
import { resolveOptions, type GatewayDeps, type GatewayOptions } from './tokens.js';

/** A gateway built and initialised, not yet listening. */
export interface Gateway {
  readonly app: INestApplication;
  /** The OpenAPI registry, for routes served outside Nest controllers. */
  readonly openapi: OpenApiRegistry;
  /** Listen (defaults: GATEWAY_PORT, GATEWAY_HOST; port 0 picks a free one) and say where. */
  listen(port?: number, host?: string): Promise<{ port: number; url: string }>;
  /** Stop serving: ends SSE streams, closes the HTTP server. The deps stay open (the host owns them). Idempotent. */
  close(): Promise<void>;
}

/**
 * Build the HTTP gateway inside the calling process.
 * 1. With auth enabled: the API key table is made and caught up, and the first admin
 *    key ensured (SWITCHYARD_ADMIN_KEY, or generated and printed once to stdout).
 * 2. Express middleware before Nest's routes, in this order: request metrics (GET /metrics
 *    shows them after the monitor's), correlation id, request log, request timeout, rate
 *    limits and API key resolution, docs assets, JSON body parser (size limit), input
 *    hygiene (NUL, unpaired surrogates, deep nesting: 400; these two are answered by the role
 *    guard, after the role check), problem+json for what failed so far, then the request context again (the body parser loses it).
 * 3. Nest routes: health, events, docs, audit, API keys and every feature module's
 *    controllers; the role guard checks each route's role, all errors pass through ProblemFilter.
 */
export async function createGateway(deps: GatewayDeps, options: GatewayOptions = {}): Promise<Gateway> {
  const resolved = resolveOptions(options);
  const logger = deps.logger.child({ component: 'gateway' });
  const server = express();
  server.disable('x-powered-by');

  const app = await NestFactory.create(
    GatewayModule.forRoot({ ...deps, logger }, resolved, options.modules ?? []),
    new ExpressAdapter(server),
    {
      bodyParser: false, // ours below, so its errors become problems and its limit is ours
      logger: new NestPinoLogger(logger),
      forceCloseConnections: true, // close() must not wait for idle keep-alive sockets
      abortOnError: false, // a DI error must reject, not abort the host process
    },
  );
  const keys = app.get(ApiKeyService);
  if (resolved.auth.enabled) {
    try {
      await keys.bootstrapAdmin({
        envKey: resolved.auth.adminKey,
        correlationId: newId(),
        print: resolved.auth.printAdminKey ?? ((key) => void process.stdout.write(adminKeyBanner(key))),
      });
    } catch (err) {
      await app.close();
      throw err;
    }
  }
  let limits: RateLimits | undefined;
  try {
    // The key table exists before the first request (and expired keys are purged).
    await app.get(IdempotencyStore).init();
    if (resolved.rateLimit.enabled) {
      // Shared counters: their table (no DDL on a pool whose owner migrated), then the limiters.
      if (resolved.rateLimit.store === 'postgres') await migrateUnderLock(deps.pgPool, 'switchyard.gateway.ratelimit.schema', RATE_LIMIT_SCHEMA_SQL);
      limits = RateLimits.create(resolved.rateLimit, deps.pgPool, logger.child({ component: 'rate-limits' }));
    }
  } catch (err) {
    await app.close();
    throw err;
  }
  answerClientErrorsWithProblems(app.getHttpServer(), logger);
  const httpMetrics = new GatewayHttpMetrics().attach(server);
  app.use(httpMetrics.middleware());
  app.use(correlationMiddleware);
  app.use(hostOriginMiddleware(mergeEdgePolicies(edgePolicyFromEnv(process.env, deps.config.GATEWAY_HOST), options.edge), logger.child({ component: 'host-origin' })));
  app.use(httpLogger(logger));
  app.use(timeoutMiddleware(resolved.requestTimeoutMs));
  app.use(authenticationMiddleware(resolved, keys, logger.child({ component: 'auth' }), limits));
  app.use(DOCS_ASSETS_PATH, express.static(swaggerUiDir(), { index: false, maxAge: '1h' }));
  app.use(CONSOLE_PATH, consoleRouter(logger.child({ component: 'console' }), options.consoleDir));
  // Body and hygiene errors are kept for the role guard, which answers them after the role check.
  app.use(deferInputErrors(express.json({ limit: resolved.bodyLimit, type: ['application/json', 'application/*+json'] })));
  app.use(deferCheck(inputHygieneError));
  app.use(problemErrorMiddleware());
  app.use(rebindContextMiddleware);
  await app.init();
  documentEnforcedRoles(app.get(OpenApiRegistry));
  documentIdempotencyKeys(app.get(OpenApiRegistry));
  // Requests answered before routing (401, 429, timeouts) are labelled by the documented routes.
  httpMetrics.useRoutes(() => app.get(OpenApiRegistry).routes());

  let closing: Promise<void> | undefined;
  return {
    app,
    openapi: app.get(OpenApiRegistry),
    async listen(port = deps.config.GATEWAY_PORT, host = deps.config.GATEWAY_HOST) {
      await app.listen(port, host);
      const address = app.getHttpServer().address() as AddressInfo;
      const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
      const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${address.port}`;
      logger.info({ port: address.port, host, auth: resolved.auth.enabled, rateLimit: resolved.rateLimit.enabled && limits?.store }, 'gateway listening');
      return { port: address.port, url };
    },
    close() {
      app.get(IdempotencyStore).close();
      closing ??= app.close().then(() => limits?.close());
      return closing;
    },
  };
}

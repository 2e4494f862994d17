import 'reflect-metadata';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import express from 'express';
import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  AppError,
  capConnections,
  capsWithinDescriptors,
  openFilesLimit,
  receiveTimeoutOptions,
  edgePolicyFromEnv,
  mergeEdgePolicies,
  migrateUnderLock,
  newId,
  processMemoryBudget,
} from '@switchyard/platform';
import { byteLimit, deferInvalidMediaType, leaveBodyUnread, registerBodyParsers } from './http/body.js';
import { connectionHolderOf, correlate, runInRequestContext, type GatewayRequest } from './http/context.js';
import { PUBLIC_PATHS } from './security/roles.js';
import { maskErrorTexts, redactsPayloadsFor } from './events/redaction.js';
import { decorateEdge, type EdgeReply, type EdgeRequest } from './http/edge.js';
import { mountNodeHandler, type NodeHandler } from './http/islands.js';
import { Exchanges } from './http/exchange.js';
import { NestPinoLogger, requestLog } from './http/logging.js';
import { GatewayHttpMetrics } from './http/metrics.js';
import { methodNotAllowed, sendProblem } from './http/problem-filter.js';
import { LARGE_BODY_BYTES, largeBodiesQuota } from './http/connection-quota.js';
import { GatewayModule } from './gateway.module.js';
import { registerHealthRoutes } from './health/health.routes.js';
import { ReadinessService } from './health/readiness.service.js';
import { documentIdempotencyKeys, IdempotencyInterceptor, IdempotencyStore } from './idempotency/index.js';
import { interceptCommandRoutes } from './http/command-routes.js';
import { DOCS_ASSETS_PATH, docsAssetsHandler } from './openapi/docs.controller.js';
import { OpenApiRegistry } from './openapi/registry.js';
import { adminKeyBanner, ApiKeyService } from './security/api-keys.js';
import { clientErrorsAsProblems } from './security/client-error.js';
import { documentEnforcedRoles } from './security/document.js';
import { inputHygieneError } from './security/hygiene.js';
import { deferCheck, shadowedLiteralPaths, shadowedMethodNotAllowed } from './http/route-checks.js';
import { authentication, RequestTimeouts } from './security/middleware.js';
import { cutStalledAnswer } from './http/unread-stream-bound.js';
import { RATE_LIMIT_SCHEMA_SQL, RateLimits } from './security/rate-limits.js';
import { hostOriginCheck } from './security/host-origin.js';
import { CONSOLE_PATH, consoleRouter, defaultConsoleDir } from './ui/console.js';
import { resolveOptions, type GatewayDeps, type GatewayOptions } from './tokens.js';

/** A gateway built and initialised, not yet listening. */
export interface Gateway {
  readonly app: INestApplication;
  /** The OpenAPI registry, for routes served outside Nest controllers. */
  readonly openapi: OpenApiRegistry;
  /**
   * Whether /ui serves the operator console now: its build (index.html) is in the console
   * directory. The console is mounted outside the route registry, so `openapi` does not say.
   */
  readonly consoleServed: boolean;
  /** Listen (defaults: GATEWAY_PORT, GATEWAY_HOST; port 0 picks a free one) and say where. */
  listen(port?: number, host?: string): Promise<{ port: number; url: string }>;
  /** Stop serving: ends SSE streams, closes the HTTP server. The deps stay open (the host owns them). Idempotent. */
  close(): Promise<void>;
}

/** An Express router served under `mount` by its own small Express app (static files, the console). */
const expressIsland = (mount: string, handler: express.RequestHandler): NodeHandler => {
  const island = express();
  island.disable('x-powered-by');
  island.use(mount, handler);
  return island;
};

/** Routes whose GET answers a stream that stays open (events, the MCP transports). */
const STREAMING_PATHS = /^\/(?:api\/v1\/events\/stream|mcp(?:\/v\/[^/]+)?(?:\/sse)?)\/?$/i;

/**
 * Build the HTTP gateway inside the calling process (NestJS on Fastify).
 * 1. With auth enabled: the API key table is made and caught up, and the first admin
 *    key ensured (SWITCHYARD_ADMIN_KEY, or generated and printed once to stdout).
 * 2. One Fastify `onRequest` hook before Nest's routes, in this order: request metrics (GET
 *    /metrics shows them after the monitor's), correlation id, request log, Host/Origin check,
 *    405 for a documented path without parameters that another method's parameterised route
 *    would take (else that route's role check would answer first), request timeout, a
 *    Content-Type that is not a media type kept for the role guard (415 after it), rate limits and API key resolution. The body parser (size limit) and
 *    input hygiene (NUL, unpaired surrogates, deep nesting) keep their 400/413 for the role
 *    guard, which answers them after the role check; a `preHandler` hook enters the request
 *    context again (the body is read outside it).
 * 3. The probes (/livez, /readyz) as plain Fastify routes, outside Nest's pipeline; then Nest
 *    routes: events, docs, audit, API keys and every feature module's controllers; the role guard checks each route's role, all errors pass through ProblemFilter.
 *    The console (/ui) and the docs' assets are Express static handlers on their own paths.
 */
export async function createGateway(deps: GatewayDeps, options: GatewayOptions = {}): Promise<Gateway> {
  const resolved = resolveOptions(options);
  const logger = deps.logger.child({ component: 'gateway' });
  // Entering and leaving high memory use (where starts are refused) is logged by the first role that asks.
  processMemoryBudget().logTo(deps.logger.child({ component: 'memory' }));
  const bodyLimit = byteLimit(resolved.bodyLimit);
  const adapter = new FastifyAdapter({
    logger: false, // ours, per request (see requestLog)
    forceCloseConnections: true, // close() must not wait for idle keep-alive sockets
    skipMiddie: true, // no Express-style middleware: the edge is Fastify hooks
    bodyLimit, // ours enforces it (http/body.ts); this one is a backstop
    // A request not received whole in time: 408 and closed (else a body sent a byte a minute holds
    // its connection for good). Node checks every connectionsCheckingInterval.
    requestTimeout: resolved.connections.receiveTimeoutMs,
    http: receiveTimeoutOptions(resolved.connections.receiveTimeoutMs),
    clientErrorHandler: clientErrorsAsProblems(logger),
    // As Express routed: trailing slash and case ignored, and no limit of its own on a path parameter
    // (Node's 16 KiB header limit bounds the URL), so a long id gets the route's validation 400.
    routerOptions: { ignoreTrailingSlash: true, caseSensitive: false, maxParamLength: 16 * 1024 },
    // What the router refuses before any hook (a malformed escape in the path): problem+json too.
    // Fastify hands this handler a request and reply made without the edge's decorations
    // (decorateEdge), so only the Node response under the reply is written to.
    frameworkErrors: (err: { code: string }, request: unknown, reply: unknown) => {
      const res = (reply as FastifyReply).raw;
      correlate(request as EdgeRequest, res);
      sendProblem(
        new AppError('validation', `the request path is not valid: ${err.code}`),
        request as EdgeRequest,
        res,
      );
    },
  });
  const server = adapter.getInstance<FastifyInstance>();
  // Half the process's descriptors at most: the rest are the pools', NATS's and the other listeners'.
  const connectionCaps = capsWithinDescriptors(resolved.connections, 0.5);
  if (connectionCaps.max !== resolved.connections.max || connectionCaps.perAddress !== resolved.connections.perAddress)
    logger.warn(
      { configured: resolved.connections, applied: connectionCaps, openFilesLimit: openFilesLimit() },
      'connection caps lowered to fit the open-files limit (ulimit -n)',
    );
  capConnections(server.server, connectionCaps, (why) =>
    logger.warn({ ...why, component: 'connections' }, 'connection refused: too many open'),
  );
  decorateEdge(server);
  registerBodyParsers(server, bodyLimit);

  const root = GatewayModule.forRoot({ ...deps, logger }, resolved, options.modules ?? []);
  // Idempotency-Key on the routes that may carry a command only: a read then runs without rxjs.
  await interceptCommandRoutes(root, IdempotencyInterceptor);
  const app = await NestFactory.create<NestFastifyApplication>(root, adapter, {
    bodyParser: false, // ours (registerBodyParsers), so its errors become problems and its limit is ours
    logger: new NestPinoLogger(logger),
    abortOnError: false, // a DI error must reject, not abort the host process
  });
  const keys = app.get(ApiKeyService);
  if (resolved.auth.enabled) {
    try {
      await keys.bootstrapAdmin({
        envKey: resolved.auth.adminKey,
        correlationId: newId(),
        print: resolved.auth.printAdminKey ?? ((key) => void process.stdout.write(adminKeyBanner(key))),
      });
      await keys.watchRevocations();
    } catch (err) {
      await keys.close();
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
      if (resolved.rateLimit.store === 'postgres')
        await migrateUnderLock(deps.pgPool, 'switchyard.gateway.ratelimit.schema', RATE_LIMIT_SCHEMA_SQL);
      limits = RateLimits.create(resolved.rateLimit, deps.pgPool, logger.child({ component: 'rate-limits' }));
    }
  } catch (err) {
    await app.close();
    throw err;
  }
  const httpMetrics = new GatewayHttpMetrics().attach(server);
  const hostOrigin = hostOriginCheck(
    mergeEdgePolicies(edgePolicyFromEnv(process.env, deps.config.GATEWAY_HOST), options.edge),
    logger.child({ component: 'host-origin' }),
  );
  const authenticate = authentication(resolved, keys, logger.child({ component: 'auth' }), limits);
  const timeouts = new RequestTimeouts(resolved.requestTimeoutMs);
  const log = requestLog(logger, deps.config.GATEWAY_ACCESS_LOG ?? 'info');
  // What each request does when its answer ends, in this order: count it, log it, stop its clock.
  // Filled once the routes are known (after init, before the first request).
  let shadowed: ReadonlyMap<string, readonly string[]> = new Map();
  const exchanges = new Exchanges([httpMetrics.record, ...(log ? [log] : []), timeouts.cancel]);
  const { sendStallMs } = resolved.connections;
  const answerCut = logger.child({ component: 'connections' });
  server.addHook('onRequest', (request, reply, done) => {
    const req = request as EdgeRequest;
    const res = reply as EdgeReply;
    cutStalledAnswer(reply.raw, sendStallMs, (pendingBytes) =>
      answerCut.info(
        {
          correlationId: (request as { correlationId?: string }).correlationId,
          path: req.path,
          pendingBytes,
          sendStallMs,
        },
        'client took none of its answer; connection cut',
      ),
    );
    const x = exchanges.begin(req, res);
    correlate(req, res);
    // What the API answers is the caller's own (payloads, keys, the audit log): no cache on the
    // way may keep it. A route with a cache policy of its own sets it later, over this one.
    if (isPrivatePath(req.url)) res.setHeader('cache-control', 'no-store');
    // No browser reads an answer as another type than it says (JSON sniffed as HTML, a script).
    res.setHeader('x-content-type-options', 'nosniff');
    if (!hostOrigin(req, res)) return;
    // HEAD on a route that answers with a stream ran its GET: it held a live stream (and an MCP
    // session) open for a caller that reads no body, taking a place of the caller's share.
    if (req.method === 'HEAD' && STREAMING_PATHS.test(req.path))
      return methodNotAllowed(/\/sse\/?$|stream\/?$/i.test(req.path) ? ['GET'] : ['GET', 'POST', 'DELETE'], req, res);
    const allow = shadowedMethodNotAllowed(shadowed, req.method, req.path);
    if (allow) return methodNotAllowed(allow, req, res);
    timeouts.start(x);
    deferInvalidMediaType(req);
    authenticate(req, res, done);
  });
  // Large bodies take turns before a byte of them is read (the key is known by now): each costs
  // the heap many times its size until it is answered.
  const largeBodies = largeBodiesQuota(resolved.largeBodies);
  server.addHook('preParsing', async (request, reply, payload) => {
    // A body no key stands behind is refused by every route that takes one (401, after the route's
    // role check): its bytes are let through unread rather than parsed and scanned first, which
    // cost 64-90 ms of CPU per keyless megabyte.
    if (
      resolved.auth.enabled &&
      (request as Partial<GatewayRequest>).apiKey === undefined &&
      !PUBLIC_PATHS.has((request as EdgeRequest).path)
    ) {
      leaveBodyUnread(request);
      return payload;
    }
    const length = Number(request.headers['content-length'] ?? NaN);
    const chunked = request.headers['transfer-encoding'] !== undefined;
    if (!(length >= LARGE_BODY_BYTES) && !chunked) return payload;
    let release: () => void;
    try {
      release = largeBodies.take(connectionHolderOf(request as EdgeRequest, request.ip));
    } catch (refused) {
      sendProblem(refused, request as EdgeRequest, reply as EdgeReply);
      return reply;
    }
    reply.raw.once('close', release);
    return payload;
  });
  server.addHook('preHandler', (request, reply, done) => {
    const req = request as EdgeRequest;
    deferCheck(req, inputHygieneError);
    runInRequestContext(req, done, reply.raw);
  });
  // A viewer reads which error a server, step or task had, not the values it quotes (a row's
  // value in a database error): every answer's error texts, whatever the route.
  server.addHook('preSerialization', (request, reply, payload, done) => {
    const key = (request as Partial<GatewayRequest>).apiKey;
    done(null, reply.statusCode < 400 && key && redactsPayloadsFor(key.role) ? maskErrorTexts(payload) : payload);
  });
  registerHealthRoutes(server, app.get(ReadinessService), app.get(OpenApiRegistry));
  mountNodeHandler(server, [`${DOCS_ASSETS_PATH}/*`], expressIsland(DOCS_ASSETS_PATH, docsAssetsHandler()));
  mountNodeHandler(
    server,
    [CONSOLE_PATH, `${CONSOLE_PATH}/*`],
    expressIsland(CONSOLE_PATH, consoleRouter(logger.child({ component: 'console' }), options.consoleDir)),
  );
  await app.init();
  documentEnforcedRoles(app.get(OpenApiRegistry));
  documentIdempotencyKeys(app.get(OpenApiRegistry));
  // Requests no route matched (404, 405) are labelled by the documented routes when one fits.
  httpMetrics.useRoutes(() => app.get(OpenApiRegistry).routes());
  shadowed = shadowedLiteralPaths(app.get(OpenApiRegistry).routes());

  let closing: Promise<void> | undefined;
  return {
    app,
    openapi: app.get(OpenApiRegistry),
    get consoleServed() {
      return existsSync(path.join(options.consoleDir ?? defaultConsoleDir(), 'index.html'));
    },
    async listen(port = deps.config.GATEWAY_PORT, host = deps.config.GATEWAY_HOST) {
      await app.listen(port, host);
      const address = app.getHttpServer().address() as AddressInfo;
      const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
      const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${address.port}`;
      logger.info(
        {
          port: address.port,
          host,
          auth: resolved.auth.enabled,
          rateLimit: resolved.rateLimit.enabled && limits?.store,
        },
        'gateway listening',
      );
      return { port: address.port, url };
    },
    close() {
      app.get(IdempotencyStore).close();
      closing ??= keys
        .close()
        .then(() => app.close())
        .then(() => limits?.close());
      return closing;
    },
  };
}

/** The API, `/mcp` and A2A: answers for one caller. */
const isPrivatePath = (url: string): boolean =>
  url.startsWith('/api/') || url.startsWith('/mcp') || url.startsWith('/a2a');

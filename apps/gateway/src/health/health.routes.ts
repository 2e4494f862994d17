import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import type { EdgeReply, EdgeRequest } from '../http/edge.js';
import { sendProblem } from '../http/problem-filter.js';
import { deferredInputError, undeclaredQueryError } from '../http/route-checks.js';
import type { OpenApiRegistry } from '../openapi/registry.js';
import type { ReadinessService } from './readiness.service.js';

const checkSchema = z.object({
  status: z.enum(['up', 'down', 'degraded']),
  durationMs: z.number(),
  error: z.string().optional(),
});
export const livenessSchema = z.object({ status: z.literal('live'), uptimeSeconds: z.number() });
/** `degraded`: ready to serve, but a component of this process is being restarted (its check says which and why). */
export const readinessSchema = z.object({
  status: z.enum(['ready', 'degraded']),
  checks: z.record(z.string(), checkSchema),
});

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * What the role guard checks of a public route, in its order: an input error the edge kept
 * (NUL in the query), then query parameters the probe does not take. True when answered.
 */
function refused(req: EdgeRequest, reply: EdgeReply): boolean {
  const err = deferredInputError(req) ?? undeclaredQueryError(req.query);
  if (err === undefined) return false;
  sendProblem(err, req, reply);
  return true;
}

/**
 * `GET /livez` and `GET /readyz` (and HEAD) as plain Fastify routes beside Nest's: probes come
 * every few seconds from every balancer, and need nothing of Nest's pipeline (no role, no body,
 * no idempotency). They still pass every edge hook (metrics, correlation id, request log,
 * Host/Origin, input hygiene) and answer as the controller did: same JSON, `cache-control:
 * no-store`, a 400 for a query parameter, 503 problem+json when a readiness check fails,
 * 405 with `Allow` for another method. Documented in the OpenAPI registry as public routes.
 */
export function registerHealthRoutes(
  server: FastifyInstance,
  readiness: ReadinessService,
  registry: OpenApiRegistry,
): void {
  server.get('/livez', (request, reply) => {
    const req = request as EdgeRequest;
    const res = reply as EdgeReply;
    if (refused(req, res)) return;
    // Built by hand: the answer is two fields, and this route is the one every probe calls.
    void res
      .header('cache-control', 'no-store')
      .type(JSON_TYPE)
      .send(`{"status":"live","uptimeSeconds":${Math.round(process.uptime())}}`);
  });
  server.get('/readyz', (request, reply) => {
    const req = request as EdgeRequest;
    const res = reply as EdgeReply;
    if (refused(req, res)) return;
    readiness.check().then(
      (report) => {
        if (!report.ready) {
          sendProblem(
            new AppError('unavailable', `not ready: ${report.failed.join(', ')}`, {
              checks: report.checks,
              failed: report.failed,
            }),
            req,
            res,
          );
          return;
        }
        void res
          .header('cache-control', 'no-store')
          .send({ status: report.degraded ? 'degraded' : 'ready', checks: report.checks });
      },
      (err: unknown) => sendProblem(err, req, res),
    );
  });
  registry.register({
    method: 'get',
    path: '/livez',
    doc: {
      operationId: 'HealthController_livez',
      summary: 'Liveness: the process is up and serving HTTP',
      tags: ['health'],
      response: { schema: livenessSchema, example: { status: 'live', uptimeSeconds: 42 } },
    },
  });
  registry.register({
    method: 'get',
    path: '/readyz',
    doc: {
      operationId: 'HealthController_readyz',
      summary: 'Readiness: Postgres, NATS and the event store answer',
      description: 'Answers 503 problem+json with `checks` and `failed` naming what is down.',
      tags: ['health'],
      response: { schema: readinessSchema },
      errors: [503],
    },
  });
}

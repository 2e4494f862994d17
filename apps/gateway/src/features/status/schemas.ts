import { z } from 'zod';
import { integrationReadModelsSchema } from '@switchyard/read-models';

const checkSchema = z.object({ status: z.enum(['up', 'down']), durationMs: z.number(), error: z.string().optional() });

/** GET /api/v1/integration/status: the verdict, its reasons, the cached infrastructure checks and the read models. */
export const integrationStatusResponse = integrationReadModelsSchema.extend({
  status: z.enum(['healthy', 'degraded', 'unhealthy']),
  reasons: z.array(z.object({ level: z.enum(['degraded', 'unhealthy']), component: z.string(), message: z.string() })),
  infrastructure: z.object({
    checked_at: z
      .string()
      .nullable()
      .describe('When the background refresher last ran the readiness probes (null: not yet)'),
    age_ms: z.number().nullable(),
    checks: z.record(z.string(), checkSchema),
  }),
});
export type IntegrationStatusResponse = z.infer<typeof integrationStatusResponse>;

export const integrationStatusExample: IntegrationStatusResponse = {
  status: 'degraded',
  reasons: [{ level: 'degraded', component: 'mcp:github', message: 'breaker open since 2026-01-01T11:58:00.000Z' }],
  generated_at: '2026-01-01T12:00:00.000Z',
  window: { from: '2026-01-01T11:00:00.000Z', to: '2026-01-01T12:00:00.000Z' },
  infrastructure: {
    checked_at: '2026-01-01T11:59:59.200Z',
    age_ms: 800,
    checks: {
      postgres: { status: 'up', durationMs: 1 },
      nats: { status: 'up', durationMs: 1 },
      eventStore: { status: 'up', durationMs: 2 },
    },
  },
  mcp: {
    available: true,
    servers: [
      {
        server: 'github',
        health: 'up',
        health_since: '2026-01-01T09:00:00.000Z',
        health_error: null,
        breaker: 'open',
        breaker_since: '2026-01-01T11:58:00.000Z',
        last_error: { code: 'circuit_open', message: 'timeout after 10000 ms', at: '2026-01-01T11:58:00.000Z' },
        last_call_at: '2026-01-01T11:57:59.000Z',
        last_hour: { calls: 120, failures: 6, tool_errors: 1, failure_rate: 0.05, p95_ms: 812.4 },
        totals: { calls: 5_230, failures: 88 },
      },
    ],
  },
  agents: {
    available: true,
    queued_any_agent: 0,
    items: [
      {
        agent: 'data-analyst',
        in_flight: 2,
        queued: 1,
        last_hour: {
          completed: 40,
          failed: 1,
          timed_out: 0,
          caller_errors: 2,
          success_rate: 0.9756,
          latency_p50_ms: 420,
          latency_p95_ms: 1_900,
        },
        totals: {
          tasks_done: 920,
          succeeded: 880,
          failed: 15,
          timed_out: 5,
          caller_errors: 20,
          last_task_at: '2026-01-01T11:59:30.000Z',
        },
        instances: [
          {
            instance: 'a1b2c3',
            status: 'up',
            since: '2026-01-01T08:00:00.000Z',
            last_probe_at: '2026-01-01T11:59:55.000Z',
            last_error: null,
          },
        ],
      },
    ],
  },
  workflows: { available: true, running: 3, canceling: 0, last_hour: { completed: 25, failed: 2, canceled: 1 } },
  alerts: { available: true, firing: 0, pending: 0, items: [] },
};

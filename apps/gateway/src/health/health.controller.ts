import { Controller, Get, Header } from '@nestjs/common';
import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import { ApiRoute } from '../openapi/registry.js';
import { ReadinessService } from './readiness.service.js';

const checkSchema = z.object({
  status: z.enum(['up', 'down', 'degraded']),
  durationMs: z.number(),
  error: z.string().optional(),
});
export const livenessSchema = z.object({ status: z.literal('live'), uptimeSeconds: z.number() });
/** `degraded`: ready to serve, but a component of this process is being restarted (its check says which and why). */
export const readinessSchema = z.object({ status: z.enum(['ready', 'degraded']), checks: z.record(z.string(), checkSchema) });

@Controller()
export class HealthController {
  constructor(private readonly readiness: ReadinessService) {}

  @Get('livez')
  @Header('cache-control', 'no-store')
  @ApiRoute({
    summary: 'Liveness: the process is up and serving HTTP',
    tags: ['health'],
    response: { schema: livenessSchema, example: { status: 'live', uptimeSeconds: 42 } },
  })
  livez(): z.infer<typeof livenessSchema> {
    return { status: 'live', uptimeSeconds: Math.round(process.uptime()) };
  }

  @Get('readyz')
  @Header('cache-control', 'no-store')
  @ApiRoute({
    summary: 'Readiness: Postgres, NATS and the event store answer',
    description: 'Answers 503 problem+json with `checks` and `failed` naming what is down.',
    tags: ['health'],
    response: { schema: readinessSchema },
    errors: [503],
  })
  async readyz(): Promise<z.infer<typeof readinessSchema>> {
    const report = await this.readiness.check();
    if (!report.ready) {
      throw new AppError('unavailable', `not ready: ${report.failed.join(', ')}`, {
        checks: report.checks,
        failed: report.failed,
      });
    }
    return { status: report.degraded ? 'degraded' : 'ready', checks: report.checks };
  }
}

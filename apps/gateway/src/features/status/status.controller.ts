import { Controller, Get, Header, Inject } from '@nestjs/common';
import type { Pool } from 'pg';
import { assessIntegration, readIntegrationStatus } from '@switchyard/read-models';
import { ApiRoute } from '../../openapi/registry.js';
import { PG_POOL } from '../../tokens.js';
import { InfrastructureRefresher } from './infra-refresher.js';
import { integrationStatusExample, integrationStatusResponse, type IntegrationStatusResponse } from './schemas.js';

export const STATUS_PATH = 'api/v1/integration/status';

/** The whole system's status in one call, from read models and cached probes only. */
@Controller(STATUS_PATH)
export class StatusController {
  private inflight: Promise<IntegrationStatusResponse> | undefined;

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(InfrastructureRefresher) private readonly infra: InfrastructureRefresher,
  ) {}

  @Get()
  @Header('cache-control', 'no-store')
  @ApiRoute({
    summary: 'Complete system status: MCP servers, agents, workflows, firing alerts and infrastructure, with an overall verdict',
    description:
      'Answers from read models (one database round trip) and from readiness probes cached by a background refresher (every ~2 s; ' +
      '`infrastructure.checked_at` says when), so it never waits on a live probe. A read model that does not exist yet reads as ' +
      '`available: false` (no data yet). `status` is unhealthy when Postgres, NATS or the event store is down, every MCP server is down ' +
      'or open, or a critical alert fires; degraded for lesser findings; `reasons` lists them, worst first. 503 when the read models cannot be read.',
    tags: ['status'],
    role: 'viewer',
    response: { status: 200, schema: integrationStatusResponse, example: integrationStatusExample },
    errors: [503],
  })
  status(): Promise<IntegrationStatusResponse> {
    // Concurrent requests share the read in flight (single flight): under load the database
    // sees one status query at a time, and an answer is never older than that query.
    this.inflight ??= this.read().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async read(): Promise<IntegrationStatusResponse> {
    const now = new Date();
    const o = this.infra.options;
    const infra = this.infra.current();
    const models = await readIntegrationStatus(this.pool, {
      now,
      ...(o.statusSchema ? { statusSchema: o.statusSchema } : {}),
      ...(o.delegationSchema ? { delegationSchema: o.delegationSchema } : {}),
    });
    const verdict = assessIntegration(models, infra, { now, staleAfterMs: o.staleAfterMs });
    return {
      status: verdict.status,
      reasons: verdict.reasons,
      generated_at: models.generated_at,
      window: models.window,
      infrastructure: {
        checked_at: infra.checked_at,
        age_ms: infra.checked_at ? Math.max(0, now.getTime() - Date.parse(infra.checked_at)) : null,
        checks: infra.checks,
      },
      mcp: models.mcp,
      agents: models.agents,
      workflows: models.workflows,
      alerts: models.alerts,
    };
  }
}

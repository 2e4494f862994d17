import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { Pool } from 'pg';
import { assessIntegration, readIntegrationStatus } from '@switchyard/read-models';
import { PG_POOL } from '../../../tokens.js';
import { InfrastructureRefresher } from '../infra-refresher.js';
import type { IntegrationStatusResponse } from '../schemas.js';

/** The whole system's status with a verdict, from read models and cached probes only. */
export class GetIntegrationStatus extends Query<IntegrationStatusResponse> {}

@QueryHandler(GetIntegrationStatus)
export class GetIntegrationStatusHandler implements IQueryHandler<GetIntegrationStatus> {
  private inflight: Promise<IntegrationStatusResponse> | undefined;

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(InfrastructureRefresher) private readonly infra: InfrastructureRefresher,
  ) {}

  execute(): Promise<IntegrationStatusResponse> {
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

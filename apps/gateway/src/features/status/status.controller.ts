import { Controller, Get, Header, Inject } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiRoute } from '../../openapi/registry.js';
import { GetIntegrationStatus } from './queries/index.js';
import { integrationStatusExample, integrationStatusResponse, type IntegrationStatusResponse } from './schemas.js';

export const STATUS_PATH = 'api/v1/integration/status';

/** The whole system's status in one call, from read models and cached probes only. */
@Controller(STATUS_PATH)
export class StatusController {
  constructor(@Inject(QueryBus) private readonly queries: QueryBus) {}

  @Get()
  @Header('cache-control', 'no-store')
  @ApiRoute({
    summary:
      'Complete system status: MCP servers, agents, workflows, firing alerts and infrastructure, with an overall verdict',
    description:
      'Answers from read models (one database round trip) and from readiness probes cached by a background refresher (every ~2 s; ' +
      '`infrastructure.checked_at` says when), so it never waits on a live probe. A read model that does not exist yet reads as ' +
      '`available: false` (no data yet). `status` is unhealthy when Postgres, NATS or the event store is down, every configured MCP server is down ' +
      'or open, or a critical alert fires; degraded for lesser findings; `reasons` lists them, worst first. 503 when the read models cannot be read.',
    tags: ['status'],
    role: 'viewer',
    response: { status: 200, schema: integrationStatusResponse, example: integrationStatusExample },
    errors: [503],
  })
  status(): Promise<IntegrationStatusResponse> {
    return this.queries.execute(new GetIntegrationStatus());
  }
}

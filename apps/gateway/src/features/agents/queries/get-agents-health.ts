import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { AgentsClient } from '../agents.client.js';

type Health = Awaited<ReturnType<AgentsClient['health']>>;

/** Health of every agent and its instances, with an overall verdict. */
export class GetAgentsHealth extends Query<Health & { status: 'healthy' | 'degraded' | 'down' }> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(GetAgentsHealth)
export class GetAgentsHealthHandler implements IQueryHandler<GetAgentsHealth> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  async execute(q: GetAgentsHealth) {
    const h = await this.client.health(q.correlationId);
    const status = h.agents.every((a) => a.status === 'healthy')
      ? 'healthy'
      : h.agents.some((a) => a.status !== 'down')
        ? 'degraded'
        : 'down';
    return { status, ...h } as Health & { status: 'healthy' | 'degraded' | 'down' };
  }
}

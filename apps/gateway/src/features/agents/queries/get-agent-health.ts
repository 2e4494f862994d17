import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { AgentsClient } from '../agents.client.js';

/** Health of one agent (404 when unknown). */
export class GetAgentHealth extends Query<Awaited<ReturnType<AgentsClient['agentHealth']>>> {
  constructor(
    readonly agent: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@QueryHandler(GetAgentHealth)
export class GetAgentHealthHandler implements IQueryHandler<GetAgentHealth> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  execute(q: GetAgentHealth) {
    return this.client.agentHealth(q.agent, q.correlationId);
  }
}

import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { AgentsClient } from '../agents.client.js';

/** Capability cards: agents, their task types (with aliases) and input schemas. */
export class GetAgentCapabilities extends Query<Awaited<ReturnType<AgentsClient['capabilities']>>> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(GetAgentCapabilities)
export class GetAgentCapabilitiesHandler implements IQueryHandler<GetAgentCapabilities> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  execute(q: GetAgentCapabilities) {
    return this.client.capabilities(q.correlationId);
  }
}

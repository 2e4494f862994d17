import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { AgentsClient } from '../agents.client.js';

/** Per agent: tasks done, success rate, latency p50/p95. */
export class GetAgentPerformance extends Query<Awaited<ReturnType<AgentsClient['performance']>>> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(GetAgentPerformance)
export class GetAgentPerformanceHandler implements IQueryHandler<GetAgentPerformance> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  execute(q: GetAgentPerformance) {
    return this.client.performance(q.correlationId);
  }
}

import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { AgentsClient } from '../agents.client.js';

/** A delegated task: status, agent, attempts, result or error (404 when unknown). */
export class GetTask extends Query<Awaited<ReturnType<AgentsClient['task']>>> {
  constructor(
    readonly taskId: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@QueryHandler(GetTask)
export class GetTaskHandler implements IQueryHandler<GetTask> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  execute(q: GetTask) {
    return this.client.task(q.taskId, q.correlationId);
  }
}

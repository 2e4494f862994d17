import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { batchView } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

/** A bulk operation's progress, state and failures; 404 when unknown. */
export class GetExecutionBatch extends Query<Awaited<ReturnType<typeof batchView>>> {
  constructor(readonly batchId: string) {
    super();
  }
}

@QueryHandler(GetExecutionBatch)
export class GetExecutionBatchHandler implements IQueryHandler<GetExecutionBatch> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  execute(q: GetExecutionBatch) {
    return batchView(this.svc.store, q.batchId);
  }
}

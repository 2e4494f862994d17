import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { ExecutionDetail } from '../execution-detail.js';
import { detailAt, WorkflowsService } from '../workflows.service.js';

/**
 * One execution in the one detail shape (execution-detail.ts): from the read model once it has
 * the execution's last event, else folded from the stream; with `at`, the state after that
 * revision (time travel, always folded). `source` says which database answered (replica or primary).
 */
export class GetExecution extends Query<{ detail: ExecutionDetail; source: 'replica' | 'primary' | undefined }> {
  constructor(
    readonly executionId: string,
    readonly at?: number,
    readonly minPosition?: number,
  ) {
    super();
  }
}

@QueryHandler(GetExecution)
export class GetExecutionHandler implements IQueryHandler<GetExecution> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute(q: GetExecution) {
    if (q.at !== undefined) return { detail: await detailAt(this.svc.store, q.executionId, q.at), source: undefined };
    let source: 'replica' | 'primary' | undefined;
    const detail = await this.svc.detail(q.executionId, q.minPosition, (s) => (source = s));
    return { detail, source };
  }
}

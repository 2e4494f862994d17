import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { checkDefinitionVersion } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

/** Replay a definition's last finished executions against one of its versions (read-only). */
export class CheckDefinitionVersion extends Query<Awaited<ReturnType<typeof checkDefinitionVersion>>> {
  constructor(
    readonly definitionId: string,
    readonly version: number,
    readonly limit: number,
  ) {
    super();
  }
}

@QueryHandler(CheckDefinitionVersion)
export class CheckDefinitionVersionHandler implements IQueryHandler<CheckDefinitionVersion> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  execute(q: CheckDefinitionVersion) {
    return checkDefinitionVersion(
      this.svc.store,
      this.svc.pool,
      this.svc.definitions,
      q.definitionId,
      q.version,
      q.limit,
    );
  }
}

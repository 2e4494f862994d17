import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { WorkflowDefinition } from '@switchyard/domain';
import { WorkflowsService } from '../workflows.service.js';

/** A registered definition (template) by id, its latest version or the one asked for; 404 when unknown. */
export class GetWorkflowDefinition extends Query<{ definition: WorkflowDefinition }> {
  constructor(
    readonly definitionId: string,
    readonly version?: number,
  ) {
    super();
  }
}

@QueryHandler(GetWorkflowDefinition)
export class GetWorkflowDefinitionHandler implements IQueryHandler<GetWorkflowDefinition> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute(q: GetWorkflowDefinition) {
    const { definition } = await this.svc.definitions.get(q.definitionId, q.version);
    return { definition };
  }
}

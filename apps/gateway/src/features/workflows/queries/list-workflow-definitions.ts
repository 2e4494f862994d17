import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { DefinitionStore } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

type Row = Awaited<ReturnType<DefinitionStore['list']>>[number];
export type DefinitionListed = Row['definition'] & { source: Row['source']; created_at: Row['createdAt'] };

/** Workflow definitions: the latest version of each, or every version. */
export class ListWorkflowDefinitions extends Query<{ definitions: DefinitionListed[] }> {
  constructor(
    readonly id: string | undefined,
    readonly allVersions: boolean | undefined,
  ) {
    super();
  }
}

@QueryHandler(ListWorkflowDefinitions)
export class ListWorkflowDefinitionsHandler implements IQueryHandler<ListWorkflowDefinitions> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute(q: ListWorkflowDefinitions) {
    const rows = await this.svc.definitions.list({ id: q.id, allVersions: q.allVersions });
    return { definitions: rows.map((r) => ({ ...r.definition, source: r.source, created_at: r.createdAt })) };
  }
}

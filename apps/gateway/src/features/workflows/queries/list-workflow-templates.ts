import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { stepUsesLabel } from '@switchyard/domain';
import { WorkflowsService } from '../workflows.service.js';

const summaryOf = (d: {
  id: string;
  version: number;
  name: string;
  description: string;
  input: unknown;
  steps: { id: string; uses?: string; wait?: { signal: string }; needs: string[] }[];
}) => ({
  id: d.id,
  version: d.version,
  name: d.name,
  description: d.description,
  input: d.input,
  // A wait step is listed as `wait:<signal>`.
  steps: d.steps.map((s) => ({ id: s.id, uses: stepUsesLabel(s), needs: s.needs })),
});

type TemplateSummary = ReturnType<typeof summaryOf>;

/** The built-in workflow templates, summarised. */
export class ListWorkflowTemplates extends Query<{ templates: TemplateSummary[] }> {}

@QueryHandler(ListWorkflowTemplates)
export class ListWorkflowTemplatesHandler implements IQueryHandler<ListWorkflowTemplates> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute() {
    const rows = await this.svc.definitions.list({ source: 'builtin' });
    return { templates: rows.map((r) => summaryOf(r.definition)) };
  }
}

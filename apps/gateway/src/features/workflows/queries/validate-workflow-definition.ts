import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { WorkflowsService } from '../workflows.service.js';
import { DefinitionChecks } from '../definition-checks.js';

export interface DefinitionValidation {
  readonly valid: boolean;
  readonly errors: { path: string; message: string; code?: string }[];
  readonly definition?: unknown;
}

/** Validate a definition as registering would, without registering it (no side effects). */
export class ValidateWorkflowDefinition extends Query<DefinitionValidation> {
  constructor(readonly body: Record<string, unknown>) {
    super();
  }
}

@QueryHandler(ValidateWorkflowDefinition)
export class ValidateWorkflowDefinitionHandler implements IQueryHandler<ValidateWorkflowDefinition> {
  constructor(
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
    @Inject(DefinitionChecks) private readonly checks: DefinitionChecks,
  ) {}
  async execute(q: ValidateWorkflowDefinition): Promise<DefinitionValidation> {
    const v = await this.checks.check(q.body, await this.svc.catalog(q.body), 'validate');
    if (v.ok) return { valid: true, errors: [], definition: v.definition };
    return { valid: false, errors: v.problems.map((p) => ({ path: p.path, message: p.message, code: p.code })) };
  }
}

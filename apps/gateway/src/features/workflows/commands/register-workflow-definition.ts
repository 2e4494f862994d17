import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { WorkflowDefinition } from '@switchyard/domain';
import type { DefinitionCommandMeta } from '@switchyard/workflow-executions';
import { WorkflowsService } from '../workflows.service.js';

/** Register a workflow definition, validated against the live catalog. Result: it, and whether it is new. */
export class RegisterWorkflowDefinition extends Command<{ definition: WorkflowDefinition; created: boolean }> {
  constructor(
    readonly body: Record<string, unknown>,
    readonly meta: DefinitionCommandMeta = {},
  ) {
    super();
  }
}

@CommandHandler(RegisterWorkflowDefinition)
export class RegisterWorkflowDefinitionHandler implements ICommandHandler<RegisterWorkflowDefinition> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute(c: RegisterWorkflowDefinition) {
    const r = await this.svc.definitions.register(c.body, await this.svc.catalog(c.body), c.meta);
    return { definition: r.definition, created: r.created };
  }
}

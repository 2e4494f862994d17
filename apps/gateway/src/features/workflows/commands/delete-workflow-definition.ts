import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { DefinitionCommandMeta } from '@switchyard/workflow-executions';
import { WorkflowsService } from '../workflows.service.js';

/** Delete a registered definition (every version); built-in templates are refused. Result: the versions it had. */
export class DeleteWorkflowDefinition extends Command<{ definitionId: string; versions: readonly number[] }> {
  constructor(
    readonly definitionId: string,
    readonly meta: DefinitionCommandMeta & { reason?: string } = {},
  ) {
    super();
  }
}

@CommandHandler(DeleteWorkflowDefinition)
export class DeleteWorkflowDefinitionHandler implements ICommandHandler<DeleteWorkflowDefinition> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  execute(c: DeleteWorkflowDefinition) {
    return this.svc.definitions.delete(c.definitionId, c.meta);
  }
}

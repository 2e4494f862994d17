import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { WorkflowStatus } from '@switchyard/domain';
import { cancelExecution } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { ExecutionFolds } from '../execution-folds.js';

/** Ask an execution to stop; compensations run; the engine ends it canceled. */
export class CancelWorkflowExecution extends Command<{ status: WorkflowStatus }> {
  constructor(
    readonly executionId: string,
    readonly reason: string,
    readonly correlationId: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(CancelWorkflowExecution)
export class CancelWorkflowExecutionHandler implements ICommandHandler<CancelWorkflowExecution> {
  constructor(@Inject(ExecutionFolds) private readonly folds: ExecutionFolds) {}
  execute(c: CancelWorkflowExecution) {
    return cancelExecution(this.folds.store, c.executionId, {
      reason: c.reason,
      correlationId: c.correlationId,
      actor: c.actor,
    });
  }
}

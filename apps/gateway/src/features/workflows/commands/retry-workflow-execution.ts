import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { WorkflowStatus } from '@switchyard/domain';
import { retryExecution } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { ExecutionFolds } from '../execution-folds.js';

/** Re-run a failed execution's failed steps and what depends on them, in the same execution. */
export class RetryWorkflowExecution extends Command<{ status: WorkflowStatus; steps: string[] }> {
  constructor(
    readonly executionId: string,
    readonly reason: string | undefined,
    readonly correlationId: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(RetryWorkflowExecution)
export class RetryWorkflowExecutionHandler implements ICommandHandler<RetryWorkflowExecution> {
  constructor(@Inject(ExecutionFolds) private readonly folds: ExecutionFolds) {}
  execute(c: RetryWorkflowExecution) {
    return retryExecution(this.folds.store, c.executionId, {
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      correlationId: c.correlationId,
      actor: c.actor,
    });
  }
}

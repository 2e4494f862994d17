import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { WorkflowStatus } from '@switchyard/domain';
import { retryExecution } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { EVENT_STORE } from '../../../tokens.js';

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
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  execute(c: RetryWorkflowExecution) {
    return retryExecution(this.store, c.executionId, {
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      correlationId: c.correlationId,
      actor: c.actor,
    });
  }
}

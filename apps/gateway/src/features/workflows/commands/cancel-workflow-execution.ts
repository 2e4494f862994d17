import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { WorkflowStatus } from '@switchyard/domain';
import { cancelExecution } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { EVENT_STORE } from '../../../tokens.js';

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
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  execute(c: CancelWorkflowExecution) {
    return cancelExecution(this.store, c.executionId, {
      reason: c.reason,
      correlationId: c.correlationId,
      actor: c.actor,
    });
  }
}

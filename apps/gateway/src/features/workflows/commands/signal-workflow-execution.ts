import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { signalExecution, type SignalResult } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { ExecutionFolds } from '../execution-folds.js';

/** Send a named signal to an execution (its payload becomes a waiting step's output). */
export class SignalWorkflowExecution extends Command<SignalResult> {
  constructor(
    readonly executionId: string,
    readonly name: string,
    readonly payload: Record<string, unknown>,
    readonly correlationId: string,
    // Derived from the request's Idempotency-Key: a repeated signal is recorded once.
    readonly signalId?: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(SignalWorkflowExecution)
export class SignalWorkflowExecutionHandler implements ICommandHandler<SignalWorkflowExecution> {
  constructor(@Inject(ExecutionFolds) private readonly folds: ExecutionFolds) {}
  execute(c: SignalWorkflowExecution) {
    return signalExecution(this.folds.store, c.executionId, {
      name: c.name,
      payload: c.payload,
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.signalId !== undefined ? { signalId: c.signalId } : {}),
    });
  }
}

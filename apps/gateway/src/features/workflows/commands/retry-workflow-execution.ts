import { processMemoryBudget } from '@switchyard/platform';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { WorkflowStatus } from '@switchyard/domain';
import type { Pool } from 'pg';
import { DefinitionStore, OpenExecutionsBound, retryExecution, type ToolCaller } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { ExecutionFolds } from '../execution-folds.js';
import { PG_POOL } from '../../../tokens.js';

/** Re-run a failed execution's failed steps and what depends on them, in the same execution. */
export class RetryWorkflowExecution extends Command<{ status: WorkflowStatus; steps: string[] }> {
  constructor(
    readonly executionId: string,
    readonly reason: string | undefined,
    readonly correlationId: string,
    /** The caller, checked as if starting the recorded definition (403). */
    readonly rerunAs?: ToolCaller,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(RetryWorkflowExecution)
export class RetryWorkflowExecutionHandler implements ICommandHandler<RetryWorkflowExecution> {
  private readonly definitions: DefinitionStore;
  constructor(
    @Inject(ExecutionFolds) private readonly folds: ExecutionFolds,
    @Inject(PG_POOL) pool: Pool,
    @Inject(OpenExecutionsBound) private readonly open: OpenExecutionsBound,
  ) {
    this.definitions = new DefinitionStore(pool);
  }
  async execute(c: RetryWorkflowExecution) {
    // A retry opens an ended execution again: the one who asks for it must have room for one more.
    processMemoryBudget().admit('workflow retry');
    await this.open.admit(c.actor);
    return retryExecution(this.folds.store, c.executionId, {
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.rerunAs ? { rerunAs: { caller: c.rerunAs, definitions: this.definitions } } : {}),
    });
  }
}

import { processMemoryBudget } from '@switchyard/platform';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { Pool } from 'pg';
import type { WorkflowDefinition } from '@switchyard/domain';
import { DefinitionStore, OpenExecutionsBound, forkExecution, type ToolCaller } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { PG_POOL } from '../../../tokens.js';
import { ExecutionFolds } from '../execution-folds.js';

/** Fork an execution from a step onto the same or another version of its definition. Result: the new execution. */
export class ForkWorkflowExecution extends Command<{
  executionId: string;
  definition: WorkflowDefinition;
  copied: string[];
  rerun: string[];
  created: boolean;
}> {
  constructor(
    readonly sourceId: string,
    readonly fromStep: string,
    readonly definitionVersion: number | undefined,
    readonly input: Record<string, unknown> | undefined,
    readonly correlationId: string,
    readonly executionId?: string,
    /** The caller, checked as if starting the source's recorded definition when no version is given (403). */
    readonly rerunAs?: ToolCaller,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(ForkWorkflowExecution)
export class ForkWorkflowExecutionHandler implements ICommandHandler<ForkWorkflowExecution> {
  private readonly definitions: DefinitionStore;
  constructor(
    @Inject(PG_POOL) pool: Pool,
    @Inject(ExecutionFolds) private readonly folds: ExecutionFolds,
    @Inject(OpenExecutionsBound) private readonly open: OpenExecutionsBound,
  ) {
    this.definitions = new DefinitionStore(pool);
  }
  async execute(c: ForkWorkflowExecution) {
    // A fork is a new execution of the forker's: it counts against their open executions and the memory.
    processMemoryBudget().admit('workflow fork');
    await this.open.admit(
      c.actor,
      c.executionId !== undefined ? { store: this.folds.store, executionId: c.executionId } : undefined,
    );
    return forkExecution(this.folds.store, this.definitions, c.sourceId, {
      fromStep: c.fromStep,
      ...(c.definitionVersion !== undefined ? { definitionVersion: c.definitionVersion } : {}),
      ...(c.input !== undefined ? { input: c.input } : {}),
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.executionId !== undefined ? { executionId: c.executionId } : {}),
      ...(c.rerunAs ? { rerunAs: c.rerunAs } : {}),
    });
  }
}

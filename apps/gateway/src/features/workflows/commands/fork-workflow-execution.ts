import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { Pool } from 'pg';
import type { WorkflowDefinition } from '@switchyard/domain';
import { DefinitionStore, forkExecution } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { EVENT_STORE, PG_POOL } from '../../../tokens.js';

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
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(ForkWorkflowExecution)
export class ForkWorkflowExecutionHandler implements ICommandHandler<ForkWorkflowExecution> {
  private readonly definitions: DefinitionStore;
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(PG_POOL) pool: Pool,
  ) {
    this.definitions = new DefinitionStore(pool);
  }
  execute(c: ForkWorkflowExecution) {
    return forkExecution(this.store, this.definitions, c.sourceId, {
      fromStep: c.fromStep,
      ...(c.definitionVersion !== undefined ? { definitionVersion: c.definitionVersion } : {}),
      ...(c.input !== undefined ? { input: c.input } : {}),
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.executionId !== undefined ? { executionId: c.executionId } : {}),
    });
  }
}

import { processMemoryBudget } from '@switchyard/platform';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { WorkflowDefinition, WorkflowDefinitionInput } from '@switchyard/domain';
import { OpenExecutionsBound, startExecution } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { EVENT_STORE } from '../../../tokens.js';

/** Start an execution of a definition (registered or inline). Result: its id. */
export class StartWorkflowExecution extends Command<{ executionId: string; created: boolean; position?: number }> {
  constructor(
    readonly definition: WorkflowDefinition | WorkflowDefinitionInput,
    readonly input: unknown,
    readonly correlationId: string,
    // Who asked: the request's API key (`apikey:<id>`), recorded in every event's metadata.
    readonly actor: string = currentActor() ?? 'anonymous',
    // Derived from the request's Idempotency-Key: a repeated start names the same execution.
    readonly executionId?: string,
  ) {
    super();
  }
}

/** Appends StartWorkflow through the decider (429 past the starter's open executions); the orchestrator drives it from there. */
@CommandHandler(StartWorkflowExecution)
export class StartWorkflowExecutionHandler implements ICommandHandler<StartWorkflowExecution> {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(OpenExecutionsBound) private readonly open: OpenExecutionsBound,
  ) {}
  async execute(c: StartWorkflowExecution) {
    // Refused before anything is recorded (503, Retry-After) while this process's memory is high.
    processMemoryBudget().admit('workflow start');
    await this.open.admit(
      c.actor,
      c.executionId !== undefined ? { store: this.store, executionId: c.executionId } : undefined,
    );
    const r = await startExecution(this.store, {
      definition: c.definition,
      input: c.input,
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.executionId !== undefined ? { executionId: c.executionId } : {}),
    });
    return {
      executionId: r.executionId,
      created: r.created,
      ...(r.position !== undefined ? { position: r.position } : {}),
    };
  }
}

import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { Pool } from 'pg';
import { cancelBatch, cancelExecution, DefinitionStore, forkExecution, retryExecution, signalExecution, startBatch, startExecution, type SignalResult } from '@switchyard/workflow-executions';
import type { BatchAction, BatchFilter, BatchState, WorkflowDefinition, WorkflowDefinitionInput, WorkflowStatus } from '@switchyard/domain';
import { currentActor } from '../../http/context.js';
import { EVENT_STORE, PG_POOL } from '../../tokens.js';

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

/** Appends StartWorkflow through the decider; the orchestrator drives it from there. */
@CommandHandler(StartWorkflowExecution)
export class StartWorkflowExecutionHandler implements ICommandHandler<StartWorkflowExecution> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  async execute(c: StartWorkflowExecution) {
    const r = await startExecution(this.store, {
      definition: c.definition,
      input: c.input,
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.executionId !== undefined ? { executionId: c.executionId } : {}),
    });
    return { executionId: r.executionId, created: r.created, ...(r.position !== undefined ? { position: r.position } : {}) };
  }
}

@CommandHandler(CancelWorkflowExecution)
export class CancelWorkflowExecutionHandler implements ICommandHandler<CancelWorkflowExecution> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  execute(c: CancelWorkflowExecution) {
    return cancelExecution(this.store, c.executionId, { reason: c.reason, correlationId: c.correlationId, actor: c.actor });
  }
}

// ---- operations on executions: fork, retry ----

/** Fork an execution from a step onto the same or another version of its definition. Result: the new execution. */
export class ForkWorkflowExecution extends Command<{ executionId: string; definition: WorkflowDefinition; copied: string[]; rerun: string[]; created: boolean }> {
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

@CommandHandler(RetryWorkflowExecution)
export class RetryWorkflowExecutionHandler implements ICommandHandler<RetryWorkflowExecution> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  execute(c: RetryWorkflowExecution) {
    return retryExecution(this.store, c.executionId, { ...(c.reason !== undefined ? { reason: c.reason } : {}), correlationId: c.correlationId, actor: c.actor });
  }
}

// ---- signals and bulk operations ----

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
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  execute(c: SignalWorkflowExecution) {
    return signalExecution(this.store, c.executionId, {
      name: c.name,
      payload: c.payload,
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.signalId !== undefined ? { signalId: c.signalId } : {}),
    });
  }
}

/** Start a bulk operation: match the executions now, record them in a new batch; the engine's batch worker works it. */
export class StartExecutionBatch extends Command<{ batchId: string; state: BatchState; created: boolean }> {
  constructor(
    readonly filter: BatchFilter,
    readonly action: BatchAction,
    readonly correlationId: string,
    readonly batchId?: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(StartExecutionBatch)
export class StartExecutionBatchHandler implements ICommandHandler<StartExecutionBatch> {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(PG_POOL) private readonly pool: Pool,
  ) {}
  execute(c: StartExecutionBatch) {
    return startBatch(this.store, this.pool, {
      filter: c.filter,
      action: c.action,
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.batchId !== undefined ? { batchId: c.batchId } : {}),
    });
  }
}

/** Stop a batch: items not yet worked are left alone. */
export class CancelExecutionBatch extends Command<BatchState> {
  constructor(
    readonly batchId: string,
    readonly reason: string,
    readonly correlationId: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(CancelExecutionBatch)
export class CancelExecutionBatchHandler implements ICommandHandler<CancelExecutionBatch> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  execute(c: CancelExecutionBatch) {
    return cancelBatch(this.store, c.batchId, { reason: c.reason, correlationId: c.correlationId, actor: c.actor });
  }
}

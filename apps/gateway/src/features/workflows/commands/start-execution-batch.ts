import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { Pool } from 'pg';
import type { BatchAction, BatchFilter, BatchState } from '@switchyard/domain';
import { startBatch } from '../deps.js';
import { workflowExecutionStream } from '@switchyard/domain';
import { currentActor } from '../../../http/context.js';
import { callerSeesAdminToolPayloads, executionStreamCallsAdminTool } from '../../../events/redaction.js';
import { EVENT_STORE, PG_POOL } from '../../../tokens.js';

/** Start a bulk operation: match the executions now, record them in a new batch; the engine's batch worker works it. */
export class StartExecutionBatch extends Command<{ batchId: string; state: BatchState; created: boolean }> {
  constructor(
    readonly filter: BatchFilter,
    readonly action: BatchAction,
    readonly correlationId: string,
    readonly batchId?: string,
    readonly actor: string = currentActor() ?? 'anonymous',
    readonly seesAdminToolPayloads: boolean = callerSeesAdminToolPayloads(),
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
      // The error of an execution that calls an admin-only tool reads to anyone but an admin as
      // "…": its text must not be searchable either.
      ...(c.seesAdminToolPayloads
        ? {}
        : { errorHidden: (id: string) => executionStreamCallsAdminTool(this.store, workflowExecutionStream(id)) }),
    });
  }
}

import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { BatchState } from '@switchyard/domain';
import { cancelBatch } from '../deps.js';
import { currentActor } from '../../../http/context.js';
import { EVENT_STORE } from '../../../tokens.js';

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

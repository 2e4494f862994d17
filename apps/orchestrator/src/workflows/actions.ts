/**
 * The one entry point bulk operations (batches) use to act on one execution: the same commands
 * the single-execution routes run. Retry and fork belong to the execution-history work (retry
 * and fork commands); until those commands exist in this build, they answer `not_available`.
 */
import { AppError, isAppError } from '@switchyard/platform';
import type { EventStore } from '@switchyard/event-store';
import type { BatchAction } from '@switchyard/domain';
import { cancelExecution } from './api.js';
import { loadExecution } from './command.js';

/** Why one item of a batch could not be done; `code` goes into BatchItemFailed. */
export class ExecutionActionError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ExecutionActionError';
  }
}

export interface ExecutionActionContext {
  readonly batchId: string;
  readonly correlationId: string;
  readonly actor: string;
}

/**
 * Apply `action` to one execution. Idempotent per execution, so a batch resumed after a crash
 * may run it again for the item it was working: a cancel of an execution already canceling or
 * canceled is done (`already_canceled`), not a second cancel. Resolves with the outcome; throws
 * ExecutionActionError when the item cannot be done (it is recorded as failed, the batch goes on).
 */
export async function runExecutionAction(store: EventStore, executionId: string, action: BatchAction, ctx: ExecutionActionContext): Promise<string> {
  switch (action.kind) {
    case 'cancel': {
      try {
        const r = await cancelExecution(store, executionId, { reason: `bulk cancel (batch ${ctx.batchId})`, correlationId: ctx.correlationId, actor: ctx.actor });
        return r.status === 'canceled' || r.status === 'canceling' ? r.status : `cancel_${r.status}`;
      } catch (err) {
        if (isAppError(err) && err.code === 'illegal_state') {
          const { state } = await loadExecution(store, executionId);
          if (state.status === 'canceled') return 'already_canceled';
          throw new ExecutionActionError('illegal_state', `execution is already ${state.status}`);
        }
        if (isAppError(err) && err.code === 'not_found') throw new ExecutionActionError('not_found', err.message);
        throw err;
      }
    }
    case 'retry':
      // The retry command (POST /executions/{id}/retry) is not part of this build.
      throw new ExecutionActionError('not_available', 'retry of an execution is not available in this build');
    case 'fork':
      // The fork command (POST /executions/{id}/fork) is not part of this build.
      throw new ExecutionActionError('not_available', `fork of an execution (version ${action.definitionVersion}, from step "${action.fromStep}") is not available in this build`);
    default: {
      const never: never = action;
      throw new AppError('internal', `unknown batch action ${JSON.stringify(never)}`);
    }
  }
}

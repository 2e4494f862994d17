/**
 * The one entry point bulk operations (batches) use to act on one execution: the same commands
 * the single-execution routes run (cancel, retry, fork).
 */
import { AppError, isAppError } from '@switchyard/platform';
import type { EventStore } from '@switchyard/event-store';
import { workflowExecutionStream, type BatchAction } from '@switchyard/domain';
import { createHash } from 'node:crypto';
import { cancelExecution } from './api.js';
import { loadExecution } from './command.js';
import type { DefinitionStore } from './definitions.js';
import { forkExecution, retryExecution } from './operations.js';

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
  /** Where a fork finds the registered version it runs. */
  readonly definitions: DefinitionStore;
  /**
   * The log position of the batch's start (its BatchStarted). A retry item retries the failure
   * the batch matched: an execution retried after this position (by another batch, an operator,
   * or this batch before a crash) is `already_retried`, not retried again.
   */
  readonly startedAtPosition?: number;
}

/**
 * The fork a batch makes of one execution has an id derived from the batch and the execution, so a
 * batch resumed after a crash that works the item again names the same fork (created once).
 */
export function batchForkId(batchId: string, executionId: string): string {
  const h = createHash('sha256').update(`batch-fork:${batchId}:${executionId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A domain refusal (wrong state, unknown step or version) fails the item; anything else is infrastructure. */
function asItemError(err: unknown): never {
  if (isAppError(err) && ['illegal_state', 'not_found', 'conflict', 'validation', 'forbidden'].includes(err.code))
    throw new ExecutionActionError(err.code, err.message);
  throw err;
}

/**
 * Apply `action` to one execution. Idempotent per execution, so a batch resumed after a crash
 * may run it again for the item it was working: a cancel of an execution already canceling or
 * canceled is done (`already_canceled`), not a second cancel. Resolves with the outcome; throws
 * ExecutionActionError when the item cannot be done (it is recorded as failed, the batch goes on).
 */
export async function runExecutionAction(
  store: EventStore,
  executionId: string,
  action: BatchAction,
  ctx: ExecutionActionContext,
): Promise<string> {
  switch (action.kind) {
    case 'cancel': {
      try {
        const r = await cancelExecution(store, executionId, {
          reason: `bulk cancel (batch ${ctx.batchId})`,
          correlationId: ctx.correlationId,
          actor: ctx.actor,
        });
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
    case 'retry': {
      // The retries the execution had when the batch started: the decider refuses (illegal_state) if
      // any came after, even one appended between this read and the retry's append.
      const ifRetries =
        ctx.startedAtPosition === undefined
          ? undefined
          : (await store.readStream(workflowExecutionStream(executionId))).filter(
              (e) => e.type === 'ExecutionRetried' && e.position <= ctx.startedAtPosition!,
            ).length;
      try {
        const r = await retryExecution(store, executionId, {
          reason: `bulk retry (batch ${ctx.batchId})`,
          correlationId: ctx.correlationId,
          actor: ctx.actor,
          ...(action.rerunAs ? { rerunAs: { caller: action.rerunAs, definitions: ctx.definitions } } : {}),
          ...(ifRetries === undefined ? {} : { ifRetries }),
        });
        return r.steps.length > 0 ? `retried ${r.steps.join(', ')}` : 'retried';
      } catch (err) {
        if (isAppError(err) && err.code === 'illegal_state' && err.details?.['expected'] !== undefined)
          return 'already_retried';
        if (isAppError(err) && err.code === 'illegal_state') {
          // Worked again after a crash: the retry this batch made already runs (or ended).
          const events = await store.readStream(workflowExecutionStream(executionId));
          if (events.some((e) => e.type === 'ExecutionRetried' && e.metadata['correlationId'] === ctx.correlationId))
            return 'already_retried';
        }
        return asItemError(err);
      }
    }
    case 'fork': {
      try {
        const r = await forkExecution(store, ctx.definitions, executionId, {
          fromStep: action.fromStep,
          definitionVersion: action.definitionVersion,
          correlationId: ctx.correlationId,
          actor: ctx.actor,
          executionId: batchForkId(ctx.batchId, executionId),
        });
        return `forked ${r.executionId}`;
      } catch (err) {
        return asItemError(err);
      }
    }
    default: {
      const never: never = action;
      throw new AppError('internal', `unknown batch action ${JSON.stringify(never)}`);
    }
  }
}

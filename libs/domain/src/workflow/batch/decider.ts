/**
 * The Batch decider: a bulk operation over executions as its own event-sourced job. Each item
 * settles once (a repeated or late result records nothing); the batch completes when every item
 * has settled, or ends cancelled (items not yet worked stay pending and are never worked).
 */
import { assertNever, DomainError, type Decider } from '../../decider.js';
import type { BatchCommand, BatchEvent, BatchState } from './types.js';

export const initialBatchState: BatchState = { status: 'not_started' };

/** Stream name of one batch. */
export const workflowBatchStream = (batchId: string): string => `workflow_batch-${batchId}`;

export function decideBatch(command: BatchCommand, state: BatchState): BatchEvent[] {
  const meta = command.metadata;
  const now = meta.timestamp;
  switch (command.type) {
    case 'StartBatch': {
      // A repeated start (idempotency key, client retry) is a no-op.
      if (state.status !== 'not_started') return [];
      const items = [...new Set(command.data.items)];
      const started: BatchEvent = {
        type: 'BatchStarted',
        data: {
          batchId: command.data.batchId,
          filter: command.data.filter,
          action: command.data.action,
          items,
          startedAt: now,
          actor: meta.actor ?? null,
        },
        metadata: meta,
      };
      // Nothing matched: the batch is done at once.
      if (items.length === 0)
        return [started, { type: 'BatchCompleted', data: { done: 0, failed: 0, completedAt: now }, metadata: meta }];
      return [started];
    }
    case 'RecordBatchItemDone':
    case 'RecordBatchItemFailed': {
      if (state.status === 'not_started') throw new DomainError('not_found', 'batch not found');
      if (state.status !== 'running' || state.itemStatus[command.data.executionId] !== 'pending') return [];
      const worker = command.data.worker !== undefined ? { worker: command.data.worker } : {};
      const item: BatchEvent =
        command.type === 'RecordBatchItemDone'
          ? {
              type: 'BatchItemDone',
              data: { executionId: command.data.executionId, outcome: command.data.outcome, at: now, ...worker },
              metadata: meta,
            }
          : {
              type: 'BatchItemFailed',
              data: { executionId: command.data.executionId, error: command.data.error, at: now, ...worker },
              metadata: meta,
            };
      const after = evolveBatch(state, item);
      if (after.status === 'running' && after.done + after.failed === after.items.length) {
        return [
          item,
          {
            type: 'BatchCompleted',
            data: { done: after.done, failed: after.failed, completedAt: now },
            metadata: meta,
          },
        ];
      }
      return [item];
    }
    case 'CancelBatch': {
      if (state.status === 'not_started') throw new DomainError('not_found', 'batch not found');
      if (state.status === 'cancelled') return [];
      if (state.status === 'completed')
        throw new DomainError('illegal_state', 'batch is already completed', { status: state.status });
      const pending = state.items.length - state.done - state.failed;
      return [
        {
          type: 'BatchCancelled',
          data: {
            reason: command.data.reason,
            actor: meta.actor ?? null,
            done: state.done,
            failed: state.failed,
            pending,
            cancelledAt: now,
          },
          metadata: meta,
        },
      ];
    }
    default:
      return assertNever(command, 'command');
  }
}

export function evolveBatch(state: BatchState, event: BatchEvent): BatchState {
  if (event.type === 'BatchStarted') {
    const d = event.data;
    return {
      status: 'running',
      batchId: d.batchId,
      filter: d.filter,
      action: d.action,
      items: d.items,
      itemStatus: Object.fromEntries(d.items.map((id) => [id, 'pending' as const])),
      done: 0,
      failed: 0,
      startedAt: d.startedAt,
      actor: d.actor,
      failures: [],
    };
  }
  if (state.status === 'not_started') return state;
  switch (event.type) {
    case 'BatchItemDone':
      if (state.itemStatus[event.data.executionId] !== 'pending') return state;
      return { ...state, itemStatus: { ...state.itemStatus, [event.data.executionId]: 'done' }, done: state.done + 1 };
    case 'BatchItemFailed':
      if (state.itemStatus[event.data.executionId] !== 'pending') return state;
      return {
        ...state,
        itemStatus: { ...state.itemStatus, [event.data.executionId]: 'failed' },
        failed: state.failed + 1,
        failures: [...state.failures, { executionId: event.data.executionId, error: event.data.error }],
      };
    case 'BatchCompleted':
      return { ...state, status: 'completed', endedAt: event.data.completedAt };
    case 'BatchCancelled':
      return { ...state, status: 'cancelled', endedAt: event.data.cancelledAt, reason: event.data.reason };
    default:
      return assertNever(event, 'event');
  }
}

/** The Batch aggregate as a Decider. */
export const batchDecider: Decider<BatchCommand, BatchEvent, BatchState> = {
  decide: decideBatch,
  evolve: evolveBatch,
  initialState: initialBatchState,
};

/** The next item to work, in the recorded order; undefined when none is pending or the batch is not running. */
export function nextBatchItem(state: BatchState): string | undefined {
  if (state.status !== 'running') return undefined;
  return state.items.find((id) => state.itemStatus[id] === 'pending');
}

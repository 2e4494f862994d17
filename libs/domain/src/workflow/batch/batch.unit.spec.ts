import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import { DomainError, type CommandMetadata } from '../../decider.js';
import { batchDecider, nextBatchItem } from './decider.js';
import type { BatchCommand, BatchEvent } from './types.js';

const spec = DeciderSpecification.for(batchDecider);
const isCode = (code: string) => (e: unknown) => e instanceof DomainError && e.code === code;
const T0 = '2026-01-01T00:00:00.000Z';
const meta = (timestamp = T0, actor = 'apikey:op'): CommandMetadata => ({ timestamp, actor, correlationId: 'corr-b' });

const start = (items: string[]): BatchCommand => ({
  type: 'StartBatch',
  data: { batchId: 'b1', filter: { status: 'running' }, action: { kind: 'cancel' }, items },
  metadata: meta(),
});
const done = (executionId: string, outcome = 'canceled'): BatchCommand => ({
  type: 'RecordBatchItemDone',
  data: { executionId, outcome },
  metadata: meta(),
});
const failed = (executionId: string): BatchCommand => ({
  type: 'RecordBatchItemFailed',
  data: { executionId, error: { code: 'illegal_state', message: 'already completed' } },
  metadata: meta(),
});
const cancel: BatchCommand = { type: 'CancelBatch', data: { reason: 'enough' }, metadata: meta() };

const started = (items: string[]): BatchEvent => ({
  type: 'BatchStarted',
  data: {
    batchId: 'b1',
    filter: { status: 'running' },
    action: { kind: 'cancel' },
    items,
    startedAt: T0,
    actor: 'apikey:op',
  },
  metadata: meta(),
});
const itemDone = (executionId: string): BatchEvent => ({
  type: 'BatchItemDone',
  data: { executionId, outcome: 'canceled', at: T0 },
  metadata: meta(),
});

describe('Batch: not_started', () => {
  it('StartBatch records the matched set (deduplicated, in order)', () => {
    spec
      .given([])
      .when(start(['a', 'b', 'a']))
      .then([started(['a', 'b'])]);
  });
  it('StartBatch with nothing matched completes at once', () => {
    spec
      .given([])
      .when(start([]))
      .then([started([]), { type: 'BatchCompleted', data: { done: 0, failed: 0, completedAt: T0 }, metadata: meta() }]);
  });
  it('item results and a cancel of an unknown batch: 404', () => {
    spec.given([]).when(done('a')).thenThrows(isCode('not_found'));
    spec.given([]).when(cancel).thenThrows(isCode('not_found'));
  });
});

describe('Batch: running', () => {
  it('a repeated StartBatch records nothing', () => {
    spec
      .given([started(['a'])])
      .when(start(['a', 'b']))
      .thenNothingHappened();
  });
  it('an item done; the last item completes the batch', () => {
    spec
      .given([started(['a', 'b'])])
      .when(done('a'))
      .then([itemDone('a')]);
    spec
      .given([started(['a', 'b']), itemDone('a')])
      .when(failed('b'))
      .then([
        {
          type: 'BatchItemFailed',
          data: { executionId: 'b', error: { code: 'illegal_state', message: 'already completed' }, at: T0 },
          metadata: meta(),
        },
        { type: 'BatchCompleted', data: { done: 1, failed: 1, completedAt: T0 }, metadata: meta() },
      ]);
  });
  it('each item settles once: a repeated result, or one for an item not in the batch, records nothing', () => {
    spec
      .given([started(['a', 'b']), itemDone('a')])
      .when(done('a'))
      .thenNothingHappened();
    spec
      .given([started(['a', 'b']), itemDone('a')])
      .when(failed('a'))
      .thenNothingHappened();
    spec
      .given([started(['a'])])
      .when(done('zzz'))
      .thenNothingHappened();
  });
  it('CancelBatch ends it, counting what is left', () => {
    spec
      .given([started(['a', 'b', 'c']), itemDone('a')])
      .when(cancel)
      .then([
        {
          type: 'BatchCancelled',
          data: { reason: 'enough', actor: 'apikey:op', done: 1, failed: 0, pending: 2, cancelledAt: T0 },
          metadata: meta(),
        },
      ]);
  });
  it('nextBatchItem walks the recorded order, skipping settled items', () => {
    const s = spec.given([started(['a', 'b', 'c']), itemDone('a')]).state;
    assert.equal(nextBatchItem(s), 'b');
  });
});

describe('Batch: ended', () => {
  const cancelled: BatchEvent = {
    type: 'BatchCancelled',
    data: { reason: 'enough', actor: 'apikey:op', done: 0, failed: 0, pending: 1, cancelledAt: T0 },
    metadata: meta(),
  };
  it('after a cancel: no item is recorded, a second cancel is a no-op, nothing is next', () => {
    spec
      .given([started(['a']), cancelled])
      .when(done('a'))
      .thenNothingHappened();
    spec
      .given([started(['a']), cancelled])
      .when(cancel)
      .thenNothingHappened();
    assert.equal(nextBatchItem(spec.given([started(['a']), cancelled]).state), undefined);
  });
  it('a cancel of a completed batch: 409', () => {
    const completed: BatchEvent = {
      type: 'BatchCompleted',
      data: { done: 1, failed: 0, completedAt: T0 },
      metadata: meta(),
    };
    spec
      .given([started(['a']), itemDone('a'), completed])
      .when(cancel)
      .thenThrows(isCode('illegal_state'));
  });
});

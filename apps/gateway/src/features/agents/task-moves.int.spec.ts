/**
 * The watches the A2A peer follows its running work with, on the real PostgreSQL event store:
 * TaskMoves (delegated tasks) and ExecutionWaits.watchEnd (workflow executions) wake a follower
 * when its work moves, from one shared subscription, with no read while nothing moves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { taskStreamId, workflowExecutionStream } from '@switchyard/domain';
import { createLogger } from '@switchyard/platform';
import { freshDatabase, countingCalls } from '@switchyard/testing';
import { ExecutionFolds } from '../workflows/execution-folds.js';
import { ExecutionWaits } from '../workflows/execution-waits.js';
import { PayloadReads } from '../../http/payload-reads.js';
import { TaskMoves } from './task-moves.js';

const logger = createLogger('task-moves-test', process.env.LOG_LEVEL ?? 'silent');
const ev = (type: string): NewEvent => ({
  type,
  data: {},
  metadata: { correlationId: 'c', actor: 'test', timestamp: new Date().toISOString() },
});

describe('TaskMoves and ExecutionWaits.watchEnd (real PostgreSQL event store)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let calls: Record<'readStream' | 'subscribeToAll', number>;
  let moves: TaskMoves;
  let waits: ExecutionWaits;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('task_moves'), max: 4 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    const counted = countingCalls(store, ['readStream', 'subscribeToAll']);
    calls = counted.calls;
    moves = new TaskMoves(counted.target, logger);
    waits = new ExecutionWaits(
      counted.target,
      logger,
      new ExecutionFolds(counted.target, pool, new PayloadReads(2, 32, 30_000)),
    );
  });

  after(async () => {
    await moves?.beforeApplicationShutdown();
    await waits?.beforeApplicationShutdown();
    await store?.close();
    await pool?.end();
  });

  it('a task: woken when it is assigned, at once when it ended already, not by other events', async () => {
    await store.append(taskStreamId('t1'), [ev('TaskSubmitted'), ev('TaskQueued')]);
    const w = await moves.watch('t1');
    const next = w.next(10_000);
    await store.append(taskStreamId('t1'), [ev('TaskRetryScheduled')]);
    await store.append(taskStreamId('t2'), [ev('TaskAssigned')]);
    await store.append(taskStreamId('t1'), [ev('TaskAssigned')]);
    assert.equal(await next, true);
    w.stop();

    await store.append(taskStreamId('t3'), [ev('TaskSubmitted'), ev('TaskCompleted')]);
    const ended = await moves.watch('t3');
    const t0 = Date.now();
    assert.equal(await ended.next(10_000), true);
    assert.ok(Date.now() - t0 < 1_000, 'at once');
    ended.stop();

    const quiet = await moves.watch('t1');
    assert.equal(await quiet.next(300), false, 'nothing moved: false after the timeout');
    quiet.stop();
    assert.equal(moves.followed, 0);
  });

  it('300 quiet tasks cost one read each and one subscription; each wakes only for its own', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `q-${i}`);
    for (const id of ids) await store.append(taskStreamId(id), [ev('TaskSubmitted')]);
    const readsBefore = calls.readStream;
    const subscriptionsBefore = calls.subscribeToAll;
    const watches = await Promise.all(ids.map((id) => moves.watch(id)));
    const results = watches.map((w) => w.next(5_000));
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(calls.readStream - readsBefore, 300, 'one look at each stream, none while they wait');
    assert.ok(calls.subscribeToAll - subscriptionsBefore <= 1);
    await store.append(taskStreamId('q-42'), [ev('TaskFailed')]);
    assert.equal(await results[42], true);
    for (const w of watches) w.stop();
    const settled = await Promise.all(results);
    assert.equal(settled.filter(Boolean).length, 1, 'only the task that moved was woken');
    assert.equal(calls.readStream - readsBefore, 300);
  });

  it('an execution: woken at its end, at once when it ended already', async () => {
    await store.append(workflowExecutionStream('e1'), [ev('WorkflowStarted')]);
    const w = await waits.watchEnd('e1');
    const next = w.next(10_000);
    await store.append(workflowExecutionStream('e1'), [ev('StepScheduled'), ev('WorkflowCompleted')]);
    assert.equal(await next, true);
    w.stop();
    const ended = await waits.watchEnd('e1');
    assert.equal(await ended.next(10_000), true);
    ended.stop();
    await store.append(workflowExecutionStream('e2'), [ev('WorkflowStarted')]);
    const quiet = await waits.watchEnd('e2');
    assert.equal(await quiet.next(300), false);
    quiet.stop();
  });
});

/**
 * The watch behind MCP resource subscriptions, on the real PostgreSQL event store: one
 * subscription to the log for every subscriber, no read per subscriber while nothing moves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { workflowExecutionStream } from '@switchyard/domain';
import { createLogger, isAppError } from '@switchyard/platform';
import { freshDatabase, countingCalls, until } from '@switchyard/testing';
import { ExecutionWatch } from './execution-watch.js';

const logger = createLogger('execution-watch-test', process.env.LOG_LEVEL ?? 'silent');
const ev = (type: string, data: Record<string, unknown> = {}): NewEvent => ({
  type,
  data,
  metadata: { correlationId: 'c', actor: 'test', timestamp: new Date().toISOString() },
});

describe('ExecutionWatch (real PostgreSQL event store)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let calls: Record<'readStream' | 'subscribeToAll', number>;
  let watch: ExecutionWatch;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('execution_watch'), max: 4 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    const counted = countingCalls(store, ['readStream', 'subscribeToAll']);
    calls = counted.calls;
    watch = new ExecutionWatch(counted.target, logger);
  });

  after(async () => {
    await watch?.close();
    await store?.close();
    await pool?.end();
  });

  it('tells each watcher when its execution moves, and forgets the execution when it ends', async () => {
    await store.append(workflowExecutionStream('w1'), [ev('WorkflowStarted')]);
    const heard: string[] = [];
    await watch.watch('w1', () => heard.push('a'));
    await watch.watch('w1', () => heard.push('b'));
    await store.append(workflowExecutionStream('w1'), [ev('StepScheduled'), ev('StepDispatched')]);
    await until('both watchers told of the two steps', () => heard.length === 4, 10_000);
    await store.append(workflowExecutionStream('w1'), [ev('WorkflowCompleted')]);
    await until('told of the end', () => heard.length === 6, 10_000);
    assert.deepEqual(heard.sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
    assert.equal(watch.watched, 0);
  });

  it('refuses an execution without events (not_found) and does not watch an ended one', async () => {
    await assert.rejects(
      watch.watch('nobody', () => undefined),
      (err) => isAppError(err) && err.code === 'not_found',
    );
    await store.append(workflowExecutionStream('done'), [ev('WorkflowStarted'), ev('WorkflowFailed')]);
    await watch.watch('done', () => undefined);
    assert.equal(watch.watched, 0);
  });

  it('a stopped watcher hears nothing more', async () => {
    await store.append(workflowExecutionStream('w2'), [ev('WorkflowStarted')]);
    let heard = 0;
    const stop = await watch.watch('w2', () => heard++);
    stop();
    // (The start, appended just before, may still have reached it: a notice of a change it had seen is harmless.)
    const atStop = heard;
    assert.equal(watch.watched, 0);
    await store.append(workflowExecutionStream('w2'), [ev('StepScheduled')]);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(heard, atStop);
  });

  it('500 watched executions cost no read while they do not move (one shared subscription, no polling)', async () => {
    const ids = Array.from({ length: 500 }, (_, i) => `many-${i}`);
    for (const id of ids) await store.append(workflowExecutionStream(id), [ev('WorkflowStarted')]);
    let heard = 0;
    for (const id of ids) await watch.watch(id, () => heard++);
    assert.equal(watch.watched, 500);
    const before = calls.readStream;
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(calls.readStream - before, 0, 'stream reads while nothing moved');
    await store.append(workflowExecutionStream('many-7'), [ev('StepScheduled')]);
    await until('the one that moved is told', () => heard === 1, 10_000);
    assert.equal(calls.readStream - before, 0);
  });

  it('follow: the stream as it stands, then what is appended, in order and once each, to the end', async () => {
    await store.append(workflowExecutionStream('f1'), [ev('WorkflowStarted'), ev('StepScheduled', { stepId: 'a' })]);
    const watchedBefore = watch.watched;
    const followed = watch.follow('f1');
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of followed.events) seen.push(`${e.type}@${e.revision}`);
    })();
    await until('the stream as it stood', () => seen.length === 2, 10_000);
    await store.append(workflowExecutionStream('f1'), [ev('StepSucceeded', { stepId: 'a' })]);
    await store.append(workflowExecutionStream('f1'), [ev('WorkflowCompleted'), ev('StepScheduled', { stepId: 'z' })]);
    await done;
    assert.deepEqual(seen, ['WorkflowStarted@0', 'StepScheduled@1', 'StepSucceeded@2', 'WorkflowCompleted@3']);
    assert.equal(watch.watched, watchedBefore, 'nothing left listening after the end');
  });

  it('follow: 300 waiting calls share the one subscription and cost one read each; stop() ends a wait at once', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `wait-${i}`);
    for (const id of ids) await store.append(workflowExecutionStream(id), [ev('WorkflowStarted')]);
    const subscriptionsBefore = calls.subscribeToAll;
    const readsBefore = calls.readStream;
    const watchedBefore = watch.watched;
    const heard = new Map<string, string[]>();
    const follows = ids.map((id) => {
      const f = watch.follow(id);
      heard.set(id, []);
      const done = (async () => {
        for await (const e of f.events) heard.get(id)!.push(e.type);
      })();
      return { id, f, done };
    });
    await until('every wait read its stream', () => [...heard.values()].every((h) => h.length === 1), 10_000);
    assert.equal(watch.watched - watchedBefore, 300);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(calls.readStream - readsBefore, 300, 'one read of its stream per wait, none while nothing moves');
    assert.ok(
      calls.subscribeToAll - subscriptionsBefore <= 1,
      `subscriptions opened: ${calls.subscribeToAll - subscriptionsBefore}`,
    );
    for (const id of ids.slice(0, 150))
      await store.append(workflowExecutionStream(id), [ev('StepScheduled'), ev('WorkflowFailed')]);
    await Promise.all(follows.slice(0, 150).map((w) => w.done));
    for (const id of ids.slice(0, 150))
      assert.deepEqual(heard.get(id), ['WorkflowStarted', 'StepScheduled', 'WorkflowFailed']);
    for (const w of follows.slice(150)) w.f.stop();
    await Promise.all(follows.slice(150).map((w) => w.done));
    for (const id of ids.slice(150)) assert.deepEqual(heard.get(id), ['WorkflowStarted']);
    assert.equal(watch.watched, watchedBefore);
    assert.equal(calls.readStream - readsBefore, 300);
  });
});

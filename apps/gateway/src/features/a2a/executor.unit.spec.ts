/**
 * How WorkExecutor follows the work behind an A2A task: it reads the status when the work
 * moves (the backend's watch), not on a timer per task. The backend here is a scripted fake
 * (a pure unit test); the real backends and their watches run in a2a.int.spec.ts and
 * task-moves.int.spec.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ExecutionEventBus, RequestContext } from '@a2a-js/sdk/server';
import { createLogger } from '@switchyard/platform';
import type { NextEventWatch } from '../../events/stream-fanout.js';
import { WorkExecutor, type Backend, type WorkStatus } from './executor.js';

const logger = createLogger('a2a-executor-test', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A backend whose work is in `state`; `move()` changes it and wakes the watches, as a committed event would. */
class ScriptedBackend implements Backend {
  readonly kind = 'task' as const;
  state: WorkStatus = { state: 'submitted' };
  statusReads = 0;
  watches = 0;
  /** How long each quiet wait was (the recheck). */
  readonly waits: number[] = [];
  private readonly waiting = new Set<(moved: boolean) => void>();
  constructor(private readonly watchFails = false) {}

  check() {
    return Promise.resolve();
  }
  start() {
    return Promise.resolve({ id: 'work-1', metadata: {} });
  }
  status() {
    this.statusReads++;
    return Promise.resolve(this.state);
  }
  cancel() {
    return Promise.resolve<WorkStatus>({ state: 'canceled' });
  }
  resolveSkill(name: string) {
    return name;
  }
  skills() {
    return Promise.resolve(['x']);
  }
  watch(): Promise<NextEventWatch> {
    if (this.watchFails) return Promise.reject(new Error('store unreachable'));
    this.watches++;
    let heard = false;
    let wake: ((moved: boolean) => void) | undefined;
    const listener = (moved: boolean) => {
      heard = true;
      wake?.(moved);
    };
    this.waiting.add(listener);
    return Promise.resolve({
      next: (ms: number) =>
        this.waits.push(ms) && heard
          ? Promise.resolve(true)
          : new Promise<boolean>((resolve) => {
              const t = setTimeout(() => resolve(false), ms);
              wake = (moved) => {
                clearTimeout(t);
                resolve(moved);
              };
            }),
      stop: () => void this.waiting.delete(listener),
    });
  }
  move(state: WorkStatus): void {
    this.state = state;
    for (const w of [...this.waiting]) w(true);
  }
}

function run(backend: Backend, recheckMs: number) {
  const published: string[] = [];
  const bus = {
    publish: (e: { kind: string; data: { status?: { state: number } } }) => {
      published.push(
        e.kind === 'statusUpdate'
          ? `status:${e.data.status!.state}`
          : e.kind === 'artifactUpdate'
            ? 'artifact'
            : e.kind,
      );
    },
  } as unknown as ExecutionEventBus;
  const ctx = { taskId: 'a2a-1', contextId: 'ctx-1', userMessage: undefined } as unknown as RequestContext;
  const executor = new WorkExecutor(
    backend,
    () => Promise.resolve({ skill: 'x', input: {}, priority: 'normal' }),
    logger,
    50,
    recheckMs,
  );
  return { done: executor.execute(ctx, bus), published, executor };
}

describe('WorkExecutor follows the work by its moves', () => {
  it('reads the status when the work moves and every recheck, not on a timer', async () => {
    const backend = new ScriptedBackend();
    const { done, published } = run(backend, 400);
    await sleep(1_000);
    // Quiet for a second: the first read, then one per 400 ms recheck (a timer at 50 ms would have read 20 times).
    assert.ok(backend.statusReads <= 4, `status reads while nothing moved: ${backend.statusReads}`);
    assert.deepEqual(published, ['task']);
    backend.move({ state: 'working' });
    await sleep(100);
    assert.deepEqual(published, ['task', 'status:2'], 'working, told as soon as it moved');
    const readsBeforeEnd = backend.statusReads;
    backend.move({ state: 'completed', result: { ok: true } });
    await done;
    assert.deepEqual(published, ['task', 'status:2', 'artifact', 'status:3']);
    assert.ok(backend.statusReads - readsBeforeEnd <= 2, 'the end is read right after it');
  });

  it('after a move, reads again soon while the status catches up (a read model behind the log)', async () => {
    const backend = new ScriptedBackend();
    backend.state = { state: 'working' };
    const { done, published } = run(backend, 60_000);
    await sleep(100);
    // The end is committed, but the status read still says working for a while.
    backend.move({ state: 'working' });
    setTimeout(() => (backend.state = { state: 'failed', error: { code: 'boom', message: 'no' } }), 300);
    const started = Date.now();
    await done;
    assert.ok(Date.now() - started < 2_000, 'did not wait for the 60 s recheck');
    assert.deepEqual(published.slice(-1), ['status:4']);
  });

  it('follows at most maxFollowed tasks, and stretches the recheck as more are followed', async () => {
    const backend = new ScriptedBackend();
    const published: string[] = [];
    const bus = {
      publish: (e: { kind: string; data: { status?: { state: number } } }) =>
        published.push(e.kind === 'statusUpdate' ? `status:${e.data.status!.state}` : e.kind),
    } as unknown as ExecutionEventBus;
    const executor = new WorkExecutor(
      backend,
      () => Promise.resolve({ skill: 'x', input: {}, priority: 'normal' }),
      logger,
      50,
      100,
      { recheckShare: 1, maxFollowed: 2 },
    );
    const ctx = (id: string) => ({ taskId: id, contextId: 'c', userMessage: undefined }) as unknown as RequestContext;
    const first = executor.execute(ctx('t1'), bus);
    const second = executor.execute(ctx('t2'), bus);
    await sleep(50);
    // The third is published submitted and left: no watch, no status read of its own.
    const watchesBefore = backend.watches;
    await executor.execute(ctx('t3'), bus);
    assert.equal(backend.watches, watchesBefore);
    assert.equal(executor.isRunning('t3'), false);
    assert.ok(executor.isRunning('t1') && executor.isRunning('t2'));
    // Two followed, a share of one recheck per 100 ms: each waits 200 ms.
    assert.ok(backend.waits.length >= 2 && backend.waits.every((ms) => ms === 200), JSON.stringify(backend.waits));
    backend.move({ state: 'completed', result: 1 });
    await Promise.all([first, second]);
    assert.equal(published.filter((p) => p === 'task').length, 3);
    assert.equal(published.filter((p) => p === 'status:3').length, 2, 'the two followed ones ended');
  });

  it('without a watch (the store unreachable) it reads on a backing-off timer and still ends', async () => {
    const backend = new ScriptedBackend(true);
    backend.state = { state: 'working' };
    const { done, published } = run(backend, 60_000);
    setTimeout(() => (backend.state = { state: 'completed', result: 1 }), 300);
    await done;
    assert.deepEqual(published.slice(-2), ['artifact', 'status:3']);
    assert.ok(backend.statusReads >= 3, `reads: ${backend.statusReads}`);
  });
});

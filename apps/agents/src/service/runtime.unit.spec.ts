import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { createLogger, isAppError } from '@switchyard/platform';
import { AgentRuntime, handlerError, runTimeLeft } from './runtime.js';

/**
 * How a task's failure is classified for the dispatcher: a handler's own exception on its input
 * (`handler_error`, not retried, not the instance's fault), and a task the agent stopped itself
 * (shutting down: another instance may run it; its deadline: a timeout), which is no verdict on
 * the input. The `noop` handler needs no database.
 */
describe('AgentRuntime: what a failed task is', () => {
  const runtime = () =>
    new AgentRuntime({
      agent: 'data_analyst',
      instanceId: 'unit',
      pool: {} as pg.Pool,
      logger: createLogger('runtime-unit', 'silent'),
      noop: true,
    });
  const run = (rt: AgentRuntime, context: Record<string, unknown>, deadline?: string, remainingMs?: number) =>
    rt.run({
      task_id: `t-${Math.random()}`,
      task_type: 'noop',
      context,
      attempt: 1,
      correlationId: 'unit',
      ...(deadline ? { deadline } : {}),
      ...(remainingMs !== undefined ? { remaining_ms: remainingMs } : {}),
    });

  it("a handler's own exception is a handler_error: not retryable", async () => {
    await assert.rejects(run(runtime(), { fail: 'throw' }), (e) => {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'internal');
      assert.equal(e.details.reason, 'handler_error');
      assert.equal(e.retryable, false);
      return true;
    });
  });

  it('a task stopped as the agent shuts down is unavailable and retryable (another instance may run it)', async () => {
    const rt = runtime();
    const running = run(rt, { sleep_ms: 5_000 });
    setTimeout(() => rt.abortAll(), 50);
    await assert.rejects(running, (e) => {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'unavailable');
      assert.equal(e.retryable, true);
      assert.notEqual(e.details.reason, 'handler_error');
      return true;
    });
  });

  it('a task stopped at its deadline is a timeout', async () => {
    const deadline = new Date(Date.now() + 50).toISOString();
    await assert.rejects(run(runtime(), { sleep_ms: 5_000 }, deadline), (e) => {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'timeout');
      return true;
    });
  });

  // The sender's deadline read by a host whose clock is an hour ahead of the sender's is an hour past.
  it("the time left as sent decides, not a deadline by another host's clock: an agent an hour ahead runs the task", async () => {
    const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const out = await run(runtime(), { sleep_ms: 200, echo: 'ran' }, anHourAgo, 5_000);
    assert.deepEqual(out.result, { echo: 'ran', slept_ms: 200 });
  });

  it('an agent an hour behind the sender stops itself when the time left as sent runs out', async () => {
    const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
    const startedAt = performance.now();
    await assert.rejects(run(runtime(), { sleep_ms: 10_000 }, inAnHour, 100), (e) => {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'timeout');
      return true;
    });
    assert.ok(performance.now() - startedAt < 10_000, 'stopped before the handler ended by itself');
  });

  it('the time left: as sent when given, else the deadline by this clock (an older sender), else none', () => {
    const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
    assert.equal(runTimeLeft({ deadline: anHourAgo, remaining_ms: 2_000 }), 2_000);
    assert.equal(runTimeLeft({ deadline: anHourAgo }), 0);
    const left = runTimeLeft({ deadline: new Date(Date.now() + 60_000).toISOString() })!;
    assert.ok(left > 50_000 && left <= 60_000, String(left));
    assert.equal(runTimeLeft({}), undefined);
    // Past setTimeout's bound a timer fires at once: held at the bound instead.
    assert.equal(runTimeLeft({ deadline: new Date(Date.now() + 60 * 86_400_000).toISOString() }), 2_147_483_647);
  });

  it("a database error is the input's (a date out of range) unless the database is unwell (timeout, deadlock, connections)", () => {
    const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });
    for (const inputs of ['22008', '22P02', '42703', 'P0001'])
      assert.equal(handlerError('customer_segmentation', pgError(inputs)).details.reason, 'handler_error', inputs);
    for (const unwell of ['57014', '40P01', '53300', '08006', '57P01', 'XX000'])
      assert.notEqual(handlerError('customer_segmentation', pgError(unwell)).details.reason, 'handler_error', unwell);
  });
});

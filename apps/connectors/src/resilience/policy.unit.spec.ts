import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { TaskCancelledError } from 'cockatiel';
import { AppError } from '@switchyard/platform';
import { parseServerConfig } from '../registry/schema.js';
import { ServerPolicy } from './policy.js';

/** The cockatiel composition on its own: no server, the "call" is a local function. */
function policy(over: Record<string, unknown> = {}) {
  const log: string[] = [];
  const config = parseServerConfig({
    name: 'p',
    role: 'other',
    transport: { kind: 'http', url: 'http://127.0.0.1:1/mcp' },
    retry: { max_attempts: 3, initial_delay_ms: 1, max_delay_ms: 5 },
    breaker: { consecutive_failures: 2, half_open_after_ms: 30 },
    timeouts: { connect_ms: 1_000, call_ms: 1_000 },
    ...over,
  });
  const p = new ServerPolicy(config, {
    opened: () => log.push('opened'),
    halfOpened: () => log.push('half_opened'),
    closed: () => log.push('closed'),
  });
  return { p, log };
}
const connectionLost = () => new McpError(ErrorCode.ConnectionClosed, 'Connection closed');

async function rejects(p: Promise<unknown>): Promise<AppError & { attempts?: number }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AppError);
    return e;
  }
  assert.fail('expected a rejection');
}

describe('ServerPolicy', () => {
  it('retries a transient error up to max_attempts', async () => {
    const { p } = policy({ breaker: { consecutive_failures: 10 } });
    let n = 0;
    const e = await rejects(
      p.execute(
        async () => {
          n++;
          throw connectionLost();
        },
        { retryTimeouts: true },
      ),
    );
    assert.equal(n, 3);
    assert.equal(e.code, 'unavailable');
    assert.equal(e.attempts, 3);
  });

  it('succeeds on a later attempt and reports the attempts', async () => {
    const { p } = policy();
    let n = 0;
    const r = await p.execute(
      async () => {
        if (++n < 2) throw connectionLost();
        return 'ok';
      },
      { retryTimeouts: true },
    );
    assert.deepEqual(r, { value: 'ok', attempts: 2 });
  });

  it('never retries a JSON-RPC error from the server and does not count it against the breaker', async () => {
    const { p } = policy();
    let n = 0;
    for (let i = 0; i < 5; i++) {
      const e = await rejects(
        p.execute(
          async () => {
            n++;
            throw new McpError(ErrorCode.InvalidParams, 'bad');
          },
          { retryTimeouts: true },
        ),
      );
      assert.equal(e.code, 'validation');
    }
    assert.equal(n, 5);
    assert.equal(p.breakerState, 'closed');
  });

  it('retries a timeout only when the call is safe to repeat', async () => {
    const { p } = policy({ breaker: { consecutive_failures: 10 } });
    let safe = 0;
    await rejects(
      p.execute(
        async () => {
          safe++;
          throw new TaskCancelledError();
        },
        { retryTimeouts: true },
      ),
    );
    let unsafe = 0;
    const e = await rejects(
      p.execute(
        async () => {
          unsafe++;
          throw new TaskCancelledError();
        },
        { retryTimeouts: false },
      ),
    );
    assert.equal(safe, 3);
    assert.equal(unsafe, 1);
    assert.equal(e.code, 'timeout');
  });

  it('does not retry a fail-fast unavailable (server known down)', async () => {
    const { p } = policy({ breaker: { consecutive_failures: 10 } });
    let n = 0;
    await rejects(
      p.execute(
        async () => {
          n++;
          throw new AppError('unavailable', 'down', { fail_fast: true });
        },
        { retryTimeouts: true },
      ),
    );
    assert.equal(n, 1);
  });

  it('opens after N consecutive failures, refuses without calling, then half-opens and closes on success', async () => {
    const { p, log } = policy({ retry: { max_attempts: 1 } });
    for (let i = 0; i < 2; i++)
      await rejects(
        p.execute(
          async () => {
            throw connectionLost();
          },
          { retryTimeouts: true },
        ),
      );
    assert.equal(p.breakerState, 'open');
    let called = false;
    const e = await rejects(
      p.execute(
        async () => {
          called = true;
        },
        { retryTimeouts: true },
      ),
    );
    assert.equal(called, false);
    assert.equal(e.code, 'unavailable');
    assert.equal(e.details.breaker, 'open');
    await new Promise((r) => setTimeout(r, 40));
    assert.deepEqual(await p.execute(async () => 'probe', { retryTimeouts: true }), { value: 'probe', attempts: 1 });
    assert.equal(p.breakerState, 'closed');
    assert.deepEqual(log, ['opened', 'half_opened', 'closed']);
  });

  it('rejects calls beyond max_concurrent + max_queue with rate_limited', async () => {
    const { p } = policy({ bulkhead: { max_concurrent: 1, max_queue: 1 } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = p.execute(() => gate, { retryTimeouts: true });
    const queued = p.execute(async () => 'queued', { retryTimeouts: true });
    const e = await rejects(p.execute(async () => 'third', { retryTimeouts: true }));
    assert.equal(e.code, 'rate_limited');
    release();
    await first;
    assert.equal((await queued).value, 'queued');
  });

  it('a burst past max_concurrent from one caller waits first come, first served (depth and wait in queueStats); only past the bound is a call refused, with retry_after_ms', async () => {
    const { p } = policy({ bulkhead: { max_concurrent: 2, max_queue: 20 } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const order: number[] = [];
    const burst = Array.from({ length: 22 }, (_, i) =>
      p.execute(
        async () => {
          order.push(i);
          if (i < 2) await gate;
          return i;
        },
        { retryTimeouts: true },
      ),
    );
    const during = p.queueStats();
    assert.equal(during.in_flight, 2);
    assert.equal(during.depth, 20);
    assert.equal(during.queued_total, 20);
    const e = await rejects(p.execute(async () => 'over', { retryTimeouts: true }));
    assert.equal(e.code, 'rate_limited');
    assert.equal(e.retryable, true);
    assert.equal(typeof e.details.retry_after_ms, 'number');
    assert.ok((e.details.retry_after_ms as number) >= 250);
    await new Promise((r) => setTimeout(r, 30));
    release();
    const values = (await Promise.all(burst)).map((r) => r.value);
    assert.deepEqual(
      values,
      Array.from({ length: 22 }, (_, i) => i),
      'every queued call ran and answered',
    );
    assert.deepEqual(
      order,
      Array.from({ length: 22 }, (_, i) => i),
      'in arrival order',
    );
    const after = p.queueStats();
    assert.equal(after.depth, 0);
    assert.equal(after.in_flight, 0);
    assert.equal(after.rejected_total, 1);
    assert.equal(after.wait_ms.count, 20);
    assert.ok(after.wait_ms.max >= 25, `the queued calls waited for the gate (max ${after.wait_ms.max} ms)`);
  });

  it("waiting calls of different callers take turns: one workflow's hundred calls delay another's single call by one call, not a hundred", async () => {
    const { p } = policy({ bulkhead: { max_concurrent: 2, max_queue: 200 } });
    const order: string[] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const call = (caller: string, name: string) =>
      p.execute(
        async () => {
          order.push(name);
          await gate;
        },
        { retryTimeouts: true, caller: { who: caller } },
      );
    const heavy = Array.from({ length: 100 }, (_, i) => call('workflow-a', `a${i}`));
    const single = call('workflow-b', 'b');
    const more = [call('workflow-c', 'c0'), call('workflow-c', 'c1')];
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, ['a0', 'a1'], 'two slots, both taken by the first caller');
    open();
    await Promise.all([...heavy, single, ...more]);
    // After the two running calls, the free slots go round: a, b, c, a, c, a, a, ...
    assert.deepEqual(order.slice(0, 8), ['a0', 'a1', 'a2', 'b', 'c0', 'a3', 'c1', 'a4']);
    assert.equal(order.length, 103);
    assert.equal(p.queueStats().depth, 0);
    assert.equal(p.queueStats().in_flight, 0);
  });

  it('a waiting call whose caller gave up leaves the queue at once; the call behind it moves up', async () => {
    const { p } = policy({ bulkhead: { max_concurrent: 1, max_queue: 4 } });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const running = p.execute(() => gate, { retryTimeouts: true });
    const giveUp = new AbortController();
    const abandoned = p.execute(async () => assert.fail('an abandoned call never runs'), {
      retryTimeouts: true,
      signal: giveUp.signal,
    });
    const next = p.execute(async () => 'next', { retryTimeouts: true });
    assert.equal(p.queueStats().depth, 2);
    giveUp.abort();
    await assert.rejects(abandoned);
    assert.equal(p.queueStats().depth, 1, 'gone from the queue before any slot was free');
    open();
    await running;
    assert.equal((await next).value, 'next');
  });

  it('tells a call that has to wait when it joins the queue and when it gets its slot; a call that runs at once hears nothing', async () => {
    const { p } = policy({ bulkhead: { max_concurrent: 1, max_queue: 4 } });
    const heard: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = p.execute(
      async () => {
        heard.push('first runs');
        await gate;
        return 1;
      },
      {
        retryTimeouts: true,
        onQueued: () => heard.push('first queued'),
        onStarted: () => heard.push('first started'),
      },
    );
    const second = p.execute(
      async () => {
        heard.push('second runs');
        return 2;
      },
      {
        retryTimeouts: true,
        onQueued: () => heard.push('second queued'),
        onStarted: () => heard.push('second started'),
      },
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(heard, ['first runs', 'second queued']);
    release();
    assert.deepEqual([(await first).value, (await second).value], [1, 2]);
    assert.deepEqual(heard, ['first runs', 'second queued', 'second started', 'second runs']);
  });
});

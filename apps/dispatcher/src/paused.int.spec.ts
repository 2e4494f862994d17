import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import pg from 'pg';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { taskIdForIdempotencyKey } from '@switchyard/contracts';
import { startAgent, type AgentHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from './index.js';

/**
 * A dispatcher that was paused (its event loop held, as SIGSTOP or a suspended VM holds it) reads
 * the task requests that waited in its socket's buffer. One whose timeout is shorter than the pause
 * was given up by its caller, a workflow engine that retried the step under a new key: it is
 * refused `unavailable` and nothing is recorded. One whose timeout outlasts the pause still has a
 * caller and runs. The requests come from a child process (its own event loop, its own NATS
 * connection), so they arrive while this process is held.
 */
const logger = createLogger('paused-int', process.env.LOG_LEVEL ?? 'silent');
const root = path.resolve(import.meta.dirname, '..', '..', '..');

/** The requester: on each stdin line `{ delay_ms, body }`, says `sent`, waits, sends one execute, prints its outcome. */
const requesterSource = `
import readline from 'node:readline';
import { connectNats, request } from '@switchyard/messaging';
import { createLogger, isAppError } from '@switchyard/platform';
import { tasksSubject } from '@switchyard/contracts';
import { z } from 'zod';
const nc = await connectNats({ url: process.argv[1], name: 'paused-requester', logger: createLogger('requester', 'silent') });
console.log(JSON.stringify({ ready: true }));
for await (const line of readline.createInterface({ input: process.stdin })) {
  const { delay_ms, body } = JSON.parse(line);
  console.log(JSON.stringify({ sent: true }));
  await new Promise((r) => setTimeout(r, delay_ms));
  try {
    const reply = await request(nc, tasksSubject('execute'), body, { schema: z.any(), timeoutMs: 20000 });
    console.log(JSON.stringify({ ok: true, reply }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, code: isAppError(err) ? err.code : 'other', message: String(err?.message ?? err) }));
  }
}`;

describe('a dispatcher waking from a pause: task requests older than their timeout are not run', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let dispatcherNats: NatsConnection;
  let agentNats: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;
  let agent: AgentHandle;
  let requester: ChildProcessWithoutNullStreams;
  let lines: AsyncIterator<string>;

  const next = async (): Promise<Record<string, unknown>> => {
    const r = await lines.next();
    assert.ok(!r.done, 'the requester is still there');
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  /** Hold this process's event loop for `ms`, as a pause would (timers and sockets wait). */
  const hold = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // held
    }
  };
  /** Have the requester send one execute `afterMs` from now while this process is held for `holdMs`; its outcome. */
  const sendWhileHeld = async (body: Record<string, unknown>, afterMs: number, holdMs: number) => {
    requester.stdin.write(`${JSON.stringify({ delay_ms: afterMs, body })}\n`);
    assert.deepEqual(await next(), { sent: true });
    hold(holdMs);
    return next();
  };

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'paused-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    dispatcherNats = await connectNats({ url: natsServer.url, name: 'paused-dispatcher', logger });
    agentNats = await connectNats({ url: natsServer.url, name: 'paused-agent', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('paused'), max: 8 });
    store = new PostgresEventStore({ pool });
    await store.init();
    d = await startDispatcher({
      store,
      nats: dispatcherNats,
      pool,
      logger,
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    agent = await startAgent({ nats: agentNats, pool, agent: 'data_analyst', instanceId: 'p-1', logger, noop: true });
    await until(
      'the dispatcher to see p-1',
      () => d.dispatcher.health().some((a) => a.instances.some((i) => i.instance === 'p-1' && i.healthy)) || undefined,
    );
    requester = spawn(process.execPath, ['--input-type=module', '-e', requesterSource, natsServer.url], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    requester.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    lines = readline.createInterface({ input: requester.stdout })[Symbol.asyncIterator]();
    const first = await Promise.race([
      next(),
      new Promise<never>((_, reject) =>
        requester.once('exit', () => reject(new Error(`the requester exited: ${stderr}`))),
      ),
    ]);
    assert.deepEqual(first, { ready: true });
  });

  after(async () => {
    requester?.kill();
    await d?.stop();
    await agent?.stop();
    await closeNats(dispatcherNats);
    await closeNats(agentNats);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('held 3 s, a request with a 2 s timeout that arrived meanwhile is refused unavailable and leaves no task', async () => {
    const key = `paused-stale-${Date.now()}`;
    const out = await sendWhileHeld(
      { task_type: 'noop', context: { echo: 'stale' }, agent: 'data_analyst', idempotency_key: key, timeout_ms: 2_000 },
      300,
      3_000,
    );
    assert.equal(out.ok, false, JSON.stringify(out));
    assert.equal(out.code, 'unavailable');
    assert.match(String(out.message), /paused for \d+ ms/);
    const events = await store.readStream(taskStreamId(taskIdForIdempotencyKey(key)));
    assert.deepEqual(events, [], 'no task was recorded for the refused request');
  });

  it('held 1.5 s, a request whose 10 s timeout outlasts the pause runs to its end', async () => {
    const key = `paused-fresh-${Date.now()}`;
    const out = await sendWhileHeld(
      {
        task_type: 'noop',
        context: { echo: 'fresh' },
        agent: 'data_analyst',
        idempotency_key: key,
        timeout_ms: 10_000,
      },
      300,
      1_500,
    );
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal((out.reply as { status?: string }).status, 'completed');
    const events = await store.readStream(taskStreamId(taskIdForIdempotencyKey(key)));
    assert.ok(
      events.some((e) => e.type === 'TaskCompleted'),
      events.map((e) => e.type).join(','),
    );
  });
});

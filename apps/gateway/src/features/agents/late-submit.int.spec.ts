/**
 * A delegation whose submit reply comes late, or never, still answers 202 with the task id,
 * and the task runs once. Real PostgreSQL, a nats-server of this suite's own, the real
 * dispatcher and a noop agent; the dispatcher's `tasks` service is replaced on the submit
 * subject by a real NATS responder that hands the submission to the same dispatcher but
 * replies after the gateway stopped waiting (or appends late, or never answers).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import { addService, closeNats, connectNats, type NatsConnection, type Service } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { startAgents, type AgentsHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { taskIdForIdempotencyKey, tasksSubject } from '@switchyard/contracts';
import { createGateway, type Gateway } from '../../index.js';
import { AgentsFeatureModule } from './index.js';

const logger = createLogger('late-submit-int', process.env.LOG_LEVEL ?? 'silent');
const SUBMIT_TIMEOUT_MS = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Mode = 'reply_late' | 'append_late' | 'never';

describe('delegation: a late or lost submit reply still answers 202 with the recorded task', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let slow: Service;
  let gw: Gateway;
  let base: string;
  const modes = new Map<string, Mode>();
  const late: Promise<unknown>[] = [];

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'late-submit-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'late-submit-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('late_submit'), max: 8 });
    store = new PostgresEventStore({ pool });
    await store.init();
    agents = await startAgents({
      nats: nc,
      pool,
      logger,
      http: false,
      noop: true,
      instancePrefix: 'ls',
      agents: ['data_analyst'],
    });
    dispatcher = await startDispatcher({
      store,
      nats: nc,
      pool,
      logger,
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    // The real service no longer answers submit: a slow stand-in does, on the same dispatcher.
    await dispatcher.service.stop();
    const d = dispatcher.dispatcher;
    slow = await addService(nc, {
      name: 'slow-tasks',
      version: '1.0.0',
      logger,
      endpoints: {
        submit: {
          subject: tasksSubject('submit'),
          schema: z
            .object({
              task_type: z.string(),
              context: z.record(z.string(), z.unknown()),
              priority: z.enum(['critical', 'high', 'normal', 'low']),
              idempotency_key: z.string(),
              actor: z.string().optional(),
            })
            .loose(),
          handler: async (input, ctx) => {
            const mode = modes.get(String(input.context.label)) ?? 'reply_late';
            const submit = () =>
              d.submit(
                {
                  task_type: input.task_type,
                  context: input.context,
                  priority: input.priority,
                  idempotency_key: input.idempotency_key,
                  ...(input.actor ? { actor: input.actor } : {}),
                },
                ctx.correlationId,
              );
            if (mode === 'never') return new Promise(() => undefined); // lost: no append, no reply
            if (mode === 'reply_late') {
              const r = await submit(); // recorded at once ...
              await sleep(SUBMIT_TIMEOUT_MS * 3); // ... but the reply comes after the gateway gave up
              const { state: _s, ...reply } = r;
              return reply;
            }
            // append_late: the submission reaches the dispatcher only after the gateway gave up.
            await sleep(SUBMIT_TIMEOUT_MS * 3);
            const p = submit();
            late.push(p);
            const { state: _s, ...reply } = await p;
            return reply;
          },
        },
        // `delegate?wait=true` without a key sends `execute` alone: this one never answers (lost with its dispatcher).
        execute: {
          subject: tasksSubject('execute'),
          schema: z.object({ idempotency_key: z.string() }).loose(),
          handler: () => new Promise(() => undefined),
        },
        get: {
          subject: tasksSubject('get'),
          schema: z.object({ task_id: z.string() }),
          handler: (input) => d.get(input.task_id),
        },
      },
    });
    gw = await createGateway(
      { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      { modules: [AgentsFeatureModule.withOptions({ submitTimeoutMs: SUBMIT_TIMEOUT_MS })] },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
  });

  after(async () => {
    await gw?.close();
    await slow?.stop().catch(() => undefined);
    await dispatcher?.stop();
    await agents?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  const delegate = async (label: string, key: string) => {
    const res = await fetch(`${base}/api/v1/integration/agents/delegate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ task_type: 'noop', context: { label, sleep_ms: 50 }, priority: 'normal' }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  /** The task's events once it ended: exactly one submission, one assignment, one completion. */
  const ranOnce = async (taskId: string) => {
    const events = await until(
      `task ${taskId} completed`,
      async () => {
        const e = await store.readStream(taskStreamId(taskId));
        return e.some((x) => x.type === 'TaskCompleted') ? e : undefined;
      },
      15_000,
    );
    const count = (type: string) => events.filter((e) => e.type === type).length;
    assert.deepEqual(
      {
        submitted: count('TaskSubmitted'),
        assigned: count('TaskAssigned'),
        completed: count('TaskCompleted'),
        failed: count('TaskFailed'),
      },
      { submitted: 1, assigned: 1, completed: 1, failed: 0 },
      events.map((e) => e.type).join(', '),
    );
  };

  for (const [mode, what] of [
    ['reply_late', 'the dispatcher recorded it, its reply came late: the gateway finds the task on its stream'],
    [
      'append_late',
      'the dispatcher got it after the gateway gave up: the gateway recorded it, the late submission is a duplicate',
    ],
    ['never', 'the submission was lost: the gateway recorded it and the dispatcher takes it over from the log'],
  ] as const) {
    it(`${mode}: ${what}`, async () => {
      const key = `late-${mode}-${Date.now()}`;
      modes.set(mode, mode);
      const r = await delegate(mode, key);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const taskId = taskIdForIdempotencyKey(`http:${key}`);
      assert.equal(r.body.task_id, taskId);
      // Where the task stood when the gateway read its stream (a 50 ms noop may have ended already).
      assert.ok(['queued', 'assigned', 'working', 'completed'].includes(r.body.status), r.body.status);
      await ranOnce(taskId);
      await Promise.all(late.splice(0));
      // Whatever came late changed nothing more.
      await sleep(300);
      await ranOnce(taskId);
      // The total: one TaskSubmitted for this key in the whole log.
      const all = await store.readAll({ types: ['TaskSubmitted'] });
      assert.equal(all.filter((e) => (e.data as { task_id: string }).task_id === taskId).length, 1);
    });
  }

  it('wait=true without a key, execute held by a dispatcher that never answers (frozen, gone): the gateway records the task, another dispatcher runs it from the log, and the wait ends on its completion in the log, not when it runs out', async () => {
    const t0 = performance.now();
    const res = await fetch(`${base}/api/v1/integration/agents/delegate?wait=true&wait_ms=20000`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task_type: 'noop', context: { label: 'execute-lost', sleep_ms: 50 }, priority: 'normal' }),
    });
    const tookMs = performance.now() - t0;
    const body = (await res.json()) as any;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.status, 'completed');
    assert.deepEqual(body.result, { echo: null, slept_ms: 50 });
    // Read from the log (after 2 s, every 2 s): long before the 20 s wait runs out.
    assert.ok(tookMs < 15_000, `answered after ${Math.round(tookMs)} ms`);
    await ranOnce(body.task_id);
    const all = await store.readAll({ types: ['TaskSubmitted'] });
    const mine = all.filter((e) => (e.data as { task_id: string }).task_id === body.task_id);
    // Only the gateway can have written it: the stand-in never hands `execute` to the dispatcher.
    assert.equal(mine.length, 1);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore, type EventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { taskSubmitReply, taskView, type TaskView, tasksSubject } from '@switchyard/contracts';
import { startAgent, type AgentHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from './index.js';

/**
 * A backlog that built up while the agents were out of reach (a nats-server stalled, in the
 * review that found it) drains with the agents' slots full, also while PostgreSQL is slow to
 * answer (it is busy catching up after the outage; here every append waits APPEND_DELAY_MS more).
 * A queue pass that waits for each task's slot reservation and assignment append before
 * placing the next one keeps an agent of 8 slots at 2-3 tasks then. Real PostgreSQL (event
 * store, slot table, leases) and nats-server; the delay is added in front of the real store.
 */
const logger = createLogger('backlog-drain-int', process.env.LOG_LEVEL ?? 'silent');
const APPEND_DELAY_MS = 120;
const TASK_MS = 450;
const SLOTS = 8;
const NORMAL = 32;
const HIGH = SLOTS;

describe('a queued backlog drains at the agents capacity when appends are slow (real PostgreSQL and NATS)', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;
  let agent: AgentHandle | undefined;
  let appendDelayMs = 0;

  const submit = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('submit'), input, { schema: taskSubmitReply });
  const get = (task_id: string): Promise<TaskView> =>
    request(nc, tasksSubject('get'), { task_id }, { schema: taskView });

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'drain-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'backlog-drain-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('backlog_drain'), max: 16 });
    store = new PostgresEventStore({ pool });
    await store.init();
    // The real store, each append answered APPEND_DELAY_MS later while appendDelayMs is set.
    const slow = new Proxy(store, {
      get(target, key) {
        const v: unknown = Reflect.get(target, key, target);
        if (key === 'append')
          return async (...args: Parameters<EventStore['append']>) => {
            if (appendDelayMs > 0) await sleep(appendDelayMs);
            return target.append(...args);
          };
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    // Partition leases on: every placement reserves its slot in PostgreSQL under the fence.
    d = await startDispatcher({
      store: slow,
      nats: nc,
      pool,
      logger,
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 200,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
      agingMs: 3_600_000,
      partitions: 4,
      leaseTickMs: 200,
      leaseTtlMs: 3_000,
    });
  });

  after(async () => {
    await d?.stop();
    await agent?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('fills every slot of the agent once it is back, in priority order, each task run once', async () => {
    // 1. The backlog: the agent's only instance is gone (the dispatcher knows its task types), so every task waits.
    const gone = await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'drain-0', logger, noop: true });
    const healthy = (instance: string) =>
      d.dispatcher.health().some((a) => a.instances.some((i) => i.instance === instance && i.healthy));
    await until('the dispatcher to see drain-0', () => healthy('drain-0') || undefined);
    await gone.stop();
    await until('the dispatcher to see drain-0 down', () => !healthy('drain-0') || undefined);
    const normal = await Promise.all(
      Array.from({ length: NORMAL }, (_, i) =>
        submit({ task_type: 'noop', context: { sleep_ms: TASK_MS }, idempotency_key: `drain-n-${i}` }),
      ),
    );
    const high = await Promise.all(
      Array.from({ length: HIGH }, (_, i) =>
        submit({
          task_type: 'noop',
          context: { sleep_ms: TASK_MS },
          priority: 'high',
          idempotency_key: `drain-h-${i}`,
        }),
      ),
    );
    for (const s of [...normal, ...high]) assert.equal(s.status, 'queued');

    // 2. The agent comes back while the database is slow to commit.
    appendDelayMs = APPEND_DELAY_MS;
    agent = await startAgent({
      nats: nc,
      pool,
      agent: 'data_analyst',
      instanceId: 'drain-1',
      logger,
      noop: true,
      maxConcurrency: SLOTS,
    });
    let peak = 0;
    const ids = [...normal, ...high].map((s) => s.task_id);
    await until(
      'the backlog to drain',
      async () => {
        const h = d.dispatcher.health().find((a) => a.agent === 'data_analyst');
        peak = Math.max(peak, h?.in_flight ?? 0);
        const vs = await Promise.all(ids.map(get));
        return vs.every((v) => v.status === 'completed') || undefined;
      },
      60_000,
      20,
    );
    appendDelayMs = 0;

    // 3. Every task once; the runs overlapped as far as the agent allows (from the start notice to the result).
    const streams = await Promise.all(
      ids.map(async (id) => {
        const events = await store.readStream(taskStreamId(id));
        for (const type of ['TaskAssigned', 'TaskStarted', 'TaskCompleted'])
          assert.equal(events.filter((e) => e.type === type).length, 1, `${id}: one ${type}`);
        const at = (type: string) => events.find((e) => e.type === type)!;
        return {
          id,
          assigned: at('TaskAssigned').position,
          started: Date.parse(at('TaskStarted').metadata.timestamp),
          completed: Date.parse(at('TaskCompleted').metadata.timestamp),
        };
      }),
    );
    const edges = streams.flatMap((s) => [
      { t: s.started, d: 1 },
      { t: s.completed, d: -1 },
    ]);
    edges.sort((x, y) => x.t - y.t || x.d - y.d);
    let running = 0;
    let overlap = 0;
    for (const e of edges) overlap = Math.max(overlap, (running += e.d));
    assert.ok(
      overlap >= SLOTS - 1 && peak >= SLOTS - 1,
      `at most ${overlap} tasks ran at once (the dispatcher counted ${peak}) of the agent's ${SLOTS} slots`,
    );

    // 4. The high-priority tasks were placed first, and no slot is left held.
    const firstWave = new Set(
      streams
        .sort((x, y) => x.assigned - y.assigned)
        .slice(0, HIGH)
        .map((s) => s.id),
    );
    assert.deepEqual(
      high.map((s) => s.task_id).filter((id) => !firstWave.has(id)),
      [],
      'the high-priority tasks took the first slots',
    );
    await until('the slots to be given back', async () => {
      const r = await pool.query<{ n: string }>('select count(*) as n from delegation.assignments');
      return r.rows[0]!.n === '0' || undefined;
    });
  });
});

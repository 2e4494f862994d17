import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { taskSubmitReply, taskView, type TaskView, tasksSubject } from '@switchyard/contracts';
import { startAgent, type AgentHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from './index.js';

/**
 * An attempt ends while PostgreSQL refuses to record it: out of disk (SQLSTATE 53100, a failure
 * that passes), or refusing the write past what a retry covers (42501). The refusal is PostgreSQL's
 * own, raised by a trigger on the event table for the task's stream only, so everything else (the
 * submission, the read models, other tasks) works as usual. Before, the first left the task
 * `working` until a restart (disk_full was not a passing failure), and so did the second.
 */
const logger = createLogger('unrecorded-int', process.env.LOG_LEVEL ?? 'silent');

describe('an attempt whose end PostgreSQL will not record for a while', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;
  let agent: AgentHandle;

  const submit = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('submit'), input, { schema: taskSubmitReply });
  const get = (task_id: string): Promise<TaskView> =>
    request(nc, tasksSubject('get'), { task_id }, { schema: taskView });
  /** PostgreSQL refuses every append to the task's stream with `sqlstate` until healed. */
  const refuseAppends = (taskId: string, sqlstate: string) =>
    pool.query(`INSERT INTO public.refused_streams (stream_id, sqlstate) VALUES ($1, $2)`, [
      taskStreamId(taskId),
      sqlstate,
    ]);
  const heal = (taskId: string) =>
    pool.query(`DELETE FROM public.refused_streams WHERE stream_id = $1`, [taskStreamId(taskId)]);

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'unrecorded-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'unrecorded-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('unrecorded'), max: 8 });
    store = new PostgresEventStore({ pool });
    await store.init();
    await pool.query(`
      CREATE TABLE public.refused_streams (stream_id text PRIMARY KEY, sqlstate text NOT NULL);
      CREATE FUNCTION public.refuse_appends() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE code text;
      BEGIN
        SELECT sqlstate INTO code FROM public.refused_streams WHERE stream_id = NEW.stream_id;
        IF code IS NOT NULL THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = code; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_appends BEFORE INSERT ON eventstore.events
        FOR EACH ROW EXECUTE FUNCTION public.refuse_appends();`);
    d = await startDispatcher({
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
    agent = await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'u-1', logger, noop: true });
    await until(
      'the dispatcher to see u-1',
      () => d.dispatcher.health().some((a) => a.instances.some((i) => i.instance === 'u-1' && i.healthy)) || undefined,
    );
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

  const working = (id: string) =>
    until(`task ${id} to be working`, async () => ((await get(id)).status === 'working' ? true : undefined));
  const ended = (id: string, timeoutMs: number) =>
    until(
      `task ${id} to end`,
      async () => {
        const v = await get(id);
        return ['completed', 'failed', 'canceled', 'timed_out'].includes(v.status) ? v : undefined;
      },
      timeoutMs,
    );

  it('out of disk while the result comes in: the result is recorded once the disk is back, in the same attempt', async () => {
    const sub = await submit({ task_type: 'noop', context: { sleep_ms: 600, echo: 'disk' }, agent: 'data_analyst' });
    await working(sub.task_id);
    await refuseAppends(sub.task_id, '53100'); // disk_full
    await new Promise((r) => setTimeout(r, 2_000)); // the result arrived meanwhile and was refused
    await heal(sub.task_id);
    const v = await ended(sub.task_id, 20_000);
    assert.equal(v.status, 'completed');
    assert.deepEqual(v.result, { echo: 'disk', slept_ms: 600 });
    assert.equal(v.attempts, 1);
  });

  it('refused past what a retry covers: the dispatcher abandons the attempt and runs the task again, without a restart', async () => {
    const sub = await submit({ task_type: 'noop', context: { sleep_ms: 300, echo: 'again' }, agent: 'data_analyst' });
    await working(sub.task_id);
    await refuseAppends(sub.task_id, '42501'); // insufficient_privilege: not a failure that passes by itself
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal((await get(sub.task_id)).status, 'working', 'nothing could be recorded meanwhile');
    await heal(sub.task_id);
    const v = await ended(sub.task_id, 30_000);
    assert.equal(v.status, 'completed');
    assert.deepEqual(v.result, { echo: 'again', slept_ms: 300 });
    const events = await store.readStream(taskStreamId(sub.task_id));
    const retry = events.find((e) => e.type === 'TaskRetryScheduled');
    assert.match(String((retry?.data as { error?: { message?: string } }).error?.message), /could not be recorded/);
    assert.equal(events.filter((e) => e.type === 'TaskCompleted').length, 1);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore, type AppendOptions, type AppendResult, type NewEvent } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import {
  submitTaskData,
  taskDelegationDecider,
  taskStreamId,
  type TaskCommand,
  type TaskEvent,
  type TaskState,
} from '@switchyard/domain';
import { taskSubmitReply, taskView, type TaskView, tasksSubject } from '@switchyard/contracts';
import { startAgent, type AgentHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from './index.js';
import { attemptTimeLeft } from './run-pump.js';

/**
 * The wall clock steps (an NTP correction, a VM resumed, a host's clock set) while tasks are
 * assigned. A task's recorded deadline is a wall-clock instant (its assignment's time + timeout);
 * measured against the clock at launch, a step forward between the decision and the launch timed
 * the attempt out at once, before the agent had it, and the caller got "no result within 60000 ms"
 * some 30 ms after the assignment.
 *
 * The step is the whole process's wall clock (Date.now and `new Date()`), as a host's would be;
 * timers and performance.now() are monotonic and do not move, as on a host. The clock only steps
 * forward here (back to the real one once everything stopped).
 */
const logger = createLogger('clock-step-int', process.env.LOG_LEVEL ?? 'silent');

const RealDate = Date;
let wallClockStepMs = 0;
/** Date with the wall clock moved by `wallClockStepMs`; explicit instants are left as they are. */
class SteppedDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(RealDate.now() + wallClockStepMs);
    else super(...(args as [string | number]));
  }
  static override now(): number {
    return RealDate.now() + wallClockStepMs;
  }
}
const TWO_HOURS_MS = 2 * 3_600_000;

/** The store, stepping the wall clock forward once the next TaskAssigned is recorded (between the decision and the launch). */
class SteppingStore extends PostgresEventStore {
  stepOnNextAssignmentMs = 0;
  override async append(streamId: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult> {
    const r = await super.append(streamId, events, options);
    if (this.stepOnNextAssignmentMs !== 0 && events.some((e) => e.type === 'TaskAssigned')) {
      wallClockStepMs += this.stepOnNextAssignmentMs;
      this.stepOnNextAssignmentMs = 0;
    }
    return r;
  }
}

describe('attempt time left at launch', () => {
  it('is the timeout less the monotonic time since the decision, between 0 and the timeout', () => {
    assert.equal(attemptTimeLeft(60_000, 40), 59_960);
    assert.equal(attemptTimeLeft(60_000, 90_000), 0);
    assert.equal(attemptTimeLeft(60_000, -5), 60_000);
  });
});

describe('a wall-clock step around the assignment of a task', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: SteppingStore;
  let d: DispatcherHandle;
  let agent: AgentHandle;

  const submit = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('submit'), input, { schema: taskSubmitReply });
  const get = (task_id: string): Promise<TaskView> =>
    request(nc, tasksSubject('get'), { task_id }, { schema: taskView });
  const ended = (id: string, timeoutMs = 20_000) =>
    until(
      `task ${id} to end`,
      async () => {
        const v = await get(id);
        return ['completed', 'failed', 'canceled', 'timed_out'].includes(v.status) ? v : undefined;
      },
      timeoutMs,
    );
  const eventTypes = async (id: string) => (await store.readStream(taskStreamId(id))).map((e) => e.type);
  const dispatcherOptions = () => ({
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
  const agentSeen = () =>
    until(
      'the dispatcher to see c-1',
      () => d.dispatcher.health().some((a) => a.instances.some((i) => i.instance === 'c-1' && i.healthy)) || undefined,
    );

  before(async () => {
    globalThis.Date = SteppedDate as DateConstructor;
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'clock-step-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'clock-step-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('clock_step'), max: 8 });
    store = new SteppingStore({ pool });
    await store.init();
    // PostgreSQL refuses appends to the streams listed here (the unrecorded end below).
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
    d = await startDispatcher(dispatcherOptions());
    agent = await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'c-1', logger, noop: true });
    await agentSeen();
  });

  after(async () => {
    await d?.stop();
    await agent?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
    globalThis.Date = RealDate;
  });

  it('a step forward between the decision and the launch: the task is still sent and completes', async () => {
    const stepBefore = wallClockStepMs;
    store.stepOnNextAssignmentMs = TWO_HOURS_MS;
    const sub = await submit({ task_type: 'noop', context: { sleep_ms: 300, echo: 'stepped' }, agent: 'data_analyst' });
    const v = await ended(sub.task_id);
    assert.equal(wallClockStepMs - stepBefore, TWO_HOURS_MS, 'the clock stepped at the assignment');
    assert.equal(v.status, 'completed', JSON.stringify(v.error));
    assert.deepEqual(v.result, { echo: 'stepped', slept_ms: 300 });
    const types = await eventTypes(sub.task_id);
    assert.ok(types.includes('TaskStarted'), 'the agent had the task');
    assert.ok(!types.includes('TaskTimedOut'));
  });

  it('the same step: a task that outruns its timeout times out only after its timeout', async () => {
    const stepBefore = wallClockStepMs;
    store.stepOnNextAssignmentMs = TWO_HOURS_MS;
    const timeoutMs = 1_500;
    const submittedAt = performance.now();
    const sub = await submit({
      task_type: 'noop',
      context: { sleep_ms: 10_000 },
      agent: 'data_analyst',
      timeout_ms: timeoutMs,
      max_attempts: 1,
    });
    const v = await ended(sub.task_id);
    const tookMs = performance.now() - submittedAt;
    assert.equal(wallClockStepMs - stepBefore, TWO_HOURS_MS, 'the clock stepped at the assignment');
    assert.equal(v.status, 'timed_out');
    assert.ok(tookMs >= timeoutMs, `timed out ${Math.round(tookMs)} ms after the submission`);
    assert.ok((await eventTypes(sub.task_id)).includes('TaskStarted'), 'the agent had the task');
  });

  it("an attempt's end that could not be recorded, looked at again after a step forward: queued again, not timed out", async () => {
    const sub = await submit({ task_type: 'noop', context: { sleep_ms: 600, echo: 'again' }, agent: 'data_analyst' });
    await until(`task ${sub.task_id} to be working`, async () =>
      (await get(sub.task_id)).status === 'working' ? true : undefined,
    );
    await pool.query(`INSERT INTO public.refused_streams (stream_id, sqlstate) VALUES ($1, '42501')`, [
      taskStreamId(sub.task_id),
    ]);
    // By this clock the task's recorded deadline (60 s after its assignment) is long past.
    wallClockStepMs += TWO_HOURS_MS;
    await new Promise((r) => setTimeout(r, 3_000)); // the result came in time and could not be recorded
    await pool.query(`DELETE FROM public.refused_streams WHERE stream_id = $1`, [taskStreamId(sub.task_id)]);
    const v = await ended(sub.task_id, 30_000);
    assert.equal(v.status, 'completed', JSON.stringify(v.error));
    assert.deepEqual(v.result, { echo: 'again', slept_ms: 600 });
    const types = await eventTypes(sub.task_id);
    assert.ok(!types.includes('TaskTimedOut'));
    assert.equal(types.filter((t) => t === 'TaskCompleted').length, 1);
  });

  it('a dispatcher whose clock is ahead of the one that assigned a task recovers it: the never-started attempt is queued again, not timed out', async () => {
    await d.stop();
    // Another dispatcher, its clock 2 h behind, assigned the task to c-1; c-1 never started it.
    const taskId = randomUUID();
    const at = new Date(Date.now() - TWO_HOURS_MS).toISOString();
    const metadata = { timestamp: at, correlationId: taskId, actor: 'system:dispatcher' };
    let state: TaskState = taskDelegationDecider.initialState;
    const events: TaskEvent[] = [];
    const commands: TaskCommand[] = [
      {
        type: 'SubmitTask',
        data: submitTaskData(taskId, 'noop', undefined, {
          context: { sleep_ms: 100, echo: 'taken over' },
          priority: 'normal',
          agent: 'data_analyst',
        }),
        metadata,
      },
      { type: 'AssignTask', data: { agent: 'data_analyst', instance: 'c-1' }, metadata },
    ];
    for (const c of commands)
      for (const e of taskDelegationDecider.decide(c, state)) {
        events.push(e);
        state = taskDelegationDecider.evolve(state, e);
      }
    await store.append(taskStreamId(taskId), events, { expectedRevision: 'no_stream' });

    d = await startDispatcher(dispatcherOptions());
    await agentSeen();
    const v = await ended(taskId);
    assert.equal(v.status, 'completed', JSON.stringify(v.error));
    assert.deepEqual(v.result, { echo: 'taken over', slept_ms: 100 });
    const types = await eventTypes(taskId);
    assert.ok(!types.includes('TaskTimedOut'));
    assert.equal(types.filter((t) => t === 'TaskAssigned').length, 2);
  });
});

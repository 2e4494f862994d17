import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, isAppError, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { handleCommand, PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskDelegationDecider, taskStreamId } from '@switchyard/domain';
import {
  taskExecuteReply,
  taskIdForIdempotencyKey as taskIdFor,
  taskSubmitReply,
  taskView,
  type TaskView,
  tasksSubject,
} from '@switchyard/contracts';
import { AgentRuntime, startAgent, startAgentHttp, type AgentHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from './index.js';

/**
 * The dispatcher against a real PostgreSQL (event store + read models) and a real nats-server of
 * its own (so no other suite's `tasks` service or agents share the subjects), with real agent
 * instances, one of them in a child process that is SIGKILLed mid-task.
 */
const logger = createLogger('delegation-int', process.env.LOG_LEVEL ?? 'silent');
// The HTTP agent here listens on loopback: allow-listed, as an operator would (EGRESS_ALLOW_CIDRS).
const fast = {
  egress: { allowCidrs: ['127.0.0.0/8'] },
  pollIntervalMs: 100,
  healthIntervalMs: 200,
  discoveryIntervalMs: 300,
  discoveryWaitMs: 150,
  probeTimeoutMs: 500,
  agingMs: 400,
};

describe('task delegation over real NATS and PostgreSQL', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let dbUrl: string;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;
  const agents: AgentHandle[] = [];
  const children: ChildProcess[] = [];

  const submit = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('submit'), input, { schema: taskSubmitReply });
  const execute = (input: Record<string, unknown>, timeoutMs = 30_000) =>
    request(nc, tasksSubject('execute'), input, { schema: taskExecuteReply, timeoutMs });
  const get = (task_id: string): Promise<TaskView> =>
    request(nc, tasksSubject('get'), { task_id }, { schema: taskView });
  const ended = (id: string) =>
    until(`task ${id} to end`, async () => {
      const v = await get(id);
      return ['completed', 'failed', 'canceled', 'timed_out'].includes(v.status) ? v : undefined;
    });
  /** The states of the progress notices published to `subject` from now on. */
  const notices = (subject: string) => {
    const states: string[] = [];
    nc.subscribe(subject, { callback: (_e, m) => void states.push(m.json<{ state: string }>().state) });
    return () => [...states];
  };
  const seen = (instance: string) =>
    until(
      `dispatcher to see ${instance}`,
      () =>
        d.dispatcher.health().some((a) => a.instances.some((i) => i.instance === instance && i.healthy)) || undefined,
    );
  const agent = async (name: string, instanceId: string, maxConcurrency?: number) => {
    const h = await startAgent({
      nats: nc,
      pool,
      agent: name,
      instanceId,
      logger,
      noop: true,
      ...(maxConcurrency ? { maxConcurrency } : {}),
    });
    agents.push(h);
    await seen(instanceId);
    return h;
  };

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'deleg-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'delegation-test', logger });
    dbUrl = await freshDatabase('delegation');
    pool = new pg.Pool({ connectionString: dbUrl, max: 8 });
    store = new PostgresEventStore({ pool });
    await store.init();
    d = await startDispatcher({ store, nats: nc, pool, logger, ...fast });
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await d?.stop();
    await Promise.all(agents.map((a) => a.stop()));
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('a task whose instance is SIGKILLed mid-task completes on the other instance', async () => {
    // 1. The first instance runs in a child process, so it can die for real.
    const main = createRequire(import.meta.url)
      .resolve('@switchyard/agents')
      .replace(/index\.js$/, 'service/instance-main.js');
    const child = spawn(process.execPath, [main], {
      env: {
        ...process.env,
        NATS_URL: natsServer.url,
        DATABASE_URL: dbUrl,
        AGENT: 'data_analyst',
        INSTANCE_ID: 'child-1',
        NOOP: '1',
        LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => b.toString().includes('"ready":true') && resolve());
      child.once('exit', (code) => reject(new Error(`agent child exited early (${code})`)));
    });
    await seen('child-1');
    // 2. The task goes to the only instance and starts there.
    const sub = await submit({
      task_type: 'noop',
      context: { sleep_ms: 3_000, echo: 'survived' },
      agent: 'data_analyst',
      idempotency_key: 'kill-1',
    });
    assert.equal(sub.instance, 'child-1');
    await until('the task to be working on child-1', async () =>
      (await get(sub.task_id)).status === 'working' ? true : undefined,
    );
    // 3. A second instance comes up; then the first dies without a goodbye.
    await agent('data_analyst', 'local-1');
    child.kill('SIGKILL');
    // 4. Same idempotency key: execute waits for the same task and gets its result from local-1.
    const done = await execute({
      task_type: 'noop',
      context: { sleep_ms: 3_000, echo: 'survived' },
      agent: 'data_analyst',
      idempotency_key: 'kill-1',
    });
    assert.equal(done.task_id, sub.task_id);
    assert.equal(done.instance, 'local-1');
    assert.deepEqual(done.result, { echo: 'survived', slept_ms: 3_000 });
    const v = await get(sub.task_id);
    assert.deepEqual(v.failed_instances, ['child-1']);
    assert.equal(v.attempts, 2, 'two attempts made: the lost one and the one that completed');
    const types = (await store.readStream(taskStreamId(sub.task_id))).map((e) => e.type);
    assert.deepEqual(types, [
      'TaskSubmitted',
      'TaskQueued',
      'TaskAssigned',
      'TaskStarted',
      'TaskRetryScheduled',
      'TaskQueued',
      'TaskAssigned',
      'TaskStarted',
      'TaskCompleted',
    ]);
  });

  it('priorities: with one busy agent a queued critical runs before an earlier low, and an old low before a fresh normal (aging)', async () => {
    await agent('financial_advisor', 'fa-1', 1);
    const noop = (sleep_ms: number, priority: string) => ({
      task_type: 'noop',
      context: { sleep_ms },
      agent: 'financial_advisor',
      priority,
    });
    // 1. Hold the only slot; queue a low, then a critical.
    const blocker = await submit(noop(1_500, 'normal'));
    assert.equal(blocker.instance, 'fa-1');
    const low = await submit(noop(10, 'low'));
    const critical = await submit(noop(10, 'critical'));
    assert.equal(low.status, 'queued');
    assert.equal(critical.status, 'queued');
    const [lowV, critV] = [await ended(low.task_id), await ended(critical.task_id)];
    assert.ok(
      critV.assigned_at! < lowV.assigned_at!,
      `critical assigned ${critV.assigned_at}, low ${lowV.assigned_at}`,
    );
    // 2. Aging: a low that has waited 1.3 s (over 3 levels at 400 ms per level) beats a fresh normal.
    await ended(blocker.task_id);
    const blocker2 = await submit(noop(3_000, 'normal'));
    assert.equal(blocker2.instance, 'fa-1');
    const oldLow = await submit(noop(10, 'low'));
    await new Promise((r) => setTimeout(r, 1_300));
    const normal = await submit(noop(10, 'normal'));
    const [oldLowV, normalV] = [await ended(oldLow.task_id), await ended(normal.task_id)];
    assert.ok(
      oldLowV.assigned_at! < normalV.assigned_at!,
      `old low assigned ${oldLowV.assigned_at}, fresh normal ${normalV.assigned_at}`,
    );
  });

  it('errors: a fatal agent error fails at once, a deadline times the task out, an unknown type is a 400 listing the valid ones', async () => {
    await assert.rejects(
      execute({ task_type: 'noop', context: { fail: 'fatal' }, agent: 'data_analyst', idempotency_key: 'fatal-1' }),
      (e) => {
        assert.ok(isAppError(e));
        assert.equal(e.code, 'validation');
        assert.equal(e.details.status, 'failed');
        return true;
      },
    );
    await assert.rejects(
      execute({
        task_type: 'noop',
        context: { sleep_ms: 10_000 },
        agent: 'data_analyst',
        timeout_ms: 300,
        idempotency_key: 'slow-1',
      }),
      (e) => {
        assert.ok(isAppError(e));
        assert.equal(e.code, 'timeout');
        assert.equal(e.details.status, 'timed_out');
        return true;
      },
    );
    // A task canceled while its caller waits: `canceled`, with the reason.
    const waiting = execute({
      task_type: 'noop',
      context: { sleep_ms: 10_000 },
      agent: 'data_analyst',
      idempotency_key: 'canceled-1',
    });
    const id = taskIdFor('canceled-1');
    await until('the waited-for task to run', async () =>
      ['assigned', 'working'].includes((await get(id).catch(() => undefined))?.status ?? '') ? true : undefined,
    );
    await request(
      nc,
      tasksSubject('cancel'),
      { task_id: id, reason: 'its workflow was canceled' },
      { schema: taskView },
    );
    await assert.rejects(waiting, (e) => {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'canceled');
      assert.equal(e.details.status, 'canceled');
      assert.match(e.message, /its workflow was canceled/);
      return true;
    });
    await assert.rejects(submit({ task_type: 'teleport', context: {} }), (e) => {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'validation');
      assert.match(e.message, /revenue_analysis/);
      assert.ok((e.details.valid_task_types as string[]).includes('support_response'));
      return true;
    });
  });

  it("a step's context: a snake_case field is recorded and run under its name; an unknown field or both spellings are refused before any task is recorded", async () => {
    await agent('automation_specialist', 'deleg-as-1');
    const at = '2026-01-01T00:00:00.000Z';
    const later = '2026-01-01T00:00:02.000Z';
    const executions = [
      { executionId: 'e1', steps: [{ stepId: 'fetch', status: 'succeeded', startedAt: at, finishedAt: later }] },
    ];
    // 1. As a workflow step sends it (tasks.v1.execute), with the snake_case spelling of hotSpotRate.
    const done = await execute({
      task_type: 'workflow_optimization',
      context: { executions, hot_spot_rate: 0.5 },
      idempotency_key: 'context-alias-1',
    });
    assert.equal(done.status, 'completed');
    const submitted = (await store.readStream(taskStreamId(done.task_id))).find((e) => e.type === 'TaskSubmitted');
    assert.deepEqual((submitted?.data as { context: unknown }).context, { executions, hotSpotRate: 0.5 });
    // 2. Refused, each naming the field: both spellings, a nested typo (with the field meant), an unknown field.
    const refused: [Record<string, unknown>, string, string][] = [
      [{ executions, hot_spot_rate: 0.5, hotSpotRate: 0.4 }, 'context.hot_spot_rate', 'both_spellings'],
      [
        { executions: [{ ...executions[0]!, steps: [{ ...executions[0]!.steps[0]!, depends_on: [] }] }] },
        'context.executions.0.steps.0.depends_on',
        'unknown_field',
      ],
      [{ executions, hotspots: 3 }, 'context.hotspots', 'unknown_field'],
    ];
    for (const [context, path, code] of refused)
      await assert.rejects(
        execute({ task_type: 'optimize_workflow', context, idempotency_key: `context-refused-${path}` }),
        (e) => {
          assert.ok(isAppError(e));
          assert.equal(e.code, 'validation');
          assert.match(e.message, new RegExp(path.replace(/\./g, '\\.')));
          assert.deepEqual(
            (e.details.errors as { path: string; code: string }[]).map((i) => [i.path, i.code]),
            [[path, code]],
          );
          return true;
        },
      );
    for (const [, path] of refused)
      assert.equal((await store.readStream(taskStreamId(taskIdFor(`context-refused-${path}`)))).length, 0, path);
  });

  it('a retryable failure is retried up to max_attempts, then the task fails', async () => {
    await assert.rejects(
      execute({
        task_type: 'noop',
        context: { fail: 'retryable' },
        agent: 'data_analyst',
        max_attempts: 2,
        idempotency_key: 'flaky-1',
      }),
      (e) => {
        assert.ok(isAppError(e));
        assert.equal(e.code, 'unavailable');
        return true;
      },
    );
    const view = await get((await submit({ task_type: 'noop', context: {}, idempotency_key: 'flaky-1' })).task_id);
    assert.equal(view.status, 'failed');
    assert.equal(view.attempts, 2);
  });

  it("a context its agent's handler throws on fails the task at once, without opening the instance's breaker", async () => {
    // Such an exception is the handler's bug on this input: every instance would throw the same,
    // so a retry is waste, and counting it would let one caller's inputs shut the agent for all.
    for (let i = 0; i < 4; i++) {
      await assert.rejects(
        execute({
          task_type: 'noop',
          context: { fail: 'throw' },
          agent: 'data_analyst',
          max_attempts: 3,
          idempotency_key: `throw-${i}`,
        }),
        (e) => {
          assert.ok(isAppError(e));
          assert.equal(e.code, 'internal');
          assert.equal(e.details.status, 'failed');
          return true;
        },
      );
      const view = await get((await submit({ task_type: 'noop', context: {}, idempotency_key: `throw-${i}` })).task_id);
      assert.equal(view.status, 'failed');
      assert.equal(view.attempts, 1);
    }
    const instances = d.dispatcher.health().find((a) => a.agent === 'data_analyst')!.instances;
    assert.ok(instances.length > 0);
    for (const i of instances) assert.equal(i.breaker, 'closed', `breaker of ${i.instance}`);
    const ok = await execute({
      task_type: 'noop',
      context: { echo: 'after' },
      agent: 'data_analyst',
      idempotency_key: 'after-throw',
    });
    assert.deepEqual((ok.result as { echo: unknown }).echo, 'after');
  });

  it('an external agent over the HTTP contract (bearer token) is registered and used', async () => {
    const runtime = new AgentRuntime({ agent: 'automation_specialist', instanceId: 'ext', pool, logger, noop: true });
    const http = await startAgentHttp({ runtime, port: 0, host: '127.0.0.1', token: 's3cret', logger });
    try {
      const unauth = await fetch(`${http.url}/execute`, {
        method: 'POST',
        body: JSON.stringify({ task_type: 'noop', context: {} }),
      });
      assert.equal(unauth.status, 401);
      await request(
        nc,
        tasksSubject('register_agent'),
        { name: 'ext-auto', url: http.url, task_types: ['noop'], token: 's3cret' },
        { schema: z.unknown() },
      );
      const r = await execute({
        task_type: 'noop',
        context: { echo: 42 },
        agent: 'ext-auto',
        idempotency_key: 'ext-1',
      });
      assert.equal(r.agent, 'ext-auto');
      assert.deepEqual(r.result, { echo: 42, slept_ms: 0 });
    } finally {
      await http.close();
    }
  });

  it('one write per step: submit+assign in one append when an instance is free; a write by someone else is not overwritten (the revision check sends the dispatcher back to the stream)', async () => {
    // 1. A free instance: the submission and its assignment are one append (same global position).
    //    Its caller hears `started` only: the task did not wait (`queued` would have it record a wait).
    const placedNotices = notices('_INBOX.test.placed');
    const placed = await execute({
      task_type: 'noop',
      context: { echo: 'one' },
      agent: 'data_analyst',
      idempotency_key: 'one-append-1',
      progress_subject: '_INBOX.test.placed',
    });
    await nc.flush();
    assert.deepEqual(placedNotices(), ['started']);
    const recorded = await store.readStream(taskStreamId(placed.task_id));
    assert.deepEqual(
      recorded.map((e) => e.type),
      ['TaskSubmitted', 'TaskQueued', 'TaskAssigned', 'TaskStarted', 'TaskCompleted'],
    );
    assert.equal(recorded[2]!.position - recorded[0]!.position, 2, 'TaskSubmitted..TaskAssigned written together');
    // 2. No instance of operations_manager: the task waits, and the dispatcher holds its state at revision 1.
    const sub = await submit({ task_type: 'noop', context: {}, agent: 'operations_manager' });
    assert.equal(sub.status, 'queued');
    // 3. Another writer assigns it behind the dispatcher's back (through the same decider).
    await handleCommand(store, taskStreamId(sub.task_id), taskDelegationDecider, {
      type: 'AssignTask',
      data: { agent: 'operations_manager', instance: 'elsewhere-1' },
      metadata: { timestamp: new Date().toISOString(), correlationId: 'outside', actor: 'test' },
    });
    // 4. Cancel through the dispatcher: its cached revision is stale, so it reads and decides again.
    const canceled = await request(
      nc,
      tasksSubject('cancel'),
      { task_id: sub.task_id, reason: 'test' },
      { schema: taskView },
    );
    assert.equal(canceled.status, 'canceled');
    const events = await store.readStream(taskStreamId(sub.task_id));
    assert.deepEqual(
      events.map((e) => e.type),
      ['TaskSubmitted', 'TaskQueued', 'TaskAssigned', 'TaskCanceled'],
    );
    const data = events[3]!.data as { previous_status: string; instance?: string };
    assert.equal(data.previous_status, 'assigned', 'decided against the stream, not the stale cached state');
    assert.equal(data.instance, 'elsewhere-1');
  });

  it('after a dispatcher restart, queued tasks and the in-flight task of a dead agent are recovered and run', async () => {
    const cc1 = await agent('content_creator', 'cc-1', 1);
    const inflight = await submit({ task_type: 'noop', context: { sleep_ms: 5_000 }, agent: 'content_creator' });
    assert.equal(inflight.instance, 'cc-1');
    const queued = await submit({ task_type: 'noop', context: { echo: 'q' }, agent: 'content_creator' });
    assert.equal(queued.status, 'queued');
    // 1. The dispatcher goes away, and so does the agent (its running task is lost with it).
    await d.stop();
    await cc1.stop();
    // 2. A new dispatcher finds both in the read model: the in-flight one goes back to the queue.
    d = await startDispatcher({ store, nats: nc, pool, logger, ...fast });
    const back = await get(inflight.task_id);
    assert.equal(back.status, 'queued');
    assert.deepEqual(back.failed_instances, ['cc-1']);
    assert.equal((await get(queued.task_id)).status, 'queued');
    // 3. An instance comes (back): both run there.
    await agent('content_creator', 'cc-2', 2);
    const [a, b] = [await ended(inflight.task_id), await ended(queued.task_id)];
    assert.equal(a.status, 'completed');
    assert.equal(a.instance, 'cc-2');
    // Started on the instance that died: that attempt counts; its error is not the completed task's.
    assert.equal(a.attempts, 2);
    assert.equal(a.error, null);
    assert.equal(b.status, 'completed');
    assert.deepEqual(b.result, { echo: 'q', slept_ms: 0 });
    // 4. The performance projection counted the agents' work.
    await d.projections!.waitFor();
    const perf = await d.dispatcher.performance();
    const cc = perf.find((p) => p.agent === 'content_creator')!;
    assert.equal(cc.succeeded, 2);
    assert.ok(cc.latency_p50_ms !== null && cc.latency_p95_ms! >= cc.latency_p50_ms);
  });

  it('progress notices: a waiting task is told queued (again each heartbeat) then started; a caller that wants the first only gets just that', async () => {
    // No instance of customer_success yet: both tasks wait.
    const all = notices('_INBOX.test.all');
    const first = notices('_INBOX.test.first');
    const input = { task_type: 'noop', context: { echo: 'late' }, agent: 'customer_success' };
    const runs = Promise.all([
      execute({ ...input, idempotency_key: 'progress-all', progress_subject: '_INBOX.test.all' }, 60_000),
      execute(
        {
          ...input,
          idempotency_key: 'progress-first',
          progress_subject: '_INBOX.test.first',
          progress_first_only: true,
        },
        60_000,
      ),
    ]);
    // Past one heartbeat (CALL_HEARTBEAT_MS) while they wait.
    await until('a queued heartbeat', () => (all().length >= 2 ? true : undefined), 15_000);
    await agent('customer_success', 'cs-1');
    const [a, b] = await runs;
    assert.equal(a.status, 'completed');
    assert.equal(b.status, 'completed');
    await nc.flush();
    // `running` heartbeats may follow `started` while the task runs.
    const told = all().filter((x) => x !== 'running');
    assert.equal(told.at(-1), 'started');
    assert.ok(told.slice(0, -1).length >= 2 && told.slice(0, -1).every((s) => s === 'queued'), told.join(', '));
    assert.deepEqual(first(), ['queued']);
  });
});

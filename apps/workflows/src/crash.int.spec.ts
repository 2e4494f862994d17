import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { startExecution, loadExecution } from '@switchyard/workflow-executions';
import { Responders } from './test-responders.js';

const logger = createLogger('workflow-crash-int', process.env.LOG_LEVEL ?? 'silent');
const mainJs = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Engine {
  child: ChildProcess;
  dispatches: number;
  stderr: string;
  started: Promise<void>;
}

/** The engine as its own OS process, so SIGKILL is a real crash. */
function spawnEngine(env: Record<string, string>): Engine {
  const child = spawn(process.execPath, [mainJs], {
    env: { ...process.env, LOG_LEVEL: 'warn', WORKFLOW_PARTITIONS: '8', WORKFLOW_RECOVERY_INTERVAL_MS: '2000', ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const e: Engine = { child, dispatches: 0, stderr: '', started: Promise.resolve() };
  child.stderr!.on('data', (d: Buffer) => (e.stderr = (e.stderr + d.toString()).slice(-4000)));
  e.started = new Promise((resolve, reject) => {
    child.on('message', (m: { type: string; stats?: { dispatches: number } }) => {
      if (m.type === 'engine-started') resolve();
      if (m.type === 'stats' && m.stats) e.dispatches = m.stats.dispatches;
    });
    child.once('exit', (code) => reject(new Error(`engine exited (${code}) before starting: ${e.stderr}`)));
  });
  return e;
}

async function kill(e: Engine, signal: NodeJS.Signals): Promise<void> {
  if (e.child.exitCode !== null || e.child.signalCode !== null) return;
  const gone = new Promise((r) => e.child.once('exit', r));
  e.child.kill(signal);
  await gone;
}

describe('workflow engine processes: SIGKILL and scale-out', () => {
  let url: string;
  let natsUrl: string;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  const engines: Engine[] = [];

  before(async () => {
    url = await freshDatabase('wf_crash');
    natsUrl = await testNatsUrl();
    pool = new pg.Pool({ connectionString: url, max: 6 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    nc = await connect({ servers: natsUrl });
  });

  after(async () => {
    for (const e of engines) await kill(e, 'SIGKILL');
    await nc?.close();
    await store?.close();
    await pool?.end();
  });

  const threeSteps = (server: string): WorkflowDefinitionInput => ({
    id: 'three_steps',
    version: 1,
    name: 'three steps',
    input: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
    steps: [
      { id: 'one', uses: `mcp:${server}/one`, with: { n: '${{ input.n }}' }, timeout_ms: 60_000 },
      {
        id: 'two',
        uses: 'agent:revenue_analysis',
        needs: ['one'],
        with: { v: '${{ steps.one.output.v }}' },
        timeout_ms: 60_000,
      },
      {
        id: 'three',
        uses: `mcp:${server}/three`,
        needs: ['two'],
        with: { v: '${{ steps.two.output.v }}' },
        timeout_ms: 60_000,
      },
    ],
    outputs: { v: '${{ steps.three.output.v }}' },
  });

  /** Every execution ended completed with the right output, one WorkflowCompleted each, one effect per step and no other attempt. */
  async function verify(ids: readonly string[], responders: Responders): Promise<void> {
    for (const [n, id] of ids.entries()) {
      const events = await store.readStream(`workflow_execution-${id}`);
      const t = events.map((e) => e.type);
      assert.equal(t.filter((x) => x === 'WorkflowCompleted').length, 1, `${id}: ${t.join(',')}`);
      assert.equal(t.filter((x) => x === 'StepSucceeded').length, 3);
      assert.equal(t.filter((x) => x === 'StepScheduled').length, 3, 'no step was retried');
      assert.equal(t.filter((x) => x === 'StepDispatched').length, 3, 'each step recorded as dispatched once');
      assert.equal(t[0], 'WorkflowStarted');
      assert.equal(t.at(-1), 'WorkflowCompleted');
      assert.equal(t.filter((x) => x === 'StepFailed' || x === 'StepTimedOut').length, 0);
      assert.deepEqual(
        events.map((e) => e.revision),
        events.map((_, i) => i),
        'no gap in the stream',
      );
      const { state } = await loadExecution(store, id);
      assert.ok(state.status === 'completed' && state.outputs.v === n + 3);
      for (const step of ['one', 'two', 'three'])
        assert.equal(responders.effects.get(`${id}:${step}:1`), 1, `${id}:${step} effect once`);
    }
    // Only first-attempt keys ever reached the workers.
    assert.ok(responders.calls.every((c) => c.key.endsWith(':1')));
    assert.equal(responders.effects.size, ids.length * 3);
  }

  async function allDone(ids: readonly string[], ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await pool.query<{ n: string }>(
        `select count(distinct stream_id) as n from eventstore.events where type = 'WorkflowCompleted' and stream_id = any($1)`,
        [ids.map((i) => `workflow_execution-${i}`)],
      );
      if (Number(r.rows[0]!.n) === ids.length) return;
      if (Date.now() > deadline) assert.fail(`only ${r.rows[0]!.n}/${ids.length} executions completed`);
      await sleep(100);
    }
  }

  it(
    'finishes 50 executions of a 3-step workflow through three SIGKILLs, each step effect once, no event lost',
    { timeout: 90_000 },
    async (t) => {
      const server = `crash${newId().slice(0, 6)}`;
      const subjects = { mcpPrefix: `test.wf.${server}.mcp`, tasksSubject: `test.wf.${server}.tasks.execute` };
      const responders = await new Responders(nc, logger).start([server], { queue: `q-${server}`, ...subjects });
      // Work that takes a while, so kills land while requests are in flight.
      const slow = (add: number) => async (c: { args: unknown }) => {
        await sleep(40 + Math.random() * 160);
        return { v: ((c.args as { n?: number; v?: number }).n ?? (c.args as { v: number }).v) + add };
      };
      responders.behaviours.set(`${server}/one`, slow(1));
      responders.behaviours.set('agent:revenue_analysis', slow(1));
      responders.behaviours.set(`${server}/three`, slow(1));
      try {
        const env = {
          DATABASE_URL: url,
          NATS_URL: natsUrl,
          WORKFLOW_MCP_SUBJECT_PREFIX: subjects.mcpPrefix,
          WORKFLOW_TASKS_SUBJECT: subjects.tasksSubject,
        };
        let engine = spawnEngine(env);
        engines.push(engine);
        await engine.started;
        const ids: string[] = [];
        for (let n = 0; n < 50; n++) {
          const { executionId } = await startExecution(store, {
            definition: threeSteps(server),
            input: { n },
            correlationId: newId(),
            executionId: `crash-${n}-${newId().slice(0, 8)}`,
          });
          ids.push(executionId);
        }
        for (let k = 0; k < 3; k++) {
          await sleep(100 + k * 100);
          await kill(engine, 'SIGKILL');
          const done = await pool.query<{ n: string }>(
            `select count(*) as n from eventstore.events where type = 'WorkflowCompleted' and stream_id like 'workflow_execution-crash-%'`,
          );
          t.diagnostic(`SIGKILL ${k + 1}: ${done.rows[0]!.n}/50 executions completed`);
          engine = spawnEngine(env);
          engines.push(engine);
          await engine.started;
        }
        await allDone(ids, 60_000);
        await verify(ids, responders);
        // The read model, projected in the killed processes too, ends with every execution completed and every step once.
        const deadline = Date.now() + 15_000;
        for (;;) {
          const r = await pool.query<{ x: string; s: string }>(
            `select (select count(*) from read_models.workflow_executions where execution_id = any($1) and status = 'completed') as x,
                  (select count(*) from read_models.workflow_step_attempts where execution_id = any($1) and status = 'succeeded') as s`,
            [ids],
          );
          if (Number(r.rows[0]!.x) === ids.length && Number(r.rows[0]!.s) === ids.length * 3) break;
          if (Date.now() > deadline)
            assert.fail(`read model: ${r.rows[0]!.x} executions completed, ${r.rows[0]!.s} step attempts succeeded`);
          await sleep(100);
        }
        // Re-dispatch after the kills really happened: some keys were requested more than once (and answered from the first effect).
        const requests = responders.calls.length;
        t.diagnostic(
          `${requests} requests for ${responders.effects.size} keys (re-sent after kills, answered from the first effect)`,
        );
        await kill(engine, 'SIGTERM');
      } finally {
        await responders.stop();
      }
    },
  );

  it(
    'two engine processes at once complete every execution exactly once and both do work',
    { timeout: 60_000 },
    async () => {
      const server = `duo${newId().slice(0, 6)}`;
      const subjects = { mcpPrefix: `test.wf.${server}.mcp`, tasksSubject: `test.wf.${server}.tasks.execute` };
      const responders = await new Responders(nc, logger).start([server], { queue: `q-${server}`, ...subjects });
      const quick = async (c: { args: unknown }) => {
        await sleep(5);
        return { v: ((c.args as { n?: number; v?: number }).n ?? (c.args as { v: number }).v) + 1 };
      };
      responders.behaviours.set(`${server}/one`, quick);
      responders.behaviours.set('agent:revenue_analysis', quick);
      responders.behaviours.set(`${server}/three`, quick);
      try {
        const env = {
          DATABASE_URL: url,
          NATS_URL: natsUrl,
          WORKFLOW_MCP_SUBJECT_PREFIX: subjects.mcpPrefix,
          WORKFLOW_TASKS_SUBJECT: subjects.tasksSubject,
        };
        const a = spawnEngine({ ...env, WORKFLOW_MEMBER_ID: 'engine-a' });
        const b = spawnEngine({ ...env, WORKFLOW_MEMBER_ID: 'engine-b' });
        engines.push(a, b);
        await Promise.all([a.started, b.started]);
        // Let the two settle on a share each before the load arrives.
        await sleep(2_500);
        const ids: string[] = [];
        for (let n = 0; n < 40; n++) {
          const { executionId } = await startExecution(store, {
            definition: threeSteps(server),
            input: { n },
            correlationId: newId(),
            executionId: `duo-${n}-${newId().slice(0, 8)}`,
          });
          ids.push(executionId);
        }
        await allDone(ids, 40_000);
        await verify(ids, responders);
        await sleep(600); // one more stats message from each
        assert.ok(
          a.dispatches > 0 && b.dispatches > 0,
          `both engines dispatched (a=${a.dispatches}, b=${b.dispatches})`,
        );
        await Promise.all([kill(a, 'SIGTERM'), kill(b, 'SIGTERM')]);
      } finally {
        await responders.stop();
      }
    },
  );
  it(
    'durable timers survive a SIGKILL: retry backoff armed before the crash fires once after the restart',
    { timeout: 60_000 },
    async () => {
      const server = `timer${newId().slice(0, 6)}`;
      const subjects = { mcpPrefix: `test.wf.${server}.mcp`, tasksSubject: `test.wf.${server}.tasks.execute` };
      const responders = await new Responders(nc, logger).start([server], {
        queue: `q-${server}`,
        tasks: false,
        ...subjects,
      });
      // The first attempt of every execution fails retryably; the second succeeds.
      responders.behaviours.set(`${server}/once`, (c) => {
        if (c.key.endsWith(':1')) throw new AppError('unavailable', 'first attempt fails');
        return { ok: true };
      });
      try {
        const env = {
          DATABASE_URL: url,
          NATS_URL: natsUrl,
          WORKFLOW_MCP_SUBJECT_PREFIX: subjects.mcpPrefix,
          WORKFLOW_TASKS_SUBJECT: subjects.tasksSubject,
        };
        let engine = spawnEngine(env);
        engines.push(engine);
        await engine.started;
        const definition: WorkflowDefinitionInput = {
          id: 'retry_after_crash',
          version: 1,
          name: 'retry after crash',
          steps: [
            {
              id: 'once',
              uses: `mcp:${server}/once`,
              retry: { attempts: 2, backoff: { initialMs: 2_500, factor: 1, maxMs: 2_500, jitter: 0 } },
            },
          ],
        };
        const ids: string[] = [];
        for (let n = 0; n < 10; n++)
          ids.push(
            (
              await startExecution(store, {
                definition,
                input: {},
                correlationId: newId(),
                executionId: `timer-${n}-${newId().slice(0, 8)}`,
              })
            ).executionId,
          );
        // Every execution is waiting for its retry timer (a row in workflows.timers), then the engine dies.
        const deadline = Date.now() + 20_000;
        for (;;) {
          const r = await pool.query<{ n: string }>(
            `select count(distinct stream_id) as n from eventstore.events where type = 'StepRetryScheduled' and stream_id = any($1)`,
            [ids.map((i) => `workflow_execution-${i}`)],
          );
          if (Number(r.rows[0]!.n) === ids.length) break;
          if (Date.now() > deadline) assert.fail('retries were not scheduled');
          await sleep(50);
        }
        // The timer rows are written just after the events that arm them: wait for them (a busy
        // machine widens that gap), so the crash comes with timers persisted.
        let armed = 0;
        while (armed === 0 && Date.now() < deadline) {
          const r = await pool.query<{ n: string }>(
            `select count(*) as n from workflows.timers where timer_key like 'retry:%' and execution_id = any($1)`,
            [ids],
          );
          armed = Number(r.rows[0]!.n);
          if (armed === 0) await sleep(20);
        }
        await kill(engine, 'SIGKILL');
        assert.ok(armed > 0, 'retry timers were persisted before the crash');
        assert.equal(responders.calls.filter((c) => c.key.endsWith(':2')).length, 0, 'no retry before its time');
        engine = spawnEngine(env);
        engines.push(engine);
        await engine.started;
        await allDone(ids, 30_000);
        for (const id of ids) {
          const events = await store.readStream(`workflow_execution-${id}`);
          const retry = events.filter((e) => e.type === 'StepRetryScheduled');
          assert.equal(retry.length, 1);
          assert.equal(events.filter((e) => e.type === 'StepScheduled').length, 2);
          assert.equal(responders.effects.get(`${id}:once:2`), 1);
          const second = responders.calls.find((c) => c.key === `${id}:once:2`)!;
          assert.ok(
            second.at >= Date.parse((retry[0]!.data as { dueAt: string }).dueAt),
            'the retry waited for its due time',
          );
        }
        await kill(engine, 'SIGTERM');
      } finally {
        await responders.stop();
      }
    },
  );

  it(
    'a call in flight when the engine dies is sent again after the restart, and the downtime is not charged to its timeout',
    { timeout: 60_000 },
    async () => {
      const server = `down${newId().slice(0, 6)}`;
      const subjects = { mcpPrefix: `test.wf.${server}.mcp`, tasksSubject: `test.wf.${server}.tasks.execute` };
      const responders = await new Responders(nc, logger).start([server], {
        queue: `q-${server}`,
        tasks: false,
        ...subjects,
      });
      // The worker finishes the work only after the engine is back (its first reply went to the dead engine).
      let release!: () => void;
      const back = new Promise<void>((r) => (release = r));
      responders.behaviours.set(`${server}/slow`, async () => {
        await back;
        return { ok: true };
      });
      const timeoutMs = 4_000;
      try {
        const env = {
          DATABASE_URL: url,
          NATS_URL: natsUrl,
          WORKFLOW_MCP_SUBJECT_PREFIX: subjects.mcpPrefix,
          WORKFLOW_TASKS_SUBJECT: subjects.tasksSubject,
        };
        let engine = spawnEngine(env);
        engines.push(engine);
        await engine.started;
        // No retry policy: before, a timeout that ran out during the downtime failed the step for good.
        const definition: WorkflowDefinitionInput = {
          id: 'in_flight_at_crash',
          version: 1,
          name: 'in flight at crash',
          steps: [{ id: 'slow', uses: `mcp:${server}/slow`, timeout_ms: timeoutMs }],
        };
        const ids: string[] = [];
        for (let n = 0; n < 5; n++)
          ids.push(
            (
              await startExecution(store, {
                definition,
                input: {},
                correlationId: newId(),
                executionId: `down-${n}-${newId().slice(0, 8)}`,
              })
            ).executionId,
          );
        const keys = ids.map((id) => `${id}:slow:1`);
        const sent = async (times: number, ms: number) => {
          const until = Date.now() + ms;
          while (!keys.every((k) => responders.calls.filter((c) => c.key === k).length >= times)) {
            if (Date.now() > until) assert.fail(`not every call was sent ${times} time(s)`);
            await sleep(50);
          }
        };
        await sent(1, 20_000);
        await kill(engine, 'SIGKILL');
        // Down for longer than the step's timeout.
        await sleep(timeoutMs + 1_000);
        engine = spawnEngine(env);
        engines.push(engine);
        await engine.started;
        await sent(2, 20_000);
        release();
        await allDone(ids, 30_000);
        for (const id of ids) {
          const t = (await store.readStream(`workflow_execution-${id}`)).map((e) => e.type);
          assert.equal(t.filter((x) => x === 'StepTimedOut' || x === 'StepFailed').length, 0, `${id}: ${t.join(',')}`);
          assert.ok(
            t.includes('StepRedispatched'),
            `${id}: the re-send restarted the attempt's clock (${t.join(',')})`,
          );
          assert.equal(
            responders.effects.get(`${id}:slow:1`),
            1,
            'the work ran once (the re-send was answered from it)',
          );
        }
        await kill(engine, 'SIGTERM');
      } finally {
        release();
        await responders.stop();
      }
    },
  );
});

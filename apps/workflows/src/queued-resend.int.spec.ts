import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore, type EventStore } from '@switchyard/event-store';
import { callProgressNotifier, type CallProgressNotifier } from '@switchyard/messaging';
import { callProgressSchema, type CallProgress } from '@switchyard/contracts';
import { freshDatabase, overriding, testNatsUrl } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { WorkflowEngine } from './engine.js';
import { TEST_ENGINE_TIMINGS } from './test-responders.js';
import { cancelExecution, executionEvents, startExecution, waitForExecution } from '@switchyard/workflow-executions';

const logger = createLogger('workflow-queued-resend-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Shortened for the test: production repeats `queued` every 5 s and re-sends after 15 s of silence. */
const HEARTBEAT_MS = 200;
const SILENCE_MS = 1_500;

interface TaskRequest {
  readonly idempotency_key: string;
  readonly progress_subject?: string;
  readonly worker: string;
}

/**
 * A worker that says a call is queued and then dies (its process and its queue gone) leaves the
 * engine waiting for an answer that never comes: its deadline after `queued` is the queue budget,
 * ten minutes for an agent task. Workers repeat `queued` while they hold a call; the engine sends a
 * call whose worker fell silent again under the same key, and whoever serves the subject now
 * answers. Real nats-server and PostgreSQL; the task workers are NATS subscribers that behave as a
 * dispatcher does on the wire (the kills e2e does the same with real dispatchers SIGKILLed).
 */
describe('a call whose worker falls silent (queued or running) is sent again under the same key', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let engine: WorkflowEngine;
  const id = `t${newId().slice(0, 6)}`;
  const subjects = {
    mcpPrefix: `test.resend.${id}.mcp`,
    tasks: `test.resend.${id}.tasks.execute`,
    tasksCancel: `test.resend.${id}.tasks.cancel`,
  };
  const requests: TaskRequest[] = [];
  const notices: CallProgress[] = [];
  let noticeTap: Subscription | undefined;
  let failStepStarted = false;

  before(async () => {
    const url = await freshDatabase('wf_queued_resend');
    pool = new pg.Pool({ connectionString: url, max: 8 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    nc = await connect({ servers: await testNatsUrl() });
    // The engine's store: the real one, whose appends of StepStarted fail as a lost connection
    // while `failStepStarted` is on (the fault one test injects).
    const engineStore = overriding<EventStore>(store, {
      append: (...args) =>
        failStepStarted && args[1].some((e) => e.type === 'StepStarted')
          ? Promise.reject(new Error('Connection terminated unexpectedly'))
          : store.append(...args),
    });
    engine = new WorkflowEngine({
      store: engineStore,
      pool,
      nats: nc,
      logger,
      databaseUrl: url,
      ...TEST_ENGINE_TIMINGS,
      partitions: 2,
      recoveryIntervalMs: 60_000,
      subjects,
      callSilenceMs: SILENCE_MS,
    });
    await engine.start();
  });

  after(async () => {
    noticeTap?.unsubscribe();
    await engine?.stop();
    await nc?.close();
    await store?.close();
    await pool?.end();
  });

  /**
   * One task worker on the tasks subject (a queue group, as the dispatchers are): it says the task
   * is queued (repeated every heartbeat while `heartbeat`), then runs `behave`.
   */
  const worker = (
    name: string,
    behave: (
      req: TaskRequest,
      progress: CallProgressNotifier | undefined,
      respond: (body: unknown) => void,
    ) => Promise<void>,
  ) => {
    const sub = nc.subscribe(subjects.tasks, { queue: 'dispatchers' });
    void (async () => {
      for await (const msg of sub) {
        const body = msg.json<{ idempotency_key: string; progress_subject?: string }>();
        const req = {
          idempotency_key: body.idempotency_key,
          ...(body.progress_subject ? { progress_subject: body.progress_subject } : {}),
          worker: name,
        };
        requests.push(req);
        const progress = req.progress_subject
          ? callProgressNotifier(nc, req.progress_subject, req.idempotency_key, HEARTBEAT_MS)
          : undefined;
        void behave(req, progress, (reply) => msg.respond(JSON.stringify(reply))).finally(() => progress?.close());
      }
    })();
    return sub;
  };
  const tap = (progressSubjectOf: () => string | undefined) => {
    // Taps the engine's progress subject once it is known, to count heartbeats.
    const subject = progressSubjectOf();
    if (!subject || noticeTap) return;
    noticeTap = nc.subscribe(subject, { callback: (_e, m) => void notices.push(callProgressSchema.parse(m.json())) });
  };
  const definition = (name: string, timeoutMs = 3_000): WorkflowDefinitionInput => ({
    id: name,
    version: 1,
    name,
    steps: [
      { id: 'answer', uses: 'agent:support_response', with: { query: 'where is my order' }, timeout_ms: timeoutMs },
    ],
    outputs: { answer: '${{ steps.answer.output.text }}' },
  });

  /**
   * Starts an execution of `definition(name)` whose call a worker takes at once (no `queued`),
   * says nothing more of, and dies with; resolves once the call was taken.
   */
  const takenByADyingWorker = async (name: string) => {
    const first: Subscription = worker('first', async (_req, progress) => {
      await sleep(50);
      progress?.close();
      first.unsubscribe();
    });
    const started = await startExecution(store, {
      definition: definition(name, 20_000),
      input: {},
      correlationId: newId(),
    });
    while (requests.length === 0) await sleep(20);
    return started;
  };

  it('the worker dies after saying "queued": the call goes again to the worker in its place, same key, same attempt, and completes', async () => {
    requests.length = 0;
    // The first worker queues the call and dies: it stops serving the subject and never answers.
    let dead!: () => void;
    const died = new Promise<void>((r) => (dead = r));
    const first: Subscription = worker('first', async (_req, progress) => {
      progress?.tell('queued');
      await sleep(50);
      progress?.close();
      first.unsubscribe();
      dead();
    });
    const t0 = Date.now();
    const { executionId } = await startExecution(store, {
      definition: definition(`resend-${id}`),
      input: {},
      correlationId: newId(),
    });
    await died;
    // Its replacement starts the task at once and answers.
    const second = worker('second', async (req, progress, respond) => {
      progress?.tell('started');
      await sleep(50);
      respond({
        task_id: `task-of-${req.idempotency_key}`,
        status: 'completed',
        result: { text: `answered by ${req.worker}` },
      });
    });
    try {
      const state = await waitForExecution(store, executionId, 20_000);
      const took = Date.now() - t0;
      assert.equal(state.status, 'completed', JSON.stringify(state));
      assert.deepEqual(state.outputs, { answer: 'answered by second' });
      assert.deepEqual(
        requests.map((r) => r.worker),
        ['first', 'second'],
      );
      assert.equal(
        requests[1]!.idempotency_key,
        requests[0]!.idempotency_key,
        'the re-sent call carries the key of the first',
      );
      assert.ok(engine.stats().resends >= 1, `the engine counted its re-send (${engine.stats().resends})`);
      const events = (await executionEvents(store, executionId)).map(
        (e) => `${e.type}#${(e.data as { attempt?: number }).attempt ?? ''}`,
      );
      // One attempt: queued, then started by the second worker, then its success; no timeout, no retry.
      assert.deepEqual(
        events.filter((e) => e.startsWith('Step')),
        ['StepScheduled#1', 'StepDispatched#1', 'StepQueued#1', 'StepStarted#1', 'StepSucceeded#1'],
      );
      assert.ok(took < 10_000, `completed ${took} ms after the start, not after the ten-minute queue budget`);
    } finally {
      second.unsubscribe();
    }
  });

  it('a worker that keeps saying "queued" is left alone: no re-send however long the call waits', async () => {
    requests.length = 0;
    const resendsBefore = engine.stats().resends;
    const w = worker('patient', async (req, progress, respond) => {
      tap(() => req.progress_subject);
      progress?.tell('queued');
      // Queued for three silence limits, saying so every heartbeat.
      await sleep(3 * SILENCE_MS);
      progress?.tell('started');
      respond({
        task_id: `task-of-${req.idempotency_key}`,
        status: 'completed',
        result: { text: 'after a long queue' },
      });
    });
    try {
      const { executionId } = await startExecution(store, {
        definition: definition(`patient-${id}`),
        input: {},
        correlationId: newId(),
      });
      const state = await waitForExecution(store, executionId, 20_000);
      assert.equal(state.status, 'completed', JSON.stringify(state));
      assert.deepEqual(state.outputs, { answer: 'after a long queue' });
      assert.equal(requests.length, 1, `sent once: ${JSON.stringify(requests)}`);
      assert.equal(engine.stats().resends, resendsBefore);
      const queued = notices.filter((n) => n.state === 'queued').length;
      assert.ok(
        queued >= (3 * SILENCE_MS) / HEARTBEAT_MS - 3,
        `the worker's heartbeats reached the engine's subject (${queued} queued notices)`,
      );
    } finally {
      w.unsubscribe();
    }
  });

  it('a "started" that cannot be recorded leaves the call followed by its silence: its lost answer is asked for again', async () => {
    requests.length = 0;
    failStepStarted = true;
    // The first worker queues the call, starts it, and its answer is lost (it never responds).
    const first: Subscription = worker('first', async (_req, progress) => {
      progress?.tell('queued');
      await sleep(100);
      progress?.tell('started');
      await sleep(50);
      progress?.close();
      first.unsubscribe();
    });
    const t0 = Date.now();
    const { executionId } = await startExecution(store, {
      definition: definition(`unrecorded-start-${id}`),
      input: {},
      correlationId: newId(),
    });
    while (requests.length === 0) await sleep(20);
    const second = worker('second', async (req, progress, respond) => {
      progress?.tell('started');
      await sleep(50);
      respond({ task_id: `task-of-${req.idempotency_key}`, status: 'completed', result: { text: 'asked again' } });
    });
    try {
      const state = await waitForExecution(store, executionId, 20_000);
      const took = Date.now() - t0;
      assert.equal(state.status, 'completed', JSON.stringify(state));
      assert.deepEqual(state.outputs, { answer: 'asked again' });
      assert.deepEqual(
        requests.map((r) => r.worker),
        ['first', 'second'],
      );
      assert.equal(requests[1]!.idempotency_key, requests[0]!.idempotency_key);
      const steps = (await executionEvents(store, executionId)).map((e) => e.type).filter((t) => t.startsWith('Step'));
      assert.deepEqual(
        steps,
        ['StepScheduled', 'StepDispatched', 'StepQueued', 'StepSucceeded'],
        'no StepStarted got in',
      );
      assert.ok(took < 10_000, `completed ${took} ms after the start, not after the ten-minute queue budget`);
    } finally {
      failStepStarted = false;
      second.unsubscribe();
    }
  });

  it('the worker dies while the call runs: the call goes again under the same key before its timeout, and completes', async () => {
    requests.length = 0;
    const { executionId } = await takenByADyingWorker(`running-died-${id}`);
    const second = worker('second', async (req, _progress, respond) => {
      respond({ task_id: `task-of-${req.idempotency_key}`, status: 'completed', result: { text: 'picked up' } });
    });
    try {
      const state = await waitForExecution(store, executionId, 15_000);
      assert.equal(state.status, 'completed', JSON.stringify(state));
      assert.deepEqual(state.outputs, { answer: 'picked up' });
      assert.deepEqual(
        requests.map((r) => r.worker),
        ['first', 'second'],
      );
      assert.equal(requests[1]!.idempotency_key, requests[0]!.idempotency_key);
      const steps = (await executionEvents(store, executionId)).map((e) => e.type).filter((t) => t.startsWith('Step'));
      assert.ok(!steps.includes('StepTimedOut'), `ended long before its 20 s timeout: ${steps.join(',')}`);
    } finally {
      second.unsubscribe();
    }
  });

  it('a worker whose call runs long says so every heartbeat (`running`): no re-send, and no new state recorded', async () => {
    requests.length = 0;
    notices.length = 0;
    const resendsBefore = engine.stats().resends;
    const w = worker('long', async (req, _progress, respond) => {
      tap(() => req.progress_subject);
      await sleep(3 * SILENCE_MS);
      respond({ task_id: `task-of-${req.idempotency_key}`, status: 'completed', result: { text: 'long work' } });
    });
    try {
      const { executionId } = await startExecution(store, {
        definition: definition(`long-${id}`, 20_000),
        input: {},
        correlationId: newId(),
      });
      const state = await waitForExecution(store, executionId, 20_000);
      assert.equal(state.status, 'completed', JSON.stringify(state));
      assert.equal(requests.length, 1, `sent once: ${JSON.stringify(requests)}`);
      assert.equal(engine.stats().resends, resendsBefore);
      assert.ok(
        notices.some((n) => n.state === 'running'),
        'heartbeats said running',
      );
      const steps = (await executionEvents(store, executionId)).map((e) => e.type).filter((t) => t.startsWith('Step'));
      assert.deepEqual(steps, ['StepScheduled', 'StepDispatched', 'StepSucceeded'], 'heartbeats record nothing');
    } finally {
      w.unsubscribe();
    }
  });

  it('a silent call whose attempt timed out and whose execution then completed on a retry is not sent again', async () => {
    requests.length = 0;
    // The first worker takes attempt 1 and freezes (no notice, no answer); the next takes the rest.
    const frozen: Subscription = worker('frozen', async () => {
      frozen.unsubscribe();
    });
    let live: Subscription | undefined;
    try {
      const { executionId } = await startExecution(store, {
        definition: {
          ...definition(`ended-silent-${id}`),
          steps: [
            {
              id: 'answer',
              uses: 'agent:support_response',
              with: { query: 'where is my order' },
              // Times out before its worker counts as silent, so the retry ends the execution first.
              timeout_ms: 600,
              retry: { attempts: 2, backoff: { initialMs: 50, factor: 1, maxMs: 50, jitter: 0 } },
            },
          ],
        },
        input: {},
        correlationId: newId(),
      });
      while (requests.length === 0) await sleep(5);
      live = worker('live', async (req, _progress, respond) => {
        respond({ task_id: `task-of-${req.idempotency_key}`, status: 'completed', result: { text: 'on the retry' } });
      });
      const state = await waitForExecution(store, executionId, 15_000);
      assert.equal(state.status, 'completed', JSON.stringify(state));
      assert.deepEqual(state.outputs, { answer: 'on the retry' });
      // Past the silence limit of attempt 1 twice over: it would have been sent again by now.
      await sleep(2 * SILENCE_MS + 500);
      const firstKey = requests[0]!.idempotency_key;
      assert.deepEqual(
        requests.map((r) => [r.worker, r.idempotency_key === firstKey ? 'attempt 1' : 'attempt 2']),
        [
          ['frozen', 'attempt 1'],
          ['live', 'attempt 2'],
        ],
        'attempt 1 is not sent again once the execution ended',
      );
    } finally {
      live?.unsubscribe();
    }
  });

  it('a silent call of an execution canceled meanwhile is not sent again (its effect would land after the undo)', async () => {
    requests.length = 0;
    const { executionId } = await takenByADyingWorker(`canceled-silent-${id}`);
    await cancelExecution(store, executionId, { reason: 'changed my mind', correlationId: newId() });
    const second = worker('second', async (req, _progress, respond) => {
      respond({ task_id: `task-of-${req.idempotency_key}`, status: 'completed', result: { text: 'too late' } });
    });
    try {
      await sleep(3 * SILENCE_MS);
      assert.deepEqual(
        requests.map((r) => r.worker),
        ['first'],
        'not sent to the worker in its place',
      );
    } finally {
      second.unsubscribe();
    }
  });
});

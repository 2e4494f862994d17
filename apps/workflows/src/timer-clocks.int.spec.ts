import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AppError, createLogger, newId, type Logger } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import type { TimerAction, WorkflowDefinitionInput, WorkflowExecutionState } from '@switchyard/domain';
import {
  ensureWorkflowSchema,
  executionEvents,
  startExecution,
  waitForExecution,
  WORKFLOW_SCHEMA,
} from '@switchyard/workflow-executions';
import { WorkflowEngine } from './engine.js';
import { Responders, TEST_ENGINE_TIMINGS } from './test-responders.js';
import { armTimerRows, claimDueTimers } from './timers.js';

const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A logger that keeps the messages of its children's warnings (the engine logs through a child). */
function warningsLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger = createLogger('workflow-timer-clocks-int', process.env.LOG_LEVEL ?? 'silent');
  const child = logger.child.bind(logger);
  logger.child = ((bindings: Record<string, unknown>) => {
    const c = child(bindings);
    const warn = c.warn.bind(c);
    c.warn = (obj: unknown, msg?: string) => {
      warnings.push(String(msg ?? obj));
      warn(obj as object, msg);
    };
    return c;
  }) as unknown as typeof logger.child;
  return { logger, warnings };
}

/** An engine, its store and its responders over one fresh database; `wallClock` is the engine's. */
async function engineOn(
  url: string,
  logger: Logger,
  wallClock?: () => number,
): Promise<{
  pool: pg.Pool;
  store: PostgresEventStore;
  engine: WorkflowEngine;
  responders: Responders;
  server: string;
  close: () => Promise<void>;
}> {
  const server = `c${newId().slice(0, 6)}`;
  const subjects = {
    mcpPrefix: `test.wfclock.${server}.mcp`,
    tasks: `test.wfclock.${server}.tasks.execute`,
    tasksCancel: `test.wfclock.${server}.tasks.cancel`,
  };
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  const store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
  await store.init();
  const nc: NatsConnection = await connect({ servers: await testNatsUrl() });
  const responders = await new Responders(nc, logger).start([server], {
    mcpPrefix: subjects.mcpPrefix,
    tasksSubject: subjects.tasks,
    tasksCancelSubject: subjects.tasksCancel,
  });
  const engine = new WorkflowEngine({
    store,
    pool,
    nats: nc,
    logger,
    databaseUrl: url,
    ...TEST_ENGINE_TIMINGS,
    recoveryIntervalMs: 60_000,
    subjects,
    ...(wallClock ? { wallClock } : {}),
  });
  await engine.start();
  return {
    pool,
    store,
    engine,
    responders,
    server,
    close: async () => {
      await engine.stop();
      await responders.stop();
      await nc.close();
      await store.close();
      await pool.end();
    },
  };
}

/**
 * A fresh database whose PostgreSQL clock can be moved: every session resolves now() to
 * clockskew.now() (pg_catalog last in the database's search_path), pg_catalog.now() plus the
 * skew held in a table. `skew(ms)` moves it for every session at once.
 */
async function skewedDatabase(
  prefix: string,
): Promise<{ url: string; skew: (ms: number) => Promise<void>; end: () => Promise<void> }> {
  const url = await freshDatabase(prefix);
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  const db = (await admin.query<{ d: string }>('select current_database() as d')).rows[0]!.d;
  await admin.query(`create schema clockskew;
    create table clockskew.skew (ms double precision not null);
    insert into clockskew.skew values (0);
    create function clockskew.now() returns timestamptz stable language sql
      as $$ select pg_catalog.now() + make_interval(secs => (select ms from clockskew.skew) / 1000) $$;
    alter database "${db}" set search_path = "$user", public, clockskew, pg_catalog`);
  return {
    url,
    skew: async (ms) => {
      await admin.query('update clockskew.skew set ms = $1', [ms]);
      const check = new pg.Client({ connectionString: url });
      await check.connect();
      const by = (await check.query<{ s: number }>('select extract(epoch from now()) * 1000 - $1 as s', [Date.now()]))
        .rows[0]!.s;
      await check.end();
      assert.ok(Math.abs(by - ms) < 60_000, `PostgreSQL's now() is ${ms} ms off (${by} ms)`);
    },
    end: () => admin.end(),
  };
}

const waitStep = (timeoutMs: number): WorkflowDefinitionInput => ({
  id: 'clock_wait',
  version: 1,
  name: 'wait',
  steps: [{ id: 'gate', wait: { signal: 'go', timeout_ms: timeoutMs } }],
});

describe('durable timers are due by the engine clock, not PostgreSQL clock', () => {
  let pool: pg.Pool;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('wf_timer_claims'), max: 2 });
    await ensureWorkflowSchema(pool);
  });

  after(async () => {
    await pool?.end();
  });

  const timer = (stepId: string, dueAt: number): TimerAction => ({
    kind: 'retry',
    dueAt: new Date(dueAt).toISOString(),
    command: {
      type: 'RetryStep',
      data: { stepId, attempt: 2 },
      metadata: { timestamp: new Date(dueAt).toISOString(), actor: 'test', correlationId: 'c' },
    },
  });

  for (const [partition, skew] of [
    [7, -2 * HOUR],
    [8, 2 * HOUR],
  ] as const) {
    it(`claims a timer when the engine clock says, with the engine clock ${skew / HOUR} h from PostgreSQL's`, async () => {
      const engineNow = Date.now() + skew;
      const id = newId();
      // No engine polls this database.
      await armTimerRows(pool, id, partition, [timer('s', engineNow + 60_000)]);
      assert.deepEqual(await claimDueTimers(pool, [partition], 10, engineNow), [], 'due in 60 s by the engine clock');
      assert.deepEqual(await claimDueTimers(pool, [partition], 10, engineNow + 59_000), []);
      const claimed = await claimDueTimers(pool, [partition], 10, engineNow + 60_000);
      assert.deepEqual(
        claimed.map((c) => c.execution_id),
        [id],
      );
      // The lease is by the engine clock as well.
      assert.equal(claimed[0]!.lease.getTime(), engineNow + 60_000 + 30_000);
    });
  }
});

describe('an engine against a PostgreSQL whose clock is ahead or behind', () => {
  let e: Awaited<ReturnType<typeof engineOn>>;
  let db: Awaited<ReturnType<typeof skewedDatabase>>;

  before(async () => {
    // PostgreSQL's clock is moved, the engine's own stays true.
    db = await skewedDatabase('wf_timer_skew');
    e = await engineOn(db.url, createLogger('workflow-timer-skew-int', process.env.LOG_LEVEL ?? 'silent'));
  });

  after(async () => {
    await e?.close();
    await db?.end();
  });

  it('2 h ahead: a step timeout, a retry backoff and a wait timeout last what the definition says', async () => {
    await db.skew(2 * HOUR);
    const { responders, server, store } = e;
    responders.behaviours.set(`${server}/slow`, () => sleep(1_500).then(() => ({ done: true })));
    let flakyCalls = 0;
    responders.behaviours.set(`${server}/flaky`, () => {
      if (++flakyCalls === 1) throw new AppError('unavailable', 'flaky down');
      return { ok: true };
    });
    const started = Date.now();
    const { executionId } = await startExecution(store, {
      definition: {
        id: 'clock_skew',
        version: 1,
        name: 'skew',
        steps: [
          { id: 'slow', uses: `mcp:${server}/slow`, timeout_ms: 10_000 },
          {
            id: 'flaky',
            uses: `mcp:${server}/flaky`,
            needs: ['slow'],
            timeout_ms: 10_000,
            retry: { attempts: 2, backoff: { initialMs: 1_500, factor: 1, maxMs: 1_500, jitter: 0 } },
          },
        ],
      },
      input: {},
      correlationId: newId(),
    });
    const state = await waitForExecution(store, executionId, 20_000);
    assert.equal(
      state.status,
      'completed',
      JSON.stringify((await executionEvents(store, executionId)).map((x) => x.type)),
    );
    const flaky = responders.calls.filter((c) => c.tool === `${server}/flaky`);
    assert.equal(flaky.length, 2);
    assert.ok(flaky[1]!.at - flaky[0]!.at >= 1_400, `retry ${flaky[1]!.at - flaky[0]!.at} ms after the first attempt`);
    assert.ok(Date.now() - started >= 3_000);

    const wait = await startExecution(store, { definition: waitStep(1_500), input: {}, correlationId: newId() });
    const waitStarted = Date.now();
    const w: WorkflowExecutionState = await waitForExecution(store, wait.executionId, 10_000);
    assert.equal(w.status, 'failed');
    assert.ok(Date.now() - waitStarted >= 1_400, `the wait timed out after ${Date.now() - waitStarted} ms`);
    // Its end is not in the future.
    const end = (await executionEvents(store, wait.executionId)).at(-1)!;
    assert.ok(Date.parse(end.metadata.timestamp) <= Date.now());
  });

  it('2 h behind: a wait timeout fires when it is due, not two hours later', async () => {
    await db.skew(-2 * HOUR);
    const wait = await startExecution(e.store, { definition: waitStep(1_000), input: {}, correlationId: newId() });
    const w = await waitForExecution(e.store, wait.executionId, 10_000);
    assert.equal(w.status, 'failed');
  });
});

describe('a step of the wall clock of the host the engine and PostgreSQL run on', () => {
  let e: Awaited<ReturnType<typeof engineOn>>;
  let db: Awaited<ReturnType<typeof skewedDatabase>>;
  let offset = 0;
  let warnings: string[];
  /** The host's wall clock steps: the engine's and PostgreSQL's; the monotonic one (performance.now, setTimeout) stays true. */
  const step = async (ms: number) => {
    offset = ms;
    await db.skew(ms);
  };

  before(async () => {
    const l = warningsLogger();
    warnings = l.warnings;
    db = await skewedDatabase('wf_timer_jumps');
    e = await engineOn(db.url, l.logger, () => Date.now() + offset);
  });

  after(async () => {
    await e?.close();
    await db?.end();
  });

  const jumps = () => warnings.filter((w) => w.includes('wall clock jumped'));

  it('forward: a running step and a wait keep their time; the step completes, the wait times out on time', async () => {
    await step(0);
    const { responders, server, store } = e;
    responders.behaviours.set(`${server}/work`, () => sleep(2_000).then(() => ({ done: true })));
    const started = Date.now();
    const run = await startExecution(store, {
      definition: {
        id: 'clock_fwd',
        version: 1,
        name: 'fwd',
        steps: [{ id: 'work', uses: `mcp:${server}/work`, timeout_ms: 4_000 }],
      },
      input: {},
      correlationId: newId(),
    });
    const wait = await startExecution(store, { definition: waitStep(3_000), input: {}, correlationId: newId() });
    await until('the step call', () => responders.calls.some((c) => c.tool === `${server}/work`));
    await sleep(300);
    const before = jumps().length;
    await step(HOUR); // a resumed VM, an NTP step
    const r = await waitForExecution(store, run.executionId, 10_000);
    assert.equal(
      r.status,
      'completed',
      JSON.stringify((await executionEvents(store, run.executionId)).map((x) => x.type)),
    );
    const w = await waitForExecution(store, wait.executionId, 10_000);
    assert.equal(w.status, 'failed');
    assert.ok(Date.now() - started >= 2_900, `the 3 s wait timed out after ${Date.now() - started} ms`);
    assert.equal(jumps().length, before + 1, 'one warning for the step');
  });

  it('back: a step timeout and a wait timeout fire on time, not after the step', async () => {
    await step(0);
    const { responders, server, store } = e;
    responders.behaviours.set(`${server}/hang`, () => sleep(20_000).then(() => ({ late: true })));
    const run = await startExecution(store, {
      definition: {
        id: 'clock_back',
        version: 1,
        name: 'back',
        steps: [{ id: 'hang', uses: `mcp:${server}/hang`, timeout_ms: 1_500 }],
      },
      input: {},
      correlationId: newId(),
    });
    const wait = await startExecution(store, { definition: waitStep(2_000), input: {}, correlationId: newId() });
    await until('the step call', () => responders.calls.some((c) => c.tool === `${server}/hang`));
    await sleep(300);
    await step(-HOUR); // an NTP correction of a clock that ran an hour fast
    const r = await waitForExecution(store, run.executionId, 8_000);
    assert.equal(r.status, 'failed');
    const timedOut = (await executionEvents(store, run.executionId)).find((x) => x.type === 'StepTimedOut');
    assert.ok(timedOut, 'the step timed out');
    const w = await waitForExecution(store, wait.executionId, 8_000);
    assert.equal(w.status, 'failed');
  });

  it('forward then back: a step timeout and a wait timeout armed before both steps fire on time', async () => {
    await step(0);
    const { responders, server, store } = e;
    responders.behaviours.set(`${server}/stuck`, () => sleep(20_000).then(() => ({ late: true })));
    const started = Date.now();
    const run = await startExecution(store, {
      definition: {
        id: 'clock_fwd_back',
        version: 1,
        name: 'fwd-back',
        steps: [{ id: 'stuck', uses: `mcp:${server}/stuck`, timeout_ms: 3_500 }],
      },
      input: {},
      correlationId: newId(),
    });
    const wait = await startExecution(store, { definition: waitStep(4_000), input: {}, correlationId: newId() });
    await until('the step call', () => responders.calls.some((c) => c.tool === `${server}/stuck`));
    // Armed before the step (its row written): a timer decided before a step but armed after it takes
    // its deadline from the stepped clock.
    await until(
      'the wait timer',
      async () =>
        (await e.pool.query(`select 1 from ${WORKFLOW_SCHEMA}.timers where execution_id = $1`, [wait.executionId]))
          .rowCount === 1,
    );
    await step(HOUR);
    // Long enough for the poller to claim both rows (due by the wall clock) before their deadline
    // and for the step timeout to be written while the clock is ahead.
    await sleep(1_500);
    await step(0); // the correction of the wrong step
    const r = await waitForExecution(store, run.executionId, 10_000);
    assert.equal(r.status, 'failed');
    assert.ok(
      (await executionEvents(store, run.executionId)).some((x) => x.type === 'StepTimedOut'),
      'the step timed out',
    );
    const w = await waitForExecution(store, wait.executionId, 10_000);
    assert.equal(w.status, 'failed');
    assert.ok(Date.now() - started >= 3_900, `the 4 s wait timed out after ${Date.now() - started} ms`);
  });
});

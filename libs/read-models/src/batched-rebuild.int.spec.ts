import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore, type NewEvent, type RecordedEvent } from '@switchyard/event-store';
import { ProjectionRunner } from './projection-runner.js';
import type { Projection } from './projection.js';
import { freshDatabase } from '@switchyard/testing';
import { delegationProjections } from './delegation.js';
import { statusProjections } from './status/index.js';
import { workflowExecutionsProjection } from './workflow-executions.js';

const logger = createLogger('batched-rebuild-int', process.env.LOG_LEVEL ?? 'silent');

/** Every table the four projections write, with the order that makes a dump comparable. */
const TABLES = [
  'read_models.workflow_executions',
  'read_models.workflow_steps',
  'read_models.workflow_step_attempts',
  'delegation.tasks',
  'delegation.agent_performance',
  'delegation.task_latency',
  'status.mcp_servers',
  'status.mcp_minutes',
];

const projections = (): Projection[] => [
  workflowExecutionsProjection,
  ...delegationProjections(),
  ...statusProjections(),
];
/** The same projections through `apply`, one event at a time, as before any `applyBatch` existed. */
const perEvent = (): Projection[] => projections().map((p) => ({ ...p, applyBatch: undefined }));

/** Executions of the generated log with the rarer step events (waits, items, compensations, retries). */
const VARIED_EXECUTIONS = 24;

/** The errors tasks of the generated log fail with: in turn the agent's and the caller's (isCallerError). */
const FAILURES: ((n: number) => { code: string; message: string; details?: Record<string, unknown> })[] = [
  (n) => ({ code: 'x', message: `no ${n}` }),
  (n) => ({ code: 'not_found', message: `customer ${n} not found` }),
  (n) => ({ code: 'internal', message: `threw on ${n}`, details: { reason: 'handler_error' } }),
  (n) => ({ code: 'illegal_state', message: `no active subscription ${n}` }),
  (n) => ({ code: 'validation', message: `result of ${n} not recorded`, details: { reason: 'result_unrecordable' } }),
  (n) => ({ code: 'validation', message: `invalid context ${n}` }),
];

/** A small deterministic PRNG (mulberry32), so a failure can be replayed with the same log. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A log of a few thousand events, interleaved across streams as live traffic is: workflow
 * executions (succeeding, failing, retried), tasks through every status (queued, retried,
 * failed, canceled, timed out, a repeated submission), MCP calls over 3.2 hours of event time
 * with late and out-of-order `at`s (so the minute retention runs mid-batch and old minutes
 * open again), every outcome, breaker and health transitions.
 */
function generateLog(seed: number): { stream: string; event: NewEvent }[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const t0 = Date.parse('2026-01-01T00:00:00.000Z');
  const iso = (ms: number) => new Date(ms).toISOString();
  // Several open "threads" of events, each a stream's sequence; the log takes their heads at random.
  const threads: { stream: string; events: NewEvent[] }[] = [];
  let seq = 0;
  const meta = (ts: number) => ({ correlationId: `c-${++seq}`, actor: 'test', timestamp: iso(ts) });
  const ev = (type: string, data: Record<string, unknown>, ts: number): NewEvent => ({
    type,
    data,
    metadata: meta(ts),
  });

  for (let n = 0; n < 100; n++) {
    const start = t0 + n * 60_000;
    const id = `wf-${n}`;
    const steps = ['fetch', 'analyze'];
    const definition = {
      id: `def${n % 3}`,
      version: 1,
      name: `Definition ${n % 3}`,
      steps: [
        { id: 'fetch', uses: 'mcp:database/query', with: { q: 'select 1' } },
        { id: 'analyze', uses: 'agent:data_analyst', needs: ['fetch'], with: {} },
      ],
    };
    const events: NewEvent[] = [
      ev('WorkflowStarted', { executionId: id, definition, input: { n }, seed: n, startedAt: iso(start) }, start),
    ];
    let failed = false;
    for (const [i, stepId] of steps.entries()) {
      const attempts = rand() < 0.2 ? 2 : 1;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        const at = start + i * 1000 + attempt * 100;
        const key = `${id}:${stepId}:${attempt}`;
        events.push(
          ev(
            'StepScheduled',
            {
              stepId,
              attempt,
              idempotencyKey: key,
              uses: definition.steps[i]!.uses,
              input: { n },
              timeoutMs: 30_000,
              scheduledAt: iso(at),
            },
            at,
          ),
        );
        events.push(
          ev(
            'StepDispatched',
            { stepId, attempt, idempotencyKey: key, dispatchedAt: iso(at + 3), timeoutAt: iso(at + 30_003) },
            at + 3,
          ),
        );
        if (attempt < attempts) {
          events.push(
            ev(
              'StepFailed',
              { stepId, attempt, error: { code: 'unavailable', message: 'try again' }, final: false, at: iso(at + 40) },
              at + 40,
            ),
          );
          events.push(
            ev(
              'StepRetryScheduled',
              {
                stepId,
                attempt: attempt + 1,
                dueAt: iso(at + 90),
                error: { code: 'unavailable', message: 'try again' },
              },
              at + 41,
            ),
          );
        } else if (n % 9 === 4 && i === 1) {
          events.push(
            ev(
              'StepFailed',
              { stepId, attempt, error: { code: 'bad', message: 'no' }, final: true, at: iso(at + 50) },
              at + 50,
            ),
          );
          failed = true;
        } else {
          events.push(
            ev(
              'StepSucceeded',
              { stepId, attempt, output: { v: n, s: stepId }, at: iso(at + 20 + Math.floor(rand() * 300)) },
              at + 60,
            ),
          );
        }
      }
    }
    if (n % 11 === 5) {
      // Types the batch path sends statement by statement (the execution is not folded).
      events.push(
        ev(
          'ExecutionCancelRequested',
          { reason: 'operator', actor: 'test', requestedAt: iso(start + 4000) },
          start + 4000,
        ),
      );
      events.push(ev('WorkflowCanceled', { reason: 'operator', canceledAt: iso(start + 4500) }, start + 4500));
    } else
      events.push(
        failed
          ? ev(
              'WorkflowFailed',
              {
                reason: 'step_failed',
                stepId: 'analyze',
                error: { code: 'bad', message: 'no' },
                failedAt: iso(start + 5000),
              },
              start + 5000,
            )
          : ev('WorkflowCompleted', { outputs: { analyze: { v: n } }, completedAt: iso(start + 5000) }, start + 5000),
      );
    threads.push({ stream: `workflow_execution-${id}`, events });
  }

  // Executions with every other kind of step event: a wait, a for_each with items that queue,
  // start, time out and are sent again, a skipped step, a compensation, a fork's copied output,
  // a retry of the failed execution. Several touch the same step row in a row (the items).
  for (let n = 0; n < VARIED_EXECUTIONS; n++) {
    const start = t0 + 30_000 + n * 60_000;
    const id = `wv-${n}`;
    const at = (ms: number) => iso(start + ms);
    const definition = {
      id: 'varied',
      version: 2,
      name: 'Varied',
      steps: [
        { id: 'gate', wait: { signal: 'go' } },
        { id: 'each', uses: 'mcp:fetch/get', for_each: '${input.urls}', on_error: { compensate: 'undo' } },
        { id: 'side', uses: 'agent:content_creator', if: 'false' },
        { id: 'copy', uses: 'mcp:database/query' },
        { id: 'undo', uses: 'mcp:database/query' },
      ],
    };
    const items = 2 + (n % 3);
    const unit = (stepId: string, itemIndex: number | undefined, attempt: number) => ({
      stepId,
      ...(itemIndex === undefined ? {} : { itemIndex }),
      attempt,
      idempotencyKey: `${id}:${stepId}:${itemIndex ?? '-'}:${attempt}`,
    });
    const events: NewEvent[] = [
      ev('WorkflowStarted', { executionId: id, definition, input: { n }, seed: n, startedAt: at(0) }, start),
      ev('WaitStarted', { stepId: 'gate', signal: 'go', startedAt: at(1), timeoutAt: at(60_000) }, start + 1),
      ev('StepSucceeded', { stepId: 'gate', attempt: 0, output: { signal: 'go' }, at: at(2) }, start + 2),
      ev('StepExpanded', { stepId: 'each', items: Array.from({ length: items }, (_, i) => `u${i}`) }, start + 3),
    ];
    for (let i = 0; i < items; i++) {
      const u = unit('each', i, 1);
      events.push(
        ev(
          'StepScheduled',
          { ...u, uses: 'mcp:fetch/get', input: { i }, timeoutMs: 1000, scheduledAt: at(10 + i) },
          start + 10 + i,
        ),
      );
    }
    for (let i = 0; i < items; i++) {
      const u = unit('each', i, 1);
      events.push(ev('StepDispatched', { ...u, dispatchedAt: at(20 + i), timeoutAt: at(1020 + i) }, start + 20 + i));
      events.push(ev('StepQueued', { ...u, queuedAt: at(21 + i), timeoutAt: at(5021 + i) }, start + 21 + i));
      events.push(ev('StepStarted', { ...u, startedAt: at(30 + i), timeoutAt: at(1030 + i) }, start + 30 + i));
      if (i === 0) {
        events.push(ev('StepTimedOut', { ...u, at: at(1030) }, start + 1030));
        events.push(
          ev(
            'StepFailed',
            { ...u, error: { code: 'timeout', message: 'late' }, final: false, at: at(1031) },
            start + 1031,
          ),
        );
        events.push(ev('StepRedispatched', { ...u, dispatchedAt: at(1040), timeoutAt: at(2040) }, start + 1040));
      }
      events.push(ev('StepSucceeded', { ...u, output: { i }, at: at(1100 + i) }, start + 1100 + i));
    }
    const failed = n % 2 === 1;
    events.push(
      failed
        ? ev(
            'StepFailed',
            { stepId: 'each', attempt: 1, error: { code: 'bad', message: 'an item' }, final: true, at: at(1200) },
            start + 1200,
          )
        : ev('StepSucceeded', { stepId: 'each', attempt: 1, output: ['a', 'b'], at: at(1200) }, start + 1200),
    );
    events.push(ev('StepSkipped', { stepId: 'side', reason: 'condition_false', at: at(1201) }, start + 1201));
    events.push(
      ev(
        'StepOutputCopied',
        { stepId: 'copy', output: { rows: [n] }, fromExecutionId: `wf-${n}`, revision: 3, at: at(1202) },
        start + 1202,
      ),
    );
    if (failed) {
      events.push(
        ev(
          'CompensationStarted',
          {
            stepId: 'undo',
            forStepId: 'each',
            cause: 'step_failed',
            uses: 'mcp:database/query',
            input: { undo: n },
            idempotencyKey: `${id}:undo`,
            timeoutMs: 1000,
            startedAt: at(1300),
          },
          start + 1300,
        ),
      );
      events.push(
        n % 4 === 1
          ? ev('CompensationSucceeded', { stepId: 'undo', output: { undone: true }, at: at(1400) }, start + 1400)
          : ev(
              'CompensationFailed',
              { stepId: 'undo', error: { code: 'x', message: 'y' }, at: at(1400) },
              start + 1400,
            ),
      );
      events.push(
        ev(
          'WorkflowFailed',
          { reason: 'step_failed', stepId: 'each', error: { code: 'bad', message: 'an item' }, failedAt: at(1500) },
          start + 1500,
        ),
      );
      events.push(
        ev(
          'ExecutionRetried',
          { steps: ['each', 'undo', 'each'], reason: 'again', actor: 'test', retriedAt: at(2000) },
          start + 2000,
        ),
      );
      const u = unit('each', undefined, 2);
      events.push(
        ev(
          'StepScheduled',
          { ...u, uses: 'mcp:fetch/get', input: {}, timeoutMs: 1000, scheduledAt: at(2010) },
          start + 2010,
        ),
      );
      // One retry time past the year 9999, as a backoff recorded before delays were bounded wrote
      // it: PostgreSQL refuses it as given, and the projection retried that batch for good.
      const dueAt = n % 4 === 1 ? '+033715-09-02T14:34:20.334Z' : at(2100);
      events.push(ev('StepRetryScheduled', { stepId: 'each', attempt: 3, delayMs: 50, dueAt }, start + 2011));
    } else
      events.push(ev('WorkflowCompleted', { outputs: { copy: { rows: [n] } }, completedAt: at(1500) }, start + 1500));
    threads.push({ stream: `workflow_execution-${id}`, events });
  }

  const agents = ['data_analyst', 'content_creator', 'operations_manager'];
  for (let n = 0; n < 180; n++) {
    const start = t0 + n * 45_000;
    const id = `t-${n}`;
    const agent = pick(agents);
    const base = { task_id: id };
    const events: NewEvent[] = [
      ev(
        'TaskSubmitted',
        {
          ...base,
          task_type: pick(['analyze', 'report']),
          context: { n },
          priority: pick(['low', 'normal', 'high']),
          ...(n % 4 === 0 ? { agent } : {}),
          ...(n % 5 === 0 ? { idempotency_key: `k-${n}` } : {}),
          max_attempts: 2,
          timeout_ms: 30_000,
          submitted_at: iso(start),
        },
        start,
      ),
    ];
    // A submission repeated on the same stream: `apply` ignores the second one.
    if (n % 37 === 0)
      events.push(
        ev(
          'TaskSubmitted',
          {
            ...base,
            task_type: 'other',
            context: {},
            priority: 'low',
            max_attempts: 1,
            timeout_ms: 1,
            submitted_at: iso(start + 1),
          },
          start + 1,
        ),
      );
    if (rand() < 0.3)
      events.push(ev('TaskQueued', { ...base, reason: 'no_capacity', queued_at: iso(start + 2) }, start + 2));
    const outcome = rand();
    if (outcome < 0.08) {
      events.push(ev('TaskCanceled', { ...base, reason: 'user', canceled_at: iso(start + 5) }, start + 5));
    } else {
      events.push(
        ev(
          'TaskAssigned',
          {
            ...base,
            agent,
            instance: `${agent}-1`,
            assignment: 1,
            attempt: 1,
            assigned_at: iso(start + 10),
            deadline: iso(start + 30_010),
          },
          start + 10,
        ),
      );
      events.push(
        ev('TaskStarted', { ...base, assignment: 1, instance: `${agent}-1`, started_at: iso(start + 12) }, start + 12),
      );
      if (rand() < 0.25) {
        events.push(
          ev(
            'TaskRetryScheduled',
            { ...base, attempts: 1, error: { code: 'x', message: 'again' }, retry_at: iso(start + 100) },
            start + 20,
          ),
        );
        events.push(
          ev(
            'TaskAssigned',
            {
              ...base,
              agent,
              instance: `${agent}-2`,
              assignment: 2,
              attempt: 2,
              assigned_at: iso(start + 110),
              deadline: iso(start + 30_110),
            },
            start + 110,
          ),
        );
      }
      const end = rand();
      const d = Math.floor(rand() * 900) + 0.4;
      if (end < 0.1)
        events.push(
          ev(
            'TaskTimedOut',
            { ...base, agent, task_type: 'analyze', timed_out_at: iso(start + 30_000) },
            start + 30_000,
          ),
        );
      else if (end < 0.25)
        events.push(
          ev(
            'TaskFailed',
            {
              ...base,
              task_type: 'analyze',
              agent,
              instance: `${agent}-1`,
              assignment: 1,
              attempts: 2,
              // The agent's failures and the caller's (counted apart), the system's own refusal among the first.
              error: FAILURES[n % FAILURES.length]!(n),
              duration_ms: d,
              failed_at: iso(start + 200),
            },
            start + 200,
          ),
        );
      else
        events.push(
          ev(
            'TaskCompleted',
            {
              ...base,
              task_type: 'analyze',
              agent,
              instance: `${agent}-1`,
              assignment: 1,
              result: { n },
              duration_ms: d,
              completed_at: iso(start + 150),
            },
            start + 150,
          ),
        );
    }
    threads.push({ stream: `task-${id}`, events });
  }

  // MCP calls: one thread per server, 3.2 h of event time, `at`s out of order by up to 3 minutes.
  const servers = ['database', 'fetch', 'automation'];
  for (const server of servers) {
    const events: NewEvent[] = [];
    let clock = t0;
    for (let k = 0; k < 260; k++) {
      clock += 40_000 + Math.floor(rand() * 10_000);
      const at = clock - Math.floor(rand() * 180_000);
      const call = { server, tool: 'query', call_id: `${server}-${k}` };
      events.push(
        ev('McpToolCalled', { ...call, arguments: { value: {}, size: 2, truncated: false }, at: iso(at) }, clock),
      );
      const r = rand();
      const duration = Math.floor(rand() * 2_000);
      if (r < 0.75) {
        events.push(
          ev(
            'McpToolSucceeded',
            {
              ...call,
              duration_ms: duration,
              outcome: 'success',
              attempts: 1,
              result: { value: 1, size: 1, truncated: false },
              at: iso(at + duration),
            },
            clock + 1,
          ),
        );
      } else {
        const outcome = pick(['error', 'tool_error', 'rejected', 'timeout']);
        events.push(
          ev(
            'McpToolFailed',
            {
              ...call,
              duration_ms: outcome === 'rejected' ? 0 : duration,
              outcome,
              error_code: outcome === 'tool_error' ? 'tool_error' : 'unavailable',
              ...(k % 3 === 0 ? {} : { error_message: `boom ${k}` }),
              attempts: 1,
              at: iso(at + duration),
            },
            clock + 1,
          ),
        );
      }
      const t = rand();
      if (t < 0.03)
        events.push(ev('McpCircuitOpened', { server, last_error: `open ${k}`, at: iso(clock + 2) }, clock + 2));
      else if (t < 0.05) events.push(ev('McpCircuitHalfOpened', { server, at: iso(clock + 2) }, clock + 2));
      else if (t < 0.07) events.push(ev('McpCircuitClosed', { server, at: iso(clock + 2) }, clock + 2));
      else if (t < 0.085)
        events.push(ev('McpServerWentDown', { server, error: `down ${k}`, at: iso(clock + 2) }, clock + 2));
      else if (t < 0.1) events.push(ev('McpServerRecovered', { server, at: iso(clock + 2) }, clock + 2));
    }
    threads.push({ stream: `mcpserver-${server}`, events });
  }
  // A server known only from its breaker and health events.
  threads.push({
    stream: 'mcpserver-github',
    events: [
      ev('McpServerWentDown', { server: 'github', error: 'unconfigured', at: iso(t0 + 5) }, t0 + 5),
      ev('McpCircuitOpened', { server: 'github', last_error: 'unconfigured', at: iso(t0 + 6) }, t0 + 6),
    ],
  });

  // Interleave: each step takes the next event of a random thread (a stream keeps its own order).
  const log: { stream: string; event: NewEvent }[] = [];
  const open = threads.map((t) => ({ ...t, i: 0 }));
  while (open.length > 0) {
    const k = Math.floor(rand() * open.length);
    const t = open[k]!;
    log.push({ stream: t.stream, event: t.events[t.i++]! });
    if (t.i >= t.events.length) open.splice(k, 1);
  }
  return log;
}

async function dump(url: string): Promise<Record<string, string[]>> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    const out: Record<string, string[]> = {};
    // The record's text form keeps what JSON would lose (an int[]'s lower bound, timestamp precision).
    for (const t of TABLES)
      out[t] = (await pool.query<{ r: string }>(`select x::text as r from ${t} x order by 1`)).rows.map((r) => r.r);
    return out;
  } finally {
    await pool.end();
  }
}

describe('batched projections give the read models of the per-event (live) path (real PostgreSQL)', () => {
  let storePool: pg.Pool;
  let store: PostgresEventStore;
  let live: ProjectionRunner;
  let liveUrl: string;
  let head = -1;

  before(async () => {
    storePool = new pg.Pool({ connectionString: await freshDatabase('batched_store'), max: 6 });
    store = new PostgresEventStore({ pool: storePool, logger });
    await store.init();
    // The live path: `apply` event by event, tailing while the log is written.
    liveUrl = await freshDatabase('batched_live');
    live = new ProjectionRunner({ store, db: { connectionString: liveUrl }, projections: perEvent(), logger });
    await live.start();
    const log = generateLog(20261203);
    // Written in windows of 40 events: each stream's events of a window as one append, the
    // window's appends at once (the store commits them together); a stream keeps its order.
    for (let i = 0; i < log.length; i += 40) {
      const streams = new Map<string, NewEvent[]>();
      for (const { stream, event } of log.slice(i, i + 40))
        streams.set(stream, [...(streams.get(stream) ?? []), event]);
      const results = await Promise.all([...streams].map(([stream, events]) => store.append(stream, events)));
      head = Math.max(head, ...results.map((r) => r.position));
    }
    assert.ok(log.length >= 2500, `a log of a few thousand events (${log.length})`);
    await live.waitFor(head, undefined, 120_000);
  });

  after(async () => {
    await live?.stop();
    await store?.close();
    await storePool?.end();
  });

  it('a rebuild in batches (500, 40, and 7 so rows span batches) equals the live read models, table by table', async () => {
    const expected = await dump(liveUrl);
    assert.ok(
      expected['delegation.tasks']!.length === 180 &&
        expected['read_models.workflow_executions']!.length === 100 + VARIED_EXECUTIONS,
    );
    assert.ok(expected['status.mcp_minutes']!.length > 100, 'minute rows survive the retention');
    // Tasks that completed after a retry keep no error (the batches below must leave the same).
    const errors = new pg.Pool({ connectionString: liveUrl, max: 1 });
    try {
      const { rows } = await errors.query<{ retried: number; with_error: number }>(
        `select count(*) filter (where attempts > 0)::int as retried, count(*) filter (where error is not null)::int as with_error
           from delegation.tasks where status = 'completed'`,
      );
      assert.ok(rows[0]!.retried > 0, 'some completed tasks were retried first');
      assert.equal(rows[0]!.with_error, 0, 'a completed task has no error');
    } finally {
      await errors.end();
    }
    // Both kinds of failure were counted, each in its own column (failed, caller_errors after timed_out).
    const performance = expected['delegation.agent_performance']!.map((r) => r.slice(1, -1).split(','));
    assert.ok(
      performance.some((r) => Number(r[3]) > 0) && performance.some((r) => Number(r[5]) > 0),
      performance.join(' | '),
    );
    assert.ok(
      expected['read_models.workflow_steps']!.some((r) => r.includes('9999-12-31')),
      'a retry time past the year 9999 is kept as the last one PostgreSQL takes',
    );
    assert.ok(
      expected['status.mcp_minutes']!.some((r) => /\[\d+:\d+\]=/.test(r)),
      'histograms with their own lower bound',
    );
    // 500: the catch-up path (whole executions folded); 40 and 7: live-sized batches.
    for (const batchSize of [500, 40, 7]) {
      const url = await freshDatabase(`batched_${batchSize}`);
      const runner = new ProjectionRunner({
        store,
        db: { connectionString: url },
        projections: projections(),
        logger,
        batchSize,
      });
      await runner.start();
      await runner.waitFor(head, undefined, 120_000);
      const first = await dump(url);
      // A rebuild (reset, replay from -1) over the same database gives the same rows again.
      for (const p of projections()) await runner.rebuild(p.name);
      await runner.waitFor(head, undefined, 120_000);
      const again = await dump(url);
      await runner.stop();
      for (const t of TABLES) {
        assert.deepEqual(first[t], expected[t], `${t}: batches of ${batchSize} vs live`);
        assert.deepEqual(again[t], expected[t], `${t}: rebuilt in batches of ${batchSize} vs live`);
      }
    }
  });

  for (const [how, size] of [
    ['applyBatch', 300],
    ['batchStatement', 30],
  ] as const) {
    it(`a batch applied again (${how}, ${size} events) after its transaction rolled back leaves the same rows`, async () => {
      // Replay after a crash: the batch's transaction never committed, so its events come again.
      // What the first try prepared on the connection outlives its rollback: the replay reuses it.
      const url = await freshDatabase(`batched_replay_${size}`);
      const runner = new ProjectionRunner({
        store,
        db: { connectionString: url },
        projections: projections(),
        logger,
        batchSize: size,
      });
      await runner.migrate();
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      try {
        const events = await store.readAll({ maxCount: 100_000 });
        const c = await pool.connect();
        const apply = async (p: Projection, batch: readonly RecordedEvent[]) => {
          if (how === 'applyBatch' || !p.batchStatement) await p.applyBatch!(c, batch);
          else {
            const statement = p.batchStatement(batch);
            if (statement) await c.query(statement.text, [...statement.values]);
          }
        };
        try {
          for (const p of projections()) {
            const mine = events.filter(
              (e) => p.handles.includes(e.type) && (p.streamPrefixes ?? []).some((x) => e.streamId.startsWith(x)),
            );
            for (let i = 0; i < mine.length; i += size) {
              const batch = mine.slice(i, i + size);
              await c.query('begin');
              await apply(p, batch);
              await c.query('rollback');
              await c.query('begin');
              await apply(p, batch);
              await c.query('commit');
            }
          }
        } finally {
          c.release();
        }
      } finally {
        await pool.end();
      }
      const got = await dump(url);
      const expected = await dump(liveUrl);
      for (const t of TABLES) assert.deepEqual(got[t], expected[t], `${t}: replayed batches vs live`);
    });
  }

  it('agent_performance of the first version (caller errors counted as failures) is emptied once and replayed by the new rule', async () => {
    // A database as the first version left it: its table without caller_errors, its figures, its checkpoint.
    const url = await freshDatabase('batched_performance_v1');
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await pool.query(`create schema delegation;
        create table delegation.agent_performance (agent text primary key, tasks_done int not null default 0,
          succeeded int not null default 0, failed int not null default 0, timed_out int not null default 0,
          last_task_at timestamptz);
        insert into delegation.agent_performance values ('analyst', 999, 1, 998, 0, now());
        create schema if not exists read_models;
        create table read_models.checkpoints (name text primary key, position bigint not null,
          updated_at timestamptz not null default now());
        insert into read_models.checkpoints (name, position) values ('delegation.agent_performance', ${head})`);
      const runner = new ProjectionRunner({ store, db: { connectionString: url }, projections: projections(), logger });
      await runner.start();
      await runner.waitFor(head, undefined, 120_000);
      await runner.stop();
      const rows = async (u: string) => {
        const p = new pg.Pool({ connectionString: u, max: 1 });
        try {
          return (
            await p.query(
              `select agent, tasks_done, succeeded, failed, timed_out, caller_errors, last_task_at from delegation.agent_performance order by agent`,
            )
          ).rows;
        } finally {
          await p.end();
        }
      };
      assert.deepEqual(await rows(url), await rows(liveUrl));
      // Started again, the table keeps its figures (the emptying is for the first version's only).
      const again = new ProjectionRunner({ store, db: { connectionString: url }, projections: projections(), logger });
      await again.start();
      await again.waitFor(head, undefined, 120_000);
      await again.stop();
      assert.deepEqual(await rows(url), await rows(liveUrl));
    } finally {
      await pool.end();
    }
  });

  /** A fresh database with the read models' tables, the tasks projection and the log's task events. */
  async function tasksModelOnly(name: string) {
    const url = await freshDatabase(name);
    await new ProjectionRunner({ store, db: { connectionString: url }, projections: projections(), logger }).migrate();
    const tasks = projections().find((p) => p.name === 'delegation.tasks')!;
    const mine = (await store.readAll({ maxCount: 100_000 })).filter(
      (e) => tasks.handles.includes(e.type) && e.streamId.startsWith('task-'),
    );
    return { url, pool: new pg.Pool({ connectionString: url, max: 1 }), tasks, mine };
  }

  it('the tasks projection given batches whose tasks have rows already (their TaskSubmitted applied before) leaves the rows of the live path', async () => {
    // A task's row that exists when a batch with its TaskSubmitted comes: the insert keeps it and
    // the batch's updates go to it, as `apply` event by event would.
    const { pool, tasks, mine } = await tasksModelOnly('batched_tasks_twice');
    try {
      const c = await pool.connect();
      try {
        // Every task's row first, from its TaskSubmitted alone; then all events in batches.
        await tasks.applyBatch!(
          c,
          mine.filter((e) => e.type === 'TaskSubmitted'),
        );
        for (let i = 0; i < mine.length; i += 50) await tasks.applyBatch!(c, mine.slice(i, i + 50));
      } finally {
        c.release();
      }
      const got = await pool.query<{ r: string }>('select x::text as r from delegation.tasks x order by 1');
      assert.deepEqual(
        got.rows.map((r) => r.r),
        (await dump(liveUrl))['delegation.tasks'],
      );
    } finally {
      await pool.end();
    }
  });

  it('rows of the earlier rule (a completed task keeping an earlier attempt’s error) are cleared once, by the setup', async () => {
    const { url, pool } = await tasksModelOnly('batched_tasks_completed_error');
    try {
      // The table as the earlier rule left it: no comment on the column, a completed task with an error.
      const row = (id: string, status: string) =>
        pool.query(
          `insert into delegation.tasks (task_id, task_type, status, priority, submitted_at, updated_at, attempts, error)
           values ($1, 'report', $2, 'normal', now(), now(), 1, '{"code":"unavailable","message":"attempt abandoned"}')`,
          [id, status],
        );
      await pool.query('comment on column delegation.tasks.error is null');
      for (const [id, status] of [
        ['done', 'completed'],
        ['failed', 'failed'],
        ['again', 'queued'],
      ] as const)
        await row(id, status);
      const migrate = () =>
        new ProjectionRunner({ store, db: { connectionString: url }, projections: projections(), logger }).migrate();
      const errors = async () =>
        (
          await pool.query<{ task_id: string; code: string | null }>(
            `select task_id, error->>'code' as code from delegation.tasks where task_id in ('done', 'failed', 'again', 'later') order by 1`,
          )
        ).rows;
      await migrate();
      assert.deepEqual(await errors(), [
        { task_id: 'again', code: 'unavailable' },
        { task_id: 'done', code: null },
        { task_id: 'failed', code: 'unavailable' },
      ]);
      // Done once: a later start does not look again (nor would it find one; the projection writes none).
      await row('later', 'completed');
      await migrate();
      assert.equal((await errors()).find((r) => r.task_id === 'later')?.code, 'unavailable');
    } finally {
      await pool.end();
    }
  });

  it('a batch of a few tasks on a tasks table of thousands of rows looks its rows up by key, without scanning the table', async () => {
    const { url, pool, tasks, mine } = await tasksModelOnly('batched_tasks_plan');
    try {
      const c = await pool.connect();
      try {
        // A table of a few thousand rows and its statistics: large enough that scanning it for a few
        // tasks costs far more than looking them up (where a misestimated batch size turned the
        // plan into a hash join over the whole table).
        await c.query(`insert into delegation.tasks (task_id, task_type, status, priority, submitted_at, updated_at)
          select 'old-' || g, 'report', 'completed', 'normal', now(), now() from generate_series(1, 4000) g`);
        await tasks.applyBatch!(
          c,
          mine.filter((e) => e.type === 'TaskSubmitted'),
        );
        await c.query('analyze delegation.tasks');
        // The updates of a few tasks whose rows exist, counted within the transaction of a new
        // session (a session's counts of earlier statements may not be flushed yet).
        const fresh = new pg.Client({ connectionString: url });
        await fresh.connect();
        const few = mine.filter((e) => e.type !== 'TaskSubmitted').slice(0, 8);
        await fresh.query('begin');
        await tasks.applyBatch!(fresh as unknown as pg.PoolClient, few);
        const scans = await fresh.query<{ seq_scan: string; idx_scan: string }>(
          `select seq_scan, idx_scan from pg_stat_xact_user_tables where schemaname = 'delegation' and relname = 'tasks'`,
        );
        await fresh.query('rollback');
        await fresh.end();
        assert.equal(Number(scans.rows[0]?.seq_scan), 0, 'the tasks table was scanned');
        assert.ok(Number(scans.rows[0]?.idx_scan) > 0, 'the rows were looked up by key');
      } finally {
        c.release();
      }
    } finally {
      await pool.end();
    }
  });
});

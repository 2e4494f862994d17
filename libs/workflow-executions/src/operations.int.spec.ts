import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import fc from 'fast-check';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import {
  ProjectionRunner,
  attemptHistoryOf,
  executionErrorOf,
  getExecutionView,
  stepStartsOf,
  workflowExecutionsProjection,
} from '@switchyard/read-models';
import { freshDatabase } from '@switchyard/testing';
import {
  stateAt,
  workflowExecutionStream,
  type StepState,
  type UnitState,
  type WorkflowCommand,
  type WorkflowDefinitionInput,
  type WorkflowEvent,
} from '@switchyard/domain';
import { runWorkflowCommand } from './command.js';
import { EXECUTION_PAGE_MAX_CHARS, executionHistoryPage } from './operations.js';

const logger = createLogger('workflow-operations-property', process.env.LOG_LEVEL ?? 'silent');

/** a and b independent, c needs both, d needs c (with a retry policy), e runs only when a said so. */
const definition: WorkflowDefinitionInput = {
  id: 'prop',
  version: 1,
  name: 'property',
  steps: [
    { id: 'a', uses: 'mcp:database/query', with: {} },
    { id: 'b', uses: 'agent:revenue_analysis', with: {}, on_error: 'continue' },
    { id: 'c', uses: 'mcp:database/query', needs: ['a', 'b'], with: { x: '${{ steps.a.output.n }}' } },
    {
      id: 'd',
      uses: 'mcp:database/query',
      needs: ['c'],
      with: {},
      retry: { attempts: 2, backoff: { initialMs: 10, factor: 2, maxMs: 100, jitter: 0 } },
    },
    { id: 'e', uses: 'mcp:database/query', needs: ['a'], if: 'steps.a.output.n > 1', with: {} },
  ],
  outputs: { n: '${{ steps.a.output.n }}' },
};

type Op = {
  kind: 'ok' | 'fail' | 'retry_step' | 'retry_execution' | 'cancel';
  step: string;
  n: number;
  retryable: boolean;
};
const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom('ok', 'ok', 'ok', 'fail', 'retry_step', 'retry_execution', 'cancel'),
  step: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
  n: fc.integer({ min: 0, max: 3 }),
  retryable: fc.boolean(),
});

/**
 * The last attempt a unit made: one waiting for its retry, or abandoned while it waited, already
 * carries the retry's number, and made the attempt before (`retryOf`), which failed.
 */
const attemptMade = (u: UnitState): { attempt: number; status: string } =>
  u.retryOf
    ? { attempt: u.retryOf.attempt, status: u.timedOut ? 'timed_out' : 'failed' }
    : { attempt: u.attempt, status: u.phase === 'failed' && u.timedOut ? 'timed_out' : u.phase };

/**
 * Property over generated histories, through the real store and the real read-model projection:
 * the execution folded by the decider's evolve to its last revision (what `?at=` answers) says
 * what the read model says, for the execution and every step.
 */
describe('time travel at the last revision equals the read model (generated histories, real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let runner: ProjectionRunner;

  before(async () => {
    const url = await freshDatabase('wf_ops_property');
    pool = new pg.Pool({ connectionString: url, max: 5 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowExecutionsProjection], logger });
    await runner.start();
  });

  after(async () => {
    await runner?.stop();
    await store?.close();
    await pool?.end();
  });

  it('for every generated sequence of results, retries and cancels', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 14 }), async (ops) => {
        runs++;
        const id = `prop-${newId().slice(0, 12)}`;
        let clock = Date.parse('2026-01-01T00:00:00.000Z');
        const meta = (t?: string) => ({
          timestamp: t ?? new Date((clock += 1000)).toISOString(),
          actor: 'user:prop',
          correlationId: id,
        });
        let state = (
          await runWorkflowCommand(store, id, {
            type: 'StartWorkflow',
            data: { executionId: id, definition, input: {} },
            metadata: meta(),
          })
        ).state;
        for (const op of ops) {
          if (state.status === 'not_started') break;
          const unit = state.steps[op.step]?.units[0];
          let command: WorkflowCommand | undefined;
          if (op.kind === 'retry_execution') command = { type: 'RetryExecution', data: {}, metadata: meta() };
          else if (op.kind === 'cancel')
            command = { type: 'RequestCancel', data: { reason: 'prop' }, metadata: meta() };
          else if (unit && op.kind === 'retry_step' && unit.phase === 'retry_wait') {
            clock = Math.max(clock, Date.parse(unit.dueAt!));
            command = {
              type: 'RetryStep',
              data: { stepId: op.step, attempt: unit.attempt },
              metadata: meta(new Date(clock).toISOString()),
            };
          } else if (unit && op.kind === 'ok')
            command = {
              type: 'RecordStepSucceeded',
              data: { stepId: op.step, attempt: unit.attempt, output: { n: op.n } },
              metadata: meta(),
            };
          else if (unit && op.kind === 'fail') {
            command = {
              type: 'RecordStepFailed',
              data: {
                stepId: op.step,
                attempt: unit.attempt,
                error: { code: 'boom', message: 'boom', retryable: op.retryable },
              },
              metadata: meta(),
            };
          }
          if (!command) continue;
          try {
            state = (await runWorkflowCommand(store, id, command)).state;
          } catch (err) {
            // Refused commands (retry of an execution that did not fail, cancel of an ended one) change nothing.
            if (!(err as { code?: string }).code) throw err;
          }
        }
        const recorded = await store.readStream(workflowExecutionStream(id));
        const events = recorded.map((e) => ({
          revision: e.revision,
          event: { type: e.type, data: e.data, metadata: e.metadata } as unknown as WorkflowEvent,
        }));
        const folded = stateAt(events, recorded[recorded.length - 1]!.revision);
        await runner.waitFor(recorded[recorded.length - 1]!.position);
        const view = await getExecutionView(pool, id);
        // Time travel's attempt rows (every attempt of every run, from the events) are the read model's, instants included.
        const history = attemptHistoryOf(events.map((e) => e.event));
        for (const s of view!.steps)
          assert.deepEqual(history.get(s.step_id) ?? [], s.attempt_history, `attempt rows of ${s.step_id}`);
        assert.deepEqual(executionErrorOf(events.map((e) => e.event)), view!.error ?? null, 'the execution error');
        const starts = stepStartsOf(events.map((e) => e.event));
        for (const s of view!.steps)
          assert.equal(starts.get(s.step_id) ?? null, s.started_at, `started_at of ${s.step_id}`);
        assert.ok(view && folded.status !== 'not_started');
        // Without payloads: the same view, each input and output that is set read as `true`, none read.
        const set = (v: unknown) => (v === null || v === undefined ? v : true);
        assert.deepEqual(await getExecutionView(pool, id, { payloads: false }), {
          ...view,
          input: set(view.input),
          output: set(view.output),
          steps: view.steps.map((s) => ({
            ...s,
            output: set(s.output),
            attempt_history: s.attempt_history.map((a) => ({ ...a, input: set(a.input), output: set(a.output) })),
          })),
        });
        assert.equal(view.status, folded.status, 'execution status');
        for (const s of view.steps) {
          const f: StepState = folded.steps[s.step_id]!;
          assert.equal(s.status, f.status, `status of ${s.step_id}`);
          assert.deepEqual(
            s.output ?? null,
            f.status === 'succeeded' ? (f.output ?? null) : (s.output ?? null),
            `output of ${s.step_id}`,
          );
          const attempts = Math.max(0, f.attemptBase ?? 0, ...f.units.map((u) => (u ? attemptMade(u).attempt : 0)));
          assert.equal(s.attempts, attempts, `attempts of ${s.step_id}`);
        }
      }),
      { numRuns: 30 },
    );
    assert.equal(runs >= 30, true);
  });
});

describe('time travel at the last revision equals the read model: a step canceled while it waited for its retry', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let runner: ProjectionRunner;

  before(async () => {
    const url = await freshDatabase('wf_ops_retry_cancel');
    pool = new pg.Pool({ connectionString: url, max: 3 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowExecutionsProjection], logger });
    await runner.start();
  });

  after(async () => {
    await runner?.stop();
    await store?.close();
    await pool?.end();
  });

  it('one attempt made (it timed out), no attempt 2, the step failed as canceled, in both', async () => {
    const id = `retry-cancel-${newId().slice(0, 12)}`;
    const meta = (ms: number) => ({
      timestamp: new Date(Date.parse('2026-01-01T00:00:00.000Z') + ms).toISOString(),
      actor: 'user:test',
      correlationId: id,
    });
    const commands: WorkflowCommand[] = [
      {
        type: 'StartWorkflow',
        data: {
          executionId: id,
          definition: {
            id: 'retry_cancel',
            version: 1,
            name: 'retry then cancel',
            steps: [
              {
                id: 't',
                uses: 'mcp:database/query',
                timeout_ms: 300,
                retry: { attempts: 3, backoff: { initialMs: 10_000, maxMs: 10_000 } },
                with: {},
              },
            ],
          },
          input: {},
        },
        metadata: meta(0),
      },
      { type: 'RecordStepDispatched', data: { stepId: 't', attempt: 1 }, metadata: meta(10) },
      { type: 'RecordStepTimedOut', data: { stepId: 't', attempt: 1 }, metadata: meta(310) },
      { type: 'RequestCancel', data: { reason: 'no longer needed' }, metadata: meta(2_000) },
    ];
    for (const c of commands) await runWorkflowCommand(store, id, c);
    const recorded = await store.readStream(workflowExecutionStream(id));
    assert.deepEqual(
      recorded.map((e) => e.type),
      [
        'WorkflowStarted',
        'StepScheduled',
        'StepDispatched',
        'StepTimedOut',
        'StepFailed',
        'StepRetryScheduled',
        'ExecutionCancelRequested',
        'StepStopped',
        'WorkflowCanceled',
      ],
    );
    const folded = stateAt(
      recorded.map((e) => ({
        revision: e.revision,
        event: { type: e.type, data: e.data, metadata: e.metadata } as unknown as WorkflowEvent,
      })),
      recorded[recorded.length - 1]!.revision,
    );
    await runner.waitFor(recorded[recorded.length - 1]!.position);
    const view = await getExecutionView(pool, id);
    assert.ok(view && folded.status === 'canceled');
    const s = view.steps.find((x) => x.step_id === 't')!;
    const f = folded.steps.t!;
    assert.deepEqual([s.status, f.status], ['failed', 'failed']);
    const readModel = {
      attempts: s.attempts,
      history: s.attempt_history.map((a) => [a.attempt, a.status, (a.error as { code?: string }).code]),
    };
    assert.deepEqual(readModel, { attempts: 1, history: [[1, 'timed_out', 'timeout']] });
    const made = f.units.map((u) => attemptMade(u!));
    assert.deepEqual(
      {
        attempts: Math.max(0, ...made.map((m) => m.attempt)),
        history: f.units.map((u, i) => [made[i]!.attempt, made[i]!.status, u!.error?.code]),
      },
      readModel,
    );
  });
});

describe('time travel at the last revision equals the read model: a for_each whose items a cancel undid, one undo failing', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let runner: ProjectionRunner;

  before(async () => {
    const url = await freshDatabase('wf_ops_item_undo');
    pool = new pg.Pool({ connectionString: url, max: 3 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowExecutionsProjection], logger });
    await runner.start();
  });

  after(async () => {
    await runner?.stop();
    await store?.close();
    await pool?.end();
  });

  it("the undo step's run per item (kept under undo[i] in the state) is its attempt row in the read model", async () => {
    const id = `item-undo-${newId().slice(0, 12)}`;
    const meta = (ms: number) => ({
      timestamp: new Date(Date.parse('2026-01-01T00:00:00.000Z') + ms).toISOString(),
      actor: 'user:test',
      correlationId: id,
    });
    const item = (i: number) => ({ stepId: 'mk', itemIndex: i });
    const failure = { code: 'query_failed', message: 'division by zero', retryable: false };
    const commands: WorkflowCommand[] = [
      {
        type: 'StartWorkflow',
        data: {
          executionId: id,
          definition: {
            id: 'item_undo',
            version: 1,
            name: 'item undo',
            steps: [
              {
                id: 'mk',
                uses: 'mcp:database/query',
                for_each: { items: '${{ [0, 1] }}', concurrency: 2, compensate: 'undo' },
                with: { params: ['${{ item }}'] },
              },
              { id: 'hold', uses: 'mcp:database/query', needs: ['mk'], with: {} },
              { id: 'undo', uses: 'mcp:database/query', with: { params: ['${{ output.id }}'] } },
            ],
          },
          input: {},
        },
        metadata: meta(0),
      },
      ...[0, 1].map((i): WorkflowCommand => ({
        type: 'RecordStepDispatched',
        data: { ...item(i), attempt: 1 },
        metadata: meta(10),
      })),
      ...[0, 1].map((i): WorkflowCommand => ({
        type: 'RecordStepSucceeded',
        data: { ...item(i), attempt: 1, output: { id: 100 + i } },
        metadata: meta(20 + i),
      })),
      { type: 'RequestCancel', data: { reason: 'no longer needed' }, metadata: meta(1_000) },
      {
        type: 'RecordCompensationFailed',
        data: { stepId: 'undo', itemIndex: 0, error: failure },
        metadata: meta(1_100),
      },
      {
        type: 'RecordCompensationSucceeded',
        data: { stepId: 'undo', itemIndex: 1, output: { deleted: 1 } },
        metadata: meta(1_200),
      },
    ];
    for (const c of commands) await runWorkflowCommand(store, id, c);
    const recorded = await store.readStream(workflowExecutionStream(id));
    const folded = stateAt(
      recorded.map((e) => ({
        revision: e.revision,
        event: { type: e.type, data: e.data, metadata: e.metadata } as unknown as WorkflowEvent,
      })),
      recorded[recorded.length - 1]!.revision,
    );
    await runner.waitFor(recorded[recorded.length - 1]!.position);
    const view = await getExecutionView(pool, id);
    assert.ok(view && folded.status === 'canceled');
    assert.equal(view.status, 'canceled');
    const s = view.steps.find((x) => x.step_id === 'undo')!;
    assert.deepEqual(
      [s.kind, s.status, s.attempts, s.compensation_for, (s.error as { message?: string }).message],
      ['compensation', 'failed', 1, 'mk', 'division by zero'],
    );
    assert.equal(folded.compensations.undo, undefined, 'no run under the step id itself');
    const runs = Object.entries(folded.compensations)
      .filter(([, c]) => c.stepId === 'undo')
      .sort(([, a], [, b]) => a.itemIndex! - b.itemIndex!);
    assert.deepEqual(
      runs.map(([key]) => key),
      ['undo[0]', 'undo[1]'],
    );
    assert.deepEqual(
      s.attempt_history.map((a) => [a.item_index, a.attempt, a.status, a.idempotency_key, a.input, a.output, a.error]),
      runs.map(([, c]) => [c.itemIndex, 1, c.status, c.idempotencyKey, c.input, c.output ?? null, c.error ?? null]),
    );
    assert.deepEqual(
      runs.map(([, c]) => [c.forStepId, c.status]),
      [
        ['mk', 'failed'],
        ['mk', 'succeeded'],
      ],
    );
  });
});

describe("an execution's events are read a page at a time, bounded in size (real PostgreSQL)", () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;

  before(async () => {
    const url = await freshDatabase('wf_ops_pages');
    pool = new pg.Pool({ connectionString: url, max: 3 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
  });

  after(async () => {
    await store?.close();
    await pool?.end();
  });

  it('ends a page past EXECUTION_PAGE_MAX_CHARS (one event at least), and the pages together are every event once', async () => {
    const executionId = newId();
    const stream = workflowExecutionStream(executionId);
    // 12 events of about 900,000 characters each between small ones: about 11 MB in all.
    const events = Array.from({ length: 30 }, (_, i) => ({
      type: 'StepScheduled',
      data: { i, input: i % 5 === 0 || i % 5 === 2 ? 'x'.repeat(900_000) : 'small' },
      metadata: { correlationId: executionId, timestamp: new Date().toISOString() },
    }));
    await store.append(stream, events);
    const pages: number[][] = [];
    let after = -1;
    for (;;) {
      const page = await executionHistoryPage(store, executionId, { after, limit: 1_000 });
      assert.equal(page.lastRevision, 29);
      const chars = page.events.reduce((n, e) => n + JSON.stringify(e.data).length, 0);
      assert.ok(page.events.length === 1 || chars <= EXECUTION_PAGE_MAX_CHARS, `a page of ${chars} characters`);
      pages.push(page.events.map((e) => (e.data as { i: number }).i));
      const next = nextAfter(page.events, page.lastRevision);
      if (next === null) break;
      after = next;
    }
    assert.deepEqual(
      pages.flat(),
      Array.from({ length: 30 }, (_, i) => i),
    );
    assert.ok(pages.length >= 3, `${pages.length} pages`);
    // The limit still applies to small events.
    const small = await executionHistoryPage(store, executionId, { after: 0, limit: 1 });
    assert.deepEqual(
      small.events.map((e) => e.revision),
      [1],
    );
  });
});

/** The revision the next page starts after, or null at the end. */
const nextAfter = (events: readonly { revision: number }[], last: number): number | null => {
  const end = events[events.length - 1];
  return end && end.revision < last ? end.revision : null;
};

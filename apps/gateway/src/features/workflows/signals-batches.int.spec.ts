/**
 * Signals (wait steps) and bulk operations (batches) over real HTTP, PostgreSQL, nats-server and
 * the workflow engine with its batch worker; the engine is stopped and started again mid-test.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { until } from '@switchyard/testing';
import { startExecution } from '@switchyard/workflow-executions';
import { WorkflowEngine } from '@switchyard/workflows';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { echoTasks, startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('signals-batches-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('signals and bulk operations over real HTTP, PostgreSQL, nats-server and the engine', () => {
  let f: WorkflowGateway;
  // The `flaky` task fails (not retryable) while this is set: the bulk retry test fixes it mid-test.
  let failFlaky = true;
  // Calls of each unit by its idempotency key's `<execution>:<step>` (to prove a retry or fork does not call again what succeeded).
  const unitCalls = new Map<string, number>();
  const keysSeen = new Set<string>();
  const tag = newId().slice(0, 6);

  before(async () => {
    f = await startWorkflowGateway({
      name: 'wf_signals',
      logger,
      poolMax: 20,
      engine: { batches: { itemsPerSec: 50, pollMs: 200 } },
      serve: echoTasks(logger, async (b) => {
        // Counted once per key, as a real worker's effect: a re-send of the same attempt (the
        // engine's recovery under load re-sends a dispatched unit) is not another run.
        const unit = b.idempotency_key.split(':').slice(0, 2).join(':');
        if (!keysSeen.has(b.idempotency_key)) unitCalls.set(unit, (unitCalls.get(unit) ?? 0) + 1);
        keysSeen.add(b.idempotency_key);
        if (b.context.flaky && failFlaky)
          throw new AppError('tool_error', 'flaky: failing until the test fixes it', {}, false);
        if (b.context.slow) await sleep(Number(b.context.slow));
      }),
    });
    for (const d of [
      approvalDef('approval_fail', 'fail'),
      approvalDef('approval_default', { default_output: { approved: false, timed_out: true } }),
      waitOnlyDef,
      flakyDef,
    ]) {
      const r = await http('POST', '/api/v1/workflows/definitions', d);
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });

  after(async () => f?.close());

  const http = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    f.http(method, path, body, headers);

  /** prepare (an agent task, `slow` ms) -> approval (waits for `approve`, `timeout_ms`) -> after (an agent task, `after_slow` ms). */
  function approvalDef(id: string, onTimeout: unknown) {
    return {
      id,
      version: 1,
      name: id,
      input: {
        type: 'object',
        properties: {
          slow: { type: 'integer', default: 0 },
          after_slow: { type: 'integer', default: 0 },
          timeout_ms: { type: 'integer', default: 10_000 },
        },
      },
      steps: [
        { id: 'prepare', uses: 'agent:customer_segmentation', with: { slow: '${{ input.slow }}' } },
        {
          id: 'approval',
          needs: ['prepare'],
          wait: { signal: 'approve', timeout_ms: '${{ input.timeout_ms }}', on_timeout: onTimeout },
        },
        {
          id: 'after',
          uses: 'agent:marketing_content',
          needs: ['approval'],
          with: { approved: '${{ steps.approval.output.approved }}', slow: '${{ input.after_slow }}' },
        },
      ],
      outputs: { approved: '${{ steps.approval.output.approved }}' },
    };
  }
  /** Waits at once (no step before it): what the bulk tests cancel. */
  const waitOnlyDef = {
    id: 'wait_only',
    version: 1,
    name: 'wait only',
    steps: [{ id: 'hold', wait: { signal: 'release', timeout_ms: 600_000 } }],
  };

  /** first (an agent task that works) -> second (fails while `failFlaky` is set): what the bulk retry and fork tests fail and then fix. */
  const flakyDef: WorkflowDefinitionInput = {
    id: 'flaky_pair',
    version: 1,
    name: 'flaky pair',
    steps: [
      { id: 'first', uses: 'agent:customer_segmentation', with: { n: 1 } },
      { id: 'second', uses: 'agent:marketing_content', needs: ['first'], with: { flaky: true } },
    ],
  };

  const start = async (template: string, input: Record<string, unknown>) => {
    const r = await http('POST', `/api/v1/workflows/start/${template}`, input);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.execution_id as string;
  };
  const events = async (id: string) =>
    (await f.store.readStream(`workflow_execution-${id}`)).map((e) => ({
      type: e.type,
      data: e.data as Record<string, any>,
    }));
  const ended = (id: string, timeoutMs = 20_000) =>
    until(
      `execution ${id} ended`,
      async () => {
        const ev = await events(id);
        const last = ev.find(
          (e) => e.type === 'WorkflowCompleted' || e.type === 'WorkflowFailed' || e.type === 'WorkflowCanceled',
        );
        return last ? { type: last.type, data: last.data, all: ev } : undefined;
      },
      timeoutMs,
    );
  const waiting = (id: string) =>
    until(`execution ${id} waiting`, async () => (await events(id)).some((e) => e.type === 'WaitStarted'));
  const signal = (id: string, name: string, payload: unknown, headers: Record<string, string> = {}) =>
    http('POST', `/api/v1/workflows/executions/${id}/signals/${name}`, payload, headers);

  it('GET /executions/bulk (a path with POST only) answers 405 with Allow, not the 404 of an execution named "bulk"', async () => {
    const res = await fetch(`${f.base}/api/v1/workflows/executions/bulk`);
    assert.equal(res.status, 405, await res.text());
    assert.equal(res.headers.get('allow'), 'POST');
    assert.equal(
      (await http('GET', '/api/v1/workflows/executions/no-such-execution')).status,
      404,
      'an unknown execution is still a 404',
    );
  });

  it('a bulk fork onto a version or from a step the named definition does not have is refused up front; nothing is recorded', async () => {
    const bulk = (fork: { definition_version: number; from_step: string }) =>
      http('POST', '/api/v1/workflows/executions/bulk', {
        filter: { definition_id: 'flaky_pair', status: 'failed' },
        action: { fork },
      });
    const noVersion = await bulk({ definition_version: 99, from_step: 'second' });
    assert.equal(noVersion.status, 404, JSON.stringify(noVersion.body));
    assert.match(JSON.stringify(noVersion.body), /version 99/);
    const noStep = await bulk({ definition_version: 1, from_step: 'nowhere' });
    assert.equal(noStep.status, 400, JSON.stringify(noStep.body));
    assert.match(JSON.stringify(noStep.body), /nowhere/);
    // A compensation step is no fork point either (it never runs as a step of its own).
    const undoing = await http('POST', '/api/v1/workflows/definitions', {
      id: 'undo_pair',
      version: 1,
      name: 'undo pair',
      steps: [
        { id: 'make', uses: 'agent:customer_segmentation', with: { n: 1 }, on_error: { compensate: 'unmake' } },
        { id: 'unmake', uses: 'agent:customer_segmentation', with: { n: 2 } },
      ],
    });
    assert.equal(undoing.status, 201, JSON.stringify(undoing.body));
    const fromUndo = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'undo_pair', status: 'failed' },
      action: { fork: { definition_version: 1, from_step: 'unmake' } },
    });
    assert.equal(fromUndo.status, 400, JSON.stringify(fromUndo.body));
    assert.match(JSON.stringify(fromUndo.body), /compensation/);
    const batches = await f.store.readAll({ types: ['BatchStarted'], maxCount: 10_000 });
    assert.ok(
      !batches.some(
        (e) => JSON.stringify(e.data).includes('nowhere') || JSON.stringify(e.data).includes('"definitionVersion":99'),
      ),
      'no batch recorded',
    );
  });

  it('documents the signal and batch routes in the OpenAPI document', async () => {
    const r = await http('GET', '/docs/openapi.json');
    for (const p of [
      '/api/v1/workflows/executions/{execution_id}/signals/{name}',
      '/api/v1/workflows/executions/bulk',
      '/api/v1/workflows/batches/{batch_id}',
      '/api/v1/workflows/batches/{batch_id}/cancel',
    ]) {
      assert.ok(r.body.paths[p], `missing ${p}`);
    }
    assert.ok(r.body.paths['/api/v1/workflows/executions/{execution_id}/signals/{name}'].post.responses['409']);
  });

  it('a wait step in a definition: bad timeout and unknown on_timeout are 400 naming the field', async () => {
    const bad = { ...waitOnlyDef, id: 'bad_wait', steps: [{ id: 'hold', wait: { signal: 'x', timeout_ms: -1 } }] };
    const r1 = await http('POST', '/api/v1/workflows/definitions', bad);
    assert.equal(r1.status, 400);
    assert.ok(
      r1.body.errors.some((e: { path: string }) => e.path === 'steps[0].wait.timeout_ms'),
      JSON.stringify(r1.body),
    );
    const r2 = await http('POST', '/api/v1/workflows/definitions', {
      ...bad,
      steps: [{ id: 'hold', wait: { signal: 'x', timeout_ms: 5, on_timeout: 'explode' } }],
    });
    assert.equal(r2.status, 400);
    assert.ok(
      r2.body.errors.some((e: { path: string }) => e.path.startsWith('steps[0].wait.on_timeout')),
      JSON.stringify(r2.body),
    );
  });

  it('a signal BEFORE the wait step is reached is recorded (buffered) and consumed when the step starts', async () => {
    const id = await start('approval_fail', { slow: 1500 });
    const r = await signal(id, 'approve', { approved: true, note: 'early' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.disposition, 'buffered');
    const end = await ended(id);
    assert.equal(end.type, 'WorkflowCompleted');
    assert.deepEqual(end.data.outputs, { approved: true });
    const types = end.all.map((e) => e.type);
    assert.ok(types.indexOf('SignalReceived') < types.indexOf('WaitStarted'), types.join(','));
    assert.ok(types.includes('SignalConsumed'));
  });

  it('a signal DURING the wait is consumed: its payload is the step output; a repeat with the same Idempotency-Key records nothing new', async () => {
    const id = await start('approval_fail', {});
    await waiting(id);
    const r = await signal(id, 'approve', { approved: true }, { 'idempotency-key': `sig-${id}` });
    assert.equal(r.status, 202);
    assert.deepEqual([r.body.disposition, r.body.step_id, r.body.recorded], ['consumed', 'approval', true]);
    const again = await signal(id, 'approve', { approved: true }, { 'idempotency-key': `sig-${id}` });
    assert.equal(again.status, 202);
    assert.equal(again.body.signal_id, r.body.signal_id);
    const end = await ended(id);
    assert.equal(end.type, 'WorkflowCompleted');
    assert.equal(end.all.filter((e) => e.type === 'SignalReceived').length, 1);
    const detail = await http('GET', `/api/v1/workflows/executions/${id}`);
    assert.deepEqual(
      detail.body.steps.map((s: { step_id: string; status: string; uses: string }) => [s.step_id, s.status, s.uses]),
      [
        ['prepare', 'succeeded', 'agent:customer_segmentation'],
        ['approval', 'succeeded', 'wait:approve'],
        ['after', 'succeeded', 'agent:marketing_content'],
      ],
    );
  });

  it('a signal AFTER the timeout fired is recorded but changes nothing (the answer says so); a finished execution answers 409', async () => {
    // default_output: the step succeeds with it at the timeout and `after` runs (slowly) while the late signal comes.
    const id = await start('approval_default', { timeout_ms: 300, after_slow: 1500 });
    await until('the wait timed out', async () => (await events(id)).some((e) => e.type === 'WaitTimedOut'));
    const late = await signal(id, 'approve', { approved: true });
    assert.equal(late.status, 202, JSON.stringify(late.body));
    assert.equal(late.body.disposition, 'ignored');
    assert.match(late.body.reason, /timed out at .*changes nothing/);
    const end = await ended(id);
    assert.equal(end.type, 'WorkflowCompleted');
    assert.deepEqual(end.data.outputs, { approved: false });

    // on_timeout fail: the execution fails; a signal to it afterwards is 409.
    const failing = await start('approval_fail', { timeout_ms: 200 });
    const f = await ended(failing);
    assert.equal(f.type, 'WorkflowFailed');
    assert.equal(f.data.error.code, 'wait_timeout');
    const r = await signal(failing, 'approve', { approved: true });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    const finished = await signal(id, 'approve', {});
    assert.equal(finished.status, 409);
    // Unknown signal name: 404 naming the ones the definition takes; unknown execution: 404; too large: 413.
    const other = await start('approval_fail', { slow: 5000, timeout_ms: 600_000 });
    const unknown = await signal(other, 'nope', {});
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.detail, /no wait step for signal "nope"/);
    assert.equal((await signal('no-such-execution', 'approve', {})).status, 404);
    assert.equal((await signal(other, 'approve', { blob: 'x'.repeat(70_000) })).status, 413);
    assert.equal((await http('POST', `/api/v1/workflows/executions/${other}/cancel`, {})).status, 202);
  });

  it('the wait survives an engine restart: a signal while it is down and a timeout that passed while it was down both take effect', async () => {
    const signaled = await start('approval_fail', { timeout_ms: 600_000 });
    const timing = await start('approval_fail', { timeout_ms: 1500 });
    await waiting(signaled);
    await waiting(timing);
    await f.stopEngine();
    // While no engine runs: the signal is decided by the gateway's command alone, and the other's deadline passes.
    const r = await signal(signaled, 'approve', { approved: true });
    assert.equal(r.body.disposition, 'consumed');
    await sleep(1600);
    assert.ok(!(await events(timing)).some((e) => e.type === 'WaitTimedOut'), 'no engine ran the timer');
    await f.startEngine();
    const a = await ended(signaled);
    assert.equal(a.type, 'WorkflowCompleted');
    const b = await ended(timing);
    assert.equal(b.type, 'WorkflowFailed');
    assert.equal(b.data.error.code, 'wait_timeout');
  });

  /** Start n wait_only executions and wait until the read model lists them running. */
  const startWaiting = async (n: number): Promise<string[]> => {
    const ids: string[] = [];
    const def = waitOnlyDef;
    for (let i = 0; i < n; i += 25) {
      const chunk = await Promise.all(
        Array.from({ length: Math.min(25, n - i) }, () =>
          startExecution(f.store, { definition: def, input: {}, correlationId: `bulk-${tag}`, actor: 'test' }),
        ),
      );
      ids.push(...chunk.map((c) => c.executionId));
    }
    await until(
      `${n} executions projected`,
      async () => {
        const r = await f.pool.query(
          `select count(*)::int as n from read_models.workflow_executions where execution_id = any($1) and status = 'running'`,
          [ids],
        );
        return r.rows[0].n === n;
      },
      30_000,
    );
    return ids;
  };
  const cancelCounts = async (ids: string[]) => {
    const r = await f.pool.query<{ stream_id: string; type: string; n: number }>(
      `select stream_id, type, count(*)::int as n from eventstore.events where stream_id = any($1) and type in ('ExecutionCancelRequested', 'WorkflowCanceled') group by 1, 2`,
      [ids.map((id) => `workflow_execution-${id}`)],
    );
    return r.rows;
  };
  const batch = (id: string) => http('GET', `/api/v1/workflows/batches/${id}`);
  const batchEnded = (id: string, timeoutMs = 30_000) =>
    until(
      `batch ${id} ended`,
      async () => {
        const r = await batch(id);
        return r.body.state !== 'running' ? r.body : undefined;
      },
      timeoutMs,
      100,
    );

  it('bulk cancel of 50 executions waiting on a signal: each canceled once; the batch shows its progress', async () => {
    // Earlier tests left wait_only executions? None: it is only used by the bulk tests, each canceling all of its own.
    const ids = await startWaiting(50);
    // The executions list's name for the definition (`template`) names the same set here.
    const r = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { template: 'wait_only', status: 'running' },
      action: 'cancel',
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.matched, 50);
    const b = await batchEnded(r.body.batch_id);
    assert.deepEqual([b.state, b.matched, b.done, b.failed, b.pending], ['completed', 50, 50, 0, 0]);
    const counts = await cancelCounts(ids);
    assert.equal(counts.length, 100, 'one cancel request and one canceled event per execution');
    assert.ok(
      counts.every((c) => c.n === 1),
      JSON.stringify(counts.filter((c) => c.n !== 1)),
    );
    const batchEvents = (await f.store.readStream(`workflow_batch-${r.body.batch_id}`)).map((e) => e.type);
    assert.deepEqual(
      [batchEvents[0], batchEvents.at(-1), batchEvents.filter((t) => t === 'BatchItemDone').length],
      ['BatchStarted', 'BatchCompleted', 50],
    );
    // An empty filter is refused, and two names for different definitions; the same Idempotency-Key names the same batch.
    assert.equal(
      (await http('POST', '/api/v1/workflows/executions/bulk', { filter: {}, action: 'cancel' })).status,
      400,
    );
    assert.equal(
      (
        await http('POST', '/api/v1/workflows/executions/bulk', {
          filter: { template: 'wait_only', definition_id: 'other' },
          action: 'cancel',
        })
      ).status,
      400,
    );
    const k = { 'idempotency-key': `bulk-${tag}` };
    const once = await http(
      'POST',
      '/api/v1/workflows/executions/bulk',
      { filter: { definition_id: 'wait_only', status: 'running' }, action: 'cancel' },
      k,
    );
    const twice = await http(
      'POST',
      '/api/v1/workflows/executions/bulk',
      { filter: { definition_id: 'wait_only', status: 'running' }, action: 'cancel' },
      k,
    );
    assert.equal(once.body.batch_id, twice.body.batch_id);
  });

  it('two engines (each its own database sessions and batch worker): one batch is worked by one of them only (its lock), each item once', async () => {
    const second = new WorkflowEngine({ ...f.engineOptions(), memberId: `engine-second-${tag}` });
    await second.start();
    try {
      const ids = await startWaiting(40);
      const r = await http('POST', '/api/v1/workflows/executions/bulk', {
        filter: { definition_id: 'wait_only', status: 'running' },
        action: 'cancel',
      });
      assert.equal(r.body.matched, 40);
      const b = await batchEnded(r.body.batch_id);
      assert.deepEqual([b.state, b.done], ['completed', 40]);
      const items = (await f.store.readStream(`workflow_batch-${r.body.batch_id}`)).filter(
        (e) => e.type === 'BatchItemDone',
      );
      assert.equal(items.length, 40);
      assert.equal(
        new Set(items.map((e) => (e.data as { worker: string }).worker)).size,
        1,
        'one worker did every item',
      );
      const counts = await cancelCounts(ids);
      assert.equal(counts.length, 80);
      assert.ok(counts.every((c) => c.n === 1));
    } finally {
      await second.stop();
    }
  });

  it('bulk retry of 200 failed executions survives a restart of the engine mid-batch: each retried once, its succeeded step not called again; a bulk fork reuses the outputs', async () => {
    failFlaky = true;
    const ids: string[] = [];
    for (let i = 0; i < 200; i += 25) {
      const chunk = await Promise.all(
        Array.from({ length: Math.min(25, 200 - i) }, () =>
          startExecution(f.store, { definition: flakyDef, input: {}, correlationId: `flaky-${tag}`, actor: 'test' }),
        ),
      );
      ids.push(...chunk.map((c) => c.executionId));
    }
    await Promise.all(ids.map((id) => ended(id, 60_000)));
    await until(
      'the 200 failed executions projected',
      async () => {
        const q = await f.pool.query(
          `select count(*)::int as n from read_models.workflow_executions where execution_id = any($1) and status = 'failed'`,
          [ids],
        );
        return q.rows[0].n === 200;
      },
      30_000,
    );
    failFlaky = false; // the fix
    const r = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'flaky_pair', status: 'failed' },
      action: 'retry',
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.matched, 200);
    await until('the batch part way', async () => (await batch(r.body.batch_id)).body.done >= 50, 30_000, 50);
    await f.stopEngine();
    const mid = (await batch(r.body.batch_id)).body;
    assert.ok(mid.state === 'running' && mid.done < 200, `stopped mid-batch: ${JSON.stringify(mid)}`);
    await f.startEngine();
    const b = await batchEnded(r.body.batch_id, 60_000);
    assert.deepEqual([b.state, b.done, b.failed], ['completed', 200, 0], JSON.stringify(b.failures));
    const items = (await f.store.readStream(`workflow_batch-${r.body.batch_id}`)).filter(
      (e) => e.type === 'BatchItemDone',
    );
    assert.equal(items.length, 200);
    assert.equal(
      new Set(items.map((e) => (e.data as { worker: string }).worker)).size,
      2,
      'the worker before the restart, then the one after',
    );
    for (const id of ids) {
      const end = await ended(id, 60_000);
      const last = end.all.filter((e) => ['WorkflowCompleted', 'WorkflowFailed'].includes(e.type)).at(-1);
      assert.equal(last?.type, 'WorkflowCompleted', `${id}: ${JSON.stringify(end.all.map((e) => e.type))}`);
    }
    await until(
      'every retried execution completed',
      async () => {
        const ev = await Promise.all(ids.map(events));
        return ev.every((all) => all.at(-1)?.type === 'WorkflowCompleted');
      },
      60_000,
    );
    const retried = await f.pool.query<{ n: number }>(
      `select count(*)::int as n from eventstore.events where stream_id = any($1) and type = 'ExecutionRetried'`,
      [ids.map((id) => `workflow_execution-${id}`)],
    );
    assert.equal(retried.rows[0]!.n, 200, 'one ExecutionRetried per execution');
    for (const id of ids) {
      assert.equal(unitCalls.get(`${id}:first`), 1, `${id}: the succeeded step ran once`);
      assert.equal(unitCalls.get(`${id}:second`), 2, `${id}: the failed step ran twice (the failure, then the retry)`);
    }

    // A bulk fork of five of them from `second`: new executions that copy `first` and run `second` only.
    const five = ids.slice(0, 5);
    const since = new Date(Date.now() - 60_000).toISOString();
    const fork = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'flaky_pair', status: 'completed', started_after: since },
      action: { fork: { definition_version: 1, from_step: 'second' } },
    });
    assert.equal(fork.status, 202, JSON.stringify(fork.body));
    const fb = await batchEnded(fork.body.batch_id, 60_000);
    assert.deepEqual([fb.state, fb.failed, fb.done], ['completed', 0, fork.body.matched], JSON.stringify(fb.failures));
    const forkItems = (await f.store.readStream(`workflow_batch-${fork.body.batch_id}`)).filter(
      (e) => e.type === 'BatchItemDone',
    );
    const forkOf = new Map(
      forkItems.map((e) => [
        (e.data as { executionId: string }).executionId,
        String((e.data as { outcome: string }).outcome).replace(/^forked /, ''),
      ]),
    );
    for (const source of five) {
      const forked = forkOf.get(source);
      assert.ok(forked, `${source} forked`);
      const end = await ended(forked, 30_000);
      assert.equal(end.type, 'WorkflowCompleted');
      assert.ok(
        end.all.some(
          (e) => e.type === 'StepOutputCopied' && e.data.stepId === 'first' && e.data.fromExecutionId === source,
        ),
      );
      assert.equal(unitCalls.get(`${forked}:first`), undefined, 'the copied step is not called');
      assert.equal(unitCalls.get(`${forked}:second`), 1);
    }
  });

  it('two overlapping bulk retries started at once retry each execution once: the later worker finds it retried since its batch started (already_retried), even when that run failed again at once', async () => {
    failFlaky = true; // every retry fails again at once: the second batch would see the execution failed again
    try {
      const t0 = new Date(Date.now() - 1_000).toISOString();
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        if (i === 6) await sleep(1_100); // the second filter takes the last six only
        const c = await startExecution(f.store, {
          definition: flakyDef,
          input: {},
          correlationId: `overlap-${tag}`,
          actor: 'test',
        });
        ids.push(c.executionId);
      }
      await Promise.all(ids.map((id) => ended(id, 30_000)));
      const startedAt = await f.pool.query<{ id: string; at: string }>(
        `select execution_id as id, to_json(started_at) #>> '{}' as at from read_models.workflow_executions where execution_id = any($1)`,
        [ids],
      );
      await until(
        'the 12 failed executions projected',
        async () =>
          (
            await f.pool.query(
              `select count(*)::int as n from read_models.workflow_executions where execution_id = any($1) and status = 'failed'`,
              [ids],
            )
          ).rows[0].n === 12,
        30_000,
      );
      const later = ids.slice(6);
      const ms = (id: string) => new Date(startedAt.rows.find((r) => r.id === id)!.at).getTime();
      const mid = new Date(Math.min(...later.map(ms))).toISOString();
      assert.ok(Math.max(...ids.slice(0, 6).map(ms)) < Date.parse(mid), 'the second filter matches the later six only');
      const [a, b] = await Promise.all([
        http('POST', '/api/v1/workflows/executions/bulk', {
          filter: { definition_id: 'flaky_pair', status: 'failed', started_after: t0 },
          action: 'retry',
        }),
        http('POST', '/api/v1/workflows/executions/bulk', {
          filter: { definition_id: 'flaky_pair', status: 'failed', started_after: mid },
          action: 'retry',
        }),
      ]);
      assert.equal(a.status, 202, JSON.stringify(a.body));
      assert.equal(b.status, 202, JSON.stringify(b.body));
      assert.equal(a.body.matched, 12);
      assert.equal(b.body.matched, 6);
      const [ea, eb] = await Promise.all([batchEnded(a.body.batch_id, 60_000), batchEnded(b.body.batch_id, 60_000)]);
      assert.deepEqual([ea.state, ea.failed, eb.state, eb.failed], ['completed', 0, 'completed', 0]);
      await Promise.all(
        ids.map((id) =>
          until(`${id} failed again`, async () => (await events(id)).at(-1)?.type === 'WorkflowFailed', 30_000),
        ),
      );
      const retried = await f.pool.query<{ stream_id: string; n: number }>(
        `select stream_id, count(*)::int as n from eventstore.events where stream_id = any($1) and type = 'ExecutionRetried' group by stream_id`,
        [ids.map((id) => `workflow_execution-${id}`)],
      );
      assert.equal(retried.rowCount, 12, 'every execution retried');
      for (const row of retried.rows) assert.equal(row.n, 1, `${row.stream_id}: retried once by the two batches`);
      for (const id of ids)
        assert.equal(unitCalls.get(`${id}:second`), 2, `${id}: the failed step ran twice (the failure, one retry)`);
      const outcomes = new Map<string, string[]>();
      for (const batchId of [a.body.batch_id, b.body.batch_id])
        for (const e of await f.store.readStream(`workflow_batch-${batchId}`))
          if (e.type === 'BatchItemDone') {
            const d = e.data as { executionId: string; outcome: string };
            outcomes.set(d.executionId, [...(outcomes.get(d.executionId) ?? []), d.outcome]);
          }
      for (const id of later) {
        const o = (outcomes.get(id) ?? []).map((x) => x.replace(/ .*/, '')).sort();
        assert.deepEqual(o, ['already_retried', 'retried'], `${id}: one batch retried it, the other found it retried`);
      }
    } finally {
      failFlaky = false;
    }
  });

  it('bulk retry checks each re-run as its caller: an ad-hoc run naming the database writer fails its item (writes disabled here) and is not retried', async () => {
    failFlaky = true;
    // Recorded while writes were allowed (no gateway check on this path); its first step fails.
    const adHoc: WorkflowDefinitionInput = {
      id: 'bulk_adhoc_writer',
      version: 1,
      name: 'ad-hoc writer',
      steps: [
        { id: 'first', uses: 'agent:marketing_content', with: { flaky: true } },
        {
          id: 'insert',
          uses: 'mcp:database_writer/query',
          needs: ['first'],
          with: { sql: 'insert into business.customers default values' },
        },
      ],
    };
    const { executionId } = await startExecution(f.store, {
      definition: adHoc,
      input: {},
      correlationId: `adhoc-bulk-${tag}`,
      actor: 'test',
    });
    await ended(executionId, 60_000);
    await until(
      'the failed ad-hoc run projected',
      async () =>
        (
          await f.pool.query(
            `select 1 from read_models.workflow_executions where execution_id = $1 and status = 'failed'`,
            [executionId],
          )
        ).rowCount === 1,
      30_000,
    );
    failFlaky = false;
    const r = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'bulk_adhoc_writer', status: 'failed' },
      action: 'retry',
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.matched, 1);
    const b = await batchEnded(r.body.batch_id);
    assert.deepEqual([b.state, b.done, b.failed], ['completed', 0, 1], JSON.stringify(b));
    assert.equal(b.failures[0].code, 'forbidden');
    assert.match(b.failures[0].message, /DATABASE_ALLOW_WRITES/);
    const events = await f.store.readStream(`workflow_execution-${executionId}`);
    assert.ok(!events.some((e) => e.type === 'ExecutionRetried'), 'the ad-hoc run was not retried');
  });

  it('bulk cancel of 200 waiting executions survives a restart of its worker mid-batch and cancels each once', async () => {
    const ids = await startWaiting(200);
    const r = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'wait_only', status: 'running' },
      action: 'cancel',
    });
    assert.equal(r.body.matched, 200);
    await until('the batch half way', async () => (await batch(r.body.batch_id)).body.done >= 60, 30_000, 50);
    await f.stopEngine(); // the worker stops between two items (or after the one it works)
    const mid = (await batch(r.body.batch_id)).body;
    assert.equal(mid.state, 'running');
    assert.ok(mid.done < 200, `stopped mid-batch: ${mid.done} done`);
    await f.startEngine();
    const b = await batchEnded(r.body.batch_id);
    assert.deepEqual([b.state, b.done, b.failed], ['completed', 200, 0]);
    const counts = await cancelCounts(ids);
    assert.equal(counts.length, 400);
    assert.ok(
      counts.every((c) => c.n === 1),
      JSON.stringify(counts.filter((c) => c.n !== 1)),
    );
    const items = (await f.store.readStream(`workflow_batch-${r.body.batch_id}`)).filter(
      (e) => e.type === 'BatchItemDone',
    );
    assert.equal(new Set(items.map((e) => (e.data as { executionId: string }).executionId)).size, 200);
    assert.equal(items.length, 200);
    assert.equal(
      new Set(items.map((e) => (e.data as { worker: string }).worker)).size,
      2,
      'the worker before the restart, then the one after',
    );
  });

  it('batch cancel: a canceled batch works no item after it; a second cancel is a no-op, and canceling a completed one is 409', async () => {
    const ids = await startWaiting(40);
    // While no engine runs, nothing works the batch: the cancel lands before any item.
    await f.stopEngine();
    const r = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'wait_only', status: 'running' },
      action: 'cancel',
    });
    assert.equal(r.body.matched, 40);
    const c = await http('POST', `/api/v1/workflows/batches/${r.body.batch_id}/cancel`, { reason: 'changed my mind' });
    assert.equal(c.status, 202, JSON.stringify(c.body));
    assert.deepEqual(
      [c.body.state, c.body.done, c.body.pending, c.body.reason],
      ['cancelled', 0, 40, 'changed my mind'],
    );
    assert.equal((await http('POST', `/api/v1/workflows/batches/${r.body.batch_id}/cancel`, {})).status, 202);
    await f.startEngine();
    // A batch after it, on other executions, completes: the worker runs, and passed the canceled one by.
    const others = await Promise.all([1, 2, 3].map(() => start('approval_fail', { timeout_ms: 600_000 })));
    for (const o of others) await waiting(o);
    await until('others projected', async () => {
      const q = await f.pool.query(
        `select count(*)::int as n from read_models.workflow_executions where execution_id = any($1) and status = 'running'`,
        [others],
      );
      return q.rows[0].n === 3;
    });
    const next = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'approval_fail', status: 'running' },
      action: 'cancel',
    });
    assert.equal(next.status, 202);
    assert.equal((await batchEnded(next.body.batch_id)).done, next.body.matched);
    assert.deepEqual(await cancelCounts(ids), [], 'no execution of the canceled batch was touched');
    assert.equal((await batch(r.body.batch_id)).body.state, 'cancelled');

    // Mid-batch: at 5 items/s the cancel lands part way; at most the item in flight is worked after it.
    await f.stopEngine();
    await f.startEngine({ batches: { itemsPerSec: 5, pollMs: 200 } });
    const r2 = await http('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'wait_only', status: 'running' },
      action: 'cancel',
    });
    assert.equal(r2.body.matched, 40);
    await until('some items done', async () => (await batch(r2.body.batch_id)).body.done >= 2, 20_000, 20);
    const c2 = await http('POST', `/api/v1/workflows/batches/${r2.body.batch_id}/cancel`, {});
    assert.equal(c2.body.state, 'cancelled');
    await sleep(300);
    const canceled = (await cancelCounts(ids)).filter((x) => x.type === 'ExecutionCancelRequested').length;
    const after = (await batch(r2.body.batch_id)).body;
    assert.ok(after.done < 40, `canceled part way (${after.done} of 40)`);
    assert.ok(
      canceled === after.done || canceled === after.done + 1,
      `executions canceled ${canceled}, items done ${after.done}`,
    );
    assert.equal((await http('POST', `/api/v1/workflows/batches/${r.body.batch_id}x/cancel`, {})).status, 404);
    const done = (
      await http(
        'GET',
        '/api/v1/workflows/batches/' +
          (
            await http('POST', '/api/v1/workflows/executions/bulk', {
              filter: { definition_id: 'no_such_def' },
              action: 'cancel',
            })
          ).body.batch_id,
      )
    ).body;
    assert.equal(done.state, 'completed');
    assert.equal((await http('POST', `/api/v1/workflows/batches/${done.batch_id}/cancel`, {})).status, 409);
  });
});

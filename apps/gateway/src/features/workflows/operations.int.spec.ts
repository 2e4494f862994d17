import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { Responders } from '@switchyard/workflows';
import { startExecution } from '@switchyard/workflow-executions';
import type { EventStore } from '@switchyard/event-store';
import { workflowExecutionStream } from '@switchyard/domain';
import { overriding } from '@switchyard/testing';
import { startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('workflow-operations-int', process.env.LOG_LEVEL ?? 'silent');
const CLI = fileURLToPath(new URL('../../../../cli/dist/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Operating executions over real HTTP, PostgreSQL, nats-server and the engine: time travel
 * (history, ?at=), fork from a step onto a fixed version, retry in place, replay check. The
 * tools are NATS responders that count every call (one effect per idempotency key, like the
 * real workers). OPS_TRANSCRIPT=<file> writes every request and answer there (the docs' session).
 */
describe('operating executions: history, time travel, fork, retry, replay check', () => {
  let f: WorkflowGateway;
  let responders: Responders;
  const tag = newId().slice(0, 6);
  const transcript: string[] = [];
  /** The analysis agent refuses while this is set (a transient-looking failure the operator fixes). */
  let flaky = true;
  /** Whole reads of each stream by the gateway (a fold). */
  const wholeReads = new Map<string, number>();

  before(async () => {
    f = await startWorkflowGateway({
      name: 'wf_operations',
      logger,
      gatewayStore: (store) =>
        overriding<EventStore>(store, {
          readStream: (streamId, options) => {
            if (options === undefined) wholeReads.set(streamId, (wholeReads.get(streamId) ?? 0) + 1);
            return store.readStream(streamId, options);
          },
        }),
      serve: async (nc, subjects) => {
        responders = await new Responders(nc, logger).start(['database', 'filesystem'], {
          mcpPrefix: subjects.mcpPrefix,
          tasksSubject: subjects.tasks,
        });
        responders.behaviours.set('database/query', () => ({ rows: [{ revenue: 1250.5, orders: 42 }] }));
        responders.behaviours.set('filesystem/write_file', (c) => ({
          written: (c.args as { content: string }).content,
        }));
        responders.behaviours.set('agent:revenue_analysis', (c) => {
          const args = c.args as { table: string; flaky?: boolean; rows: { revenue: number }[] };
          if (args.table !== 'orders') throw new AppError('validation', `relation "${args.table}" does not exist`);
          if (args.flaky && flaky) throw new AppError('validation', 'the revenue table is being reloaded');
          return { total: args.rows[0]!.revenue, table: args.table };
        });
        return responders;
      },
    });
  });

  after(async () => {
    if (process.env.OPS_TRANSCRIPT) writeFileSync(process.env.OPS_TRANSCRIPT, transcript.join('\n'));
    await f?.close();
  });

  const http = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const r = await f.http(method, path, body, headers);
    transcript.push(
      `$ ${method} ${path}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`,
      `${r.status} ${r.body === undefined ? '' : JSON.stringify(r.body)}`,
      '',
    );
    return r;
  };

  /** Poll the detail until the execution reaches one of `statuses` (a deadline, not a timing assertion). */
  const waitFor = async (id: string, statuses: string[]) => {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
      const r = await fetch(`${f.base}/api/v1/workflows/executions/${id}`);
      const b = (await r.json()) as { status: string };
      if (statuses.includes(b.status)) return b;
    }
    throw new Error(`execution ${id} did not reach ${statuses.join('/')}`);
  };

  const revenue = (version: number, table: string) => ({
    id: 'ops_revenue',
    version,
    name: 'Revenue analysis (operations test)',
    input: { type: 'object', properties: { timeframe: { type: 'string', default: '30d' } } },
    steps: [
      {
        id: 'fetch_revenue',
        uses: 'mcp:database/query',
        with: {
          sql: 'select sum(amount) as revenue, count(*) as orders from orders',
          params: ['${{ input.timeframe }}'],
        },
      },
      {
        id: 'analyze',
        uses: 'agent:revenue_analysis',
        needs: ['fetch_revenue'],
        with: { table, rows: '${{ steps.fetch_revenue.output.rows }}' },
      },
      {
        id: 'write_report',
        uses: 'mcp:filesystem/write_file',
        needs: ['analyze'],
        with: { path: 'reports/revenue.md', content: 'total ${{ steps.analyze.output.total }}' },
      },
    ],
    outputs: { total: '${{ steps.analyze.output.total }}' },
  });
  const calls = (tool: string) => responders.calls.filter((c) => c.tool === tool).length;
  let failedId = '';
  let forkId = '';

  it('documents the new routes in the OpenAPI document', async () => {
    const r = await http('GET', '/docs/openapi.json');
    for (const p of [
      '/api/v1/workflows/executions/{execution_id}/history',
      '/api/v1/workflows/executions/{execution_id}/fork',
      '/api/v1/workflows/executions/{execution_id}/retry',
      '/api/v1/workflows/definitions/{definition_id}/versions/{version}/check',
    ]) {
      assert.ok(r.body.paths[p], `missing ${p}`);
    }
    assert.ok(
      JSON.stringify(r.body.paths['/api/v1/workflows/executions/{execution_id}'].get.parameters).includes('"at"'),
    );
  });

  it('forks a failed revenue analysis from its failing step onto the fixed version: the fetch is copied, not called again', async () => {
    assert.equal((await http('POST', '/api/v1/workflows/definitions', revenue(1, 'no_such_table'))).status, 201);
    assert.equal((await http('POST', '/api/v1/workflows/definitions', revenue(2, 'orders'))).status, 201);
    const started = await http('POST', '/api/v1/workflows/start/ops_revenue?version=1', { timeframe: '30d' });
    assert.equal(started.status, 202);
    failedId = started.body.execution_id;
    const failed = await waitFor(failedId, ['failed', 'completed']);
    assert.equal(failed.status, 'failed');
    assert.equal(calls('database/query'), 1);

    const r = await http('POST', `/api/v1/workflows/executions/${failedId}/fork`, {
      from_step: 'analyze',
      definition_version: 2,
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body.copied_steps, ['fetch_revenue']);
    assert.deepEqual(r.body.rerun_steps, ['analyze', 'write_report']);
    assert.equal(r.body.definition_version, 2);
    forkId = r.body.execution_id;
    const done = (await waitFor(forkId, ['completed', 'failed'])) as { status: string; output: unknown };
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.output, { total: 1250.5 });
    // The copied step's tool ran once in all: in the source.
    assert.equal(calls('database/query'), 1);
    const events = await http('GET', `/api/v1/workflows/executions/${forkId}/events`);
    const types = events.body.events.map(
      (e: { type: string; data: { stepId?: string } }) => `${e.type}:${e.data.stepId ?? ''}`,
    );
    assert.ok(!types.includes('StepScheduled:fetch_revenue'), types.join(' '));
    const copied = events.body.events.find((e: { type: string }) => e.type === 'StepOutputCopied');
    assert.equal(copied.data.fromExecutionId, failedId);
    assert.equal(copied.data.stepId, 'fetch_revenue');
    const sourceEvents = await http('GET', `/api/v1/workflows/executions/${failedId}/events`);
    assert.equal(sourceEvents.body.events[copied.data.revision].type, 'StepSucceeded');
    await f.engine.readModelCaughtUp();
    const detail = await http('GET', `/api/v1/workflows/executions/${forkId}`);
    const fetchStep = detail.body.steps.find((s: { step_id: string }) => s.step_id === 'fetch_revenue');
    assert.equal(fetchStep.status, 'succeeded');
    assert.deepEqual(fetchStep.attempt_history, []);
  });

  it('fork refusals: 409 naming copied steps the target lacks, 400 unknown step, 404 unknown execution or version', async () => {
    const v3 = revenue(3, 'orders');
    v3.steps[0] = { ...v3.steps[0]!, id: 'load_revenue' };
    v3.steps[1] = {
      ...v3.steps[1]!,
      needs: ['load_revenue'],
      with: { table: 'orders', rows: '${{ steps.load_revenue.output.rows }}' },
    };
    assert.equal((await http('POST', '/api/v1/workflows/definitions', v3)).status, 201);
    const r = await http('POST', `/api/v1/workflows/executions/${failedId}/fork`, {
      from_step: 'analyze',
      definition_version: 3,
    });
    assert.equal(r.status, 409);
    assert.match(r.body.detail, /fetch_revenue/);
    assert.equal(
      (await http('POST', `/api/v1/workflows/executions/${failedId}/fork`, { from_step: 'nope' })).status,
      400,
    );
    assert.equal(
      (
        await http('POST', `/api/v1/workflows/executions/${failedId}/fork`, {
          from_step: 'analyze',
          definition_version: 99,
        })
      ).status,
      404,
    );
    assert.equal(
      (await http('POST', '/api/v1/workflows/executions/no-such-execution/fork', { from_step: 'analyze' })).status,
      404,
    );
    assert.equal(
      (await http('POST', `/api/v1/workflows/executions/${failedId}/fork`, { from_step: 'analyze', extra: 1 })).status,
      400,
    );
  });

  it('running an unregistered definition that names the database writer again needs what an ad-hoc start needs (403 here: writes disabled)', async () => {
    // An ad-hoc run recorded while writes were allowed; its first step fails.
    const { executionId } = await startExecution(f.store, {
      definition: {
        id: 'adhoc_writer',
        version: 1,
        name: 'ad-hoc writer',
        steps: [
          { id: 'analyze', uses: 'agent:revenue_analysis', with: { table: 'no_such_table', rows: [] } },
          {
            id: 'insert',
            uses: 'mcp:database_writer/query',
            needs: ['analyze'],
            with: { sql: 'insert into business.customers default values' },
          },
        ],
      },
      input: {},
      correlationId: `adhoc-${tag}`,
    });
    assert.equal((await waitFor(executionId, ['failed', 'completed'])).status, 'failed');
    const stream = workflowExecutionStream(executionId);
    const folds = () => wholeReads.get(stream) ?? 0;
    let before = folds();
    const retry = await http('POST', `/api/v1/workflows/executions/${executionId}/retry`);
    assert.equal(retry.status, 403);
    assert.match(retry.body.detail, /DATABASE_ALLOW_WRITES/);
    // Checked on the one read the command is decided on, and nothing recorded.
    assert.equal(folds() - before, 1);
    before = folds();
    assert.equal(
      (await http('POST', `/api/v1/workflows/executions/${executionId}/fork`, { from_step: 'analyze' })).status,
      403,
    );
    assert.equal(folds() - before, 1);
    const events = await f.store.readStream(stream);
    assert.equal(events.at(-1)?.type, 'WorkflowFailed');
  });

  it('a fork with an Idempotency-Key names the same execution when repeated', async () => {
    const key = `fork-${tag}`;
    const a = await http(
      'POST',
      `/api/v1/workflows/executions/${failedId}/fork`,
      { from_step: 'analyze', definition_version: 2 },
      { 'idempotency-key': key },
    );
    const b = await http(
      'POST',
      `/api/v1/workflows/executions/${failedId}/fork`,
      { from_step: 'analyze', definition_version: 2 },
      { 'idempotency-key': key },
    );
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal(b.body.execution_id, a.body.execution_id);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    await waitFor(a.body.execution_id, ['completed']);
  });

  it('retries a failed execution in place once the data is fixed: only the failed step and its dependents run again', async () => {
    const def = revenue(1, 'orders');
    const flakyDef = {
      ...def,
      id: 'ops_flaky',
      steps: def.steps.map((s) => (s.id === 'analyze' ? { ...s, with: { ...s.with, flaky: true } } : s)),
    };
    assert.equal((await http('POST', '/api/v1/workflows/definitions', flakyDef)).status, 201);
    const started = await http('POST', '/api/v1/workflows/start/ops_flaky', {});
    const id = started.body.execution_id as string;
    assert.equal((await waitFor(id, ['failed', 'completed'])).status, 'failed');
    const fetches = calls('database/query');

    // Not failed: 409 (a completed one), unknown: 404; each decided on its one read of the stream.
    const folds = (execution: string) => wholeReads.get(workflowExecutionStream(execution)) ?? 0;
    let before = folds(forkId);
    assert.equal((await http('POST', `/api/v1/workflows/executions/${forkId}/retry`)).status, 409);
    assert.equal(folds(forkId) - before, 1);
    assert.equal((await http('POST', '/api/v1/workflows/executions/no-such-execution/retry')).status, 404);

    flaky = false;
    before = folds(id);
    const r = await http('POST', `/api/v1/workflows/executions/${id}/retry`, { reason: 'revenue table reloaded' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(folds(id) - before, 1, 'the check before the re-run and the command share one read');
    assert.deepEqual(r.body.retried_steps, ['analyze', 'write_report']);
    assert.equal((await waitFor(id, ['completed', 'failed'])).status, 'completed');
    assert.equal(calls('database/query'), fetches, 'the succeeded fetch is not called again');
    await f.engine.readModelCaughtUp();
    const detail = await http('GET', `/api/v1/workflows/executions/${id}`);
    assert.equal(detail.body.status, 'completed');
    const analyze = detail.body.steps.find((s: { step_id: string }) => s.step_id === 'analyze');
    assert.deepEqual(
      analyze.attempt_history.map((a: { attempt: number; status: string }) => `${a.attempt}:${a.status}`),
      ['1:failed', '2:succeeded'],
    );
    const events = await http('GET', `/api/v1/workflows/executions/${id}/events`);
    const retried = events.body.events.find((e: { type: string }) => e.type === 'ExecutionRetried');
    assert.deepEqual(retried.data.steps, ['analyze', 'write_report']);
    assert.equal(retried.data.reason, 'revenue table reloaded');
    // Ended again: a second retry is refused.
    assert.equal((await http('POST', `/api/v1/workflows/executions/${id}/retry`)).status, 409);
  });

  it('pages the history by revision, with time, actor and data', async () => {
    const all = await http('GET', `/api/v1/workflows/executions/${forkId}/events`);
    const seen: number[] = [];
    let path: string | null = `/api/v1/workflows/executions/${forkId}/history?limit=3`;
    while (path) {
      const page: {
        status: number;
        body: {
          events: { revision: number; type: string; time: string; actor: string | null }[];
          next: string | null;
          last_revision: number;
        };
      } = await http('GET', path);
      assert.equal(page.status, 200);
      assert.ok(page.body.events.length <= 3);
      for (const e of page.body.events) {
        seen.push(e.revision);
        assert.ok(e.time && e.type);
      }
      path = page.body.next;
    }
    assert.deepEqual(
      seen,
      all.body.events.map((e: { revision: number }) => e.revision),
    );
    const after = await http('GET', `/api/v1/workflows/executions/${forkId}/history?after=1&limit=2`);
    assert.deepEqual(
      after.body.events.map((e: { revision: number }) => e.revision),
      [2, 3],
    );
    assert.equal(after.body.events[0].actor !== undefined, true);
    assert.equal((await http('GET', '/api/v1/workflows/executions/no-such-execution/history')).status, 404);
    assert.equal((await http('GET', `/api/v1/workflows/executions/${forkId}/history?limit=0`)).status, 400);
    assert.equal((await http('GET', `/api/v1/workflows/executions/${forkId}/history?after=-2`)).status, 400);
  });

  it('answers ?at= at every revision of a revenue analysis: step statuses only move forward, the last equals the read model', async () => {
    await f.engine.readModelCaughtUp();
    const live = await http('GET', `/api/v1/workflows/executions/${failedId}`);
    const history = await http('GET', `/api/v1/workflows/executions/${forkId}/history?limit=500`);
    const last = history.body.last_revision as number;
    const rank: Record<string, number> = { pending: 0, running: 1, succeeded: 2, failed: 2, skipped: 2 };
    let prev: Record<string, number> = {};
    let final:
      { status: string; steps: { step_id: string; status: string; output: unknown }[]; output?: unknown } | undefined;
    for (let at = 0; at <= last; at++) {
      const r = await http('GET', `/api/v1/workflows/executions/${forkId}?at=${at}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.at_revision, at);
      const now = Object.fromEntries(
        r.body.steps.map((s: { step_id: string; status: string }) => [s.step_id, rank[s.status]!]),
      );
      for (const [k, v] of Object.entries(prev)) assert.ok(now[k]! >= v, `step ${k} went back at revision ${at}`);
      prev = now;
      if (at < last) assert.equal(r.body.status, 'running');
      final = r.body;
    }
    const readModel = await http('GET', `/api/v1/workflows/executions/${forkId}`);
    assert.equal(final!.status, readModel.body.status);
    assert.deepEqual(final!.output, readModel.body.output);
    assert.equal(readModel.body.source, 'read_model');
    for (const s of readModel.body.steps) {
      const f = final!.steps.find((x) => x.step_id === s.step_id)!;
      assert.equal(f.status, s.status, s.step_id);
      assert.deepEqual(f.output, s.output, s.step_id);
      // Which steps the fork copied, and from where, reads the same in both.
      assert.deepEqual((f as { copied_from?: unknown }).copied_from, s.copied_from, `copied_from of ${s.step_id}`);
      assert.deepEqual(
        (f as { attempt_history?: unknown }).attempt_history,
        s.attempt_history,
        `attempt rows of ${s.step_id}`,
      );
    }
    // The read model's detail says the execution is a fork, and of what, as time travel does.
    assert.deepEqual(readModel.body.forked_from, {
      execution_id: failedId,
      from_step: (final as { forked_from?: { from_step: string } }).forked_from?.from_step,
    });
    assert.deepEqual((final as { forked_from?: unknown }).forked_from, readModel.body.forked_from);
    assert.ok(
      readModel.body.steps.some((s: { copied_from?: unknown }) => s.copied_from),
      'a copied step',
    );
    // The failed source at its last revision: failed, like the read model.
    const lastOfSource = (await http('GET', `/api/v1/workflows/executions/${failedId}/history?limit=500`)).body
      .last_revision;
    assert.equal(
      (await http('GET', `/api/v1/workflows/executions/${failedId}?at=${lastOfSource}`)).body.status,
      live.body.status,
    );
    assert.equal((await http('GET', `/api/v1/workflows/executions/${forkId}?at=${last + 1}`)).status, 400);
    assert.equal((await http('GET', `/api/v1/workflows/executions/${forkId}?at=-1`)).status, 400);
    // A blank, hex, binary or octal revision is a 400, not revision 0 or 16.
    for (const bad of ['%20', '%09', '', '0x10', '0b11', '0o7', '1e1', '1.0'])
      assert.equal((await http('GET', `/api/v1/workflows/executions/${forkId}?at=${bad}`)).status, 400, `at=${bad}`);
    assert.equal((await http('GET', `/api/v1/workflows/executions/${forkId}/history?after=0x5`)).status, 400);
    assert.equal((await http('GET', `/api/v1/workflows/executions/${forkId}/history?limit=%20`)).status, 400);
    assert.equal((await http('GET', '/api/v1/workflows/executions/no-such-execution?at=0')).status, 404);
  });

  it('the CLI drives the same calls: workflow|executions history, fork, retry', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        // A config home of its own: no saved login of the machine's user is read.
        const env = { ...process.env, XDG_CONFIG_HOME: `/tmp/sy-ops-cli-${tag}`, SWITCHYARD_KEY: '', NO_COLOR: '1' };
        execFile(process.execPath, [CLI, '--url', f.base, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
          const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
          transcript.push(`$ switchyard ${args.join(' ')}`, `${stdout}${stderr}`.trimEnd(), `(exit ${code})`, '');
          resolve({ code, out: `${stdout}${stderr}` });
        });
      });
    const h = await cli('executions', 'history', forkId, '--limit', '4');
    assert.equal(h.code, 0, h.out);
    assert.match(h.out, /WorkflowStarted/);
    assert.match(h.out, /StepOutputCopied\s+fetch_revenue/);
    const at = await cli('executions', 'history', forkId, '--at', '1');
    assert.equal(at.code, 0, at.out);
    assert.match(at.out, /fetch_revenue\s+succeeded/);
    const forkRun = await cli(
      '--json',
      'executions',
      'fork',
      failedId,
      '--from-step',
      'analyze',
      '--definition-version',
      '2',
    );
    assert.equal(forkRun.code, 0, forkRun.out);
    const forked = JSON.parse(forkRun.out) as { execution_id: string; copied_steps: string[] };
    assert.deepEqual(forked.copied_steps, ['fetch_revenue']);
    await waitFor(forked.execution_id, ['completed']);
    const refused = await cli('executions', 'retry', forked.execution_id);
    assert.equal(refused.code, 2, refused.out);
    assert.match(refused.out, /only a failed execution can be retried/);
  });

  it('replay check: version 2 would have run the analysis on another table; version 1 against its own runs decides the same', async () => {
    const r = await http('POST', '/api/v1/workflows/definitions/ops_revenue/versions/2/check', { limit: 20 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.checked >= 3);
    const onFailed = r.body.executions.find((e: { execution_id: string }) => e.execution_id === failedId);
    assert.equal(onFailed.recorded_status, 'failed');
    assert.ok(
      onFailed.differences.some(
        (d: { step_id: string; kind: string }) => d.step_id === 'analyze' && d.kind === 'input_changed',
      ),
      JSON.stringify(onFailed.differences),
    );
    // The analysis would get another input than the recorded one, so what follows it is not known.
    assert.ok(
      onFailed.differences.some(
        (d: { step_id: string; kind: string }) => d.step_id === 'write_report' && d.kind === 'undetermined',
      ),
    );
    assert.equal(onFailed.replayed_status, 'undetermined');
    const onFork = r.body.executions.find((e: { execution_id: string }) => e.execution_id === forkId);
    assert.equal(onFork.same, true, JSON.stringify(onFork));

    const v3 = await http('POST', '/api/v1/workflows/definitions/ops_revenue/versions/3/check', {});
    const forkOnV3 = v3.body.executions.find((e: { execution_id: string }) => e.execution_id === forkId);
    assert.deepEqual(
      forkOnV3.differences.map((d: { kind: string; step_id: string }) => `${d.kind}:${d.step_id}`).sort(),
      [
        'needs_changed:analyze',
        'step_added:load_revenue',
        'step_removed:fetch_revenue',
        'undetermined:analyze',
        'undetermined:write_report',
      ].sort(),
    );
    assert.equal((await http('POST', '/api/v1/workflows/definitions/ops_revenue/versions/99/check', {})).status, 404);
    assert.equal(
      (await http('POST', '/api/v1/workflows/definitions/ops_revenue/versions/2/check', { limit: 201 })).status,
      400,
    );
  });

  it('a fork with an input copies only the steps that would run the same on it (defaults filled as the run fills them)', async () => {
    // The source ran on {timeframe: "30d"}; {} is the same input once its default is filled.
    const same = await http('POST', `/api/v1/workflows/executions/${failedId}/fork`, {
      from_step: 'analyze',
      definition_version: 2,
      input: {},
    });
    assert.equal(same.status, 202, JSON.stringify(same.body));
    assert.deepEqual(same.body.copied_steps, ['fetch_revenue']);
    // Another timeframe: the fetch made for 30 days is not taken over; it runs again.
    const other = await http('POST', `/api/v1/workflows/executions/${failedId}/fork`, {
      from_step: 'analyze',
      definition_version: 2,
      input: { timeframe: '7d' },
    });
    assert.equal(other.status, 202, JSON.stringify(other.body));
    assert.deepEqual(other.body.copied_steps, []);
    assert.deepEqual(other.body.rerun_steps, ['fetch_revenue', 'analyze', 'write_report']);
    for (const id of [same.body.execution_id, other.body.execution_id])
      assert.equal((await waitFor(id, ['completed', 'failed'])).status, 'completed');
  });
});

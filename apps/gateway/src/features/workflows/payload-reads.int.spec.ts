/**
 * Reads of whole payloads take turns (PayloadReads), small ones do not: an execution whose input
 * takes 600 KB as stored, read by 16 callers at once through a gateway allowing one such read
 * and none waiting, answers some of them 503 with Retry-After and the others in full; an
 * execution of a few bytes, read by 50 at once, answers all of them. A large one goes out in
 * chunks, its stored JSON text verbatim: the same value as the read model holds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createLogger } from '@switchyard/platform';
import { Responders } from '@switchyard/workflows';
import { getExecutionView } from '@switchyard/read-models';
import { detailFromReadModel } from './execution-detail.js';
import { executionLinks } from './workflows.service.js';
import { PayloadReads } from '../../http/payload-reads.js';
import { startWorkflowGateway, type HttpAnswer, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('payload-reads-int', process.env.LOG_LEVEL ?? 'silent');

describe('an execution detail with large payloads takes its turn; small ones never wait', () => {
  let f: WorkflowGateway;
  let responders: Responders;

  before(async () => {
    f = await startWorkflowGateway({
      name: 'wf_payload_reads',
      logger,
      gateway: { payloadReads: { concurrency: 1, queue: 0 } },
      serve: async (nc, subjects) => {
        responders = await new Responders(nc, logger).start(['database'], {
          mcpPrefix: subjects.mcpPrefix,
          tasksSubject: subjects.tasks,
        });
        responders.behaviours.set('database/query', () => ({ rows: [{ ok: true }] }));
        return responders;
      },
    });
    const reg = await f.http('POST', '/api/v1/workflows/definitions', {
      id: 'blob',
      version: 1,
      name: 'carries a blob',
      input: { type: 'object', properties: { blob: { type: 'string' } } },
      // The blob again in the step's input: a large one's events pass WHOLE_FOLD_BYTES (1 MiB).
      steps: [{ id: 'look', uses: 'mcp:database/query', with: { sql: 'select 1', params: ['${{ input.blob }}'] } }],
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
  });
  after(async () => {
    await f?.close();
  });

  const startAndWait = async (blob: string): Promise<string> => {
    const r = await f.http('POST', '/api/v1/workflows/start/blob?wait=true', { blob });
    assert.ok(r.status === 200 || r.status === 202, JSON.stringify(r.body).slice(0, 300));
    return r.body.execution_id as string;
  };

  /**
   * 16 reads of a large execution at once through a gate of one with no queue: some are told to
   * come back (503, Retry-After: 1), the others answered; those answers.
   */
  const sixteenAtOnce = async (id: string, why: string): Promise<HttpAnswer[]> => {
    const answers = await Promise.all(
      Array.from({ length: 16 }, () => f.http('GET', `/api/v1/workflows/executions/${id}`)),
    );
    const busy = answers.filter((a) => a.status === 503);
    const whole = answers.filter((a) => a.status === 200);
    assert.equal(busy.length + whole.length, 16, answers.map((a) => a.status).join());
    assert.ok(busy.length > 0, why);
    assert.ok(whole.length > 0);
    for (const a of busy) assert.equal(a.headers.get('retry-after'), '1');
    return whole;
  };

  it('a page of events the gateway filters itself (types on a stream, a time range) takes its turn; a plain page never waits', async () => {
    const id = await startAndWait('filtered');
    const stream = encodeURIComponent(`workflow_execution-${id}`);
    const filtered = [
      `/api/v1/events?stream=${stream}&type=NoSuchType`,
      `/api/v1/events?since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`,
    ];
    for (const url of filtered) {
      // A burst overlaps the one turn there is (a quick read may end before the next arrives: a
      // few bursts). (A caller past FILTERED_PAGES_PER_CALLER running or waiting would get 429:
      // with no queue here, at most one is.)
      const seen = new Set<number>();
      for (let burst = 0; burst < 5 && !seen.has(503); burst++)
        for (const a of await Promise.all(Array.from({ length: 16 }, () => f.http('GET', url)))) seen.add(a.status);
      assert.deepEqual([...seen].sort(), [200, 503], url);
    }
    const plain = await Promise.all(
      Array.from({ length: 16 }, () => f.http('GET', `/api/v1/events?stream=${stream}&limit=5`)),
    );
    assert.deepEqual(
      plain.map((a) => a.status),
      Array.from({ length: 16 }, () => 200),
    );
  });

  it('a large one: some of 16 readers at once are told to come back (503, Retry-After), the others get it whole', async () => {
    // Random bytes as base64: they do not compress, so the stored size is the real one.
    const blob = randomBytes(450_000).toString('base64');
    const id = await startAndWait(blob);
    for (const a of await sixteenAtOnce(id, 'one read of whole payloads at a time: the others are refused'))
      assert.equal(a.body.input.blob, blob);
  });

  it('a large one whose payloads compress to almost nothing as stored takes its turn too (its events are 1.6 MB of JSON)', async () => {
    const blob = 'the same row again, '.repeat(40_000);
    const id = await startAndWait(blob);
    for (const a of await sixteenAtOnce(id, 'sized by its JSON, not by what PostgreSQL stores compressed'))
      assert.equal(a.body.input.blob, blob);
  });

  it("a large one the read model does not show (yet) is folded from its stream, and takes its turn by the stream's size", async () => {
    const blob = randomBytes(450_000).toString('base64');
    const id = await startAndWait(blob);
    // Once the read model has applied the whole execution (it answers the detail), its rows go,
    // as while it is still applying them: the rows are not there, the checkpoint is past.
    for (let i = 0; (await f.http('GET', `/api/v1/workflows/executions/${id}`)).body.source !== 'read_model'; i++) {
      assert.ok(i < 100, 'the read model applies the execution');
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const table of ['workflow_step_attempts', 'workflow_steps', 'workflow_executions'])
      await f.pool.query(`delete from read_models.${table} where execution_id = $1`, [id]);
    for (const a of await sixteenAtOnce(id, 'a fold of a large stream is a read of whole payloads: one at a time')) {
      assert.equal(a.body.source, 'stream');
      assert.equal(a.body.input.blob, blob);
    }
  });

  it("a command on a large execution, a wait's result, the check before a re-run and a page of its events take their turn too; on a small one they never wait", async () => {
    const large = await startAndWait(randomBytes(450_000).toString('base64'));
    const small = await startAndWait('small');
    const gate = f.gw.app.get(PayloadReads);
    // The gate's one turn taken (one read of whole payloads running), none may wait.
    let release!: () => void;
    const held = gate.whileRunning(() => new Promise<void>((r) => (release = r)));
    try {
      const busy = async (method: string, path: string, body: unknown) => {
        const a = await f.http(method, path, body);
        assert.equal(a.status, 503, `${path}: ${JSON.stringify(a.body).slice(0, 300)}`);
        assert.equal(a.headers.get('retry-after'), '1');
        return a;
      };
      const on = (id: string, what: string) => `/api/v1/workflows/executions/${id}/${what}`;
      await busy('POST', on(large, 'cancel'), {});
      await busy('POST', on(large, 'signals/go'), {});
      await busy('POST', on(large, 'retry'), {});
      await busy('POST', on(large, 'fork'), { from_step: 'look' });
      // Started, then its large state had no turn: the answer names the execution, which ran.
      const waited = await busy('POST', '/api/v1/workflows/start/blob?wait=true', {
        blob: randomBytes(450_000).toString('base64'),
      });
      const startedId = waited.body.execution_id as string;
      assert.match(waited.body.detail, new RegExp(`${startedId} was started`));
      // A page of its events may hold one of its largest events whole: it waits too, for a viewer
      // as well (whose page is parsed before it is redacted).
      await busy('GET', `/api/v1/workflows/executions/${large}/events?limit=1`, undefined);
      await busy('GET', `/api/v1/workflows/executions/${large}/history?limit=1`, undefined);
      for (const what of ['events', 'history'])
        assert.equal((await f.http('GET', `/api/v1/workflows/executions/${small}/${what}`)).status, 200, what);
      // The same commands on a small execution do not wait: the execution's own answer (it ended).
      for (const what of ['cancel', 'signals/go', 'retry'])
        assert.equal((await f.http('POST', on(small, what), {})).status, 409, what);
      const smallFork = await f.http('POST', on(small, 'fork'), { from_step: 'look' });
      assert.equal(smallFork.status, 202, JSON.stringify(smallFork.body));
      release();
      await held;
      // The turn free: the large execution's own answers, and the started one ran to its end.
      assert.equal((await f.http('POST', on(large, 'cancel'), {})).status, 409);
      const fork = await f.http('POST', on(large, 'fork'), { from_step: 'look' });
      assert.equal(fork.status, 202, JSON.stringify(fork.body).slice(0, 300));
      for (let i = 0; ; i++) {
        const d = await f.http('GET', `/api/v1/workflows/executions/${startedId}`);
        if (d.status === 200 && d.body.status === 'completed') break;
        assert.ok(i < 100, `the started execution ends: ${d.status} ${d.body.status}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      release();
      await held;
    }
  });

  it('a small one: 50 readers at once all get it', async () => {
    const id = await startAndWait('small');
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => f.http('GET', `/api/v1/workflows/executions/${id}`)),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      Array.from({ length: 50 }, () => 200),
    );
    assert.ok(answers.every((a) => a.body.input.blob === 'small'));
  });

  it('a large one goes out in chunks, its stored JSON verbatim: the value the read model holds, every character intact', async () => {
    // Characters that a cut between chunks or a re-encoding would damage: surrogate pairs, a
    // line separator, escapes.
    const odd = '😀 é \u2028 "quoted" \\ back 𝄞';
    responders.behaviours.set('database/query', () => ({ rows: [{ text: odd.repeat(5_000) }] }));
    try {
      const blob = randomBytes(300_000).toString('base64') + odd;
      const id = await startAndWait(blob);
      const res = await fetch(`${f.base}/api/v1/workflows/executions/${id}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.equal(res.headers.get('content-length'), null, 'streamed, not sent as one body');
      assert.equal(res.headers.get('transfer-encoding'), 'chunked');
      const got = JSON.parse(await res.text());
      const view = await getExecutionView(f.pool, id);
      assert.ok(view);
      assert.deepEqual(got, JSON.parse(JSON.stringify(detailFromReadModel(view, executionLinks(id)))));
      assert.equal(got.input.blob, blob);
      assert.equal(got.steps[0].output.rows[0].text, odd.repeat(5_000));
      // HEAD: the same headers, no body.
      const head = await fetch(`${f.base}/api/v1/workflows/executions/${id}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.equal(head.headers.get('content-length'), null);
      assert.equal((await head.arrayBuffer()).byteLength, 0);
      // A small one is one body, as before.
      const small = await fetch(`${f.base}/api/v1/workflows/executions/${await startAndWait('small')}`);
      assert.equal(small.status, 200);
      assert.ok(Number(small.headers.get('content-length')) > 0);
      await small.arrayBuffer();
    } finally {
      responders.behaviours.set('database/query', () => ({ rows: [{ ok: true }] }));
    }
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createLogger, newId } from '@switchyard/platform';
import { QueryBus } from '@nestjs/cqrs';
import { echoTasks, startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';
import { ListWorkflowDefinitions } from './queries/index.js';
import { WorkflowsService } from './workflows.service.js';

const logger = createLogger('workflows-gateway-int', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('workflow endpoints over real HTTP, PostgreSQL, nats-server and the engine', () => {
  let f: WorkflowGateway;
  const tag = newId().slice(0, 6);
  const taskKeys: string[] = [];

  before(async () => {
    f = await startWorkflowGateway({
      name: 'wf_gateway',
      logger,
      serve: echoTasks(logger, async (b) => {
        taskKeys.push(b.idempotency_key);
        if (b.context.slow) await sleep(Number(b.context.slow));
      }),
    });
  });

  after(async () => f?.close());

  const http = (method: string, path: string, body?: unknown) => f.http(method, path, body);
  /** Every page of the definitions listing with `query`, following next_cursor (each answered 200). */
  const definitionPages = async (query: string) => {
    const pages: { definitions: { id: string; version: number }[]; next_cursor: string | null }[] = [];
    let cursor: string | null = null;
    do {
      const page = await http(
        'GET',
        `/api/v1/workflows/definitions?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      assert.equal(page.status, 200, JSON.stringify(page.body).slice(0, 300));
      pages.push(page.body);
      cursor = page.body.next_cursor;
    } while (cursor);
    return pages;
  };

  const twoAgents = {
    id: 'two_agents',
    version: 1,
    name: 'two agents',
    input: {
      type: 'object',
      properties: { topic: { type: 'string' }, slow: { type: 'integer', default: 0 } },
      required: ['topic'],
    },
    steps: [
      {
        id: 'segment',
        uses: 'agent:customer_segmentation',
        with: { topic: '${{ input.topic }}', slow: '${{ input.slow }}' },
      },
      {
        id: 'content',
        uses: 'agent:marketing_content',
        needs: ['segment'],
        with: { from: '${{ steps.segment.output.task }}' },
      },
    ],
    outputs: { last: '${{ steps.content.output.echo.from }}' },
  };

  it('documents every workflow route in the OpenAPI document', async () => {
    const r = await http('GET', '/docs/openapi.json');
    assert.equal(r.status, 200);
    for (const p of [
      '/api/v1/workflows/templates',
      '/api/v1/workflows/start/{template_id}',
      '/api/v1/workflows/executions',
      '/api/v1/workflows/executions/{execution_id}',
      '/api/v1/workflows/executions/{execution_id}/cancel',
      '/api/v1/workflows/executions/{execution_id}/events',
      '/api/v1/workflows/definitions',
      '/api/v1/workflows/definitions/validate',
      '/api/v1/integration/agents/workflow',
    ]) {
      assert.ok(r.body.paths[p], `missing ${p}`);
    }
  });

  it('lists the three built-in templates', async () => {
    const r = await http('GET', '/api/v1/workflows/templates');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.templates.map((t: { id: string }) => t.id).sort(), [
      'customer_onboarding',
      'customer_support',
      'revenue_analysis',
    ]);
  });

  it('refuses a definition with a cycle: 400 naming the cycle', async () => {
    const r = await http('POST', '/api/v1/workflows/definitions', {
      id: 'loop',
      version: 1,
      name: 'loop',
      steps: [
        { id: 'a', uses: 'agent:revenue_analysis', needs: ['c'] },
        { id: 'b', uses: 'agent:revenue_analysis', needs: ['a'] },
        { id: 'c', uses: 'agent:revenue_analysis', needs: ['b'] },
      ],
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'validation');
    assert.ok(
      r.body.errors.some(
        (e: { code: string; message: string }) =>
          e.code === 'cycle' && /a -> c -> b -> a|c -> b -> a -> c|b -> a -> c -> b/.test(e.message),
      ),
      JSON.stringify(r.body.errors),
    );
    const unknown = await http('POST', '/api/v1/workflows/definitions', {
      id: 'x',
      version: 1,
      name: 'x',
      steps: [{ id: 'a', uses: 'agent:no_such_task' }],
    });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.detail, /unknown agent task type "no_such_task"/);
  });

  it('validates without registering: the same problems with their paths, 200, and nothing stored', async () => {
    const cyclic = {
      id: 'validate_only',
      version: 1,
      name: 'v',
      steps: [
        { id: 'a', uses: 'agent:revenue_analysis', needs: ['b'] },
        { id: 'b', uses: 'agent:no_such_task', needs: ['a'] },
      ],
    };
    const r = await http('POST', '/api/v1/workflows/definitions/validate', cyclic);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.valid, false);
    assert.ok(
      r.body.errors.some(
        (e: { path: string; code: string; message: string }) =>
          e.code === 'cycle' && e.path.startsWith('steps[') && /a -> b -> a|b -> a -> b/.test(e.message),
      ),
      JSON.stringify(r.body.errors),
    );
    assert.ok(
      r.body.errors.some((e: { message: string }) => /unknown agent task type "no_such_task"/.test(e.message)),
      JSON.stringify(r.body.errors),
    );
    const ok = await http('POST', '/api/v1/workflows/definitions/validate', {
      id: 'validate_only',
      version: 1,
      name: 'v',
      steps: [{ id: 'a', uses: 'agent:revenue_analysis' }],
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.valid, true);
    assert.deepEqual(ok.body.errors, []);
    assert.equal(ok.body.definition.steps[0].id, 'a');
    // No side effect: the definition was not registered.
    const list = await http('GET', '/api/v1/workflows/definitions?id=validate_only');
    assert.deepEqual(list.body.definitions, []);
    const bad = await http('POST', '/api/v1/workflows/definitions/validate', [1, 2]);
    assert.equal(bad.status, 400);
    // Checks run on a thread of their own, one at a time, with a bounded queue, four of one caller
    // at once: a flood of large ones is answered 200, 429 (the caller's share) or 503 (the queue),
    // never 500, and other requests are answered meanwhile.
    const large = {
      id: 'validate_large',
      version: 1,
      name: 'large',
      steps: Array.from({ length: 300 }, (_, i) => ({
        id: `s${i}`,
        uses: 'agent:revenue_analysis',
        ...(i > 0 ? { needs: [`s${i - 1}`] } : {}),
        with: { note: '${{ input.x }}' },
      })),
    };
    const flood = Promise.all(
      Array.from({ length: 80 }, () => http('POST', '/api/v1/workflows/definitions/validate', large)),
    );
    const meanwhile = await http('GET', '/api/v1/workflows/definitions?id=validate_only');
    assert.equal(meanwhile.status, 200);
    const statuses = (await flood).map((a) => a.status);
    assert.ok(
      statuses.every((st) => st === 200 || st === 429 || st === 503),
      statuses.join(),
    );
    assert.ok(statuses.includes(200) && statuses.includes(429), statuses.join());
    const one = (await flood).find((a) => a.status === 200)!;
    assert.equal(one.body.valid, true, JSON.stringify(one.body.errors));
  });

  it('a new version, then a delete: events on the definition stream with the correlation id; 404 and 409 as documented', async () => {
    const v1 = { id: 'to_delete', version: 1, name: 'to delete', steps: [{ id: 'a', uses: 'agent:revenue_analysis' }] };
    const cid = (n: number) => ({ 'x-correlation-id': `corr-del-${tag}-${n}` });
    const send = (method: string, path: string, body: unknown, headers: Record<string, string>) =>
      f.http(method, path, body, headers);
    assert.equal((await send('POST', '/api/v1/workflows/definitions', v1, cid(1))).status, 201);
    const v2 = await send(
      'POST',
      '/api/v1/workflows/definitions',
      { ...v1, version: 2, name: 'to delete, v2' },
      cid(2),
    );
    assert.equal(v2.status, 201);
    assert.deepEqual([v2.body.created, v2.body.definition.version], [true, 2]);
    const conflict = await send('POST', '/api/v1/workflows/definitions', { ...v1, name: 'other content' }, cid(3));
    assert.equal(conflict.status, 409, JSON.stringify(conflict.body));
    const latest = await http('GET', '/api/v1/workflows/definitions?id=to_delete');
    assert.deepEqual(
      latest.body.definitions.map((d: { version: number }) => d.version),
      [2],
    );

    const del = await send('DELETE', '/api/v1/workflows/definitions/to_delete?reason=obsolete', undefined, cid(4));
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.deepEqual(del.body, { definition_id: 'to_delete', deleted: true, versions: [1, 2] });
    assert.deepEqual(
      (await http('GET', '/api/v1/workflows/definitions?id=to_delete&all_versions=true')).body.definitions,
      [],
    );
    assert.equal((await http('POST', '/api/v1/workflows/start/to_delete', {})).status, 404);
    assert.equal((await http('DELETE', '/api/v1/workflows/definitions/to_delete')).status, 404);
    assert.equal((await http('DELETE', '/api/v1/workflows/definitions/revenue_analysis')).status, 409);
    assert.equal((await http('DELETE', '/api/v1/workflows/definitions/Not%20An%20Id')).status, 400);

    const events = await f.store.readStream('workflow_definition-to_delete');
    assert.deepEqual(
      events.map((e) => [e.type, e.metadata['correlationId']]),
      [
        ['DefinitionRegistered', `corr-del-${tag}-1`],
        ['DefinitionRegistered', `corr-del-${tag}-2`],
        ['DefinitionDeleted', `corr-del-${tag}-4`],
      ],
    );
    assert.equal((events[2]!.data as { reason: string }).reason, 'obsolete');
    assert.ok(events.every((e) => typeof e.metadata['actor'] === 'string'));
  });

  it("the full list of latest definitions (the MCP catalog's, the A2A card's) is read again only after a registration or a delete", async () => {
    const svc = f.gw.app.get(WorkflowsService);
    const queries = f.gw.app.get(QueryBus);
    let reads = 0;
    // Every read of the table goes through listPage (list too).
    const listPage = svc.definitions.listPage.bind(svc.definitions);
    svc.definitions.listPage = (...a: Parameters<typeof listPage>) => {
      reads += 1;
      return listPage(...a);
    };
    const latest = async () =>
      (await queries.execute(new ListWorkflowDefinitions(undefined, undefined))).definitions.map((d) => d.id);
    try {
      const first = await latest();
      const before = reads;
      assert.deepEqual(await latest(), first);
      assert.deepEqual(await latest(), first);
      assert.equal(reads, before, 'unchanged: the copy read last');
      const def = {
        id: `stamped_${tag}`,
        version: 1,
        name: 'stamped',
        steps: [{ id: 'a', uses: 'agent:revenue_analysis' }],
      };
      assert.equal((await http('POST', '/api/v1/workflows/definitions', def)).status, 201);
      assert.ok((await latest()).includes(def.id), 'a registration is seen at once');
      assert.equal(reads, before + 1);
      assert.equal((await http('DELETE', `/api/v1/workflows/definitions/${def.id}`)).status, 200);
      assert.ok(!(await latest()).includes(def.id), 'a delete is seen at once');
      assert.equal(reads, before + 2);
      // A page (the REST listing) reads its own rows, as before.
      await queries.execute(new ListWorkflowDefinitions(undefined, undefined, { limit: 10 }));
      assert.equal(reads, before + 3);
    } finally {
      svc.definitions.listPage = listPage;
    }
  });

  it('a page of definitions ends near 2 MiB of their JSON, with a next_cursor, however well they compress, and paging still lists each once', async () => {
    // Seven definitions of about 450 KB each that do not compress (base64 of random bytes), and
    // five that compress to almost nothing as stored (the same text again and again).
    const big = Array.from({ length: 12 }, (_, i) => ({
      id: `big_${tag}_${i}`,
      version: 1,
      name: 'big',
      description: i < 7 ? randomBytes(330 * 1024).toString('base64') : 'step after step '.repeat(28_000),
      steps: [{ id: 'a', uses: 'agent:revenue_analysis' }],
    }));
    for (const def of big) assert.equal((await http('POST', '/api/v1/workflows/definitions', def)).status, 201);
    const pages = await definitionPages('limit=200');
    const sizes = pages.map((page) => JSON.stringify(page).length);
    const ids = pages.flatMap((page) => page.definitions.map((d) => d.id));
    console.log(`# 12 definitions of 450 KB in pages of ${sizes.map((n) => `${(n / 1e6).toFixed(1)} MB`).join(', ')}`);
    assert.ok(sizes.length >= 2, `${sizes.length} pages: the bytes ended the first`);
    assert.ok(Math.max(...sizes) < 3e6, 'no page far above 2 MiB');
    assert.equal(new Set(ids).size, ids.length, 'each once');
    for (const def of big) assert.ok(ids.includes(def.id), def.id);
    for (const def of big) assert.equal((await http('DELETE', `/api/v1/workflows/definitions/${def.id}`)).status, 200);
  });

  it('registers a definition, starts it with ?wait=true, and shows list, detail and events', async () => {
    const reg = await http('POST', '/api/v1/workflows/definitions', twoAgents);
    assert.equal(reg.status, 201);
    const again = await http('POST', '/api/v1/workflows/definitions', twoAgents);
    assert.equal(again.status, 200);
    const defs = await http('GET', '/api/v1/workflows/definitions');
    assert.ok(
      defs.body.definitions.some((d: { id: string; source: string }) => d.id === 'two_agents' && d.source === 'user'),
    );
    assert.equal(defs.body.next_cursor, null);
    // In pages by id: following next_cursor lists each definition once, in order; every version too.
    const byTwo = await definitionPages('limit=2');
    assert.ok(byTwo.every((page) => page.definitions.length <= 2));
    const paged = byTwo.flatMap((page) => page.definitions.map((d) => d.id));
    assert.deepEqual(
      paged,
      defs.body.definitions.map((d: { id: string }) => d.id),
    );
    assert.ok(paged.length > 2, `${paged.length} definitions`);
    const everyVersion = (await definitionPages('all_versions=true&limit=1')).flatMap((page) =>
      page.definitions.map((d) => `${d.id}:${d.version}`),
    );
    const allAtOnce = await http('GET', '/api/v1/workflows/definitions?all_versions=true&limit=200');
    assert.deepEqual(
      everyVersion,
      allAtOnce.body.definitions.map((d: { id: string; version: number }) => `${d.id}:${d.version}`),
    );
    // A version past PostgreSQL's integers (the column's) answered 500.
    for (const bad of ['limit=0', 'limit=201', 'cursor=Not-An-Id', 'cursor=x:0', 'cursor=abc:2147483648'])
      for (const all of ['', '&all_versions=true'])
        assert.equal((await http('GET', `/api/v1/workflows/definitions?${bad}${all}`)).status, 400, bad + all);
    assert.equal(
      (await http('GET', '/api/v1/workflows/definitions?all_versions=true&cursor=abc:2147483647')).status,
      200,
    );

    const bad = await http('POST', '/api/v1/workflows/start/two_agents', { slow: 'x' });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.errors.map((e: { path: string }) => e.path).sort(), ['slow', 'topic']);
    assert.equal((await http('POST', '/api/v1/workflows/start/no_such_template', {})).status, 404);

    const r = await http('POST', '/api/v1/workflows/start/two_agents?wait=true&wait_ms=15000', { topic: 'churn' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'completed');
    assert.deepEqual(r.body.output, { last: 'customer_segmentation' });
    const id: string = r.body.execution_id;

    await f.engine.readModelCaughtUp();
    const detail = await http('GET', `/api/v1/workflows/executions/${id}`);
    assert.equal(detail.status, 200);
    assert.equal(detail.body.status, 'completed');
    assert.deepEqual(
      detail.body.steps.map((s: { step_id: string; status: string; attempts: number }) => [
        s.step_id,
        s.status,
        s.attempts,
      ]),
      [
        ['segment', 'succeeded', 1],
        ['content', 'succeeded', 1],
      ],
    );
    const seg = detail.body.steps[0].attempt_history[0];
    assert.deepEqual(seg.input, { topic: 'churn', slow: 0 });
    assert.equal(seg.idempotency_key, `${id}:segment:1`);
    assert.ok(seg.dispatched_at && seg.ended_at && typeof seg.duration_ms === 'number');

    const list = await http('GET', '/api/v1/workflows/executions?template=two_agents&status=completed&limit=10');
    assert.equal(list.status, 200);
    const listed = list.body.items.find((x: { execution_id: string }) => x.execution_id === id);
    assert.deepEqual(listed.input, { topic: 'churn', slow: 0 }, 'a small input is listed as it is');
    // An output of megabytes is not carried by a list (a page of 200 such was built whole in memory).
    const { rows } = await f.pool.query<{ schema: string }>(
      `select table_schema as schema from information_schema.tables where table_name = 'workflow_executions' limit 1`,
    );
    await f.pool.query(
      `update ${rows[0]!.schema}.workflow_executions set output = jsonb_build_object('blob', repeat(md5(execution_id), 20000)) where execution_id = $1`,
      [id],
    );
    // The bulk filter's name for the same field narrows the same way; two different names are a 400.
    const byDefinition = await http(
      'GET',
      '/api/v1/workflows/executions?definition_id=two_agents&status=completed&limit=10',
    );
    assert.equal(byDefinition.status, 200, JSON.stringify(byDefinition.body));
    assert.deepEqual(
      byDefinition.body.items.map((x: { execution_id: string }) => x.execution_id),
      list.body.items.map((x: { execution_id: string }) => x.execution_id),
    );
    assert.equal(
      (await http('GET', '/api/v1/workflows/executions?template=two_agents&definition_id=other')).status,
      400,
    );
    const bounded = await http('GET', '/api/v1/workflows/executions?template=two_agents&status=completed&limit=10');
    const big = bounded.body.items.find((x: { execution_id: string }) => x.execution_id === id);
    assert.match(big.output.omitted, /larger than 16384 bytes in a list: read the execution/);
    assert.ok(big.output.bytes > 16_384);
    assert.equal(
      (await http('GET', `/api/v1/workflows/executions/${id}`)).body.output.blob.length,
      640_000,
      'the execution itself still has it whole',
    );
    assert.equal((await http('GET', '/api/v1/workflows/executions?status=bogus')).status, 400);
    // A date alone is midnight UTC of that day; a word is a 400 that says what to send.
    const today = new Date().toISOString().slice(0, 10);
    const tomorrow = new Date(Date.parse(`${today}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
    const sinceToday = await http('GET', `/api/v1/workflows/executions?template=two_agents&started_after=${today}`);
    assert.equal(sinceToday.status, 200, JSON.stringify(sinceToday.body));
    assert.ok(sinceToday.body.items.some((x: { execution_id: string }) => x.execution_id === id));
    const sinceTomorrow = await http(
      'GET',
      `/api/v1/workflows/executions?template=two_agents&started_after=${tomorrow}`,
    );
    assert.deepEqual(sinceTomorrow.body.items, []);
    const word = await http('GET', '/api/v1/workflows/executions?started_after=yesterday');
    assert.equal(word.status, 400);
    assert.match(word.body.errors[0].message, /date-time with an offset .* or a date/);
    // A time outside the years PostgreSQL takes, once in UTC: a 400 naming the range, not a 500.
    for (const q of [
      'started_after=0000-01-01T00:00:00Z',
      'started_after=9999-12-31T23:59:59-01:00',
      'started_before=0000-12-31',
    ]) {
      const far = await http('GET', `/api/v1/workflows/executions?${q.replace('+', '%2B')}`);
      assert.equal(far.status, 400, `${q}: ${JSON.stringify(far.body)}`);
      assert.match(JSON.stringify(far.body.errors), /between 0001-01-01 and 9999-12-31/);
    }
    const edge = await http('GET', '/api/v1/workflows/executions?started_after=9999-12-31T23:59:59Z');
    assert.equal(edge.status, 200);
    // A cursor the API did not make, a version beyond the column: 400, not a database error.
    // Nor a day that does not exist (Date.parse rolls it over, PostgreSQL refuses it), nor a NUL.
    for (const text of [
      'yesterday|x',
      '2026-02-30T00:00:00Z|x',
      '2026-01-01T00:00:00.000Z|\u0000',
      '0000-01-01T00:00:00Z|x',
      '2026-01-01T00:00:00+99:99|x',
    ]) {
      const badCursor = await http(
        'GET',
        `/api/v1/workflows/executions?cursor=${Buffer.from(text).toString('base64url')}`,
      );
      assert.equal(badCursor.status, 400, text);
      assert.equal(badCursor.body.errors[0].path, 'cursor');
    }
    assert.equal(
      (await http('POST', '/api/v1/workflows/start/two_agents?version=99999999999', { topic: 'x' })).status,
      400,
    );
    const huge = await http('POST', '/api/v1/workflows/definitions', { ...twoAgents, version: 99_999_999_999 });
    assert.equal(huge.status, 400);
    assert.equal(huge.body.errors[0].path, 'version');

    const events = await http('GET', `/api/v1/workflows/executions/${id}/events`);
    assert.equal(events.status, 200);
    assert.equal(events.body.events[0].type, 'WorkflowStarted');
    assert.equal(events.body.events.at(-1).type, 'WorkflowCompleted');
    assert.deepEqual(
      events.body.events.map((e: { revision: number }) => e.revision),
      events.body.events.map((_: unknown, i: number) => i),
    );
    assert.equal(events.body.next, null);
    assert.equal(events.body.last_revision, events.body.events.at(-1).revision);
    assert.equal((await http('GET', '/api/v1/workflows/executions/nope/events')).status, 404);
    // In pages: `next` links the page after, and following it reads every event once, in order.
    const seen: number[] = [];
    let next: string | null = `/api/v1/workflows/executions/${id}/events?limit=2`;
    while (next) {
      const page = await http('GET', next);
      assert.equal(page.status, 200);
      assert.ok(page.body.events.length <= 2);
      seen.push(...page.body.events.map((e: { revision: number }) => e.revision));
      next = page.body.next;
    }
    assert.deepEqual(
      seen,
      events.body.events.map((e: { revision: number }) => e.revision),
    );
    for (const bad of ['limit=0', 'limit=1001', 'after=-1', 'page=2']) {
      const r = await http('GET', `/api/v1/workflows/executions/${id}/events?${bad}`);
      assert.equal(r.status, 400, bad);
    }
  });

  it('starts without waiting (202), cancels (202, then 409 once ended)', async () => {
    const r = await http('POST', '/api/v1/workflows/start/two_agents', { topic: 'slow', slow: 1500 });
    assert.equal(r.status, 202);
    const id: string = r.body.execution_id;
    assert.equal(r.body.links.self, `/api/v1/workflows/executions/${id}`);
    // Wait until the first step is out, so there is something to wait for.
    for (let i = 0; i < 200 && !taskKeys.includes(`${id}:segment:1`); i++) await sleep(25);
    const c = await http('POST', `/api/v1/workflows/executions/${id}/cancel`, { reason: 'test cancel' });
    assert.equal(c.status, 202);
    assert.equal(c.body.status, 'canceling');
    let status = '';
    for (let i = 0; i < 200 && status !== 'canceled'; i++) {
      await sleep(50);
      status = (await http('GET', `/api/v1/workflows/executions/${id}`)).body.status;
    }
    assert.equal(status, 'canceled');
    const again = await http('POST', `/api/v1/workflows/executions/${id}/cancel`, {});
    assert.equal(again.status, 409);
    assert.equal((await http('POST', '/api/v1/workflows/executions/nope/cancel', {})).status, 404);
  });

  it(
    'reads your writes while the read model is held back: the execution is found and never shown older than it is',
    { timeout: 60_000 },
    async () => {
      await f.engine.readModelCaughtUp();
      // Hold the read model's writes (a SHARE lock lets the API read the table but the projection not write it).
      const blocker = await f.pool.connect();
      let id: string;
      try {
        await blocker.query('begin');
        await blocker.query('lock table read_models.workflow_executions in share mode');
        const r = await http('POST', '/api/v1/workflows/start/two_agents', { topic: 'ryw', slow: 300 });
        assert.equal(r.status, 202);
        id = r.body.execution_id;
        // Right after the 202: found (folded from its stream, since the read model has not seen it).
        const first = await http('GET', `/api/v1/workflows/executions/${id}`);
        assert.equal(first.status, 200, JSON.stringify(first.body));
        assert.equal(first.body.execution_id, id);
        assert.equal(first.body.source, 'stream');
        assert.ok(['running', 'completed'].includes(first.body.status), first.body.status);
        // Once it has ended: shown ended, although the read model still holds it as missing.
        const end = await http('POST', `/api/v1/workflows/start/two_agents?wait=true&wait_ms=20000`, {
          topic: 'ryw-wait',
        });
        assert.equal(end.status, 200, JSON.stringify(end.body));
        for (let i = 0; i < 200; i++) {
          const d = await http('GET', `/api/v1/workflows/executions/${id}`);
          if (d.body.status === 'completed') break;
          assert.equal(d.body.status, 'running');
          await sleep(50);
        }
        const ended = await http('GET', `/api/v1/workflows/executions/${id}`);
        assert.equal(ended.body.status, 'completed');
        assert.equal(ended.body.source, 'stream');
        const waited = await http('GET', `/api/v1/workflows/executions/${end.body.execution_id}`);
        assert.equal(waited.body.status, 'completed');
      } finally {
        await blocker.query('commit').catch(() => undefined);
        blocker.release();
      }
      // Read model caught up: the answer is its view again.
      await f.engine.readModelCaughtUp();
      const view = await http('GET', `/api/v1/workflows/executions/${id}`);
      assert.equal(view.body.status, 'completed');
      assert.equal(view.body.source, 'read_model');
    },
  );

  it('runs an ad-hoc multi-agent workflow from the request body', async () => {
    const r = await http('POST', '/api/v1/integration/agents/workflow?wait=true', {
      definition: { ...twoAgents, id: 'adhoc_agents' },
      input: { topic: 'ad hoc' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'completed');
    const bad = await http('POST', '/api/v1/integration/agents/workflow', {
      definition: { id: 'adhoc_bad', steps: [{ id: 'a', uses: 'agent:revenue_analysis', needs: ['a'] }] },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.detail, /dependency cycle: a -> a/);
  });
});

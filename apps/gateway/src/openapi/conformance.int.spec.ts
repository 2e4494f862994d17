/**
 * The findings of the OpenAPI fuzzer (fuzz.int.spec.ts), each pinned as one request: the
 * fuzzer finds them by chance, these find them every run. A real gateway on the test
 * PostgreSQL and NATS, auth on, no agents or workflow engine behind it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { stopOwnInfra } from '@switchyard/testing';
import { AgentsFeatureModule } from '../features/agents/index.js';
import { WorkflowsFeatureModule } from '../features/workflows/index.js';
import { bearer, startSecuredGateway, type SecuredGateway } from '../security/test-support.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** node:http, since fetch refuses TRACE. */
function call(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      },
    );
    r.on('error', reject);
    // A request left unanswered is a finding of its own, not a hung suite.
    r.setTimeout(5_000, () => r.destroy(new Error(`no answer to ${method} ${path} within 5 s`)));
    r.end(body);
  });
}

const json = { 'content-type': 'application/json' };

describe('REST API conformance: the fuzzer findings, pinned', () => {
  let g: SecuredGateway;
  let operator: string;
  let viewer: string;
  let doc: any;

  before(async () => {
    g = await startSecuredGateway('gw_conformance', {
      modules: [WorkflowsFeatureModule, AgentsFeatureModule],
      requestTimeoutMs: 3_000,
    });
    operator = (await g.makeKey('operator')).key;
    viewer = (await g.makeKey('viewer')).key;
    doc = (await call(g.url, 'GET', '/docs/openapi.json')).body;
  });
  after(async () => {
    await g?.close();
    await stopOwnInfra();
  });

  it('a path with a malformed escape is answered 400 problem+json at once, and nothing is thrown', async () => {
    // The router refuses these before any hook; its error handler once wrote to a reply without
    // the edge's members, threw, and left the request unanswered.
    const thrown: unknown[] = [];
    const onThrown = (err: unknown) => thrown.push(err);
    process.on('uncaughtException', onThrown);
    try {
      for (const p of [
        '/api/v1/workflows/definitions/%ED%A0%80/versions/2114160193/check',
        '/api/v1/workflows/definitions/%ED%A0%80',
        '/api/v1/workflows/executions/%zz',
        '/api/v1/workflows/executions/%E0%A4%A',
      ]) {
        const r = await call(
          g.url,
          'POST',
          p,
          { ...bearer(operator), 'content-type': 'application/json', 'x-correlation-id': 'bad-url-1' },
          '{"limit":142}',
        );
        assert.equal(r.status, 400, p);
        assert.match(r.headers['content-type'] ?? '', /^application\/problem\+json/);
        assert.equal(r.body.correlationId, 'bad-url-1');
        assert.equal(r.headers['x-correlation-id'], 'bad-url-1');
      }
    } finally {
      process.off('uncaughtException', onThrown);
    }
    assert.deepEqual(thrown, []);
  });

  it('started_before with an offset of +16:00 or more is read, not a 500', async () => {
    for (const t of ['2026-08-09T03:36:25+16:00', '2026-08-09T03:36:25-23:59', '2026-08-09T03:36:25Z']) {
      const r = await call(
        g.url,
        'GET',
        `/api/v1/workflows/executions?started_before=${encodeURIComponent(t)}&limit=1`,
        bearer(viewer),
      );
      assert.equal(r.status, 200, `${t}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(Object.keys(r.body).sort(), ['items', 'next', 'next_cursor']);
    }
    const list = doc.paths['/api/v1/workflows/executions'].get.responses['200'].content['application/json'].schema;
    assert.ok(list.properties.next, 'the list documents next');
  });

  it('agents/health documents its top-level status', () => {
    const schema =
      doc.paths['/api/v1/integration/agents/health'].get.responses['200'].content['application/json'].schema;
    assert.deepEqual(schema.properties.status.enum, ['healthy', 'degraded', 'down']);
  });

  it('a quick action refuses an unknown query parameter and creates no task', async () => {
    const count = async () =>
      (await g.pool.query(`select count(*)::int as n from eventstore.events where stream_id like 'task-%'`)).rows[0]
        .n as number;
    const before = await count();
    const r = await call(
      g.url,
      'POST',
      '/api/v1/integration/quick/analyze-revenue?wiat=true',
      { ...bearer(operator), ...json },
      '{"timeframe":"12m"}',
    );
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.deepEqual(r.body.errors, [
      { path: 'wiat', message: 'unknown field', code: 'unrecognized_keys', in: 'query' },
    ]);
    assert.equal(await count(), before);
  });

  it('a route that declares no query parameters refuses one', async () => {
    const r = await call(g.url, 'GET', '/api/v1/workflows/templates?x=1', bearer(viewer));
    assert.equal(r.status, 400);
    assert.equal(r.body.errors[0].path, 'x');
  });

  it('the role is checked before the body: 403 / 401 for a bad, unparseable or oversized body', async () => {
    const cases: [Record<string, string>, string, number][] = [
      [bearer(operator), '{"name": 1}', 403],
      [bearer(operator), '{not json', 403],
      [bearer(operator), '{"a":"\\u0000"}', 403],
      [bearer(viewer), JSON.stringify({ x: 'x'.repeat(1_100_000) }), 403],
      [{}, '{not json', 401],
    ];
    for (const [auth, body, want] of cases) {
      const r = await call(g.url, 'POST', '/api/v1/admin/api-keys', { ...auth, ...json }, body);
      assert.equal(r.status, want, `${body.slice(0, 20)}: ${JSON.stringify(r.body).slice(0, 200)}`);
    }
    // With the role, the same bodies get what they deserve.
    assert.equal(
      (await call(g.url, 'POST', '/api/v1/admin/api-keys', { ...bearer(g.adminKey), ...json }, '{not json')).status,
      400,
    );
    assert.equal(
      (
        await call(
          g.url,
          'POST',
          '/api/v1/admin/api-keys',
          { ...bearer(g.adminKey), ...json },
          JSON.stringify({ x: 'x'.repeat(1_100_000) }),
        )
      ).status,
      413,
    );
  });

  it('a Content-Type that is not a media type: 401 / 403 first, then 415 for the caller with the role', async () => {
    for (const type of [';;;', 'a', '/']) {
      const headers = { 'content-type': type };
      const post = (auth: Record<string, string>) =>
        call(g.url, 'POST', '/api/v1/admin/api-keys', { ...auth, ...headers }, '{"name":"k","role":"viewer"}');
      assert.equal((await post({})).status, 401, type);
      assert.equal((await post(bearer(operator))).status, 403, type);
      const admin = await post(bearer(g.adminKey));
      assert.equal(admin.status, 415, type);
      assert.equal(admin.body.code, 'unsupported_media_type');
      assert.match(admin.headers['content-type'] ?? '', /^application\/problem\+json/);
    }
    // The keep-alive socket that carried a refused body still serves the next request.
    assert.equal((await call(g.url, 'GET', '/api/v1/workflows/templates', bearer(viewer))).status, 200);
  });

  it("a body sent in another type (curl's -d without a Content-Type) is a 415 saying how to send it; no body at all is {}", async () => {
    const body = '{"name":"k","role":"viewer"}';
    for (const type of ['application/x-www-form-urlencoded', 'text/plain']) {
      const post = (auth: Record<string, string>) =>
        call(g.url, 'POST', '/api/v1/admin/api-keys', { ...auth, 'content-type': type }, body);
      assert.equal((await post({})).status, 401, type);
      assert.equal((await post(bearer(operator))).status, 403, type);
      const admin = await post(bearer(g.adminKey));
      assert.equal(admin.status, 415, type);
      assert.equal(admin.body.code, 'unsupported_media_type');
      assert.match(admin.body.detail, /Content-Type: application\/json/);
    }
    // No body and no Content-Type: read as {}, so the route names the fields it needs.
    const bare = await call(g.url, 'POST', '/api/v1/admin/api-keys', bearer(g.adminKey));
    assert.equal(bare.status, 400, JSON.stringify(bare.body));
    assert.deepEqual(
      bare.body.errors.map((e: { path: string }) => e.path),
      ['name', 'role'],
      JSON.stringify(bare.body),
    );
    // The socket that carried a refused body still serves the next request.
    assert.equal((await call(g.url, 'GET', '/api/v1/workflows/templates', bearer(viewer))).status, 200);
    // The document says so: a body with required fields is required, one whose fields all have defaults is not.
    assert.equal(doc.paths['/api/v1/admin/api-keys'].post.requestBody.required, true);
    assert.equal(doc.paths['/api/v1/workflows/executions/{execution_id}/cancel'].post.requestBody.required, false);
  });

  it('a method the path does not have: 405 with Allow (TRACE included); an unknown path stays 404', async () => {
    for (const method of ['TRACE', 'PATCH', 'DELETE']) {
      const r = await call(g.url, method, '/api/v1/workflows/templates', bearer(viewer));
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.allow, 'GET, HEAD');
      assert.match(r.headers['content-type'] ?? '', /^application\/problem\+json/);
      assert.equal(r.body.code, 'method_not_allowed');
    }
    const withParam = await call(g.url, 'PUT', '/api/v1/workflows/executions/wf_1/cancel', bearer(operator));
    assert.equal(withParam.status, 405);
    assert.equal(withParam.headers.allow, 'POST');
    assert.equal((await call(g.url, 'TRACE', '/api/v1/nothing-here', bearer(viewer))).status, 404);
    const validate = await call(g.url, 'DELETE', '/api/v1/workflows/definitions/validate', bearer(viewer));
    assert.equal(validate.status, 405, 'DELETE /definitions/{definition_id} does not take it');
    assert.equal(validate.headers.allow, 'POST');
    // POST-only, but GET /executions/{execution_id} would take it: 405 even with no key at all
    // (that route's 401 would answer first otherwise).
    for (const headers of [{}, bearer(viewer)]) {
      const bulk = await call(g.url, 'GET', '/api/v1/workflows/executions/bulk', headers);
      assert.equal(bulk.status, 405);
      assert.equal(bulk.headers.allow, 'POST');
      assert.equal(bulk.body.code, 'method_not_allowed');
    }
  });

  it('every operation declares its security and the statuses the gateway answers around it', () => {
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
    const quick = doc.paths['/api/v1/integration/quick/customer-support'].post;
    assert.deepEqual(quick.security, [{ bearer: [] }, { apiKey: [] }]);
    for (const s of ['200', '202', '400', '401', '403', '409', '413', '415', '429', '431', '503', '504']) {
      if (s === '429') continue; // rate limits are off in this gateway: not documented
      assert.ok(quick.responses[s], `quick action documents ${s}`);
    }
    assert.ok(quick.responses['401'].headers['WWW-Authenticate']);
    const live = doc.paths['/livez'].get;
    assert.deepEqual(live.security, []);
    assert.equal(live.responses['401'], undefined);
  });
});

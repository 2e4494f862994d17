/**
 * How the edge reads a request body it cannot take as sent (a secured gateway on the test
 * PostgreSQL and nats-server, with the MCP endpoint and the A2A peer, which read bodies through
 * the same parsers): a compressed body or one in another charset is a 415 that names the coding
 * or charset (problem+json; at the A2A peer its JSON-RPC error, as all its refusals), answered
 * after the key is checked, the body neither decoded nor parsed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { AgentsFeatureModule } from '../features/agents/index.js';
import { WorkflowsFeatureModule } from '../features/workflows/index.js';
import { A2aFeatureModule } from '../features/a2a/index.js';
import { McpServerFeatureModule } from '../features/mcp-server/mcp-server.module.js';
import { startSecuredGateway, type SecuredGateway } from '../security/test-support.js';

describe('request bodies in a coding or charset the edge does not read', () => {
  let g: SecuredGateway;
  let operator: string;

  before(async () => {
    g = await startSecuredGateway('body_codings', {
      modules: [
        AgentsFeatureModule,
        WorkflowsFeatureModule,
        A2aFeatureModule,
        McpServerFeatureModule.withOptions({ stateless: true, catalogRefreshMs: 600_000 }),
      ],
    });
    operator = (await g.makeKey('operator')).key;
  });

  after(async () => {
    await g?.close();
  });

  /** A raw POST (fetch would not send a Content-Encoding it did not apply), on a connection of its own. */
  const post = (path: string, body: Buffer, headers: Record<string, string>, key: string | null = operator) =>
    new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = http.request(
        `${g.url}${path}`,
        {
          method: 'POST',
          agent: false,
          headers: {
            accept: 'application/json, text/event-stream',
            'content-length': String(body.length),
            ...(key ? { authorization: `Bearer ${key}` } : {}),
            ...headers,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body: text }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const json = Buffer.from(JSON.stringify({ id: 'x', version: 1, name: 'x', steps: [] }));
  const routes = ['/api/v1/workflows/definitions/validate', '/mcp', '/a2a/workflows'];
  /** What the answer says: a problem's detail, or (A2A) its JSON-RPC parse error's message. */
  const reason = (path: string, r: { type: string; body: string }): string => {
    if (path.startsWith('/a2a/')) {
      assert.match(r.type, /^application\/json/);
      const rpc = JSON.parse(r.body) as { error: { code: number; message: string } };
      assert.equal(rpc.error.code, -32700);
      return rpc.error.message;
    }
    assert.match(r.type, /^application\/problem\+json/);
    return (JSON.parse(r.body) as { detail: string }).detail;
  };

  it('answers 415 problem+json naming the content coding, for every coding but identity', async () => {
    for (const path of routes)
      for (const coding of ['gzip', 'deflate', 'br', 'x-custom', 'identity, gzip', 'GZIP']) {
        const body = coding.toLowerCase().includes('gzip') ? gzipSync(json) : json;
        const r = await post(path, body, { 'content-type': 'application/json', 'content-encoding': coding });
        const what = `${path} ${coding}: ${r.status} ${r.body}`;
        assert.equal(r.status, 415, what);
        const detail = reason(path, r);
        assert.match(detail, /sent with Content-Encoding ".+", which this API does not decode/, what);
        assert.ok(detail.includes(`"${coding.toLowerCase().replace('identity, ', '')}"`), what);
      }
  });

  it('answers 415 naming the charset for any charset but UTF-8 or US-ASCII, and reads those as before', async () => {
    for (const path of routes)
      for (const [type, body] of [
        ['application/json; charset=utf-16', Buffer.from(json.toString('utf16le'), 'utf16le')],
        ['application/json; charset="UTF-16LE"', Buffer.from(json.toString('utf16le'), 'utf16le')],
        // Plain ASCII bytes under a label that says otherwise: refused, not guessed.
        ['application/json;charset=iso-8859-1', json],
      ] as const) {
        const r = await post(path, body, { 'content-type': type });
        const what = `${path} ${type}: ${r.status} ${r.body}`;
        assert.equal(r.status, 415, what);
        assert.match(reason(path, r), /charset "(utf-16|utf-16le|iso-8859-1)": send JSON as UTF-8/, what);
      }
    for (const type of [
      'application/json; charset=utf-8',
      'application/json; charset="UTF-8"',
      'application/json; charset=us-ascii',
      'application/json',
    ]) {
      const r = await post('/api/v1/workflows/definitions/validate', json, {
        'content-type': type,
        'content-encoding': 'identity',
      });
      assert.equal(r.status, 200, `${type}: ${r.status} ${r.body}`);
    }
  });

  it('checks the key first: without one the answer is 401, whatever the coding', async () => {
    const r = await post(
      '/api/v1/workflows/definitions/validate',
      gzipSync(json),
      {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      },
      null,
    );
    assert.equal(r.status, 401, r.body);
  });

  it('a number past the range of a double (1e400) is a 400 naming it, not stored as null; in range (1e300) it is read', async () => {
    const route = '/api/v1/workflows/definitions/validate';
    for (const big of ['1e400', '-1E+400', '9'.repeat(400)]) {
      const r = await post(route, Buffer.from(`{"id":"x","version":1,"name":"x","steps":[],"x":${big}}`), {
        'content-type': 'application/json',
      });
      assert.equal(r.status, 400, r.body);
      assert.match(reason(route, r), /out of range/);
    }
    // In range, and a string that only looks like one: read as sent (the validation answers 200).
    const ok = await post(
      route,
      Buffer.from('{"id":"x","version":1,"name":"x e400","steps":[],"description":"1e999 in a string"}'),
      { 'content-type': 'application/json' },
    );
    assert.equal(ok.status, 200, ok.body);
    const a2a = await post(
      '/a2a/workflows',
      Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t","n":1e400}}'),
      {
        'content-type': 'application/json',
      },
    );
    assert.equal(reason('/a2a/workflows', a2a).includes('out of range'), true, a2a.body);
  });
});

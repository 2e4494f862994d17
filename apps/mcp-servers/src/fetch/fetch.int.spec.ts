import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { fails, httpClient, localHttp, ok, silentLogger, type LocalHttp } from '../test-helpers.js';
import { EgressGuard } from './egress-guard.js';
import { HtmlExtractor } from './html-extractor.js';
import { createFetchServer } from './server.js';

/** Fake DNS for made-up names; anything else is "not found" (no real DNS in tests). */
function fakeDns(table: Record<string, string[]>): (host: string) => Promise<LookupAddress[]> {
  return async (host) => {
    const addrs = table[host];
    if (!addrs) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addrs.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

describe('fetch MCP server (egress guard, real sockets)', () => {
  let site: LocalHttp; // the "allowed" site
  let secret: LocalHttp; // an internal service nobody may reach
  const servers: McpHttpServerHandle[] = [];
  let strict: Client; // default policy: nothing internal
  let allowed: Client; // 127.0.0.1 and allowed.test allow-listed by host

  const page = `<!doctype html><html><head><title>Switchyard  test page</title><style>p{color:red}</style></head>
    <body><h1>Hello</h1><p>First paragraph with <a href="/docs?x=1">the docs</a>.</p>
    <script>var hidden = 1;</script><p>Second &amp; last.</p><a href="https://example.org/x">ext</a></body></html>`;

  const htmlExtractor = new HtmlExtractor({ timeoutMs: 1_500 });

  before(async () => {
    secret = await localHttp((_req, res) => res.end('internal secret'));
    site = await localHttp((req, res) => {
      if (req.url === '/page') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page);
      } else if (req.url === '/to-secret') {
        res.writeHead(302, { location: `http://127.0.0.1:${secret.port}/` });
        res.end();
      } else if (req.url === '/to-secret-by-name') {
        res.writeHead(302, { location: `http://internal.test:${secret.port}/` });
        res.end();
      } else if (req.url === '/hop') {
        res.writeHead(301, { location: '/json' });
        res.end();
      } else if (req.url === '/json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ hello: 'world', method: req.method }));
      } else if (req.url === '/big-chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (let i = 0; i < 20; i++) res.write('x'.repeat(1000));
        res.end();
      } else if (req.url === '/big-declared') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '50000' });
        res.end('y'.repeat(50000));
      } else if (req.url === '/cross') {
        res.writeHead(302, { location: `http://allowed.test:${secret.port}/landing` });
        res.end();
      } else if (req.url === '/nested') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<html><body>${'<div>'.repeat(200_000)}`);
      } else if (req.url === '/hang') {
        // Never answers; the client's deadline must end the call.
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`hello from ${req.headers.host}`);
      }
    });
    const dns = fakeDns({
      'internal.test': ['127.0.0.1'],
      'allowed.test': ['127.0.0.1'],
      'rebind.test': ['93.184.215.14', '10.1.2.3'],
    });
    const strictGuard = new EgressGuard({ resolve: dns });
    const allowGuard = new EgressGuard({ allowHosts: ['allowed.test'], allowCidrs: [], resolve: dns });
    const ipGuard = new EgressGuard({ allowHosts: ['127.0.0.1'], resolve: dns });
    for (const guard of [strictGuard, allowGuard, ipGuard]) {
      servers.push(
        await startMcpHttpServer({
          name: 'fetch',
          serverFactory: () => createFetchServer({ guard, logger: silentLogger, htmlExtractor }),
          port: 0,
          logger: silentLogger,
        }),
      );
    }
    strict = await httpClient(servers[0]!.url);
    allowed = await httpClient(servers[1]!.url);
  });

  after(async () => {
    await strict?.close();
    await allowed?.close();
    for (const s of servers) await s.close();
    await htmlExtractor.close();
    await site?.close();
    await secret?.close();
  });

  it('refuses a local HTTP server on 127.0.0.1 by default, as loopback, without connecting', async () => {
    const before = site.requests.length;
    const e = await fails(strict, 'http_request', { url: `${site.base}/` });
    assert.equal(e.code, 'forbidden');
    assert.equal(e.details['range'], 'loopback');
    assert.equal(site.requests.length, before, 'no request reached the server');
  });

  it('reaches the same server when 127.0.0.1 is allow-listed', async () => {
    const c = await httpClient(servers[2]!.url);
    try {
      const r = await ok(c, 'http_request', {
        url: `${site.base}/json`,
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { hello: 'world', method: 'POST' });
      assert.equal(r.body_encoding, 'utf8');
    } finally {
      await c.close();
    }
  });

  it('refuses metadata, private, CGNAT and special IPv6 addresses before any traffic', async () => {
    const cases: [string, string][] = [
      ['http://169.254.169.254/latest/meta-data/', 'linkLocal'],
      ['http://10.0.0.1/', 'private'],
      ['http://100.64.0.1/', 'carrierGradeNat'],
      ['http://0.0.0.0/', 'unspecified'],
      ['http://224.0.0.1/', 'multicast'],
      ['http://[::1]/', 'loopback'],
      ['http://[fd00::1]/', 'uniqueLocal'],
      ['http://[fe80::1]/', 'linkLocal'],
      ['http://[::ffff:127.0.0.1]/', 'ipv4Mapped'],
      ['http://2130706433/', 'loopback'], // decimal form of 127.0.0.1, normalised by the URL parser
    ];
    for (const [url, range] of cases) {
      const e = await fails(strict, 'http_request', { url, timeout_ms: 2000 });
      assert.equal(e.code, 'forbidden', url);
      assert.equal(e.details['range'], range, url);
    }
  });

  it('refuses every other spelling of loopback (IPv4-compatible IPv6, octal, hex, short, 0) at the local server, without a request reaching it', async () => {
    const before = site.requests.length;
    const port = site.port;
    const cases: [string, string][] = [
      [`http://[::127.0.0.1]:${port}/`, 'ipv4Compatible'],
      [`http://[::ffff:7f00:1]:${port}/`, 'ipv4Mapped'],
      [`http://0177.0.0.1:${port}/`, 'loopback'],
      [`http://0x7f.1:${port}/`, 'loopback'],
      [`http://127.1:${port}/`, 'loopback'],
      [`http://0:${port}/`, 'unspecified'],
    ];
    for (const [url, range] of cases) {
      const e = await fails(strict, 'http_request', { url, timeout_ms: 2000 });
      assert.equal(e.code, 'forbidden', url);
      assert.equal(e.details['range'], range, url);
    }
    assert.equal(site.requests.length, before, 'no request reached the server');
  });

  it('checks the resolved addresses of a host name and connects to none of them when one is internal', async () => {
    const before = secret.requests.length;
    const e = await fails(strict, 'http_request', { url: `http://internal.test:${secret.port}/` });
    assert.equal(e.code, 'forbidden');
    assert.equal(e.details['address'], '127.0.0.1');
    const mixed = await fails(strict, 'http_request', { url: 'http://rebind.test/' });
    assert.equal(mixed.code, 'forbidden');
    assert.equal(mixed.details['address'], '10.1.2.3');
    assert.equal(secret.requests.length, before);
  });

  it('connects an allow-listed host to the address it resolved and checked', async () => {
    const r = await ok(allowed, 'http_request', { url: `http://allowed.test:${site.port}/plain` });
    assert.equal(r.status, 200);
    assert.equal(r.body, `hello from allowed.test:${site.port}`);
  });

  it('follows redirects between allowed places and re-checks each hop', async () => {
    const r = await ok(allowed, 'http_request', { url: `http://allowed.test:${site.port}/hop` });
    assert.equal(r.status, 200);
    assert.deepEqual(r.redirects, [`http://allowed.test:${site.port}/json`]);
    const noFollow = await ok(allowed, 'http_request', {
      url: `http://allowed.test:${site.port}/hop`,
      follow_redirects: false,
    });
    assert.equal(noFollow.status, 301);
  });

  it('refuses a redirect from an allowed host to a loopback one', async () => {
    const before = secret.requests.length;
    const e = await fails(allowed, 'http_request', { url: `http://allowed.test:${site.port}/to-secret` });
    assert.equal(e.code, 'forbidden');
    assert.equal(e.details['range'], 'loopback');
    const byName = await fails(allowed, 'http_request', { url: `http://allowed.test:${site.port}/to-secret-by-name` });
    assert.equal(byName.code, 'forbidden');
    assert.equal(secret.requests.length, before, 'the internal server got nothing');
  });

  it('enforces the size cap while streaming and from content-length', async () => {
    const chunked = await fails(allowed, 'http_request', {
      url: `http://allowed.test:${site.port}/big-chunked`,
      max_bytes: 5000,
    });
    assert.equal(chunked.code, 'payload_too_large');
    const declared = await fails(allowed, 'http_request', {
      url: `http://allowed.test:${site.port}/big-declared`,
      max_bytes: 5000,
    });
    assert.equal(declared.code, 'payload_too_large');
    const fits = await ok(allowed, 'http_request', {
      url: `http://allowed.test:${site.port}/big-chunked`,
      max_bytes: 20000,
    });
    assert.equal(fits.bytes, 20000);
  });

  it('ends a call that gets no answer with a timeout error', async () => {
    const e = await fails(allowed, 'http_request', { url: `http://allowed.test:${site.port}/hang`, timeout_ms: 300 });
    assert.equal(e.code, 'timeout');
  });

  it('refuses non-HTTP schemes', async () => {
    const e = await fails(allowed, 'http_request', { url: 'file:///etc/passwd' });
    assert.equal(e.code, 'validation');
  });

  it('extracts title, text and absolute links from HTML', async () => {
    const r = await ok(allowed, 'fetch_text', { url: `http://allowed.test:${site.port}/page` });
    assert.equal(r.title, 'Switchyard test page');
    assert.match(r.text, /HELLO|Hello/);
    assert.match(r.text, /First paragraph with the docs\./);
    assert.match(r.text, /Second & last\./);
    assert.doesNotMatch(r.text, /hidden|color:red/);
    assert.deepEqual(r.links, [
      { href: `http://allowed.test:${site.port}/docs?x=1`, text: 'the docs' },
      { href: 'https://example.org/x', text: 'ext' },
    ]);
  });

  it('fails a page too costly to convert alone (a minute of nesting), while the server answers other calls', async () => {
    let settled = false;
    const costly = fails(allowed, 'fetch_text', { url: `http://allowed.test:${site.port}/nested` }).finally(
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 300));
    const meanwhile = await ok(allowed, 'http_request', { url: `http://allowed.test:${site.port}/json` });
    assert.equal(meanwhile.status, 200);
    assert.equal(settled, false, 'answered while the page was still being converted');
    const e = await costly;
    assert.equal(e.code, 'payload_too_large');
    assert.match(String(e.message), /could not be converted to text/);
  });

  it('sends no credential header across origins on a redirect, whatever its name; the same origin keeps them', async () => {
    const headers = {
      'x-api-key': 'K1',
      'private-token': 'K2',
      authorization: 'Bearer K3',
      'x-custom-auth': 'K4',
      accept: 'application/json',
    };
    const r = await ok(allowed, 'http_request', { url: `http://allowed.test:${site.port}/cross`, headers });
    assert.equal(r.status, 200);
    const landed = secret.requests.find((q) => q.url === '/landing');
    assert.ok(landed, 'the redirect was followed');
    assert.equal(landed.headers['accept'], 'application/json');
    for (const k of ['x-api-key', 'private-token', 'authorization', 'x-custom-auth'])
      assert.equal(landed.headers[k], undefined, k);
    await ok(allowed, 'http_request', { url: `http://allowed.test:${site.port}/hop`, headers });
    const same = site.requests.filter((q) => q.url === '/json').at(-1);
    assert.equal(same?.headers['x-api-key'], 'K1', 'a redirect within the origin keeps them');
  });
});

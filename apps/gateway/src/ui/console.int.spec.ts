/**
 * The console's static serving and the whoami route, on a real gateway (real PostgreSQL and
 * nats-server of the test runner, auth on): a build is served with its CSP and caching, client
 * routes fall back to index.html, and a gateway without a build still starts and answers /ui 503.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stopOwnInfra } from '@switchyard/testing';
import { bearer, startSecuredGateway, type SecuredGateway } from '../security/test-support.js';

describe('operator console at /ui', () => {
  let built: SecuredGateway;
  let unbuilt: SecuredGateway;
  const dir = mkdtempSync(path.join(tmpdir(), 'console-ui-'));
  const buildDir = path.join(dir, 'dist');
  const emptyDir = path.join(dir, 'none');

  before(async () => {
    mkdirSync(path.join(buildDir, 'assets'), { recursive: true });
    writeFileSync(
      path.join(buildDir, 'index.html'),
      '<!doctype html><html lang="en"><script type="module" src="/ui/assets/index-abc123.js"></script></html>',
    );
    writeFileSync(path.join(buildDir, 'assets', 'index-abc123.js'), 'console.log("hi")');
    built = await startSecuredGateway('gw_console', { consoleDir: buildDir });
    unbuilt = await startSecuredGateway('gw_console_none', { consoleDir: emptyDir }, built.databaseUrl);
  });
  after(async () => {
    await built?.close();
    await unbuilt?.close();
    rmSync(dir, { recursive: true, force: true });
    await stopOwnInfra();
  });

  it('serves index.html for /ui and any client route, never cached, with a CSP, and needs no key', async () => {
    for (const p of ['/ui', '/ui/', '/ui/workflows/executions/abc', '/ui/index.html']) {
      const res = await fetch(`${built.url}${p}`);
      assert.equal(res.status, 200, p);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/, p);
      assert.equal(res.headers.get('cache-control'), 'no-cache', p);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'self'(;|$)/, 'no inline scripts, no eval');
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(await res.text(), /index-abc123\.js/);
    }
  });

  it('serves hashed assets with their type, cached immutably for a year; a missing asset is 404, not the page', async () => {
    const res = await fetch(`${built.url}/ui/assets/index-abc123.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /javascript/);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const missing = await fetch(`${built.url}/ui/assets/index-old999.js`);
    assert.equal(missing.status, 404);
    assert.doesNotMatch(await missing.text(), /<html/);
  });

  it('answers only GET and HEAD under /ui', async () => {
    const res = await fetch(`${built.url}/ui/`, { method: 'POST' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
  });

  it('without a build the gateway still serves the API and answers /ui with 503 saying how to build it', async () => {
    const res = await fetch(`${unbuilt.url}/ui/`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /not built.*npm start/s);
    assert.equal((await fetch(`${unbuilt.url}/livez`)).status, 200);
  });

  it('says whether it serves the console (what the start banner shows): with a build yes, without no', () => {
    assert.equal(built.gateway.consoleServed, true);
    assert.equal(unbuilt.gateway.consoleServed, false);
  });

  it('GET /api/v1/auth/whoami answers the key id, name and role; 401 without a key', async () => {
    const viewer = await built.makeKey('viewer', 'console-viewer');
    const res = await fetch(`${built.url}/api/v1/auth/whoami`, { headers: bearer(viewer.key) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: viewer.id, name: 'console-viewer', role: 'viewer', auth_enabled: true });
    const admin = await (await fetch(`${built.url}/api/v1/auth/whoami`, { headers: bearer(built.adminKey) })).json();
    assert.equal((admin as { role: string }).role, 'admin');
    assert.equal((await fetch(`${built.url}/api/v1/auth/whoami`)).status, 401);
  });
});

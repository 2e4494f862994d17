// The gateway attacked by DNS rebinding and from a foreign page: a request naming another host,
// or sent by a page of another origin, is refused (403 problem+json) before the API key is looked at.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { configSchema, parseConfig } from '@switchyard/platform';
import { bearer, startSecuredGateway, type SecuredGateway } from './test-support.js';

/** node:http, not fetch: fetch does not let a caller set `Host`. */
function get(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; type: string; body: any }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers }, (res) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString('utf8')));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type'] ?? ''),
            body: data.startsWith('{') ? JSON.parse(data) : data,
          }),
        );
      })
      .on('error', reject);
  });
}

describe('gateway Host and Origin checks', () => {
  let g: SecuredGateway;
  let port: number;
  let viewer: string;

  before(async () => {
    g = await startSecuredGateway('gw_host_origin', {
      edge: { allowedHosts: ['api.switchyard.test'], allowedOrigins: ['https://console.switchyard.test'] },
    });
    port = Number(new URL(g.url).port);
    viewer = (await g.makeKey('viewer')).key;
  });
  after(() => g?.close());

  it('binds 127.0.0.1 unless GATEWAY_HOST says otherwise', () => {
    assert.equal(parseConfig({}, configSchema).GATEWAY_HOST, '127.0.0.1');
    assert.equal(parseConfig({}, configSchema).BIND_HOST, '127.0.0.1');
  });

  it('answers 403 problem+json to a rebound Host, even with a valid key', async () => {
    for (const host of ['attacker.example', `attacker.example:${port}`, `127.0.0.1:${port + 1}`]) {
      const r = await get(port, '/api/v1/events?limit=1', { host, ...bearer(viewer) });
      assert.equal(r.status, 403, host);
      assert.match(r.type, /application\/problem\+json/);
      assert.equal(r.body.status, 403);
      assert.match(r.body.detail ?? r.body.title, /Host/);
    }
    const health = await get(port, '/livez', { host: 'attacker.example' });
    assert.equal(health.status, 403);
  });

  it('answers 403 to a foreign Origin; its own origin and the configured ones pass', async () => {
    for (const origin of ['http://attacker.example', `http://localhost:${port + 1}`, 'null']) {
      const r = await get(port, '/api/v1/events?limit=1', { host: `127.0.0.1:${port}`, origin, ...bearer(viewer) });
      assert.equal(r.status, 403, origin);
      assert.match(r.body.detail ?? r.body.title, /Origin/);
    }
    const own = await get(port, '/api/v1/events?limit=1', {
      host: `localhost:${port}`,
      origin: `http://localhost:${port}`,
      ...bearer(viewer),
    });
    assert.equal(own.status, 200);
    const configured = await get(port, '/api/v1/events?limit=1', {
      host: 'api.switchyard.test',
      origin: 'https://console.switchyard.test',
      ...bearer(viewer),
    });
    assert.equal(configured.status, 200);
  });

  it('a Host that passed before does not let a foreign Origin, or another Host, through with it', async () => {
    // Verdicts that passed are remembered per (port, Host, Origin); each new combination is judged.
    for (let i = 0; i < 3; i++) assert.equal((await get(port, '/livez', { host: 'api.switchyard.test' })).status, 200);
    assert.equal(
      (await get(port, '/livez', { host: 'api.switchyard.test', origin: 'http://attacker.example' })).status,
      403,
    );
    assert.equal(
      (await get(port, '/livez', { host: 'api.switchyard.test', origin: 'https://console.switchyard.test' })).status,
      200,
    );
    assert.equal((await get(port, '/livez', { host: `127.0.0.1:${port}` })).status, 200);
    assert.equal((await get(port, '/livez', { host: `127.0.0.1:${port + 1}` })).status, 403);
    assert.equal((await get(port, '/livez', { host: 'attacker.example' })).status, 403);
  });

  it('serves non-browser clients (no Origin) on the loopback address', async () => {
    const r = await get(port, '/livez', { host: `127.0.0.1:${port}` });
    assert.equal(r.status, 200);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getEventListeners } from 'node:events';
import { fetchWithOwnSignals } from './own-signal-fetch.js';

describe('fetchWithOwnSignals (the connector transport fetch)', () => {
  let server: Server;
  let url: string;
  before(async () => {
    // /slow never answers until the client goes away; anything else answers at once.
    server = createServer((req, res) => {
      if (req.url === '/slow') return void res.writeHead(200, { 'content-type': 'text/event-stream' }).flushHeaders();
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('keeps one abort listener on the shared signal, however many requests ran', async () => {
    const shared = new AbortController();
    const f = fetchWithOwnSignals();
    for (let i = 0; i < 100; i++) assert.equal(await (await f(`${url}/x`, { signal: shared.signal })).text(), 'ok');
    assert.equal(getEventListeners(shared.signal, 'abort').length, 1);
  });

  it('aborting the shared signal aborts a request in flight, body included', async () => {
    const shared = new AbortController();
    const f = fetchWithOwnSignals();
    const res = await f(`${url}/slow`, { signal: shared.signal });
    const body = res.text();
    shared.abort(new Error('transport closed'));
    await assert.rejects(body, /transport closed|abort/i);
    // A request after the abort fails at once, as with the shared signal itself.
    await assert.rejects(f(`${url}/x`, { signal: shared.signal }), /transport closed|abort/i);
  });

  it('passes a request without a signal through untouched', async () => {
    assert.equal(await (await fetchWithOwnSignals()(`${url}/x`)).text(), 'ok');
  });
});

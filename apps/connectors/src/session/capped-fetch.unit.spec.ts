import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchWithResponseCap, RESPONSE_TOO_LARGE, ResponseTooLargeError } from './capped-fetch.js';

/** A loopback server answering what each path says: JSON, an event stream, or a stream of short lines. */
describe('fetchWithResponseCap', () => {
  let server: Server;
  let base: string;
  const cap = 64 * 1024;
  const capped = fetchWithResponseCap((input, init) => fetch(input, init), cap);

  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ text: 'x'.repeat(cap * 4) }));
      } else if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(
          `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 7, result: { t: 'x'.repeat(cap * 4) } })}\n\n`,
        );
      } else {
        // Many short events: more than the cap in all, none near it (CRLF line ends on one path).
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const nl = req.url === '/crlf' ? '\r\n' : '\n';
        for (let i = 0; i < 2_000; i++) res.write(`data: ${'y'.repeat(100)}${nl}${nl}`);
        if (req.url === '/lines-then-long') res.end(`data: ${'z'.repeat(cap * 2)}\n\n`);
        // One event of many short data lines (SSE joins them into one message).
        else if (req.url === '/one-event-many-lines') {
          for (let i = 0; i < 2_000; i++) res.write(`data: ${'w'.repeat(100)}\n`);
          res.end('\n');
        } else res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((r) => server.close(r)));

  const post = (path: string, body = '{}') => capped(`${base}${path}`, { method: 'POST', body });

  it('a POST answered with JSON over the cap fails to read, with ResponseTooLargeError', async () => {
    const res = await post('/json');
    const err = await res.json().then(
      () => undefined,
      (e: unknown) => e,
    );
    let found: unknown = err;
    while (found instanceof Error && !(found instanceof ResponseTooLargeError)) found = found.cause;
    assert.ok(found instanceof ResponseTooLargeError, `got ${String(err)}`);
  });

  it("a POST answered as an event stream ends with an error answer for each of the body's requests", async () => {
    const res = await post('/sse', JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: {} }));
    const text = await res.text();
    const last = text.trim().split('\n\n').at(-1)!;
    const answer = JSON.parse(last.replace(/^event: message\ndata: /, '')) as {
      id: number;
      error: { data: { reason: string; max_bytes: number } };
    };
    assert.equal(answer.id, 7);
    assert.deepEqual(answer.error.data, { reason: RESPONSE_TOO_LARGE, max_bytes: cap });
    assert.ok(text.length < cap * 2, `${text.length} characters passed`);
  });

  it('the long-lived GET stream is bounded per event: short events pass whatever their total; a long line, or many lines of one event, fail', async () => {
    for (const path of ['/lines', '/crlf']) {
      const ok = await capped(`${base}${path}`);
      assert.ok((await ok.text()).length > cap * 2, path);
    }
    await assert.rejects((await capped(`${base}/lines-then-long`)).text());
    await assert.rejects((await capped(`${base}/one-event-many-lines`)).text());
  });
});

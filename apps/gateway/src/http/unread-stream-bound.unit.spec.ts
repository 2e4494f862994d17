import { Readable } from 'node:stream';
import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  boundUnreadStream,
  cutStalledAnswer,
  watchStreamedAnswer,
  type UnreadStreamCut,
} from './unread-stream-bound.js';

const BOUND = 256 * 1024;
const STALL_MS = 300;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

/**
 * A real HTTP server and client on loopback: each test gets the server's response (bounded) and
 * the client's (paused, so nothing is read until the test reads it).
 */
describe('boundUnreadStream (an SSE-like response whose client may not read)', () => {
  let server: http.Server;
  let url: string;
  let nextResponse: ((res: ServerResponse) => void) | undefined;

  before(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      nextResponse?.(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** Opens a stream: the server side (bounded), the client side (paused), and the cuts seen. */
  const open = async (stallMs = STALL_MS) => {
    const cuts: UnreadStreamCut[] = [];
    const served = new Promise<ServerResponse>((r) => (nextResponse = r));
    const client = await new Promise<IncomingMessage>((resolve, reject) => {
      http
        .get(url, resolve)
        .on('error', () => undefined)
        .on('error', reject);
    });
    client.pause();
    client.on('error', () => undefined);
    const res = await served;
    boundUnreadStream(res, { maxPendingBytes: BOUND, stallMs }, (c) => cuts.push(c));
    return { res, client, cuts };
  };

  /** Writes chunks (letting the socket flush between them) until more than `bytes` wait in the process. */
  const fillPast = async (res: ServerResponse, bytes: number) => {
    for (let i = 0; i < 4_000 && res.writableLength <= bytes && !res.destroyed; i++) {
      res.write(CHUNK);
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(res.writableLength > bytes, `more than ${bytes} bytes wait (the kernel's buffers are full)`);
  };

  it('cuts a stream whose client takes nothing for the stall time once over the bound', async () => {
    const { res, client, cuts } = await open();
    await fillPast(res, BOUND);
    assert.equal(cuts.length, 0, 'not at once');
    await sleep(STALL_MS * 3);
    assert.equal(cuts.length, 1);
    assert.equal(cuts[0]!.reason, 'stalled');
    assert.ok(cuts[0]!.pendingBytes > BOUND);
    assert.ok(res.destroyed, 'the response is destroyed, its buffered bytes released');
    assert.equal(res.write('more'), false, 'later writes are dropped');
    client.destroy();
  });

  it('cuts at once a stream over the bound that grows by another bound unread', async () => {
    const { res, client, cuts } = await open();
    await fillPast(res, BOUND);
    await sleep(STALL_MS / 2); // nothing taken since it went over
    for (let i = 0; i < 10 && !res.destroyed; i++) res.write(CHUNK);
    assert.equal(cuts.length, 1);
    assert.equal(cuts[0]!.reason, 'piling');
    assert.ok(res.destroyed);
    client.destroy();
  });

  it('keeps a stream whose client starts reading within the stall time, and goes on writing to it', async () => {
    // A longer stall time here: the client starts reading well within it even on a loaded
    // machine, whose timers fire late (at 300 ms, a start at 150 ms was sometimes too late).
    const stallMs = 1_000;
    const { res, client, cuts } = await open(stallMs);
    await fillPast(res, BOUND);
    await sleep(stallMs / 5);
    let received = '';
    client.setEncoding('latin1');
    client.on('data', (d: string) => (received = (received + d).slice(-100)));
    client.resume();
    await sleep(stallMs * 2);
    assert.equal(cuts.length, 0, 'a client that reads is not cut');
    assert.ok(res.writableLength <= BOUND, 'what waited was taken');
    res.write('data: still here\n\n');
    await sleep(100);
    assert.match(received, /still here/);
    res.destroy();
    client.destroy();
  });

  it('keeps a client that reads a large answer while more is written after it (notifications, other answers)', async () => {
    const { res, client, cuts } = await open();
    let received = 0;
    client.on('data', (d: Buffer) => (received += d.length));
    client.resume();
    const big = Buffer.alloc(BOUND * 8, 'y');
    res.write(big);
    for (let i = 0; i < 20; i++) res.write(CHUNK); // 1.25 MiB more right behind it
    await sleep(STALL_MS * 3);
    assert.equal(cuts.length, 0, 'a reading client is not cut');
    assert.equal(received, big.length + 20 * CHUNK.length, 'everything arrived');
    res.destroy();
    client.destroy();
  });

  it('keeps one piling timer however many writes come while the client reads', async () => {
    const { res, client } = await open();
    client.resume();
    const timers = mock.method(globalThis, 'setTimeout');
    try {
      res.write(Buffer.alloc(BOUND * 8, 'y'));
      for (let i = 0; i < 40; i++) res.write(CHUNK); // most of them past the piling threshold
      // Timers of the piling check (set for at most half the stall time); one per write before.
      const piling = timers.mock.calls.filter((c) => Number(c.arguments[1]) <= STALL_MS / 2).length;
      assert.ok(piling <= 1, `${piling} piling timers set for 40 writes`);
    } finally {
      timers.mock.restore();
      res.destroy();
      client.destroy();
    }
  });

  it('sends one answer larger than twice the bound to a client that reads it', async () => {
    const { res, client, cuts } = await open();
    client.resume();
    let received = 0;
    client.on('data', (d: Buffer) => (received += d.length));
    const big = Buffer.alloc(BOUND * 8, 'y');
    res.write(big);
    await new Promise<void>((r) => res.end(r));
    await new Promise((r) => client.on('end', r));
    assert.equal(cuts.length, 0);
    assert.equal(received, big.length);
  });
});

describe('cutStalledAnswer (an ended answer the client does not take)', () => {
  const STALL = 300;
  let server: http.Server;
  let url: string;
  const cuts: number[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      cutStalledAnswer(res, STALL, (pending) => cuts.push(pending));
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const size = Number(q.get('bytes'));
      if (q.get('streamed')) {
        // In chunks as they are made, piped (as a large execution detail goes out): no end until the last.
        if (!q.get('unmarked')) watchStreamedAnswer(res);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 's');
        Readable.from(
          (function* () {
            for (let sent = 0; sent < size; sent += chunk.length) yield chunk;
          })(),
        ).pipe(res);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      res.end(Buffer.alloc(size, 'z'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const get = (bytes: number, streamed = false, unmarked = false) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      http
        .get(`${url}?bytes=${bytes}${streamed ? '&streamed=1' : ''}${unmarked ? '&unmarked=1' : ''}`, resolve)
        .on('error', reject);
    });

  it('cuts an answer of which the client takes nothing for the stall time', async () => {
    cuts.length = 0;
    const res = await get(64 * 1024 * 1024);
    res.pause();
    res.on('error', () => undefined);
    try {
      await sleep(STALL * 4);
      assert.equal(cuts.length, 1, 'cut once');
      assert.ok(cuts[0]! > 0, `bytes still waited (${cuts[0]})`);
      const open = await new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
      assert.equal(open, 0, "the server's end of the connection is gone, and the answer's bytes with it");
    } finally {
      res.destroy();
    }
  });

  it('keeps a large answer that the client reads, however long it takes past the stall time', async () => {
    cuts.length = 0;
    const res = await get(32 * 1024 * 1024);
    res.pause();
    await sleep(STALL / 2);
    let received = 0;
    res.on('data', (d: Buffer) => (received += d.length));
    res.resume();
    await new Promise((r) => res.on('end', r));
    assert.equal(received, 32 * 1024 * 1024, 'the whole answer arrived');
    assert.equal(cuts.length, 0);
  });

  it('cuts an answer streamed in chunks (not ended yet) that the client stops taking', async () => {
    cuts.length = 0;
    const res = await get(256 * 1024 * 1024, true);
    res.pause();
    res.on('error', () => undefined);
    try {
      await sleep(STALL * 4);
      assert.equal(cuts.length, 1, 'cut once');
      const open = await new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
      assert.equal(open, 0, "the server's end of the connection is gone");
    } finally {
      res.destroy();
    }
  });

  it('leaves a stream not marked as a streamed answer (an event stream, with bounds of its own) until it ends', async () => {
    cuts.length = 0;
    const res = await get(256 * 1024 * 1024, true, true);
    res.pause();
    res.on('error', () => undefined);
    try {
      await sleep(STALL * 4);
      assert.equal(cuts.length, 0);
    } finally {
      res.destroy();
    }
  });

  it('keeps a streamed answer that the client reads slowly, with pauses shorter than the stall time', async () => {
    cuts.length = 0;
    const res = await get(16 * 1024 * 1024, true);
    let received = 0;
    res.on('data', (d: Buffer) => {
      received += d.length;
      if (received % (4 * 1024 * 1024) < d.length) {
        res.pause();
        setTimeout(() => res.resume(), STALL / 2);
      }
    });
    await new Promise((r) => res.on('end', r));
    assert.equal(received, 16 * 1024 * 1024, 'the whole answer arrived');
    assert.equal(cuts.length, 0);
  });

  it('never watches an answer the kernel took whole', async () => {
    cuts.length = 0;
    const res = await get(1024);
    res.pause();
    try {
      await sleep(STALL * 3);
      assert.equal(cuts.length, 0);
    } finally {
      res.destroy();
    }
  });
});

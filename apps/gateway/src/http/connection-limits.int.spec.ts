/**
 * Long-lived connections have a share per caller and a total: one key holding live event streams
 * or MCP sessions cannot take every slot and shut the other callers out (a secured gateway on
 * the test PostgreSQL and nats-server).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '@switchyard/testing';
import { McpServerFeatureModule } from '../features/mcp-server/mcp-server.module.js';
import { bearer, startSecuredGateway, type SecuredGateway } from '../security/test-support.js';

describe('connection limits per caller and in all (real gateway)', () => {
  let g: SecuredGateway;
  let a: string;
  let b: string;
  const opened: AbortController[] = [];

  before(async () => {
    g = await startSecuredGateway('connection_limits', {
      eventStreams: { perCaller: 2, total: 3 },
      modules: [
        McpServerFeatureModule.withOptions({ maxSessions: 3, maxSessionsPerKey: 2, catalogRefreshMs: 600_000 }),
      ],
    });
    a = (await g.makeKey('viewer', 'a')).key;
    b = (await g.makeKey('viewer', 'b')).key;
  });

  after(async () => {
    for (const c of opened) c.abort();
    await g?.close();
  });

  /** Opens a live event stream; a 200 stays open (its body unread) until aborted. */
  const stream = async (key: string) => {
    const ctl = new AbortController();
    opened.push(ctl);
    const res = await fetch(`${g.url}/api/v1/events/stream`, { headers: bearer(key), signal: ctl.signal });
    const body = res.status === 200 ? undefined : ((await res.json()) as { code: string; detail?: string });
    return { status: res.status, body, retryAfter: res.headers.get('retry-after'), close: () => ctl.abort() };
  };

  it('event streams: a key past its share gets 429, anyone past the total 503; a closed stream frees its slot', async () => {
    const a1 = await stream(a);
    const a2 = await stream(a);
    assert.deepEqual([a1.status, a2.status], [200, 200]);
    const a3 = await stream(a);
    assert.equal(a3.status, 429);
    assert.equal(a3.body!.code, 'rate_limited');
    assert.match(a3.body!.detail ?? '', /GATEWAY_EVENT_STREAMS_PER_CALLER/);
    assert.equal(a3.retryAfter, '1', 'the refusal says when to come back in the header too');
    assert.equal((await stream(b)).status, 200);
    const b2 = await stream(b);
    assert.equal(b2.status, 503);
    assert.match(b2.body!.detail ?? '', /GATEWAY_EVENT_STREAMS_MAX/);
    assert.equal(b2.retryAfter, '1');
    // The gateway notices the client left and frees the slot.
    a1.close();
    let again = 0;
    await until('a slot freed by a closed stream', async () => (again = (await stream(b)).status) === 200, 10_000);
    assert.equal(again, 200);
    for (const c of opened.splice(0)) c.abort();
  });

  const initialize = (key: string) =>
    fetch(`${g.url}/mcp`, {
      method: 'POST',
      headers: { ...bearer(key), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'limits', version: '1' } },
      }),
    });

  it('MCP sessions: a key past its share gets 429, anyone past the total 503; an ended session frees its slot', async () => {
    const sessions: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await initialize(a);
      assert.equal(res.status, 200, await res.clone().text());
      sessions.push(res.headers.get('mcp-session-id')!);
      await res.body?.cancel();
    }
    const third = await initialize(a);
    assert.equal(third.status, 429);
    assert.match(
      ((await third.json()) as { error: { message: string } }).error.message,
      /MCP_SERVER_MAX_SESSIONS_PER_KEY/,
    );
    const b1 = await initialize(b);
    assert.equal(b1.status, 200);
    await b1.body?.cancel();
    const b2 = await initialize(b);
    assert.equal(b2.status, 503);
    assert.match(((await b2.json()) as { error: { message: string } }).error.message, /MCP_SERVER_MAX_SESSIONS\b/);
    const ended = await fetch(`${g.url}/mcp`, {
      method: 'DELETE',
      headers: { ...bearer(a), 'mcp-session-id': sessions[0]! },
    });
    assert.equal(ended.status, 200);
    let again = 0;
    await until(
      'a slot freed by an ended session',
      async () => {
        const res = await initialize(b);
        again = res.status;
        await res.body?.cancel();
        return again === 200;
      },
      10_000,
    );
    assert.equal(again, 200);
  });
});

describe('connections that hold the gateway: slow requests, unread answers, too many at once (real gateway)', () => {
  let g: SecuredGateway;
  let port: number;

  before(async () => {
    g = await startSecuredGateway('connection_bounds', {
      connections: { receiveTimeoutMs: 1_500, sendStallMs: 500, max: 64, perAddress: 24 },
      largeBodies: { perCaller: 2, total: 3 },
    });
    port = Number(new URL(g.url).port);
  });
  after(async () => {
    await g?.close();
  });

  const raw = () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    return { socket, closed, received: () => received };
  };

  it('large bodies take turns before a byte is read: a key past its share gets 429, anyone past the total 503; small ones pass', async () => {
    const b = (await g.makeKey('operator', 'large-b')).key;
    /** A request whose 100 KB body is not sent yet (it holds its turn while it is received). */
    const large = (key: string) => {
      const c = raw();
      c.socket.write(
        `POST /api/v1/workflows/definitions/validate HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${key}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{',
      );
      return c;
    };
    const answered = async (c: ReturnType<typeof raw>, ms = 600) => {
      await Promise.race([until('an answer', () => c.received().length > 0 || undefined, ms), sleep(ms)]).catch(
        () => undefined,
      );
      return c.received();
    };
    const held: ReturnType<typeof raw>[] = [];
    try {
      held.push(large(g.adminKey), large(g.adminKey));
      assert.equal(await answered(held[0]!, 300), '', 'within its share: waiting for its body');
      const third = large(g.adminKey);
      held.push(third);
      const refused = await answered(third, 3_000);
      assert.match(refused, /^HTTP\/1\.1 429 /);
      assert.match(refused, /GATEWAY_LARGE_BODIES_PER_CALLER/);
      assert.match(refused, /retry-after: 1/i);
      held.push(large(b));
      assert.equal(await answered(held[3]!, 300), '', "another key's first one is taken");
      const overTotal = large(b);
      held.push(overTotal);
      assert.match(await answered(overTotal, 3_000), /^HTTP\/1\.1 503 [\s\S]*GATEWAY_LARGE_BODIES_MAX/);
      // A small body does not take a turn.
      const small = await fetch(`${g.url}/api/v1/workflows/definitions/validate`, {
        method: 'POST',
        headers: { ...bearer(b), 'content-type': 'application/json' },
        body: '{}',
      });
      assert.ok(small.status !== 429 && small.status !== 503, String(small.status));
      await small.body?.cancel();
      // A request that ends frees its turn.
      held[0]!.socket.destroy();
      await held[0]!.closed;
      let again = '';
      await until(
        'a turn freed by a closed request',
        async () => {
          const c = large(g.adminKey);
          held.push(c);
          again = await answered(c, 300);
          return again === '' || undefined;
        },
        10_000,
      );
    } finally {
      for (const c of held) c.socket.destroy();
    }
  });

  it('a body sent too slowly is answered 408 and its connection closed', async () => {
    const c = raw();
    c.socket.write(
      `POST /api/v1/workflows/definitions/validate HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${g.adminKey}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
    );
    const drip = setInterval(() => c.socket.write(' '), 200);
    try {
      const ended = await Promise.race([c.closed.then(() => true), sleep(8_000).then(() => false)]);
      assert.equal(ended, true, 'closed within a few seconds of the 1.5 s limit');
      assert.match(c.received(), /^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(drip);
      c.socket.destroy();
    }
  });

  it('answers a client does not read are cut once it takes nothing for the stall time', async () => {
    const c = raw();
    c.socket.pause();
    // Pipelined requests for the OpenAPI document (~260 KB each): more than the kernel's buffers hold.
    const one = `GET /docs/openapi.json HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
    c.socket.write(one.repeat(300));
    await sleep(4_000);
    c.socket.resume();
    const ended = await Promise.race([c.closed.then(() => true), sleep(10_000).then(() => false)]);
    assert.equal(ended, true, 'the gateway closed the connection');
    const answers = c.received().split('HTTP/1.1 200').length - 1;
    assert.ok(answers < 300, `not every answer was kept for the client (${answers} of 300 arrived)`);
    assert.equal((await fetch(`${g.url}/livez`)).status, 200);
  });

  it('connections past the share of one address are closed at once; the gateway goes on answering', async () => {
    const held = Array.from({ length: 30 }, () => raw());
    try {
      await sleep(500);
      const open = held.filter((c) => !c.socket.destroyed && c.socket.readyState === 'open');
      assert.ok(open.length <= 24, `at most the share stays open (${open.length})`);
      assert.ok(open.length >= 20, `the share does (${open.length})`);
    } finally {
      for (const c of held) c.socket.destroy();
    }
    await sleep(200);
    assert.equal((await fetch(`${g.url}/livez`)).status, 200);
  });
});

describe('a JSON-RPC batch over /mcp costs its key one request per message (real gateway)', () => {
  let g: SecuredGateway;

  before(async () => {
    g = await startSecuredGateway('mcp_batch_cost', {
      rateLimit: {
        perKey: { points: 5, durationSec: 60 },
        perIp: { points: 1000, durationSec: 60 },
        authFailuresPerIp: { points: 10, durationSec: 60 },
      },
      modules: [McpServerFeatureModule.withOptions({ catalogRefreshMs: 600_000 })],
    });
  });
  after(async () => {
    await g?.close();
  });

  it('a batch within the budget is answered; one past it is 429, though it is one HTTP request', async () => {
    const key = (await g.makeKey('viewer', 'batch')).key;
    const post = (body: unknown, session?: string) =>
      fetch(`${g.url}/mcp`, {
        method: 'POST',
        headers: {
          ...bearer(key),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-03-26' } : {}),
        },
        body: JSON.stringify(body),
      });
    const init = await post({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'batch', version: '1' } },
    });
    assert.equal(init.status, 200, await init.clone().text());
    const session = init.headers.get('mcp-session-id')!;
    await init.body?.cancel();
    const pings = (n: number, from: number) =>
      Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: from + i, method: 'ping' }));
    // 1 (initialize) + 3: within the key's 5.
    const small = await post(pings(3, 10), session);
    assert.equal(small.status, 200, await small.clone().text());
    await small.body?.cancel();
    const big = await post(pings(10, 100), session);
    assert.equal(big.status, 429, await big.clone().text());
    assert.ok(Number(big.headers.get('retry-after')) >= 1);
    assert.match(
      ((await big.json()) as { error: { message: string } }).error.message,
      /batch of 10 messages counts 10/,
    );
  });
});

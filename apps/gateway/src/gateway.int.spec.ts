import { after, before, describe, it } from 'node:test';
import net from 'node:net';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { Controller, Get, Inject, Module, Post } from '@nestjs/common';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { z } from 'zod';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore, WrongExpectedVersionError, type EventStore, type NewEvent } from '@switchyard/event-store';
import { freshDatabase, stopOwnInfra, testNatsUrl } from '@switchyard/testing';
import {
  ApiRoute,
  CorrelationId,
  createGateway,
  currentCorrelationId,
  EVENT_STORE,
  LiveEventsService,
  ReadinessService,
  ZodBody,
  ZodParams,
  type Gateway,
} from './index.js';

// A feature module plugged in the way later issues will: it exercises validation,
// error mapping and correlation through real HTTP without demo routes in production code.
const echoBody = z.object({ name: z.string().min(1), count: z.number().int().positive() });

@Controller('test')
class ProbeController {
  // Injected with no import: the gateway's core module is global.
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    private readonly readiness: ReadinessService,
    @Inject(Symbol.for('switchyard.gateway.pgPool')) private readonly pool: pg.Pool,
  ) {}

  @Get('deps')
  async deps() {
    return { store: this.store.kind, ready: (await this.readiness.check()).ready };
  }

  @Post('echo')
  @ApiRoute({ summary: 'test echo', response: { schema: echoBody } })
  echo(@ZodBody(echoBody) body: z.infer<typeof echoBody>, @CorrelationId() correlationId: string) {
    return { body, correlationId, fromContext: currentCorrelationId() };
  }

  @Get('slow-query')
  async slowQuery() {
    await this.pool.query('select pg_sleep(5)');
    return { slept: true };
  }

  @Get('fail/:kind')
  fail(@ZodParams(z.object({ kind: z.enum(['boom', 'conflict', 'missing']) })) params: { kind: string }) {
    if (params.kind === 'conflict') throw new WrongExpectedVersionError('order-1', 3, 5);
    if (params.kind === 'missing') throw new AppError('not_found', 'no order 7', { orderId: '7' });
    throw new Error('secret internal detail: password=hunter2');
  }
}

@Module({ controllers: [ProbeController] })
class ProbeModule {}

const ev = (type: string, n: number): NewEvent => ({
  type,
  data: { n },
  metadata: { correlationId: 'gw-test', timestamp: new Date().toISOString() },
});

interface SseMessage {
  id?: string;
  data?: string;
}

/** Read SSE messages from a fetch response until `want` messages (or, with `wantComment`, that comment) arrived, or the deadline passes. */
async function readSse(
  res: Response,
  want: number,
  opts: { deadlineMs?: number; wantComment?: string } = {},
): Promise<{ messages: SseMessage[]; comments: string[] }> {
  const { deadlineMs = 15_000, wantComment } = opts;
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  let buffer = '';
  const deadline = setTimeout(() => void reader.cancel(), deadlineMs);
  try {
    while (wantComment ? !comments.includes(wantComment) : messages.length < want) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let idx: number;
      while ((idx = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, idx);
        buffer = buffer.slice(idx + 2);
        const msg: SseMessage = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) comments.push(line.slice(1).trim());
          else if (line.startsWith('id: ')) msg.id = line.slice(4);
          else if (line.startsWith('data: ')) msg.data = (msg.data ?? '') + line.slice(6);
        }
        if (msg.data !== undefined) messages.push(msg);
      }
    }
  } finally {
    clearTimeout(deadline);
    await reader.cancel().catch(() => undefined);
  }
  return { messages, comments };
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('gateway over real Postgres, NATS and the Postgres event store', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nats: NatsConnection;
  let gw: Gateway;
  let base: string;
  const logger = createLogger('gateway-int', process.env.LOG_LEVEL ?? 'silent');
  const streamA = `order-${newId()}`;
  const streamB = `invoice-${newId()}`;
  let positionsA: number[] = [];

  before(async () => {
    const url = await freshDatabase('gateway');
    pool = new pg.Pool({ connectionString: url, max: 4 });
    store = new PostgresEventStore({ connectionString: url });
    await store.init();
    nats = await connect({ servers: await testNatsUrl() });
    gw = await createGateway(
      { eventStore: store, pgPool: pool, nats, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      { modules: [ProbeModule], bodyLimit: '2kb', sseHeartbeatMs: 300 },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
    // Five events on A (types alternate), two on B.
    await store.append(streamA, [
      ev('OrderPlaced', 0),
      ev('OrderPaid', 1),
      ev('OrderPlaced', 2),
      ev('OrderPaid', 3),
      ev('OrderShipped', 4),
    ]);
    await store.append(streamB, [ev('InvoiceIssued', 0), ev('InvoicePaid', 1)]);
    positionsA = (await store.readStream(streamA)).map((e) => e.position);
  });

  after(async () => {
    await gw?.close();
    await store?.close();
    await pool?.end();
    await nats?.close();
    await stopOwnInfra();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers });
  const json = async (res: Response) => (await res.json()) as Record<string, any>;

  describe('health', () => {
    it('livez answers 200 live', async () => {
      const res = await get('/livez');
      assert.equal(res.status, 200);
      assert.equal((await json(res)).status, 'live');
    });

    it('readyz answers 200 with each check up', async () => {
      const res = await get('/readyz');
      const body = await json(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.status, 'ready');
      for (const name of ['postgres', 'nats', 'eventStore']) assert.equal(body.checks[name].status, 'up', name);
    });

    it('readyz answers 503 problem naming nats when the NATS connection is closed', async () => {
      const nc = await connect({ servers: await testNatsUrl() });
      const other = await createGateway(
        { eventStore: store, pgPool: pool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
        { readinessTimeoutMs: 1000 },
      );
      try {
        const { url } = await other.listen(0, '127.0.0.1');
        await nc.close();
        const res = await fetch(`${url}/readyz`);
        assert.equal(res.status, 503);
        assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
        const body = await json(res);
        assert.equal(body.code, 'unavailable');
        assert.deepEqual(body.failed, ['nats']);
        assert.equal(body.checks.nats.status, 'down');
        assert.equal(body.checks.postgres.status, 'up');
      } finally {
        await other.close();
      }
    });

    it('readyz includes extra probes from the host and fails on them', async () => {
      const other = await createGateway({
        eventStore: store,
        pgPool: pool,
        nats,
        logger,
        config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' },
        readiness: { projections: async () => Promise.reject(new Error('projection lag too high')) },
      });
      try {
        const { url } = await other.listen(0, '127.0.0.1');
        const body = await json(await fetch(`${url}/readyz`));
        assert.equal(body.status, 503);
        assert.deepEqual(body.failed, ['projections']);
        assert.equal(body.checks.projections.error, 'projection lag too high');
      } finally {
        await other.close();
      }
    });
  });

  describe('feature modules', () => {
    it('inject the host dependencies and gateway services by token', async () => {
      const res = await get('/test/deps');
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { store: 'postgres', ready: true });
    });
  });

  describe('errors are problem+json', () => {
    it('unknown route: 404 problem', async () => {
      const res = await get('/nope/nothing');
      assert.equal(res.status, 404);
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      const body = await json(res);
      assert.equal(body.status, 404);
      assert.equal(body.code, 'not_found');
      assert.equal(body.instance, '/nope/nothing');
      assert.equal(body.type, 'urn:switchyard:problem:not_found');
      assert.ok(body.title && body.detail && body.correlationId);
    });

    it('bad JSON: 400 problem, not 500', async () => {
      const res = await fetch(`${base}/test/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"name": ',
      });
      assert.equal(res.status, 400);
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      const body = await json(res);
      assert.equal(body.code, 'validation');
      assert.match(body.detail, /not valid JSON/);
      assert.deepEqual(
        body.errors.map((e: { path: string; code: string; in: string }) => [e.path, e.code, e.in]),
        [['(root)', 'invalid_json', 'body']],
      );
      // Valid JSON that is no object is called what it is, not "not valid JSON".
      for (const scalar of ['null', '42', '"x"']) {
        const r = await fetch(`${base}/test/echo`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: scalar,
        });
        assert.equal(r.status, 400, scalar);
        const b = await json(r);
        assert.match(b.detail, /JSON but not an object/, scalar);
        assert.equal(b.errors[0].code, 'not_an_object', scalar);
      }
      // A byte-order mark before the object is read past (JSON lets a reader ignore it).
      const bom = await fetch(`${base}/test/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `\ufeff${JSON.stringify({ name: 'bom', count: 1 })}`,
      });
      assert.equal(bom.status, 201, await bom.clone().text());
      // No JSON at all, not starting as an object (a word, a Markdown fence pasted with it) is "not valid JSON".
      for (const text of ['hello', '```json {"a":1}', 'x{"id":1}']) {
        const r = await fetch(`${base}/test/echo`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: text,
        });
        assert.equal(r.status, 400, text);
        const b = await json(r);
        assert.match(b.detail, /not valid JSON/, text);
        assert.equal(b.errors[0].code, 'invalid_json', text);
      }
    });

    it('body over the limit: 413 problem', async () => {
      const res = await fetch(`${base}/test/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'x'.repeat(5000), count: 1 }),
      });
      assert.equal(res.status, 413);
      const body = await json(res);
      assert.equal(body.code, 'payload_too_large');
    });

    it('zod body validation: 400 naming each bad field', async () => {
      const res = await fetch(`${base}/test/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: '', count: -2, extra: 1 }),
      });
      assert.equal(res.status, 400);
      const body = await json(res);
      const paths = (body.errors as { path: string; in: string; code: string }[]).map((e) => e.path).sort();
      assert.deepEqual(paths, ['count', 'name']);
      assert.ok(body.errors.every((e: { in: string; message: string }) => e.in === 'body' && e.message));
    });

    it('AppError not_found -> 404, WrongExpectedVersionError -> 412, path param validated', async () => {
      const missing = await get('/test/fail/missing');
      assert.equal(missing.status, 404);
      assert.equal((await json(missing)).code, 'not_found');
      const conflict = await get('/test/fail/conflict');
      assert.equal(conflict.status, 412);
      const c = await json(conflict);
      assert.equal(c.code, 'conflict');
      assert.equal(c.streamId, 'order-1');
      const bad = await get('/test/fail/weird');
      assert.equal(bad.status, 400);
      assert.equal((await json(bad)).errors[0].path, 'kind');
    });

    it("a query cut by the pool's statement_timeout: 504 timeout, retryable, not a 500", async () => {
      const shortPool = new pg.Pool({
        connectionString: (pool as unknown as { options: { connectionString: string } }).options.connectionString,
        max: 1,
        statement_timeout: 200,
      });
      const other = await createGateway(
        { eventStore: store, pgPool: shortPool, nats, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
        { modules: [ProbeModule] },
      );
      try {
        const { url } = await other.listen(0, '127.0.0.1');
        const res = await fetch(`${url}/test/slow-query`);
        assert.equal(res.status, 504);
        const body = (await res.json()) as Record<string, unknown>;
        assert.equal(body.code, 'timeout');
        assert.equal(body.retryable, true);
      } finally {
        await other.close();
        await shortPool.end();
      }
    });

    it('unexpected error: 500 problem without internals, carrying the correlation id', async () => {
      const res = await get('/test/fail/boom', { 'x-correlation-id': 'corr-boom-1' });
      assert.equal(res.status, 500);
      const text = await res.text();
      assert.doesNotMatch(text, /hunter2|secret|stack/);
      const body = JSON.parse(text);
      assert.equal(body.code, 'internal');
      assert.equal(body.correlationId, 'corr-boom-1');
    });
  });

  describe('correlation id', () => {
    it('is echoed from the request and reaches the handler (param and AsyncLocalStorage) after body parsing', async () => {
      const res = await fetch(`${base}/test/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-correlation-id': 'corr-abc-123' },
        body: JSON.stringify({ name: 'a', count: 2 }),
      });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('x-correlation-id'), 'corr-abc-123');
      const body = await json(res);
      assert.deepEqual(body, {
        body: { name: 'a', count: 2 },
        correlationId: 'corr-abc-123',
        fromContext: 'corr-abc-123',
      });
    });

    it('is generated when absent or unacceptable', async () => {
      const a = await get('/livez');
      assert.match(a.headers.get('x-correlation-id') ?? '', /^[0-9a-f-]{36}$/);
      const b = await get('/livez', { 'x-correlation-id': 'bad id with spaces' });
      assert.match(b.headers.get('x-correlation-id') ?? '', /^[0-9a-f-]{36}$/);
    });
  });

  describe('GET /api/v1/events', () => {
    it('rejects bad query params with a 400 naming each', async () => {
      const res = await get('/api/v1/events?limit=abc&direction=sideways&bogus=1');
      assert.equal(res.status, 400);
      const body = await json(res);
      const paths = (body.errors as { path: string }[]).map((e) => e.path).sort();
      assert.deepEqual(paths, ['bogus', 'direction', 'limit']);
      assert.ok(body.errors.every((e: { in: string }) => e.in === 'query'));
      const tooMany = await json(await get('/api/v1/events?limit=1001'));
      assert.equal(tooMany.errors[0].path, 'limit');
      const mixed = await json(await get(`/api/v1/events?stream=${streamA}&after=3`));
      assert.equal(mixed.errors[0].path, 'after');
    });

    it("answers with cache-control: no-store (the log is the caller's own); /docs may be cached", async () => {
      const res = await get('/api/v1/events?limit=1');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const refused = await get('/api/v1/events?limit=abc');
      assert.equal(refused.headers.get('cache-control'), 'no-store');
      assert.notEqual((await get('/docs/openapi.json')).headers.get('cache-control'), 'no-store');
      // Nothing the API answers is read by a browser as another type than it says.
      for (const r of [res, refused, await get('/livez'), await get('/api/v1/no-such-route')])
        assert.equal(r.headers.get('x-content-type-options'), 'nosniff', r.url);
    });

    it('pages the global log forwards with a cursor until the end', async () => {
      const seen: number[] = [];
      let next: string | null = '/api/v1/events?limit=3';
      let pages = 0;
      while (next) {
        const res = await get(next);
        assert.equal(res.status, 200);
        const page = await json(res);
        assert.ok(page.events.length <= 3);
        seen.push(...page.events.map((e: { position: number }) => e.position));
        next = page.next?.href ?? null;
        pages++;
        assert.ok(pages < 10, 'paging does not end');
      }
      assert.equal(seen.length, 7);
      assert.deepEqual(
        seen,
        [...seen].sort((a, b) => a - b),
      );
      assert.equal(new Set(seen).size, 7);
    });

    it('reads one stream, backwards, with a type filter', async () => {
      const page = await json(
        await get(`/api/v1/events?stream=${streamA}&direction=backwards&type=OrderPlaced,OrderShipped`),
      );
      assert.deepEqual(
        page.events.map((e: { type: string; revision: number }) => [e.type, e.revision]),
        [
          ['OrderShipped', 4],
          ['OrderPlaced', 2],
          ['OrderPlaced', 0],
        ],
      );
      assert.equal(page.next, null);
      const e = page.events[0];
      assert.equal(e.streamId, streamA);
      assert.deepEqual(e.data, { n: 4 });
      assert.equal(e.metadata.correlationId, 'gw-test');
      assert.ok(!Number.isNaN(Date.parse(e.recordedAt)));
    });

    it('pages one stream by from_revision', async () => {
      const first = await json(await get(`/api/v1/events?stream=${streamA}&limit=2`));
      assert.deepEqual(
        first.events.map((e: { revision: number }) => e.revision),
        [0, 1],
      );
      assert.equal(first.next.from_revision, 2);
      const second = await json(await get(first.next.href));
      assert.deepEqual(
        second.events.map((e: { revision: number }) => e.revision),
        [2, 3],
      );
    });

    it('filters the global log by stream prefix and type, and by time', async () => {
      const byPrefix = await json(await get('/api/v1/events?stream_prefix=invoice-&type=InvoicePaid'));
      assert.deepEqual(
        byPrefix.events.map((e: { streamId: string; type: string }) => [e.streamId, e.type]),
        [[streamB, 'InvoicePaid']],
      );
      // Each prefix is a test on every event a filtered read examines: their number is bounded.
      const prefixes = Array.from({ length: 17 }, (_, i) => `p${i}-`).join(',');
      for (const url of [
        `/api/v1/events?stream_prefix=${prefixes}`,
        `/api/v1/events/stream?stream_prefix=${prefixes}`,
      ]) {
        const res = await get(url);
        assert.equal(res.status, 400, url);
        assert.match(JSON.stringify(await res.json()), /at most 16 values of stream_prefix/);
      }
      const future = new Date(Date.now() + 3_600_000).toISOString();
      const none = await json(await get(`/api/v1/events?since=${encodeURIComponent(future)}`));
      assert.deepEqual(none.events, []);
      const past = new Date(Date.now() - 3_600_000).toISOString();
      const all = await json(
        await get(`/api/v1/events?since=${encodeURIComponent(past)}&until=${encodeURIComponent(future)}`),
      );
      assert.equal(all.events.length, 7);
      const badTime = await json(await get('/api/v1/events?since=yesterday'));
      assert.equal(badTime.errors[0].path, 'since');
    });

    it('after=<position> starts strictly after it', async () => {
      const page = await json(await get(`/api/v1/events?after=${positionsA[2]}&stream_prefix=order-`));
      assert.deepEqual(
        page.events.map((e: { position: number }) => e.position),
        positionsA.slice(3),
      );
    });

    it('a page of large events ends at about 4 MiB of JSON with a cursor; the pages hold every event once', async () => {
      // 30 events of 400 KB: a page of 1,000 would be 12 MB (a log of 1 MB events made 400 MB pages).
      const big = `big-${newId()}`;
      const blob = 'x'.repeat(400_000);
      for (let i = 0; i < 30; i++)
        await store.append(big, [
          {
            type: 'BigPayloadWritten',
            data: { i, blob },
            metadata: { correlationId: 'big', timestamp: new Date().toISOString() },
          },
        ]);
      for (const first of [
        `/api/v1/events?stream=${big}&limit=1000`,
        `/api/v1/events?stream_prefix=big-&type=BigPayloadWritten&limit=1000`,
      ]) {
        const seen: number[] = [];
        let next: string | null = first;
        let pages = 0;
        while (next) {
          const res = await get(next);
          assert.equal(res.status, 200);
          const text = await res.text();
          assert.ok(text.length < 5 * 1024 * 1024, `a page is at most about 4 MiB (${text.length} characters)`);
          const page = JSON.parse(text) as { events: { data: { i: number } }[]; next: { href: string } | null };
          seen.push(...page.events.map((e) => e.data.i));
          next = page.next?.href ?? null;
          pages++;
          assert.ok(pages < 20, 'paging ends');
        }
        assert.deepEqual(
          seen,
          Array.from({ length: 30 }, (_, i) => i),
          `${first}: every event once, in order`,
        );
        assert.ok(pages >= 3, `${first}: ${pages} pages`);
      }
    });
  });

  describe('GET /api/v1/events/stream (SSE)', () => {
    it('delivers live events, then resumes with Last-Event-ID without gaps, and closes the subscription when the client goes', async () => {
      const live = gw.app.get(LiveEventsService);
      const stream = `sse-${newId()}`;
      const ac = new AbortController();
      const res = await fetch(`${base}/api/v1/events/stream?stream_prefix=sse-`, { signal: ac.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
      await until(() => live.connections === 1, 'the SSE subscription');
      await store.append(stream, [ev('Tick', 1), ev('Tick', 2)]);
      const first = await readSse(res, 2);
      ac.abort();
      assert.equal(first.messages.length, 2);
      const events = first.messages.map(
        (m) => JSON.parse(m.data!) as { position: number; streamId: string; data: { n: number } },
      );
      assert.deepEqual(
        events.map((e) => e.data.n),
        [1, 2],
      );
      assert.equal(first.messages[0]!.id, String(events[0]!.position));
      await until(() => live.connections === 0, 'the subscription to close after the client left');

      // Written while no client listens; a reconnect with Last-Event-ID gets them, and nothing twice.
      await store.append(stream, [ev('Tick', 3), ev('Tick', 4)]);
      const ac2 = new AbortController();
      const res2 = await fetch(`${base}/api/v1/events/stream?stream_prefix=sse-&after=-1`, {
        signal: ac2.signal,
        headers: { 'last-event-id': first.messages[1]!.id! },
      });
      const resumed = await readSse(res2, 2);
      ac2.abort();
      assert.deepEqual(
        resumed.messages.map((m) => (JSON.parse(m.data!) as { data: { n: number } }).data.n),
        [3, 4],
      );
    });

    it('resumes with ?after= and filters by type; sends heartbeat comments', async () => {
      const stream = `sse-${newId()}`;
      await store.append(stream, [ev('Keep', 1), ev('Skip', 2), ev('Keep', 3)]);
      const [firstOfStream] = await store.readStream(stream, { maxCount: 1 });
      const ac = new AbortController();
      const res = await fetch(
        `${base}/api/v1/events/stream?after=${firstOfStream!.position - 1}&type=Keep&stream_prefix=sse-`,
        {
          signal: ac.signal,
        },
      );
      const got = await readSse(res, 2);
      assert.deepEqual(
        got.messages.map((m) => (JSON.parse(m.data!) as { streamId: string; type: string }).type),
        ['Keep', 'Keep'],
      );
      // Heartbeats come every 300 ms in this suite: wait for one (no timing assertion, just presence).
      const idle = await fetch(`${base}/api/v1/events/stream?stream_prefix=nothing-`, { signal: ac.signal });
      const more = await readSse(idle, 0, { wantComment: 'heartbeat', deadlineMs: 10_000 });
      ac.abort();
      assert.ok(more.comments.includes('heartbeat'), `comments seen: ${more.comments.join('|')}`);
    });

    it('close() ends open streams instead of waiting for their clients', async () => {
      const other = await createGateway({
        eventStore: store,
        pgPool: pool,
        nats,
        logger,
        config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' },
      });
      const { url } = await other.listen(0, '127.0.0.1');
      const res = await fetch(`${url}/api/v1/events/stream`);
      assert.equal(res.status, 200);
      const live = other.app.get(LiveEventsService);
      await until(() => live.connections === 1, 'the SSE subscription');
      await other.close();
      assert.equal(live.connections, 0);
      // The body ends (or errors, when the socket is cut): either way the client is not left hanging.
      const reader = res.body!.getReader();
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true }) as const);
        if (r.done) break;
      }
    });

    it('a client that stops reading is cut after the drain timeout, and its slot and subscription are freed', async () => {
      const other = await createGateway(
        { eventStore: store, pgPool: pool, nats, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
        { sseDrainTimeoutMs: 500 },
      );
      const { url } = await other.listen(0, '127.0.0.1');
      const live = other.app.get(LiveEventsService);
      // About 24 MB of events: more than the loopback socket buffers hold for a client that reads nothing.
      const prefix = `drain-${newId()}`;
      const blob = 'z'.repeat(8_000);
      for (let b = 0; b < 15; b++)
        await store.append(
          `${prefix}-${b}`,
          Array.from({ length: 200 }, (_, i): NewEvent => ({ ...ev('Big', i), data: { i, blob } })),
        );
      const { port } = new URL(url);
      const socket = net.connect(Number(port), '127.0.0.1');
      try {
        await once(socket, 'connect');
        socket.pause(); // never reads a byte
        socket.write(
          `GET /api/v1/events/stream?stream_prefix=${prefix}&after=-1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`,
        );
        await until(() => live.connections === 1, 'the stream open');
        await until(() => live.connections === 0, 'the stalled stream ended by the drain timeout', 20_000);
      } finally {
        socket.destroy();
        await other.close();
      }
    });

    it('rejects a bad Last-Event-ID with a 400 naming the header', async () => {
      const res = await get('/api/v1/events/stream', { 'last-event-id': 'yesterday' });
      assert.equal(res.status, 400);
      const body = await json(res);
      assert.equal(body.errors[0].path, 'last-event-id');
      assert.equal(body.errors[0].in, 'headers');
    });
  });

  describe('OpenAPI', () => {
    it('serves an OpenAPI 3 document listing every route with its parameters', async () => {
      const res = await get('/docs/openapi.json');
      assert.equal(res.status, 200);
      const doc = await json(res);
      assert.match(doc.openapi, /^3\./);
      assert.ok(doc.info.title && doc.info.version);
      for (const p of [
        '/livez',
        '/readyz',
        '/api/v1/events',
        '/api/v1/events/stream',
        '/docs/openapi.json',
        '/test/echo',
        '/test/fail/{kind}',
      ]) {
        assert.ok(doc.paths[p], `missing ${p}`);
      }
      const list = doc.paths['/api/v1/events'].get;
      const names = list.parameters.map((p: { name: string }) => p.name);
      for (const n of ['stream', 'after', 'from_revision', 'limit', 'direction', 'type', 'since', 'until'])
        assert.ok(names.includes(n), n);
      const limit = list.parameters.find((p: { name: string }) => p.name === 'limit');
      assert.equal(limit.schema.maximum, 1000);
      assert.equal(list['x-required-role'], 'viewer');
      assert.ok(list.responses['200'].content['application/json'].schema.properties.events);
      assert.ok(list.responses['400'].content['application/problem+json']);
      assert.ok(doc.paths['/test/echo'].post.requestBody.content['application/json'].schema.properties.count);
      assert.equal(doc.paths['/test/fail/{kind}'].get.parameters[0].in, 'path');
      assert.ok(doc.components.schemas.Problem);
      const sse = doc.paths['/api/v1/events/stream'].get;
      assert.ok(sse.responses['200'].content['text/event-stream']);
      assert.ok(
        sse.parameters.some((p: { name: string; in: string }) => p.name === 'last-event-id' && p.in === 'header'),
      );
    });

    it('serves the Swagger UI page and its assets locally', async () => {
      const page = await get('/docs');
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      const html = await page.text();
      assert.match(html, /swagger-ui-bundle\.js/);
      // Same origin as the console and the API: no inline script, no framing, no sniffing.
      assert.doesNotMatch(html, /<script>/);
      const csp = page.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
      const init = await get('/docs/init.js');
      assert.equal(init.status, 200);
      assert.match(init.headers.get('content-type') ?? '', /text\/javascript/);
      assert.match(await init.text(), /SwaggerUIBundle\(\{ url: '\/docs\/openapi\.json'/);
      const js = await get('/docs/assets/swagger-ui-bundle.js');
      assert.equal(js.status, 200);
      assert.ok((await js.arrayBuffer()).byteLength > 100_000);
      assert.match(js.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
      const missing = await get('/docs/assets/nope.js');
      assert.equal(missing.status, 404);
      // The package's demo pages run scripts of their own on this origin: not served.
      for (const demo of ['index.html', 'oauth2-redirect.html', 'swagger-initializer.js', '..%2fpackage.json'])
        assert.equal((await get(`/docs/assets/${demo}`)).status, 404, demo);
    });
  });
});

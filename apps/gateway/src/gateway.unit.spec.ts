import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundException, PayloadTooLargeException } from '@nestjs/common';
import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import {
  WrongExpectedVersionError,
  type EventStore,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
} from '@switchyard/event-store';
import {
  eventsQuerySchema,
  fieldErrors,
  OpenApiRegistry,
  openApiPath,
  parseOrThrow,
  readEventsPage,
  resolveOptions,
  SCAN_CAP,
  SCAN_MAX_CHARS,
  sseFrame,
  toProblem,
} from './index.js';

const ctx = { instance: '/api/v1/things', correlationId: 'c-1' };

describe('toProblem', () => {
  it('maps AppError codes to their status and keeps details as extensions', () => {
    const { problem, unexpected } = toProblem(
      new AppError('illegal_state', 'workflow already done', { workflowId: 'w1' }),
      ctx,
    );
    assert.equal(unexpected, false);
    assert.equal(problem.status, 409);
    assert.equal(problem.code, 'illegal_state');
    assert.equal(problem.type, 'urn:switchyard:problem:illegal_state');
    assert.equal(problem.detail, 'workflow already done');
    assert.equal(problem.instance, '/api/v1/things');
    assert.equal(problem.correlationId, 'c-1');
    assert.equal(problem.workflowId, 'w1');
    assert.equal(problem.retryable, false);
  });

  it('does not let details overwrite the standard members', () => {
    const { problem } = toProblem(new AppError('not_found', 'gone', { status: 200, code: 'ok', type: 'x' }), ctx);
    assert.equal(problem.status, 404);
    assert.equal(problem.code, 'not_found');
    assert.equal(problem.type, 'urn:switchyard:problem:not_found');
  });

  it('maps WrongExpectedVersionError to 412 conflict, retryable', () => {
    const { problem } = toProblem(new WrongExpectedVersionError('order-1', 2, 4), ctx);
    assert.equal(problem.status, 412);
    assert.equal(problem.code, 'conflict');
    assert.equal(problem.retryable, true);
    assert.equal(problem.actualRevision, 4);
  });

  it('maps a lost or refused database connection to 503 unavailable, retryable, not a 500', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const cut = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    const gone = new Error('Connection terminated unexpectedly');
    for (const err of [refused, cut, gone]) {
      const { problem, unexpected } = toProblem(err, ctx);
      assert.deepEqual(
        [problem.status, problem.code, problem.retryable, unexpected],
        [503, 'unavailable', true, false],
      );
      assert.ok(!String(problem.detail).includes('5432'), 'the address is not shown');
    }
    const { problem } = toProblem(new Error('something else'), ctx);
    assert.equal(problem.status, 500);
  });

  it('maps Nest HTTP exceptions and body-parser errors', () => {
    assert.equal(toProblem(new NotFoundException('Cannot GET /x'), ctx).problem.code, 'not_found');
    assert.equal(toProblem(new PayloadTooLargeException(), ctx).problem.status, 413);
    const parse = Object.assign(new SyntaxError('Unexpected token'), {
      status: 400,
      type: 'entity.parse.failed',
      expose: true,
    });
    assert.deepEqual([toProblem(parse, ctx).problem.status, toProblem(parse, ctx).problem.code], [400, 'validation']);
    const big = Object.assign(new Error('request entity too large'), {
      status: 413,
      type: 'entity.too.large',
      limit: 100,
      expose: true,
    });
    assert.match(toProblem(big, ctx).problem.detail, /100 bytes/);
  });

  it('hides unexpected errors behind a bare 500 and flags them for logging', () => {
    for (const err of [
      new Error('db password is hunter2'),
      'a string',
      null,
      new AppError('internal', 'stack trace here'),
    ]) {
      const { problem, unexpected } = toProblem(err, ctx);
      assert.equal(problem.status, 500);
      assert.equal(problem.code, 'internal');
      assert.equal(unexpected, true);
      assert.doesNotMatch(JSON.stringify(problem), /hunter2|stack trace/);
    }
  });
});

describe('zod validation', () => {
  it('names every bad field, one per unknown key', () => {
    const schema = z.object({ a: z.number(), b: z.object({ c: z.string() }) }).strict();
    const r = schema.safeParse({ a: 'x', b: { c: 1 }, zz: 1, yy: 2 });
    assert.equal(r.success, false);
    const errors = fieldErrors(r.error, 'body');
    assert.deepEqual(errors.map((e) => e.path).sort(), ['a', 'b.c', 'yy', 'zz']);
    assert.ok(errors.every((e) => e.in === 'body' && e.code && e.message));
  });

  it('a failed union names the fields of its closest branch, not "(root): Invalid input"', () => {
    const rule = z.strictObject({ metric: z.string(), comparator: z.enum(['>', '>=']), threshold: z.number() });
    const schema = z.union([rule, z.strictObject({ rules: z.array(rule) }), z.array(rule)]);
    const r = schema.safeParse({ metric: 'cpu', op: '>=', threshold: 80 });
    assert.equal(r.success, false);
    assert.deepEqual(
      fieldErrors(r.error, 'body')
        .map((e) => [e.path, e.code])
        .sort(),
      [
        ['comparator', 'invalid_value'],
        ['op', 'unrecognized_keys'],
      ],
    );
    // Inside a list: the path goes on into the element.
    const listed = schema.safeParse([{ metric: 'cpu', comparator: '>', threshold: 'high' }]);
    assert.deepEqual(
      fieldErrors(listed.error!).map((e) => e.path),
      ['0.threshold'],
    );
    // A union with a message of its own keeps it (its author said what is expected).
    const when = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
      error: 'a date-time with an offset, or a date',
    });
    assert.deepEqual(
      fieldErrors(when.safeParse('yesterday').error!).map((e) => e.message),
      ['a date-time with an offset, or a date'],
    );
    // No branch took the value's kind at all: the union's own error stays.
    const none = schema.safeParse('cpu > 80');
    assert.deepEqual(
      fieldErrors(none.error!).map((e) => [e.path, e.code]),
      [['(root)', 'invalid_union']],
    );
  });

  it('parseOrThrow throws a validation AppError carrying the errors', () => {
    assert.throws(
      () => parseOrThrow(z.object({ limit: z.coerce.number() }), { limit: 'abc' }, 'query'),
      (e: unknown) =>
        e instanceof AppError &&
        e.code === 'validation' &&
        (e.details.errors as { path: string }[])[0]!.path === 'limit',
    );
  });
});

describe('events query schema', () => {
  it('applies defaults and splits comma lists (and repeated params)', () => {
    const q = eventsQuerySchema.parse({ type: 'A, B', stream_prefix: ['x-', 'y-,z-'] });
    assert.equal(q.limit, 100);
    assert.equal(q.direction, 'forwards');
    assert.deepEqual(q.type, ['A', 'B']);
    assert.deepEqual(q.stream_prefix, ['x-', 'y-', 'z-']);
  });

  it('rejects contradictions with the offending field named', () => {
    const paths = (input: Record<string, unknown>) => {
      const r = eventsQuerySchema.safeParse(input);
      return r.success ? [] : fieldErrors(r.error).map((e) => e.path);
    };
    assert.deepEqual(paths({ stream: 's-1', after: '3' }), ['after']);
    assert.deepEqual(paths({ from_revision: '3' }), ['from_revision']);
    assert.deepEqual(paths({ stream: 's-1', stream_prefix: 's-' }), ['stream_prefix']);
    assert.deepEqual(paths({ since: '2026-01-02T00:00:00Z', until: '2026-01-01T00:00:00Z' }), ['until']);
    assert.deepEqual(paths({ limit: '0' }), ['limit']);
    assert.deepEqual(paths({ limit: '1001' }), ['limit']);
  });
});

describe('openApiPath', () => {
  it('joins Nest paths and converts :params', () => {
    assert.equal(openApiPath('/api/v1/', '/workflows/:id/steps/:stepId'), '/api/v1/workflows/{id}/steps/{stepId}');
    assert.equal(openApiPath('/', '/'), '/');
    assert.equal(openApiPath('docs', ''), '/docs');
  });
});

describe('OpenApiRegistry', () => {
  it('documents registered routes from their zod schemas', () => {
    const registry = new OpenApiRegistry(resolveOptions({ openapi: { title: 'T' } }));
    registry.register({
      method: 'post',
      path: '/workflows/{id}/start',
      request: {
        params: z.object({ id: z.string().uuid() }),
        query: z.object({ dryRun: z.coerce.boolean().optional().describe('only validate') }),
        body: z.object({ input: z.record(z.string(), z.unknown()) }),
      },
      doc: {
        summary: 'start',
        response: { status: 202, schema: z.object({ executionId: z.string() }) },
        errors: [404, 409],
        role: 'operator',
      },
    });
    registry.register({ method: 'get', path: '/hidden', doc: { hidden: true } });
    const doc = registry.document();
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.info.title, 'T');
    assert.equal(doc.paths['/hidden'], undefined);
    const op = doc.paths['/workflows/{id}/start']!.post as Record<string, any>;
    assert.deepEqual(
      op.parameters.map((p: { name: string; in: string; required: boolean }) => [p.name, p.in, p.required]),
      [
        ['id', 'path', true],
        ['dryRun', 'query', false],
      ],
    );
    assert.equal(op.parameters[1].description, 'only validate');
    assert.ok(op.requestBody.content['application/json'].schema.properties.input);
    // Its own, plus what the gateway answers around any route: a body (413, 415), huge headers
    // (431), the request timeout (504); auth and rate limits are off in this registry.
    assert.deepEqual(Object.keys(op.responses).sort(), ['202', '400', '404', '409', '413', '415', '431', '500', '504']);
    assert.equal(op['x-required-role'], 'operator');
    assert.equal(op.responses['404'].content['application/problem+json'].schema.$ref, '#/components/schemas/Problem');
    assert.ok(doc.components.schemas.Problem!.properties);
  });
});

/** A tiny log for the paging logic: position = 10 * index, recordedAt = minute index. */
function fakeStore(
  events: RecordedEvent[],
  densePositions = true,
): Pick<EventStore, 'readAll' | 'readStream' | 'headPosition' | 'densePositions'> & {
  reads: number;
  examined: number;
  windows: (number | undefined)[];
} {
  const store = {
    densePositions,
    reads: 0,
    /** The `until` of each readAll. */
    windows: [] as (number | undefined)[],
    /** Events a read had to look at (in its window), as a store without a type index does. */
    examined: 0,
    async headPosition() {
      return events.length ? events[events.length - 1]!.position : -1;
    },
    async readAll(o: ReadAllOptions = {}) {
      store.reads++;
      store.windows.push(o.until);
      const back = o.direction === 'backwards';
      let list = [...events];
      if (back) list = list.reverse();
      if (o.after !== undefined) list = list.filter((e) => (back ? e.position < o.after! : e.position > o.after!));
      if (o.until !== undefined) list = list.filter((e) => (back ? e.position >= o.until! : e.position <= o.until!));
      const matching = list.filter(
        (e) =>
          (!o.types || o.types.includes(e.type)) &&
          (!o.streamPrefixes || o.streamPrefixes.some((p) => e.streamId.startsWith(p))),
      );
      const page = matching.slice(0, o.maxCount ?? Infinity);
      const last = page[page.length - 1];
      store.examined += last && page.length === o.maxCount ? list.indexOf(last) + 1 : list.length;
      return page;
    },
    async readStream(id: string, o: ReadStreamOptions = {}) {
      store.reads++;
      const back = o.direction === 'backwards';
      let list = events.filter((e) => e.streamId === id);
      if (back) list = list.reverse();
      if (o.fromRevision !== undefined)
        list = list.filter((e) => (back ? e.revision <= o.fromRevision! : e.revision >= o.fromRevision!));
      return list.slice(0, o.maxCount ?? Infinity);
    },
  };
  return store;
}

const recorded = (n: number, streamId = 's-1', type = 'T'): RecordedEvent[] =>
  Array.from({ length: n }, (_, i) => ({
    id: `e${i}`,
    streamId,
    type: i % 2 === 0 ? type : `${type}Odd`,
    data: { i },
    metadata: { correlationId: 'c', timestamp: new Date(i * 60_000).toISOString() },
    revision: i,
    position: i * 10,
    recordedAt: new Date(i * 60_000),
  }));

const page = (store: ReturnType<typeof fakeStore>, q: Record<string, unknown>) =>
  readEventsPage(store as unknown as EventStore, eventsQuerySchema.parse(q), '/api/v1/events');

describe('readEventsPage', () => {
  it('pages $all by position and ends with next = null', async () => {
    const store = fakeStore(recorded(5));
    const p1 = await page(store, { limit: '2' });
    assert.deepEqual(
      p1.events.map((e) => e.position),
      [0, 10],
    );
    assert.equal(p1.next?.after, 10);
    assert.match(p1.next.href, /after=10&limit=2/);
    const p3 = await page(store, { limit: '2', after: '30' });
    assert.deepEqual(
      p3.events.map((e) => e.position),
      [40],
    );
    assert.equal(p3.next, null);
  });

  it('pages a stream backwards down to revision 0', async () => {
    const store = fakeStore(recorded(3));
    const p1 = await page(store, { stream: 's-1', direction: 'backwards', limit: '2' });
    assert.deepEqual(
      p1.events.map((e) => e.revision),
      [2, 1],
    );
    assert.equal(p1.next?.from_revision, 0);
    const p2 = await page(store, { stream: 's-1', direction: 'backwards', limit: '2', from_revision: '0' });
    assert.deepEqual(
      p2.events.map((e) => e.revision),
      [0],
    );
    assert.equal(p2.next, null);
  });

  it('filters a stream by type across batches, and $all by time', async () => {
    const store = fakeStore(recorded(600));
    const typed = await page(store, { stream: 's-1', type: 'TOdd', limit: '300' });
    assert.equal(typed.events.length, 300);
    assert.ok(typed.events.every((e) => e.type === 'TOdd'));
    // The page filled on the log's last event: whether a cursor or the end is answered depends
    // on whether that batch came back short; either way the next read finds nothing.
    assert.ok(typed.next === null || typed.next.from_revision === 600, JSON.stringify(typed.next));
    const after = await page(store, { stream: 's-1', type: 'TOdd', limit: '300', from_revision: '600' });
    assert.deepEqual([after.events.length, after.next], [0, null]);
    const timed = await page(store, {
      since: new Date(100 * 60_000).toISOString(),
      until: new Date(104 * 60_000).toISOString(),
    });
    assert.deepEqual(
      timed.events.map((e) => e.revision),
      [100, 101, 102, 103, 104],
    );
  });

  it('stops once it examined SCAN_MAX_CHARS of events a filter does not match, with a cursor that walks on', async () => {
    // A stream of large events (a big execution's), a time filter matching none of them.
    const big = recorded(200).map((e) => ({ ...e, data: { blob: 'x'.repeat(1_000_000) } }));
    const store = fakeStore(big);
    const readSizes: number[] = [];
    const readStream = store.readStream;
    store.readStream = async (id, o) => {
      const r = await readStream(id, o);
      readSizes.push(r.length);
      return r;
    };
    let from: string | undefined;
    let requests = 0;
    for (;;) {
      requests++;
      readSizes.length = 0;
      const p = await page(store, {
        stream: 's-1',
        since: new Date(10 ** 12).toISOString(),
        ...(from === undefined ? {} : { from_revision: from }),
      });
      assert.deepEqual(p.events, []);
      const examined = readSizes.reduce((a, b) => a + b, 0);
      // The scan stops in the batch that passes the bound; batches grow from one event.
      assert.ok(examined * 1_000_000 <= 2 * SCAN_MAX_CHARS, `${examined} events of 1 MB in one request`);
      if (!p.next) break;
      from = String(p.next.from_revision);
    }
    assert.ok(requests >= 200 / 16, `${requests} requests walked the 200 events`);
  });

  it('stops at SCAN_CAP with a cursor when a filter matches nothing', async () => {
    const store = fakeStore(recorded(SCAN_CAP + 500));
    const p = await page(store, { since: new Date(10 ** 12).toISOString(), limit: '10' });
    assert.deepEqual(p.events, []);
    // Positions are 10 apart here: one window of SCAN_CAP positions holds SCAN_CAP / 10 events.
    assert.equal(p.next?.after, SCAN_CAP - 1, 'cursor at the end of the window');
    const rest = await page(store, {
      since: new Date(10 ** 12).toISOString(),
      limit: '10',
      after: String(p.next.after),
    });
    assert.equal(rest.next?.after, 2 * SCAN_CAP - 1);
  });

  it('a type the log lacks costs one window of the log per request, and the cursors walk to its end', async () => {
    const n = 5 * SCAN_CAP;
    const store = fakeStore(recorded(n / 10));
    for (const direction of ['forwards', 'backwards'] as const) {
      store.examined = 0;
      let requests = 0;
      let after: number | undefined;
      for (;;) {
        requests++;
        store.examined = 0;
        const p = await page(store, {
          type: 'Nope',
          direction,
          ...(after === undefined ? {} : { after: String(after) }),
        });
        assert.deepEqual(p.events, []);
        assert.ok(store.examined <= SCAN_CAP / 10, `${direction}: ${store.examined} events examined in one request`);
        if (!p.next) break;
        after = p.next.after!;
      }
      assert.equal(requests, 5, `${direction}: the log is ${n} positions long`);
    }
    // A backwards cursor past the head starts at the head, not at the cursor.
    const far = await page(store, { type: 'Nope', direction: 'backwards', after: String(10 ** 12) });
    assert.equal(far.next?.after, (n / 10 - 1) * 10 + 1 - SCAN_CAP);
    // A type that is there fills the page from the first window, as before.
    const found = await page(store, { type: 'TOdd', limit: '3' });
    assert.deepEqual(
      found.events.map((e) => e.position),
      [10, 30, 50],
    );
  });
});

describe('readEventsPage on a store whose positions are not dense (EventStoreDB)', () => {
  it('reads without a window and hands back the last examined event as the cursor', async () => {
    const store = fakeStore(recorded(SCAN_CAP + 500), false);
    const p = await page(store, { type: 'Nope', limit: '10' });
    assert.deepEqual(p.events, []);
    assert.ok(store.windows.every((w) => w === undefined));
    assert.equal(p.next, null, 'the store read the log to its end (its own filter)');
  });
});

describe('sseFrame', () => {
  it('is one SSE message with the position as id and the event JSON as data', () => {
    const [e] = recorded(1);
    const frame = sseFrame(e!);
    assert.match(frame, /^id: 0\ndata: \{.*\}\n\n$/);
    assert.equal(JSON.parse(frame.split('\n')[1]!.slice(6)).recordedAt, '1970-01-01T00:00:00.000Z');
  });
});

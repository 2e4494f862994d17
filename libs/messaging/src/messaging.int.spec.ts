import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { AppError, createLogger } from '@switchyard/platform';
import { headerNames, serviceSubject } from '@switchyard/contracts';
import { testNatsUrl } from '@switchyard/testing';
import {
  addService,
  closeNats,
  connectNats,
  ensureEventsStream,
  request,
  serviceClient,
  type NatsConnection,
  type Service,
} from './index.js';

const logger = createLogger('messaging-int', 'silent');
const suffix = randomBytes(3).toString('hex');
const svcName = `echo-${suffix}`;
const echoSubject = serviceSubject(svcName, 'echo');
const findSubject = serviceSubject(svcName, 'find');
const boomSubject = serviceSubject(svcName, 'boom');
const slowSubject = serviceSubject(svcName, 'slow');
const bigSubject = serviceSubject(svcName, 'big');

const echoReply = z.object({ text: z.string(), correlationId: z.string(), instance: z.string() });

async function isAppError(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AppError, `expected AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected AppError(${code}), got a reply`);
}

describe('messaging against a real nats-server', () => {
  let client: NatsConnection;
  const servers: NatsConnection[] = [];
  const services: Service[] = [];
  let releaseSlow!: () => void;
  const slowGate = new Promise<void>((r) => (releaseSlow = r));

  const startInstance = async (instance: string) => {
    const nc = await connectNats({ url: await testNatsUrl(), name: `svc-${instance}`, logger });
    servers.push(nc);
    const svc = await addService(nc, {
      name: svcName,
      version: '1.2.0',
      description: 'echo for tests',
      logger,
      endpoints: {
        echo: {
          subject: echoSubject,
          schema: z.object({ text: z.string().min(1) }),
          handler: (input, ctx) => ({ text: input.text.toUpperCase(), correlationId: ctx.correlationId, instance }),
        },
        find: {
          subject: findSubject,
          schema: z.object({ id: z.string() }),
          handler: (input) => {
            throw new AppError('not_found', `no thing ${input.id}`, { id: input.id });
          },
        },
        boom: {
          subject: boomSubject,
          schema: z.unknown(),
          handler: async () => {
            throw new Error('secret detail');
          },
        },
        big: {
          subject: bigSubject,
          schema: z.object({ bytes: z.number().int() }),
          handler: (input) => ({ blob: 'x'.repeat(input.bytes) }),
        },
        slow: {
          subject: slowSubject,
          schema: z.unknown(),
          handler: async () => {
            await slowGate;
            return { late: true };
          },
        },
      },
    });
    services.push(svc);
  };

  before(async () => {
    client = await connectNats({ url: await testNatsUrl(), name: 'client', logger });
    await startInstance('a');
    await startInstance('b');
  });

  after(async () => {
    releaseSlow();
    for (const s of services) await s.stop();
    for (const nc of [...servers, client]) await closeNats(nc);
  });

  it('round-trips a request, validates the reply and carries the correlation id', async () => {
    const reply = await request(client, echoSubject, { text: 'hello' }, { schema: echoReply, correlationId: 'corr-1' });
    assert.equal(reply.text, 'HELLO');
    assert.equal(reply.correlationId, 'corr-1');
  });

  it('sends invalid input back as 400 with the zod issues and raises AppError(validation)', async () => {
    const raw = await client.request(echoSubject, new TextEncoder().encode(JSON.stringify({ text: 5 })), {
      timeout: 5_000,
    });
    assert.equal(raw.headers?.get(headerNames.serviceErrorCode), '400');
    const err = await isAppError(request(client, echoSubject, { text: 5 }, { schema: echoReply }), 'validation');
    assert.equal(err.status, 400);
    const issues = err.details.issues as { path: unknown[] }[];
    assert.ok(Array.isArray(issues) && issues.length > 0);
    assert.deepEqual(issues[0]!.path, ['text']);
    assert.equal(err.retryable, false);
  });

  it('sends a body that is not JSON back as validation', async () => {
    const raw = await client.request(echoSubject, new TextEncoder().encode('{nope'), { timeout: 5_000 });
    assert.equal(raw.headers?.get(headerNames.serviceErrorCode), '400');
  });

  it('carries not_found from the service to the caller with its details', async () => {
    const raw = await client.request(findSubject, new TextEncoder().encode('{"id":"x1"}'), { timeout: 5_000 });
    assert.equal(raw.headers?.get(headerNames.serviceErrorCode), '404');
    assert.equal(raw.headers?.get(headerNames.serviceError), 'no thing x1');
    const err = await isAppError(request(client, findSubject, { id: 'x1' }, { schema: z.unknown() }), 'not_found');
    assert.equal(err.message, 'no thing x1');
    assert.equal(err.details.id, 'x1');
  });

  it('hides unexpected handler errors behind internal (500)', async () => {
    const err = await isAppError(request(client, boomSubject, {}, { schema: z.unknown() }), 'internal');
    assert.doesNotMatch(err.message, /secret/);
  });

  it('maps a foreign service error that only sets headers by its status', async () => {
    const subject = `foreign.${suffix}`;
    const sub = client.subscribe(subject, {
      callback: (_e, m) => {
        const h = natsHeaders();
        h.set(headerNames.serviceErrorCode, '404');
        h.set(headerNames.serviceError, 'gone');
        m.respond(new Uint8Array(0), { headers: h });
      },
    });
    await client.flush();
    const err = await isAppError(request(client, subject, {}, { schema: z.unknown() }), 'not_found');
    assert.equal(err.message, 'gone');
    sub.unsubscribe();
  });

  it('turns a reply that breaks the reply schema into internal', async () => {
    await isAppError(
      request(client, echoSubject, { text: 'x' }, { schema: z.object({ other: z.number() }) }),
      'internal',
    );
  });

  it('answers a reply over the payload limit as result_too_large (size and limit), not a failed publish', async () => {
    await assert.rejects(
      request(client, bigSubject, { bytes: 2 * 1024 * 1024 }, { schema: z.unknown(), timeoutMs: 5_000 }),
      (e: unknown) =>
        e instanceof AppError &&
        e.code === 'result_too_large' &&
        (e.details['size_bytes'] as number) > (e.details['limit_bytes'] as number),
    );
    const small = await request(client, bigSubject, { bytes: 10 }, { schema: z.object({ blob: z.string() }) });
    assert.equal(small.blob.length, 10);
  });

  it('raises unavailable when nobody listens', async () => {
    const err = await isAppError(
      request(client, serviceSubject(`nobody-${suffix}`, 'x'), {}, { schema: z.unknown() }),
      'unavailable',
    );
    assert.equal(err.retryable, true);
  });

  it('raises timeout when the service does not answer in time', async () => {
    const err = await isAppError(request(client, slowSubject, {}, { schema: z.unknown(), timeoutMs: 300 }), 'timeout');
    assert.equal(err.retryable, true);
  });

  it('shares the load between instances in the queue group', async () => {
    const seen = new Map<string, number>();
    const replies = await Promise.all(
      Array.from({ length: 60 }, (_, i) => request(client, echoSubject, { text: `n${i}` }, { schema: echoReply })),
    );
    for (const r of replies) seen.set(r.instance, (seen.get(r.instance) ?? 0) + 1);
    assert.equal(replies.length, 60);
    // Each request went to exactly one instance, and both instances got work.
    assert.deepEqual([...seen.keys()].sort(), ['a', 'b']);
  });

  it('is discoverable through $SRV.PING, INFO and STATS', async () => {
    const sc = serviceClient(client, { timeoutMs: 5_000, expect: 2 });
    const pings = [];
    for await (const p of await sc.ping(svcName)) pings.push(p);
    assert.equal(pings.length, 2);
    assert.ok(pings.every((p) => p.name === svcName && p.version === '1.2.0'));

    const infos = [];
    for await (const i of await sc.info(svcName)) infos.push(i);
    assert.equal(infos.length, 2);
    const subjects = infos[0]!.endpoints.map((e) => e.subject).sort();
    assert.deepEqual(subjects, [bigSubject, boomSubject, echoSubject, findSubject, slowSubject].sort());
    assert.equal(infos[0]!.endpoints[0]!.queue_group, svcName);

    const stats = [];
    for await (const s of await sc.stats(svcName)) stats.push(s);
    const echoRequests = stats
      .flatMap((s) => s.endpoints ?? [])
      .filter((e) => e.name === 'echo')
      .reduce((n, e) => n + e.num_requests, 0);
    assert.ok(echoRequests >= 60, `echo requests counted: ${echoRequests}`);
  });
});

describe('ensureEventsStream', () => {
  it('creates the stream, is idempotent and updates the duplicate window', async () => {
    const nc = await connectNats({ url: await testNatsUrl(), name: 'stream-test', logger });
    const jsm = await jetstreamManager(nc);
    const name = `EVENTS_TEST_${suffix}`;
    const subjects = [`test-${suffix}.events.>`];
    try {
      const a = await ensureEventsStream(jsm, { name, subjects, duplicateWindowMs: 60_000 });
      assert.equal(a.config.storage, 'file');
      assert.equal(a.config.duplicate_window, 60_000 * 1_000_000);
      const b = await ensureEventsStream(jsm, { name, subjects, duplicateWindowMs: 60_000 });
      assert.equal(b.created.toString(), a.created.toString());
      const c = await ensureEventsStream(jsm, { name, subjects, duplicateWindowMs: 120_000 });
      assert.equal(c.config.duplicate_window, 120_000 * 1_000_000);
    } finally {
      await jsm.streams.delete(name).catch(() => undefined);
      await closeNats(nc);
    }
  });
});

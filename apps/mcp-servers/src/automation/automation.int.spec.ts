import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import pg from 'pg';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { freshDatabase, until } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { fails, httpClient, localHttp, ok, silentLogger, type LocalHttp } from '../test-helpers.js';
import { createAutomationServer } from './server.js';
import { AutomationService, Scheduler, type Clock, type TriggerRecord } from './automation-service.js';
import { DUE_SCHEDULES_SQL } from './schedules.js';

class FakeClock implements Clock {
  constructor(private t: Date) {}
  now(): Date {
    return new Date(this.t);
  }
  set(iso: string): void {
    this.t = new Date(iso);
  }
}

const secret = 'a-very-secret-webhook-key';
/** The receiver's side, computed here without the server's helper. */
const expectedSignature = (ts: string, body: string): string =>
  `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;

describe('automation MCP server (real Postgres, local webhook sink)', () => {
  let url: string;
  const pools: pg.Pool[] = [];
  const services: AutomationService[] = [];
  let sink: LocalHttp;
  let failing: LocalHttp;
  let http: McpHttpServerHandle;
  let client: Client;
  const clock = new FakeClock(new Date('2026-03-01T10:01:00.000Z'));
  const triggers: TriggerRecord[] = [];
  const guard = new EgressGuard({ allowCidrs: ['127.0.0.0/8'] }); // loopback allowed by configuration
  const delivery = { retries: 3, initialDelayMs: 5, maxDelayMs: 20, timeoutMs: 5000 };

  function service(scheduledRetry?: {
    firstRetryMs?: number;
    maxRetryMs?: number;
    maxAttempts?: number;
  }): AutomationService {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    pools.push(pool);
    const svc = new AutomationService({
      pool,
      logger: silentLogger,
      guard,
      clock,
      delivery,
      onTrigger: (t) => void triggers.push(t),
      ...(scheduledRetry && { scheduledRetry }),
    });
    services.push(svc);
    return svc;
  }

  async function serve(svc: AutomationService): Promise<void> {
    http = await startMcpHttpServer({
      name: 'automation',
      serverFactory: () => createAutomationServer({ service: svc, logger: silentLogger }),
      port: 0,
      logger: silentLogger,
    });
    client = await httpClient(http.url);
  }

  before(async () => {
    url = await freshDatabase('mcp_auto');
    // The first delivery attempt of each idempotency key fails with 500, later ones succeed.
    const seen = new Set<string>();
    sink = await localHttp((req, res) => {
      const key = String(req.headers['idempotency-key']);
      if (req.url === '/flaky' && !seen.has(key)) {
        seen.add(key);
        res.writeHead(500).end('try again');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    failing = await localHttp((_req, res) => res.writeHead(503).end('down'));
    const svc = service();
    await svc.migrate();
    await serve(svc);
  });

  after(async () => {
    await client?.close();
    await http?.close();
    await sink?.close();
    await failing?.close();
    // Keyed deliveries (the scheduled webhook) opened each service's liveness connection.
    for (const s of services) await s.close();
    for (const p of pools) await p.end();
  });

  it('refuses every spelling of an internal address as a webhook target when nothing is allow-listed', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    pools.push(pool);
    const strict = new AutomationService({ pool, logger: silentLogger, guard: new EgressGuard(), clock, delivery });
    services.push(strict);
    const attacks = [
      'http://[::127.0.0.1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://0177.0.0.1/',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://127.1/',
      'http://0/',
      'http://localhost./',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]/',
    ];
    for (const [i, target] of attacks.entries()) {
      await assert.rejects(
        strict.registerWebhook({ name: `ssrf-${i}`, url: target, secret, events: ['x'] }),
        (e: unknown) => (e as { code?: string }).code === 'forbidden',
        target,
      );
    }
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM automation.webhooks WHERE name LIKE 'ssrf-%'`);
    assert.equal(rows[0].n, 0);
  });

  it('delivers a signed webhook, retrying after a 500 with the same idempotency key', async () => {
    await ok(client, 'register_webhook', {
      name: 'flaky-sink',
      url: `${sink.base}/flaky`,
      secret,
      events: ['order.created'],
    });
    const start = sink.requests.length;
    const r = await ok(client, 'send_webhook', {
      webhook: 'flaky-sink',
      event: 'order.created',
      payload: { order: 42 },
    });
    assert.equal(r.delivery.delivered, true);
    assert.equal(r.delivery.status, 200);
    assert.equal(r.delivery.attempts, 2);
    const got = sink.requests.slice(start);
    assert.equal(got.length, 2);
    assert.equal(got[0]!.headers['idempotency-key'], got[1]!.headers['idempotency-key']);
    assert.equal(got[0]!.headers['idempotency-key'], r.delivery.delivery_id);
    for (const req of got) {
      const ts = String(req.headers['x-switchyard-timestamp']);
      assert.equal(req.headers['x-switchyard-signature'], expectedSignature(ts, req.body));
      const body = JSON.parse(req.body);
      assert.equal(body.event, 'order.created');
      assert.deepEqual(body.payload, { order: 42 });
      assert.equal(body.id, r.delivery.delivery_id);
    }
  });

  it('gives up after the retries with an unavailable error', async () => {
    await ok(client, 'register_webhook', { name: 'down', url: `${failing.base}/x`, secret, events: [] });
    const before = failing.requests.length;
    const e = await fails(client, 'send_webhook', { webhook: 'down', event: 'any' });
    assert.equal(e.code, 'unavailable');
    assert.equal(failing.requests.length - before, 4, 'first attempt + 3 retries');
  });

  it('keeps secrets out of listings, refuses unsubscribed events, duplicates and internal targets', async () => {
    const l = await ok(client, 'list_webhooks');
    assert.ok(l.webhooks.length >= 1);
    assert.ok(l.webhooks.every((w: Record<string, unknown>) => !('secret' in w)));
    assert.equal(
      (await fails(client, 'send_webhook', { webhook: 'flaky-sink', event: 'order.deleted' })).code,
      'illegal_state',
    );
    assert.equal(
      (await fails(client, 'register_webhook', { name: 'flaky-sink', url: `${sink.base}/x`, secret })).code,
      'illegal_state',
    );
    const internal = await fails(client, 'register_webhook', { name: 'meta', url: 'http://169.254.169.254/', secret });
    assert.equal(internal.code, 'forbidden');
    // A password in the URL would be in the webhook's events, which operators read.
    const userinfo = new URL(`${sink.base}/t`);
    userinfo.username = 'u';
    userinfo.password = 'PWD';
    const withCredentials = await fails(client, 'register_webhook', { name: 'creds', url: userinfo.href, secret });
    assert.equal(withCredentials.code, 'validation');
    assert.match(withCredentials.message, /must not carry credentials/);
    // Every webhook is in list_webhooks' one answer: the event list and the URL are bounded.
    const manyEvents = Array.from({ length: 33 }, (_, i) => `event.${i}`);
    for (const args of [
      { name: 'many', url: `${sink.base}/t`, secret, events: manyEvents },
      { name: 'long-event', url: `${sink.base}/t`, secret, events: ['e'.repeat(65)] },
      { name: 'long-url', url: `${sink.base}/${'p'.repeat(2_100)}`, secret },
    ])
      assert.match((await fails(client, 'register_webhook', args)).text, /validation|too_big|Too big/i, args.name);
    assert.match(
      (await fails(client, 'update_webhook', { webhook: 'flaky-sink', events: manyEvents })).text,
      /validation|too_big|Too big/i,
    );
    await ok(client, 'register_webhook', { name: 'temp', url: `${sink.base}/t`, secret });
    assert.equal((await ok(client, 'delete_webhook', { webhook: 'temp' })).deleted, 'temp');
    assert.equal((await fails(client, 'delete_webhook', { webhook: 'temp' })).code, 'not_found');
    assert.equal((await fails(client, 'send_webhook', { webhook: 'temp', event: 'x' })).code, 'not_found');
  });

  it('validates cron expressions and time zones', async () => {
    const target = { kind: 'workflow', template_id: 'tpl' };
    assert.equal(
      (await fails(client, 'create_schedule', { name: 'bad', cron: '61 * * * *', target })).code,
      'validation',
    );
    assert.equal(
      (await fails(client, 'create_schedule', { name: 'bad', cron: '0 9 * * *', timezone: 'Mars/Olympus', target }))
        .code,
      'validation',
    );
    // Six fields take seconds: a schedule may still fire at most once a minute.
    const often = await fails(client, 'create_schedule', { name: 'often', cron: '*/30 * * * * *', target });
    assert.equal(often.code, 'validation');
    assert.match(often.message, /at most once a minute/);
    const minutely = await ok(client, 'create_schedule', { name: 'minutely-at-0s', cron: '0 * * * * *', target });
    assert.equal(minutely.schedule.cron, '0 * * * * *');
    await ok(client, 'delete_schedule', { schedule: 'minutely-at-0s' });
  });

  it('the same schedule created again (a retry whose answer was lost) is answered as it is; another one under its name is refused', async () => {
    const target = { kind: 'workflow', template_id: 'tpl-retry', input: { a: 1, b: [1, 2] } };
    const first = await ok(client, 'create_schedule', { name: 'retried', after: '7d', target });
    // Keys in another order: the same target.
    const again = await ok(client, 'create_schedule', {
      name: 'retried',
      after: '7d',
      target: { input: { b: [1, 2], a: 1 }, template_id: 'tpl-retry', kind: 'workflow' },
    });
    assert.equal(again.schedule.id, first.schedule.id, 'the one there, not a second');
    assert.equal(
      (await ok(client, 'list_schedules')).schedules.filter((x: { name: string }) => x.name === 'retried').length,
      1,
    );
    const other = await fails(client, 'create_schedule', {
      name: 'retried',
      after: '7d',
      target: { ...target, input: { a: 2 } },
    });
    assert.equal(other.code, 'illegal_state');
    assert.match(other.message, /already exists/);
    const repeating = await fails(client, 'create_schedule', { name: 'retried', cron: '0 9 * * *', target });
    assert.equal(repeating.code, 'illegal_state', 'a cron schedule is not the one-shot there');
    const otherDelay = await fails(client, 'create_schedule', { name: 'retried', after: '1d', target });
    assert.equal(otherDelay.code, 'illegal_state', 'another delay is another schedule');
    await ok(client, 'pause_schedule', { schedule: 'retried' });
    const paused = await fails(client, 'create_schedule', { name: 'retried', after: '7d', target });
    assert.equal(paused.code, 'illegal_state', 'a paused one is not answered as if just made');
    await ok(client, 'delete_schedule', { schedule: 'retried' });
  });

  it('keeps at most AUTOMATION_MAX_WEBHOOKS webhooks and AUTOMATION_MAX_SCHEDULES schedules, under concurrent creation too', async () => {
    const capsUrl = await freshDatabase('mcp_auto_caps');
    // A small pool: creations waiting for their turn must not hold its connections.
    const pool = new pg.Pool({ connectionString: capsUrl, max: 4, connectionTimeoutMillis: 5_000 });
    pools.push(pool);
    const capped = new AutomationService({
      pool,
      logger: silentLogger,
      guard,
      clock,
      delivery,
      caps: { maxWebhooks: 2, maxSchedules: 3, maxOneShots: 1 },
    });
    services.push(capped);
    await capped.migrate();
    const hooks = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        capped.registerWebhook({ name: `cap-${i}`, url: `${sink.base}/ok`, secret: 's3cret-value', events: ['x'] }),
      ),
    );
    assert.equal(hooks.filter((r) => r.status === 'fulfilled').length, 2);
    for (const r of hooks.filter((x) => x.status === 'rejected'))
      assert.match(String(r.reason.message), /at most 2 \(AUTOMATION_MAX_WEBHOOKS\)/);
    assert.equal((await capped.listWebhooks()).webhooks.length, 2);
    const target = { kind: 'workflow' as const, template_id: 'tpl', input: {} };
    const made = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        capped.createSchedule({ name: `cap-${i}`, cron: '0 9 * * *', timezone: 'UTC', target }),
      ),
    );
    const createdNames = made.flatMap((r) => (r.status === 'fulfilled' ? [r.value.name] : []));
    assert.equal(createdNames.length, 3);
    assert.ok(made.every((r) => r.status === 'fulfilled' || (r.reason as { code?: string }).code === 'illegal_state'));
    // Deleting one makes room for one.
    await capped.deleteSchedule(createdNames[0]!);
    await capped.createSchedule({ name: 'cap-again', cron: '0 9 * * *', timezone: 'UTC', target });
    await assert.rejects(
      capped.createSchedule({ name: 'cap-over', cron: '0 9 * * *', timezone: 'UTC', target }),
      /AUTOMATION_MAX_SCHEDULES/,
    );
    // One-shots have a cap of their own (AUTOMATION_MAX_ONE_SHOTS, here 1), not the repeating
    // schedules' one: with three repeating ones there is room for one; and a one-shot counts
    // until it has fired, then stays listed but leaves room for the next.
    const before = clock.now();
    try {
      await capped.createSchedule({ name: 'once', after: '1m', timezone: 'UTC', target });
      await assert.rejects(
        capped.createSchedule({ name: 'once-more', after: '1m', timezone: 'UTC', target }),
        /one-shot schedules not fired yet: 1 exist, at most 1 \(AUTOMATION_MAX_ONE_SHOTS\)/,
      );
      clock.set(new Date(before.getTime() + 120_000).toISOString());
      assert.equal(await capped.fireDue(), 1);
      await capped.createSchedule({ name: 'once-more', after: '1m', timezone: 'UTC', target });
      const names = (await capped.listSchedules()).schedules.map((x) => x.name);
      assert.ok(names.includes('once') && names.includes('once-more'), names.join(','));
      await assert.rejects(
        capped.createSchedule({ name: 'cap-over', cron: '0 9 * * *', timezone: 'UTC', target }),
        /repeating schedules: 3 exist, at most 3 \(AUTOMATION_MAX_SCHEDULES\)/,
      );
    } finally {
      clock.set(before.toISOString());
    }
  });

  it('listings come in pages, by count and by size; a target past 64 KiB is refused', async () => {
    const svc = services[0]!;
    for (const n of ['page-a', 'page-b', 'page-c'])
      await svc.registerWebhook({ name: n, url: `${sink.base}/${n}`, secret, events: [] });
    const first = await svc.listWebhooks({ limit: 2, cursor: 'page-' });
    assert.deepEqual(
      first.webhooks.map((w) => w.name),
      ['page-a', 'page-b'],
    );
    assert.equal(first.next_cursor, 'page-b');
    const rest = await svc.listWebhooks({ limit: 2, cursor: first.next_cursor });
    assert.ok(rest.webhooks.some((w) => w.name === 'page-c'));
    const one = await ok(client, 'list_webhooks', { webhook: 'page-b' });
    assert.deepEqual(
      one.webhooks.map((w: { name: string }) => w.name),
      ['page-b'],
    );

    const big = (n: number) => ({ kind: 'workflow' as const, template_id: 'tpl', input: { blob: 'x'.repeat(n) } });
    await assert.rejects(
      svc.createSchedule({ name: 'too-big', cron: '0 3 * * *', timezone: 'UTC', target: big(70_000) }),
      (e: { code?: string; message?: string }) => e.code === 'validation' && /at most 65536/.test(e.message ?? ''),
    );
    // Six targets of 60 KB: a page ends past 256 KiB, well before its limit of 100.
    for (let i = 0; i < 6; i++)
      await svc.createSchedule(
        { name: `sized-${i}`, cron: '0 3 * * *', timezone: 'UTC', target: big(60_000) },
        undefined,
        'apikey:pager',
      );
    const pages: string[][] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await svc.listSchedules({ owner: 'apikey:pager', ...(cursor ? { cursor } : {}) });
      pages.push(page.schedules.map((x) => x.name));
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    assert.ok(pages.length >= 2, JSON.stringify(pages));
    assert.ok(pages.every((p) => p.length <= 5));
    assert.deepEqual(
      pages.flat(),
      Array.from({ length: 6 }, (_, i) => `sized-${i}`),
    );
    for (let i = 0; i < 6; i++) await svc.deleteSchedule(`sized-${i}`);
    for (const n of ['page-a', 'page-b', 'page-c']) await svc.deleteWebhook(n);
  });

  it('computes the next fire in the schedule time zone', async () => {
    const r = await ok(client, 'create_schedule', {
      name: 'paris-9am',
      cron: '0 9 * * *',
      timezone: 'Europe/Paris',
      target: { kind: 'workflow', template_id: 'daily' },
    });
    // 1 March 2026 is winter time in Paris (UTC+1): 09:00 local is 08:00Z on 2 March.
    assert.equal(r.schedule.next_fire_at, '2026-03-02T08:00:00.000Z');
    await ok(client, 'delete_schedule', { schedule: 'paris-9am' });
  });

  let scheduleId = '';
  it('fires a workflow schedule at the right time with an injected clock', async () => {
    clock.set('2026-03-01T10:01:00.000Z');
    const r = await ok(client, 'create_schedule', {
      name: 'every-5',
      cron: '*/5 * * * *',
      target: { kind: 'workflow', template_id: 'tpl-report', input: { depth: 2 } },
    });
    scheduleId = r.schedule.id;
    assert.equal(r.schedule.next_fire_at, '2026-03-01T10:05:00.000Z');
    const svc = service();
    clock.set('2026-03-01T10:04:59.999Z');
    assert.equal(await svc.fireDue(), 0, 'not due yet');
    clock.set('2026-03-01T10:05:00.000Z');
    const seen = triggers.length;
    assert.equal(await svc.fireDue(), 1);
    assert.equal(await svc.fireDue(), 0, 'an occurrence fires once');
    const fired = triggers.slice(seen);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]!.template_id, 'tpl-report');
    assert.deepEqual(fired[0]!.input, { depth: 2 });
    assert.equal(fired[0]!.fire_at, '2026-03-01T10:05:00.000Z');
    assert.equal(fired[0]!.source, 'schedule');
    const rows = await pools[0]!.query(`SELECT template_id, status FROM automation.triggers WHERE schedule_id = $1`, [
      scheduleId,
    ]);
    assert.deepEqual(rows.rows, [{ template_id: 'tpl-report', status: 'pending' }]);
    const listed = await ok(client, 'list_schedules');
    const s = listed.schedules.find((x: { id: string }) => x.id === scheduleId);
    assert.equal(s.next_fire_at, '2026-03-01T10:10:00.000Z');
    assert.equal(s.last_fired_at, '2026-03-01T10:05:00.000Z');
    assert.deepEqual(s.last_start, { status: 'pending', execution_id: null, error: null });
    // The engine refused the start (its template deleted since): the listing says why, each fire.
    await pools[0]!.query(
      `UPDATE automation.triggers SET status = 'failed', error = 'workflow definition tpl-report not found' WHERE schedule_id = $1`,
      [scheduleId],
    );
    const after = (await ok(client, 'list_schedules')).schedules.find((x: { id: string }) => x.id === scheduleId);
    assert.deepEqual(after.last_start, {
      status: 'failed',
      execution_id: null,
      error: 'workflow definition tpl-report not found',
    });
    await pools[0]!.query(`UPDATE automation.triggers SET status = 'pending', error = NULL WHERE schedule_id = $1`, [
      scheduleId,
    ]);
  });

  it('keeps schedules across a restart of the server object', async () => {
    await client.close();
    await http.close();
    const fresh = service(); // new object, new pool: only the database remembers
    await fresh.migrate();
    await serve(fresh);
    const listed = await ok(client, 'list_schedules');
    assert.ok(listed.schedules.some((x: { id: string }) => x.id === scheduleId));
    clock.set('2026-03-01T10:10:00.000Z');
    assert.equal(await fresh.fireDue(), 1);
  });

  it('fires each occurrence once when two schedulers run against one database', async () => {
    const a = service();
    const b = service();
    let t = Date.parse('2026-03-01T10:15:00.000Z');
    for (let round = 0; round < 6; round++, t += 5 * 60_000) {
      clock.set(new Date(t).toISOString());
      const [x, y] = await Promise.all([a.fireDue(), b.fireDue()]);
      assert.equal(x + y, 1, `round ${round}: fired ${x} + ${y}`);
    }
    const r = await pools[0]!.query(
      `SELECT fire_at, count(*)::int AS n FROM automation.triggers WHERE schedule_id = $1 GROUP BY 1 HAVING count(*) > 1`,
      [scheduleId],
    );
    assert.equal(r.rowCount, 0, 'no occurrence recorded twice');
  });

  it('collapses missed occurrences into one catch-up fire', async () => {
    const svc = service();
    clock.set('2026-03-01T13:02:00.000Z'); // ~2 hours of missed 5-minute slots
    assert.equal(await svc.fireDue(), 1);
    assert.equal(await svc.fireDue(), 0);
    const s = (await ok(client, 'list_schedules')).schedules.find((x: { id: string }) => x.id === scheduleId);
    assert.equal(s.next_fire_at, '2026-03-01T13:05:00.000Z');
    await ok(client, 'delete_schedule', { schedule: scheduleId });
  });

  it('fires a webhook schedule with a deterministic idempotency key', async () => {
    clock.set('2026-03-01T14:00:30.000Z');
    await ok(client, 'register_webhook', { name: 'sched-sink', url: `${sink.base}/sched`, secret });
    const r = await ok(client, 'create_schedule', {
      name: 'hourly-hook',
      cron: '0 * * * *',
      target: { kind: 'webhook', webhook: 'sched-sink', event: 'tick', payload: { n: 1 } },
    });
    clock.set('2026-03-01T15:00:00.000Z');
    const svc = service();
    const before = sink.requests.length;
    assert.equal(await svc.fireDue(), 1);
    const got = sink.requests.slice(before);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.url, '/sched');
    assert.equal(got[0]!.headers['idempotency-key'], `${r.schedule.id}:2026-03-01T15:00:00.000Z`);
    assert.equal(
      got[0]!.headers['x-switchyard-signature'],
      expectedSignature(String(got[0]!.headers['x-switchyard-timestamp']), got[0]!.body),
    );
    assert.equal(JSON.parse(got[0]!.body).payload.fire_at, '2026-03-01T15:00:00.000Z');
    await ok(client, 'delete_schedule', { schedule: 'hourly-hook' });
  });

  it('a scheduled webhook is owed from the claim on, retried with backoff through an outage, and delivered once', async () => {
    // The receiver: down (503) until told otherwise; it notes whether the occurrence was already recorded when it was called.
    let up = false;
    const received: { key: string; status: number; recordedFirst: boolean }[] = [];
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- a test server: an error here fails the delivery and so the test
    const receiver = await localHttp(async (req, res) => {
      const key = String(req.headers['idempotency-key']);
      const row = await pools[0]!.query(`SELECT status FROM automation.scheduled_deliveries WHERE delivery_id = $1`, [
        key,
      ]);
      const status = up ? 200 : 503;
      received.push({ key, status, recordedFirst: row.rowCount === 1 });
      res.writeHead(status).end(up ? '{"ok":true}' : 'down');
    });
    try {
      clock.set('2026-03-03T08:59:00.000Z');
      await ok(client, 'register_webhook', { name: 'outage-sink', url: `${receiver.base}/hook`, secret });
      const r = await ok(client, 'create_schedule', {
        name: 'daily-report',
        cron: '0 9 * * *',
        target: { kind: 'webhook', webhook: 'outage-sink', event: 'report.due' },
      });
      const key = `${r.schedule.id}:2026-03-03T09:00:00.000Z`;
      const svc = service({ firstRetryMs: 60_000, maxRetryMs: 600_000, maxAttempts: 5 });
      const row = async () =>
        (
          await pools[0]!.query(
            `SELECT status, attempts, next_attempt_at, last_error FROM automation.scheduled_deliveries WHERE delivery_id = $1`,
            [key],
          )
        ).rows[0];

      clock.set('2026-03-03T09:00:00.000Z');
      assert.equal(await svc.fireDue(), 1);
      assert.equal((await row()).status, 'pending', 'not answered: still owed');
      assert.equal((await row()).attempts, 1);
      assert.match((await row()).last_error, /503/);
      assert.equal((await row()).next_attempt_at.toISOString(), '2026-03-03T09:01:00.000Z', 'first retry after 60 s');
      const afterFirst = received.length;
      assert.ok(
        afterFirst >= 1 && received.every((x) => x.key === key && x.recordedFirst),
        'recorded before it was sent',
      );

      clock.set('2026-03-03T09:00:59.000Z');
      await svc.fireDue();
      assert.equal(received.length, afterFirst, 'not before its time');
      clock.set('2026-03-03T09:01:00.000Z');
      await svc.fireDue();
      assert.ok(received.length > afterFirst, 'retried');
      assert.equal((await row()).attempts, 2);
      assert.equal((await row()).next_attempt_at.toISOString(), '2026-03-03T09:03:00.000Z', 'backoff doubles');

      up = true;
      clock.set('2026-03-03T09:03:00.000Z');
      await svc.fireDue();
      assert.equal((await row()).status, 'delivered');
      clock.set('2026-03-03T10:00:00.000Z');
      await svc.fireDue();
      assert.deepEqual(
        received.filter((x) => x.status === 200).map((x) => x.key),
        [key],
        'one answered request for the occurrence',
      );
      await ok(client, 'delete_schedule', { schedule: 'daily-report' });
    } finally {
      await receiver.close();
    }
  });

  it('a scheduled webhook that never gets an answer is given up after its attempts; one whose webhook is gone at once', async () => {
    clock.set('2026-03-04T08:59:00.000Z');
    await ok(client, 'register_webhook', { name: 'dead-sink', url: `${failing.base}/dead`, secret });
    await ok(client, 'register_webhook', { name: 'short-lived', url: `${sink.base}/short`, secret });
    const dead = await ok(client, 'create_schedule', {
      name: 'to-dead',
      cron: '0 9 * * *',
      target: { kind: 'webhook', webhook: 'dead-sink', event: 'x' },
    });
    const gone = await ok(client, 'create_schedule', {
      name: 'to-gone',
      cron: '0 9 * * *',
      target: { kind: 'webhook', webhook: 'short-lived', event: 'x' },
    });
    const svc = service({ firstRetryMs: 1_000, maxRetryMs: 1_000, maxAttempts: 2 });
    // The webhook goes away while its schedule stays: the occurrence is owed to nobody.
    await ok(client, 'delete_webhook', { webhook: 'short-lived' });
    clock.set('2026-03-04T09:00:00.000Z');
    assert.equal(await svc.fireDue(), 2);
    clock.set('2026-03-04T09:00:01.000Z');
    await svc.fireDue();
    const rows = await pools[0]!.query<{ schedule_id: string; status: string; attempts: number }>(
      `SELECT schedule_id, status, attempts FROM automation.scheduled_deliveries WHERE schedule_id = any($1::uuid[])`,
      [[dead.schedule.id, gone.schedule.id]],
    );
    const by = new Map(rows.rows.map((x) => [x.schedule_id, x]));
    assert.deepEqual(
      { status: by.get(dead.schedule.id)!.status, attempts: by.get(dead.schedule.id)!.attempts },
      { status: 'gave_up', attempts: 2 },
    );
    assert.deepEqual(
      { status: by.get(gone.schedule.id)!.status, attempts: by.get(gone.schedule.id)!.attempts },
      { status: 'gave_up', attempts: 1 },
      'no webhook: not retried',
    );
    await ok(client, 'delete_schedule', { schedule: 'to-dead' });
    await ok(client, 'delete_schedule', { schedule: 'to-gone' });
  });

  it("a receiver that never answers holds its own share of sends, not the others' nor the next fires", async () => {
    const tarpit = await localHttp(() => undefined); // takes every request, answers none
    const names: string[] = [];
    try {
      clock.set('2026-03-05T09:59:00.000Z');
      await ok(client, 'register_webhook', { name: 'tarpit', url: `${tarpit.base}/hold`, secret });
      await ok(client, 'register_webhook', { name: 'prompt', url: `${sink.base}/prompt`, secret });
      for (let i = 0; i < 6; i++) {
        names.push(`to-tarpit-${i}`);
        await ok(client, 'create_schedule', {
          name: `to-tarpit-${i}`,
          cron: '0 10 * * *',
          target: { kind: 'webhook', webhook: 'tarpit', event: 'x' },
        });
      }
      names.push('to-prompt');
      await ok(client, 'create_schedule', {
        name: 'to-prompt',
        cron: '0 10 * * *',
        target: { kind: 'webhook', webhook: 'prompt', event: 'x' },
      });
      // Another webhook on the same receiver shares its share; and a backlog of 400 older sends owed
      // to the receiver does not hide the prompt one (the candidates leave a full receiver out).
      await ok(client, 'register_webhook', { name: 'second-tarpit', url: `${tarpit.base}/other?v=2`, secret });
      names.push('to-second-tarpit');
      await ok(client, 'create_schedule', {
        name: 'to-second-tarpit',
        cron: '0 10 * * *',
        target: { kind: 'webhook', webhook: 'second-tarpit', event: 'x' },
      });
      await pools[0]!.query(
        `INSERT INTO automation.scheduled_deliveries (delivery_id, schedule_id, fire_at, webhook, event, payload, correlation_id, next_attempt_at, created_at)
         SELECT 'backlog-' || i, gen_random_uuid(), $1, 'tarpit', 'x', '{}'::jsonb, 'backlog', $1, $1 FROM generate_series(1, 400) i`,
        [new Date('2026-03-05T09:00:00.000Z')],
      );
      const svc = service();
      clock.set('2026-03-05T10:00:00.000Z');
      // The scheduler's tick: it fires and goes on while the sends it started are out.
      assert.equal(await svc.fireDue(50, false), 8);
      await svc.fireDue(50, false); // the next tick: the receiver is full, the prompt one goes
      await until('the prompt receiver got its delivery', () =>
        sink.requests.some((r) => r.url === '/prompt' && r.body.includes('to-prompt')),
      );
      assert.ok(tarpit.requests.length >= 1, 'the tarpit was being sent to meanwhile');
      assert.ok(tarpit.requests.length <= 4, `at most 4 sends to one receiver at once: ${tarpit.requests.length}`);
    } finally {
      await tarpit.close();
      await pools[0]!.query(`DELETE FROM automation.scheduled_deliveries WHERE correlation_id = 'backlog'`);
    }
    for (const name of names) await ok(client, 'delete_schedule', { schedule: name });
    for (const hook of ['tarpit', 'second-tarpit', 'prompt']) await ok(client, 'delete_webhook', { webhook: hook });
  });

  it('records trigger_workflow requests and calls onTrigger', async () => {
    const seen = triggers.length;
    const r = await ok(client, 'trigger_workflow', { template_id: 'tpl-manual', input: { who: 'agent' } });
    assert.equal(r.trigger.status, 'pending');
    assert.equal(r.trigger.source, 'tool');
    const row = await pools[0]!.query(`SELECT template_id, input FROM automation.triggers WHERE id = $1`, [
      r.trigger.id,
    ]);
    assert.deepEqual(row.rows[0], { template_id: 'tpl-manual', input: { who: 'agent' } });
    assert.equal(triggers.length, seen + 1);
    assert.equal(triggers.at(-1)!.id, r.trigger.id);
  });

  it('runs the scheduler loop until stopped', async () => {
    clock.set('2026-03-02T00:00:30.000Z');
    const r = await ok(client, 'create_schedule', {
      name: 'loop',
      cron: '* * * * *',
      target: { kind: 'workflow', template_id: 'tpl-loop' },
    });
    clock.set('2026-03-02T00:01:00.000Z');
    const svc = service();
    const scheduler = new Scheduler(svc, silentLogger, 20);
    scheduler.start();
    try {
      // Wait for the outcome, not for a duration: the loop is correct once the fire is recorded.
      for (let i = 0; i < 500; i++) {
        const n = await pools[0]!.query(`SELECT count(*)::int AS n FROM automation.triggers WHERE schedule_id = $1`, [
          r.schedule.id,
        ]);
        if (n.rows[0].n > 0) break;
        await new Promise((res) => setTimeout(res, 20));
      }
    } finally {
      await scheduler.stop();
    }
    const n = await pools[0]!.query(`SELECT count(*)::int AS n FROM automation.triggers WHERE schedule_id = $1`, [
      r.schedule.id,
    ]);
    assert.equal(n.rows[0].n, 1);
  });

  it("a fired one-shot leaves the scheduler's working set (after a rebuild too), while it stays listed", async () => {
    clock.set('2026-03-03T00:00:00.000Z');
    const target = { kind: 'workflow', template_id: 'tpl-once' };
    const once = (await ok(client, 'create_schedule', { name: 'ws-once', after: '1m', target })).schedule;
    const svc = service();
    const finished = async () =>
      (await pools[0]!.query(`SELECT finished FROM automation.schedules WHERE id = $1`, [once.id])).rows[0]?.finished;
    assert.equal(await finished(), false);
    clock.set('2026-03-03T00:01:00.000Z');
    assert.ok((await svc.fireDue()) >= 1); // the earlier tests' repeating schedules may be due too
    assert.equal(await finished(), true, 'the claim that fired it marks it');
    await svc.rebuildReadModels();
    assert.equal(await finished(), true, 'a replay of its creation finds its runs row done');
    // A row from before the column: the next start's migration marks it.
    await pools[0]!.query(`UPDATE automation.schedules SET finished = false WHERE id = $1`, [once.id]);
    await svc.migrate();
    assert.equal(await finished(), true);
    const listed = (await ok(client, 'list_schedules', { limit: 500 })).schedules.find(
      (x: { id: string }) => x.id === once.id,
    );
    assert.equal(listed.enabled, false);
    assert.equal(listed.fire_count, 1);

    // 20,000 fired one-shots (as a long-running system's onboardings leave them) and one due:
    // the tick's query reads the live schedules only. Before, it read every schedule each second
    // (a million fired ones: 1.5-2.5 s per tick), as did the one-shot cap's count under its lock.
    await pools[0]!.query(
      `INSERT INTO automation.schedules (id, name, run_once, timezone, target, enabled, next_fire_at, created_at, finished)
       SELECT gen_random_uuid(), 'ws-fired-' || g, true, 'UTC', '{}'::jsonb, true, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z', true
         FROM generate_series(1, 20000) g`,
    );
    await pools[0]!.query(`ANALYZE automation.schedules`);
    const due = (await ok(client, 'create_schedule', { name: 'ws-due', after: '1m', target })).schedule;
    const plan = await pools[0]!.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${DUE_SCHEDULES_SQL}`, [
      new Date('2026-03-03T00:02:00.000Z'),
      50,
      [],
    ]);
    const read = rowsReadFrom(plan.rows[0]['QUERY PLAN'][0].Plan, 'schedules');
    const live = (
      await pools[0]!.query(`SELECT count(*)::int AS n FROM automation.schedules WHERE enabled AND NOT finished`)
    ).rows[0].n;
    assert.ok(read <= live, `the tick read ${read} rows of automation.schedules, ${live} live`);
    clock.set('2026-03-03T00:02:00.000Z');
    assert.ok((await svc.fireDue()) >= 1);
    assert.equal(
      (await pools[0]!.query(`SELECT finished FROM automation.schedules WHERE id = $1`, [due.id])).rows[0].finished,
      true,
    );
    await pools[0]!.query(`DELETE FROM automation.schedules WHERE name LIKE 'ws-fired-%'`);
  });
});

describe('automation record retention (real Postgres)', () => {
  let url: string;
  let pool: pg.Pool;
  const clock = new FakeClock(new Date('2026-05-01T00:00:00.000Z'));
  const guard = new EgressGuard({ allowCidrs: ['127.0.0.0/8'] });
  const services: AutomationService[] = [];
  const service = (recordRetentionDays?: number) => {
    const svc = new AutomationService({
      pool,
      logger: silentLogger,
      guard,
      clock,
      ...(recordRetentionDays !== undefined ? { recordRetentionDays } : {}),
    });
    services.push(svc);
    return svc;
  };

  before(async () => {
    url = await freshDatabase('mcp_auto_retention');
    pool = new pg.Pool({ connectionString: url, max: 4 });
    await service().migrate();
  });
  after(async () => {
    for (const s of services) await s.close();
    await pool?.end();
  });

  it('purges what finished longer ago than the retention (a fired one-shot by a ScheduleDeleted), never what is pending or recent', async () => {
    const svc = service(); // the default: 30 days
    const target = { kind: 'workflow' as const, template_id: 'tpl-r', input: {} };
    const fired = await svc.createSchedule({ name: 'rt-once', after: '1m', timezone: 'UTC', target }, 'c1', 'apikey:a');
    const pending = await svc.createSchedule(
      { name: 'rt-later', after: '300d', timezone: 'UTC', target },
      'c2',
      'apikey:a',
    );
    const cron = await svc.createSchedule(
      { name: 'rt-cron', cron: '0 9 1 1 *', timezone: 'UTC', target },
      'c3',
      'apikey:a',
    );
    clock.set('2026-05-01T00:01:00.000Z');
    assert.equal(await svc.fireDue(), 1);
    // Finished and in-progress rows of each table, 40 days old and 1 day old.
    const old = '2026-03-22T00:00:00Z';
    const recent = '2026-05-30T00:00:00Z';
    for (const [status, at, n] of [
      ['started', old, 1],
      ['failed', old, 2],
      ['pending', old, 3],
      ['started', recent, 4],
    ] as const)
      await pool.query(
        `INSERT INTO automation.triggers (id, template_id, input, source, correlation_id, status, created_at)
         VALUES (gen_random_uuid(), 'tpl-r', '{}', 'tool', 'rt-trigger-${n}', $1, $2)`,
        [status, at],
      );
    for (const [status, at, n] of [
      ['delivered', old, 1],
      ['gave_up', old, 2],
      ['pending', old, 3],
      ['delivered', recent, 4],
    ] as const)
      await pool.query(
        `INSERT INTO automation.scheduled_deliveries (delivery_id, webhook, event, payload, correlation_id, status, next_attempt_at, created_at, finished_at)
         VALUES ('rt-sd-${n}', 'hook', 'e', '{}', 'c', $1, $2, $2, CASE WHEN $1 = 'pending' THEN NULL ELSE $2::timestamptz END)`,
        [status, at],
      );
    for (const [status, at, n] of [
      ['answered', old, 1],
      ['failed', old, 2],
      ['sending', old, 3],
      ['answered', recent, 4],
    ] as const)
      await pool.query(
        `INSERT INTO automation.deliveries (delivery_id, webhook_id, event, request_fingerprint, status, started_at, finished_at)
         VALUES ('rt-d-${n}', gen_random_uuid(), 'e', 'f', $1, $2, $2)`,
        [status, at],
      );
    for (const [status, at, n] of [
      ['sent', old, 1],
      ['failed', old, 2],
      ['sending', old, 3],
      ['sent', recent, 4],
    ] as const)
      await pool.query(
        `INSERT INTO automation.mail_sends (idempotency_key, request_fingerprint, status, started_at, finished_at)
         VALUES ('rt-m-${n}', 'f', $1, $2, $2)`,
        [status, at],
      );
    const triggerOfTheFire = (await pool.query(`SELECT id FROM automation.triggers WHERE schedule_id = $1`, [fired.id]))
      .rows.length;
    assert.equal(triggerOfTheFire, 1);

    // 29 days after the fire: nothing of it is old enough; the 40-day-old rows are.
    clock.set('2026-05-30T00:01:00.000Z');
    const first = await svc.retention.purge(clock.now());
    assert.deepEqual(first, { schedules: 0, triggers: 2, scheduled_deliveries: 2, deliveries: 2, mail_sends: 2 });
    // 31 days after it: the one-shot and its trigger (started) go.
    await pool.query(`UPDATE automation.triggers SET status = 'started' WHERE schedule_id = $1`, [fired.id]);
    clock.set('2026-06-01T00:02:00.000Z');
    const second = await svc.retention.purge(clock.now());
    assert.deepEqual(second, { schedules: 1, triggers: 1, scheduled_deliveries: 0, deliveries: 0, mail_sends: 0 });
    assert.deepEqual(await svc.retention.purge(clock.now()), {
      schedules: 0,
      triggers: 0,
      scheduled_deliveries: 0,
      deliveries: 0,
      mail_sends: 0,
    });

    const names = (await svc.listSchedules()).schedules.map((x) => x.name).sort();
    assert.deepEqual(names, ['rt-cron', 'rt-later']);
    assert.ok(pending.id && cron.id);
    const left = async (table: string, key: string) =>
      (
        await pool.query(`SELECT ${key} AS k FROM automation.${table} WHERE ${key}::text LIKE 'rt-%' ORDER BY 1`)
      ).rows.map((r) => r.k);
    assert.deepEqual(await left('scheduled_deliveries', 'delivery_id'), ['rt-sd-3', 'rt-sd-4']);
    assert.deepEqual(await left('deliveries', 'delivery_id'), ['rt-d-3', 'rt-d-4']);
    assert.deepEqual(await left('mail_sends', 'idempotency_key'), ['rt-m-3', 'rt-m-4']);
    assert.deepEqual(await left('triggers', 'correlation_id'), ['rt-trigger-3', 'rt-trigger-4']);
    // The retirement is an event: a replay of the read model does not bring the one-shot back.
    const stream = await svc.events.store.readStream('automation_schedule-apikey:a/rt-once');
    assert.deepEqual(
      stream.map((e) => [e.type, (e.data as { reason?: string }).reason]),
      [
        ['ScheduleCreated', undefined],
        ['ScheduleDeleted', 'expired'],
      ],
    );
    assert.equal(stream[1]!.metadata['actor'], 'mcp:automation:retention');
    await svc.rebuildReadModels();
    assert.deepEqual((await svc.listSchedules()).schedules.map((x) => x.name).sort(), ['rt-cron', 'rt-later']);
    // Its name is free again.
    await svc.createSchedule({ name: 'rt-once', after: '1m', timezone: 'UTC', target }, 'c4', 'apikey:a');
  });

  it('keeps everything with a retention of 0 days', async () => {
    const svc = service(0);
    await pool.query(
      `INSERT INTO automation.mail_sends (idempotency_key, request_fingerprint, status, started_at, finished_at)
       VALUES ('rt-zero', 'f', 'sent', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z')`,
    );
    assert.deepEqual(await svc.retention.purge(clock.now()), {
      schedules: 0,
      triggers: 0,
      scheduled_deliveries: 0,
      deliveries: 0,
      mail_sends: 0,
    });
    assert.equal(
      (await pool.query(`SELECT 1 FROM automation.mail_sends WHERE idempotency_key = 'rt-zero'`)).rowCount,
      1,
    );
  });
});

describe('a schedule that cannot be fired or planned does not hold the others (real Postgres)', () => {
  let pool: pg.Pool;
  const clock = new FakeClock(new Date('2026-12-06T17:52:54.000Z'));
  const guard = new EgressGuard({ allowCidrs: ['127.0.0.0/8'] });
  let svc: AutomationService;
  const triggers: TriggerRecord[] = [];

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('mcp_auto_stuck'), max: 4 });
    svc = new AutomationService({ pool, logger: silentLogger, guard, clock, onTrigger: (t) => void triggers.push(t) });
    await svc.migrate();
  });
  after(async () => {
    await svc?.close();
    await pool?.end();
  });

  const target = (template_id: string) => ({ kind: 'workflow' as const, template_id, input: {} });
  const fired = (template: string) => triggers.filter((t) => t.template_id === template).length;

  it('a Lord Howe cron whose next fire is on its half-hour DST change is planned, where cron-parser alone gave up', async () => {
    // Dec 7 and Apr 4 at 05:00 in Lord Howe: the April one is on the day its DST ends, where
    // cron-parser 5.10 gives up ("loop limit exceeded"). Before, every tick failed from its first
    // fire on, and no schedule of anyone fired.
    const lh = await svc.createSchedule(
      { name: 'lh', cron: '0 5 7,4 12,4 *', timezone: 'Australia/Lord_Howe', target: target('tpl-lh') },
      'c1',
      'apikey:a',
    );
    assert.equal(lh.next_fire_at, '2026-12-06T18:00:00.000Z');
    await svc.createSchedule(
      { name: 'minutely', cron: '* * * * *', timezone: 'UTC', target: target('tpl-min') },
      'c2',
      'apikey:b',
    );
    clock.set('2026-12-06T18:00:00.000Z');
    assert.equal(await svc.fireDue(), 2);
    const listed = (await svc.listSchedules()).schedules.find((x) => x.name === 'lh')!;
    // 05:00 on Apr 4 2027 at +10:30, after the change.
    assert.deepEqual([listed.enabled, listed.next_fire_at], [true, '2027-04-03T18:30:00.000Z']);
  });

  it('a cron whose next fire cannot be computed at all fires its occurrence, then is paused saying why; the others go on', async () => {
    const stuck = await svc.createSchedule(
      { name: 'stuck', cron: '* * * * *', timezone: 'UTC', target: target('tpl-stuck') },
      'c5',
      'apikey:a',
    );
    // Its stored expression has no next occurrence (as one the parser cannot plan).
    await pool.query(`UPDATE automation.schedules SET cron = '0 0 30 2 *' WHERE id = $1`, [stuck.id]);
    clock.set('2026-12-06T18:01:00.000Z');
    const before = fired('tpl-min');
    assert.equal(await svc.fireDue(), 2);
    const listed = (await svc.listSchedules()).schedules.find((x) => x.name === 'stuck')!;
    assert.deepEqual([listed.enabled, listed.paused_reason, listed.fire_count], [false, 'no_next_fire', 1]);
    clock.set('2026-12-06T18:02:00.000Z');
    assert.equal(await svc.fireDue(), 1);
    assert.deepEqual([fired('tpl-stuck'), fired('tpl-min')], [1, before + 2]);
  });

  it('a schedule whose claim fails waits while the others fire, and fires once it can', async () => {
    const broken = await svc.createSchedule(
      { name: 'broken', cron: '* * * * *', timezone: 'UTC', target: target('tpl-broken') },
      'c3',
      'apikey:a',
    );
    // PostgreSQL refuses this one schedule's run row (as a corrupt or locked-out row would).
    await pool.query(`
      CREATE FUNCTION automation.refuse_run() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.schedule_id = '${broken.id}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_run BEFORE INSERT OR UPDATE ON automation.schedule_runs
        FOR EACH ROW EXECUTE FUNCTION automation.refuse_run();`);
    clock.set('2026-12-06T18:03:00.000Z');
    const before = fired('tpl-min');
    assert.equal(await svc.fireDue(), 1, 'the minutely one fired; the broken one failed alone');
    assert.equal(fired('tpl-min'), before + 1);
    await pool.query(`DROP TRIGGER refuse_run ON automation.schedule_runs`);
    // It waits a second after its failure, then is tried again.
    clock.set('2026-12-06T18:03:00.500Z');
    assert.equal(await svc.fireDue(), 0, 'still waiting after its failure');
    clock.set('2026-12-06T18:03:01.500Z');
    assert.equal(await svc.fireDue(), 1);
    assert.equal(fired('tpl-broken'), 1);
  });
});

/** Rows a plan's scans of `table` read: those they returned and those their filters dropped. */
function rowsReadFrom(node: Record<string, unknown>, table: string): number {
  const own =
    node['Relation Name'] === table
      ? Number(node['Actual Rows'] ?? 0) * Number(node['Actual Loops'] ?? 1) +
        Number(node['Rows Removed by Filter'] ?? 0) +
        Number(node['Rows Removed by Index Recheck'] ?? 0)
      : 0;
  const children = (node['Plans'] as Record<string, unknown>[] | undefined) ?? [];
  return own + children.reduce((n, c) => n + rowsReadFrom(c, table), 0);
}

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { pino } from 'pino';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { AppError } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { fails, httpClient, localHttp, ok, type LocalHttp } from '../test-helpers.js';
import { createAutomationServer } from './server.js';
import {
  AutomationService,
  deliveryFingerprint,
  deliveryOwnerApplicationName,
  type AutomationDeps,
  type DeliveryResult,
} from './automation-service.js';

const secret = 'a-very-secret-webhook-key';

/** Wait for an outcome (not for a duration); fails with `what` if it never comes. */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await sleep(20);
  }
  assert.fail(`never happened: ${what}`);
}

describe('automation webhook deliveries: an idempotency key is honoured durably (real Postgres, local sink)', () => {
  let url: string;
  let db: pg.Pool;
  const pools: pg.Pool[] = [];
  const services: AutomationService[] = [];
  const openClients: pg.Client[] = [];
  let sink: LocalHttp;
  let http: McpHttpServerHandle;
  let client: Client;
  let svc: AutomationService;
  const hookIds: Record<string, string> = {};
  const guard = new EgressGuard({ allowCidrs: ['127.0.0.0/8'] }); // loopback allowed by configuration
  const delivery = { retries: 3, initialDelayMs: 5, maxDelayMs: 20, timeoutMs: 5000 };
  /** Every log line of every service here, parsed: the tests wait on what the service says it does. */
  const logLines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  let switchStatus = 503;
  const held: ServerResponse[] = [];

  function service(overrides: Partial<AutomationDeps> = {}): AutomationService {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    pools.push(pool);
    const s = new AutomationService({ pool, logger, guard, delivery, ...overrides });
    services.push(s);
    return s;
  }

  const sentWith = (key: string): number => sink.requests.filter((r) => r.headers['idempotency-key'] === key).length;
  const logged = (msg: string, key: string): boolean =>
    logLines.some((l) => l['msg'] === msg && l['deliveryId'] === key);
  async function row(
    key: string,
  ): Promise<{ status: string; sends: number; owner_pid: number | null; result: DeliveryResult | null } | undefined> {
    const r = await db.query(
      `SELECT status, sends, owner_pid, result FROM automation.deliveries WHERE delivery_id = $1`,
      [key],
    );
    return r.rows[0];
  }
  async function alive(pid: number): Promise<boolean> {
    const r = await db.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1`, [pid]);
    return r.rowCount === 1;
  }
  /** A backend that stands for another process sending a delivery (same application_name as the service's). */
  async function ownerBackend(): Promise<{ client: pg.Client; pid: number }> {
    const c = new pg.Client({ connectionString: url, application_name: deliveryOwnerApplicationName });
    await c.connect();
    const pid = Number((await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    return { client: c, pid };
  }
  async function insertSending(
    key: string,
    hook: string,
    event: string,
    payload: Record<string, unknown>,
    ownerPid: number,
    sends: number,
  ): Promise<void> {
    await db.query(
      `INSERT INTO automation.deliveries (delivery_id, webhook_id, event, request_fingerprint, status, owner_pid, sends, started_at)
       VALUES ($1, $2, $3, $4, 'sending', $5, $6, now())`,
      [key, hookIds[hook], event, deliveryFingerprint(hookIds[hook]!, event, payload), ownerPid, sends],
    );
  }

  before(async () => {
    url = await freshDatabase('mcp_deliveries');
    db = new pg.Pool({ connectionString: url, max: 2 });
    sink = await localHttp((req, res) => {
      if (req.url === '/reject') return void res.writeHead(422).end('unknown customer');
      if (req.url === '/switch') return void res.writeHead(switchStatus).end(switchStatus < 500 ? 'accepted' : 'down');
      // Held until the test lets it answer: a send that is visibly in flight.
      if (req.url === '/held') return void held.push(res);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    svc = service();
    await svc.migrate();
    await svc.start();
    for (const [name, path] of [
      ['ok', '/ok'],
      ['reject', '/reject'],
      ['switch', '/switch'],
      ['held', '/held'],
    ] as const) {
      hookIds[name] = (await svc.registerWebhook({ name, url: `${sink.base}${path}`, secret, events: [] })).id;
    }
    http = await startMcpHttpServer({
      name: 'automation',
      serverFactory: () => createAutomationServer({ service: svc, logger }),
      port: 0,
      logger,
    });
    client = await httpClient(http.url);
  });

  after(async () => {
    await client?.close();
    await http?.close();
    for (const res of held.splice(0)) res.writeHead(200).end();
    await sink?.close();
    for (const c of openClients) await c.end().catch(() => undefined);
    for (const s of services) await s.close();
    for (const p of pools) await p.end();
    await db?.end();
  });

  function release(): void {
    for (const res of held.splice(0))
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"released":true}');
  }

  it('sends a key once: a repeat gets the recorded answer, deduplicated, whatever the key order of the payload', async () => {
    const first = (
      await ok(client, 'send_webhook', {
        webhook: 'ok',
        event: 'order.created',
        payload: { order: 42, lines: [{ sku: 'a', qty: 1 }] },
        idempotency_key: 'seq-1',
      })
    ).delivery;
    const again = (
      await ok(client, 'send_webhook', {
        webhook: 'ok',
        event: 'order.created',
        payload: { lines: [{ qty: 1, sku: 'a' }], order: 42 },
        idempotency_key: 'seq-1',
      })
    ).delivery;
    assert.equal(sentWith('seq-1'), 1);
    assert.equal(first.deduplicated, false);
    assert.equal(again.deduplicated, true);
    assert.deepEqual({ ...again, deduplicated: false }, first);
    assert.equal(first.status, 200);
    assert.equal(first.response_body, '{"ok":true}');
    const r = await row('seq-1');
    assert.equal(r?.status, 'answered');
    assert.equal(r?.sends, 1);
  });

  it('takes a 4xx as the final answer: not sent again, still not delivered', async () => {
    const first = await svc.sendWebhook({
      webhook: 'reject',
      event: 'customer.updated',
      payload: { id: 7 },
      idempotencyKey: 'rej-1',
    });
    const again = await svc.sendWebhook({
      webhook: 'reject',
      event: 'customer.updated',
      payload: { id: 7 },
      idempotencyKey: 'rej-1',
    });
    assert.equal(sentWith('rej-1'), 1);
    assert.equal(first.delivered, false);
    assert.equal(first.status, 422);
    assert.equal(again.deduplicated, true);
    assert.equal(again.status, 422);
    assert.equal(again.response_body, 'unknown customer');
    assert.equal((await row('rej-1'))?.status, 'answered');
  });

  it('sends a key once when two service instances (two worker processes) send it at the same time', async () => {
    const a = service();
    const b = service();
    const input = { webhook: 'held', event: 'invoice.paid', payload: { invoice: 'inv-9' }, idempotencyKey: 'conc-1' };
    const both = Promise.all([a.sendWebhook(input), b.sendWebhook(input)]);
    // One instance's request is held at the sink while the other waits for it to finish.
    await until(() => sentWith('conc-1') === 1, 'the first request reaches the sink');
    await until(
      () => logged('waiting for the live sender of this delivery', 'conc-1'),
      'the second instance waits for the first',
    );
    release();
    const [x, y] = await both;
    assert.equal(sentWith('conc-1'), 1);
    assert.deepEqual([x.deduplicated, y.deduplicated].sort(), [false, true]);
    assert.deepEqual({ ...x, deduplicated: null }, { ...y, deduplicated: null });
    assert.equal(x.response_body, '{"released":true}');
    const r = await row('conc-1');
    assert.equal(r?.status, 'answered');
    assert.equal(r?.sends, 1);
  });

  it('joins a send of the same key already in flight in this process', async () => {
    const input = { webhook: 'held', event: 'invoice.paid', payload: { invoice: 'inv-10' }, idempotencyKey: 'join-1' };
    const first = svc.sendWebhook(input);
    await until(() => sentWith('join-1') === 1, 'the request reaches the sink');
    const second = svc.sendWebhook(input);
    release();
    const [x, y] = await Promise.all([first, second]);
    assert.equal(sentWith('join-1'), 1);
    assert.equal(x.deduplicated, false);
    assert.equal(y.deduplicated, true);
    assert.equal(y.status, 200);
  });

  it('refuses a key reused for a different payload or event, without sending, and says it will not help to retry', async () => {
    await svc.sendWebhook({ webhook: 'ok', event: 'order.created', payload: { order: 1 }, idempotencyKey: 'reuse-1' });
    const refused = (e: unknown): boolean => {
      assert.ok(e instanceof AppError);
      assert.equal(e.code, 'illegal_state');
      assert.equal(e.retryable, false);
      assert.equal(e.message, 'idempotency key "reuse-1" was already used for a different webhook, event or payload');
      assert.deepEqual(e.details, { delivery_id: 'reuse-1' });
      return true;
    };
    await assert.rejects(
      svc.sendWebhook({ webhook: 'ok', event: 'order.created', payload: { order: 2 }, idempotencyKey: 'reuse-1' }),
      refused,
    );
    await assert.rejects(
      svc.sendWebhook({ webhook: 'ok', event: 'order.deleted', payload: { order: 1 }, idempotencyKey: 'reuse-1' }),
      refused,
    );
    await assert.rejects(
      svc.sendWebhook({ webhook: 'reject', event: 'order.created', payload: { order: 1 }, idempotencyKey: 'reuse-1' }),
      refused,
    );
    const viaTool = await fails(client, 'send_webhook', {
      webhook: 'ok',
      event: 'order.created',
      payload: { order: 3 },
      idempotency_key: 'reuse-1',
    });
    assert.equal(viaTool.code, 'illegal_state');
    assert.equal(sentWith('reuse-1'), 1);
  });

  it('sends again a key whose last send got no answer (5xx after the retries), records the answer, then deduplicates', async () => {
    const input = { webhook: 'switch', event: 'report.ready', payload: { report: 'r1' }, idempotencyKey: 'fail-1' };
    switchStatus = 503;
    await assert.rejects(svc.sendWebhook(input), (e: unknown) => e instanceof AppError && e.code === 'unavailable');
    assert.equal(sentWith('fail-1'), 4, 'first attempt + 3 retries');
    assert.deepEqual(await row('fail-1').then((r) => [r?.status, r?.sends]), ['failed', 4]);

    switchStatus = 200;
    const second = await svc.sendWebhook(input);
    assert.equal(sentWith('fail-1'), 5);
    assert.equal(second.deduplicated, false);
    assert.equal(second.status, 200);
    const r = await row('fail-1');
    assert.equal(r?.status, 'answered');
    assert.equal(r?.sends, 5);
    assert.equal(r?.result?.response_body, 'accepted');

    const third = await svc.sendWebhook(input);
    assert.equal(sentWith('fail-1'), 5);
    assert.equal(third.deduplicated, true);
    assert.equal(third.status, 200);
  });

  it('takes over, and sends once, a key whose sender died mid-request', async () => {
    const dead = await ownerBackend();
    await dead.client.end();
    await until(async () => !(await alive(dead.pid)), 'the ended backend leaves pg_stat_activity');
    const payload = { shipment: 's-3' };
    await insertSending('dead-1', 'ok', 'shipment.sent', payload, dead.pid, 1);

    const r = await svc.sendWebhook({ webhook: 'ok', event: 'shipment.sent', payload, idempotencyKey: 'dead-1' });
    assert.equal(r.deduplicated, false);
    assert.equal(r.status, 200);
    assert.equal(sentWith('dead-1'), 1);
    assert.ok(logged('resending a delivery whose sender died mid-request', 'dead-1'));
    const stored = await row('dead-1');
    assert.equal(stored?.status, 'answered');
    assert.equal(stored?.sends, 2, 'the dead sender counted its send');
    assert.notEqual(stored?.owner_pid, dead.pid);
    assert.ok(await alive(stored.owner_pid!));
  });

  it('waits for a live sender of the key and returns its answer without sending', async () => {
    const live = await ownerBackend();
    openClients.push(live.client);
    const payload = { ticket: 't-5' };
    await insertSending('live-1', 'ok', 'ticket.escalated', payload, live.pid, 1);

    const call = svc.sendWebhook({ webhook: 'ok', event: 'ticket.escalated', payload, idempotencyKey: 'live-1' });
    await until(
      () => logged('waiting for the live sender of this delivery', 'live-1'),
      'the call waits for the live sender',
    );
    const answer: DeliveryResult = {
      delivery_id: 'live-1',
      webhook: 'ok',
      event: 'ticket.escalated',
      delivered: true,
      status: 202,
      attempts: 1,
      response_body: 'queued',
    };
    await live.client.query(
      `UPDATE automation.deliveries SET status = 'answered', result = $2, finished_at = now() WHERE delivery_id = $1`,
      ['live-1', JSON.stringify(answer)],
    );

    assert.deepEqual(await call, { ...answer, deduplicated: true });
    assert.equal(sentWith('live-1'), 0);
    assert.equal((await row('live-1'))?.sends, 1);
  });

  it('gives up waiting for a live sender after the delivery budget with a retryable timeout, sending nothing', async () => {
    const live = await ownerBackend();
    openClients.push(live.client);
    const payload = { ticket: 't-6' };
    await insertSending('live-2', 'ok', 'ticket.escalated', payload, live.pid, 1);
    const impatient = service({ delivery: { retries: 0, timeoutMs: 200, maxDelayMs: 0 } });
    await assert.rejects(
      impatient.sendWebhook({ webhook: 'ok', event: 'ticket.escalated', payload, idempotencyKey: 'live-2' }),
      (e: unknown) => {
        assert.ok(e instanceof AppError);
        assert.equal(e.code, 'timeout');
        assert.equal(e.retryable, true);
        assert.equal(e.details['owner_pid'], live.pid);
        return true;
      },
    );
    assert.equal(sentWith('live-2'), 0);
    assert.equal((await row('live-2'))?.status, 'sending');
  });

  it('keeps a send in flight owned when its liveness connection drops: the row moves to the new pid', async () => {
    const s = service();
    const call = s.sendWebhook({
      webhook: 'held',
      event: 'invoice.paid',
      payload: { invoice: 'inv-11' },
      idempotencyKey: 'reconnect-1',
    });
    await until(() => sentWith('reconnect-1') === 1, 'the request reaches the sink');
    const oldPid = (await row('reconnect-1'))!.owner_pid!;
    await db.query('SELECT pg_terminate_backend($1)', [oldPid]);
    await until(async () => {
      const pid = (await row('reconnect-1'))?.owner_pid;
      return pid !== oldPid && pid != null && (await alive(pid));
    }, 'the in-flight row names the new live pid');
    release();
    const r = await call;
    assert.equal(r.deduplicated, false);
    assert.equal(r.status, 200);
    assert.equal(sentWith('reconnect-1'), 1);
    assert.equal((await row('reconnect-1'))?.status, 'answered');
  });

  it('sends every call without a key, as before, and records nothing', async () => {
    const before = sink.requests.filter((r) => r.url === '/ok').length;
    const x = await svc.sendWebhook({ webhook: 'ok', event: 'ping', payload: { n: 1 } });
    const y = await svc.sendWebhook({ webhook: 'ok', event: 'ping', payload: { n: 1 } });
    assert.equal(sink.requests.filter((r) => r.url === '/ok').length - before, 2);
    assert.notEqual(x.delivery_id, y.delivery_id);
    assert.equal(x.deduplicated, false);
    assert.equal(await row(x.delivery_id), undefined);
    assert.equal(await row(y.delivery_id), undefined);
  });
});

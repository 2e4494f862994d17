import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { pino } from 'pino';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { fails, httpClient, localHttp, ok, silentLogger, type LocalHttp } from '../test-helpers.js';
import { createAutomationServer } from './server.js';
import { AutomationService, type AutomationDeps } from './automation-service.js';

/** Wait for an outcome (not for a duration); fails with `what` if it never comes. */
async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  state?: () => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await sleep(20);
  }
  assert.fail(`never happened: ${what}${state ? `; state: ${JSON.stringify(await state())}` : ''}`);
}

describe('automation queue_webhook: durable, ordered A2A-format deliveries (real Postgres, local receiver)', () => {
  let url: string;
  let db: pg.Pool;
  const pools: pg.Pool[] = [];
  const services: AutomationService[] = [];
  let sink: LocalHttp;
  let http: McpHttpServerHandle;
  let client: Client;
  let svc: AutomationService;
  const guard = new EgressGuard({ allowCidrs: ['127.0.0.0/8'] });
  const delivery = { retries: 3, initialDelayMs: 5, maxDelayMs: 20, timeoutMs: 5000 };
  /**
   * Answers by path: /flaky fails its first two requests of a key; /down 503 until `downStatus`
   * changes; /held waits; /held-once holds the first request of a key, answers the second 200
   * and the later ones 503.
   */
  const flakyCount = new Map<string, number>();
  let downStatus = 503;
  const held: ServerResponse[] = [];
  const heldOnce: ServerResponse[] = [];
  const heldOnceCount = new Map<string, number>();

  function service(overrides: Partial<AutomationDeps> = {}): AutomationService {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    pools.push(pool);
    const s = new AutomationService({ pool, logger: silentLogger, guard, delivery, ...overrides });
    services.push(s);
    return s;
  }
  const to = (key: string) => sink.requests.filter((r) => r.headers['idempotency-key'] === key);
  const a2aBody = (state: string) => ({
    statusUpdate: { taskId: 't-1', contextId: 'c-1', status: { state, timestamp: '2026-12-03T12:00:00.000Z' } },
  });
  /**
   * Due a second ago: the claim compares with the process's clock, whole milliseconds, and
   * PostgreSQL's now() has microseconds, so a row set to now() and claimed within the same
   * millisecond was not due yet.
   */
  const makeDue = (key: string) =>
    db.query(
      `UPDATE automation.scheduled_deliveries SET next_attempt_at = now() - interval '1 second' WHERE delivery_id = $1`,
      [key],
    );
  const rowOf = async (key: string) =>
    (
      await db.query(
        `SELECT status, attempts, payload, response_status, last_error FROM automation.scheduled_deliveries WHERE delivery_id = $1`,
        [key],
      )
    ).rows[0];

  before(async () => {
    url = await freshDatabase('mcp_queued');
    db = new pg.Pool({ connectionString: url, max: 2 });
    sink = await localHttp((req, res) => {
      const key = String(req.headers['idempotency-key']);
      if (req.url === '/flaky') {
        const n = (flakyCount.get(key) ?? 0) + 1;
        flakyCount.set(key, n);
        return void res.writeHead(n <= 2 ? 503 : 200).end();
      }
      if (req.url === '/down') return void res.writeHead(downStatus).end();
      if (req.url === '/held') return void held.push(res);
      if (req.url === '/held-once') {
        const n = (heldOnceCount.get(key) ?? 0) + 1;
        heldOnceCount.set(key, n);
        return n === 1 ? void heldOnce.push(res) : void res.writeHead(n === 2 ? 200 : 503).end();
      }
      res.writeHead(200).end();
    });
    svc = service();
    await svc.migrate();
    await svc.start();
    http = await startMcpHttpServer({
      name: 'automation',
      serverFactory: () => createAutomationServer({ service: svc, logger: silentLogger }),
      port: 0,
      logger: silentLogger,
    });
    client = await httpClient(http.url);
  });

  after(async () => {
    await client?.close();
    await http?.close();
    for (const res of [...held.splice(0), ...heldOnce.splice(0)]) res.writeHead(200).end();
    await sink?.close();
    for (const s of services) await s.close();
    for (const p of pools) await p.end();
    await db?.end();
  });

  it('POSTs the body as given with the A2A token and Authorization headers; a repeated key is neither queued nor sent again', async () => {
    const args = {
      format: 'a2a',
      url: `${sink.base}/ok`,
      event: 'a2a.status-update',
      body: a2aBody('TASK_STATE_COMPLETED'),
      content_type: 'application/a2a+json',
      token: 'tok-123',
      authentication: { scheme: 'Bearer', credentials: 'cred-456' },
      idempotency_key: 'a2a:t-1:cfg-1:status:3',
      ordering_key: 'a2a:t-1:cfg-1',
    };
    const first = (await ok(client, 'queue_webhook', args)).delivery;
    assert.equal(first.deduplicated, false);
    assert.equal(first.url, `${new URL(sink.base).origin}/…`, 'the answer names where it goes, not its path');
    assert.equal(first.status, 'pending');
    await until(async () => (await rowOf(args.idempotency_key))?.status === 'delivered', 'delivered');
    const again = (await ok(client, 'queue_webhook', args)).delivery;
    assert.equal(again.deduplicated, true);
    assert.equal(again.status, 'delivered');
    const sent = to(args.idempotency_key);
    assert.equal(sent.length, 1);
    assert.deepEqual(JSON.parse(sent[0]!.body), args.body);
    assert.equal(sent[0]!.headers['content-type'], 'application/a2a+json');
    assert.equal(sent[0]!.headers['x-a2a-notification-token'], 'tok-123');
    assert.equal(sent[0]!.headers.authorization, 'Bearer cred-456');
    assert.equal(sent[0]!.headers['x-switchyard-signature'], undefined);
    // Observed through the tool; the token and credentials are gone from the record once delivered.
    const listed = (await ok(client, 'list_queued_deliveries', { ordering_key: 'a2a:t-1:cfg-1' })).deliveries;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].status, 'delivered');
    assert.equal(listed[0].response_status, 200);
    const row = await rowOf(args.idempotency_key);
    assert.equal(row.payload.token, undefined);
    assert.equal(row.payload.authentication, undefined);
  });

  it("one owner's receivers that never answer hold at most its share of sends; another owner's goes at once; a revoked owner's pending ones are given up", async () => {
    const tarpits = await Promise.all(Array.from({ length: 8 }, () => localHttp(() => undefined)));
    const sentTo = () => tarpits.reduce((n, t) => n + t.requests.length, 0);
    /** queue_webhook as the connectors call it for a key: the person in `_meta.actor`. */
    const queueAs = async (actor: string, args: Record<string, unknown>) => {
      const r = (await client.callTool({ name: 'queue_webhook', arguments: args, _meta: { actor } })) as CallToolResult;
      assert.notEqual(r.isError, true, JSON.stringify(r.content));
    };
    try {
      // 5 notifications to each of 8 receivers that take the request and never answer: without
      // the owner's share they would hold all 32 sends (4 to each receiver).
      for (const [i, t] of tarpits.entries())
        for (let n = 0; n < 5; n++)
          await queueAs('apikey:hog', {
            format: 'a2a',
            url: `${t.base}/hold`,
            event: 'a2a.task',
            body: { n },
            idempotency_key: `hog-${i}-${n}`,
          });
      void svc.sendScheduledDeliveries(); // a scheduler tick
      await until(() => sentTo() >= 8, "the hog's sends are out");
      await queueAs('apikey:other', {
        format: 'a2a',
        url: `${sink.base}/ok`,
        event: 'a2a.task',
        body: { n: 0 },
        idempotency_key: 'other-owner-1',
      });
      // Stored in its owner's namespace (a key is its owner's alone).
      await until(
        async () => (await rowOf('apikey:other/other-owner-1'))?.status === 'delivered',
        "the other owner's delivered",
      );
      assert.equal(sentTo(), 8, `one owner holds at most 8 sends at once: ${sentTo()}`);

      // The gateway revokes the hog's key; the sends it still owes are given up, not made.
      const gateway = new PostgresEventStore({ pool: db, logger: silentLogger });
      try {
        await gateway.append('apikey-hog', [
          {
            type: 'ApiKeyRevoked',
            data: { id: 'hog' },
            metadata: { timestamp: new Date().toISOString(), correlationId: 'revoke-hog', actor: 'apikey:admin' },
          },
        ]);
      } finally {
        await gateway.close();
      }
      await until(
        async () =>
          (await db.query(`SELECT 1 FROM automation.revoked_actors WHERE actor = 'apikey:hog'`)).rowCount === 1,
        'the revocation known',
      );
      await svc.fireDue(); // a scheduler tick
      const rows = await db.query<{ status: string; last_error: string | null }>(
        `SELECT status, last_error FROM automation.scheduled_deliveries WHERE owner = 'apikey:hog'`,
      );
      const givenUp = rows.rows.filter((r) => r.status === 'gave_up');
      assert.equal(givenUp.length, 32, JSON.stringify(rows.rows.map((r) => r.status)));
      assert.ok(givenUp.every((r) => /revoked/.test(r.last_error ?? '')));
      assert.equal(sentTo(), 8, 'none sent after the revocation');
    } finally {
      for (const t of tarpits) await t.close();
    }
  });

  it('a receiver that fails twice gets the delivery on a retry, exactly once with a 2xx', async () => {
    const key = 'flaky-1';
    await ok(client, 'queue_webhook', {
      format: 'a2a',
      url: `${sink.base}/flaky`,
      event: 'a2a.task',
      body: { task: { id: 'x' } },
      idempotency_key: key,
    });
    await until(async () => (await rowOf(key))?.status === 'delivered', 'delivered after two failures');
    assert.equal(to(key).length, 3);
    assert.equal(flakyCount.get(key), 3);
    assert.equal((await rowOf(key)).response_status, 200);
  });

  it('keeps the order within an ordering key: the next is not sent while the one before is unanswered', async () => {
    const base = { format: 'a2a', event: 'a2a.status-update', ordering_key: 'order-1' };
    await ok(client, 'queue_webhook', { ...base, url: `${sink.base}/held`, body: { n: 1 }, idempotency_key: 'o-1' });
    await ok(client, 'queue_webhook', { ...base, url: `${sink.base}/ok`, body: { n: 2 }, idempotency_key: 'o-2' });
    await ok(client, 'queue_webhook', { ...base, url: `${sink.base}/ok`, body: { n: 3 }, idempotency_key: 'o-3' });
    await until(() => held.length === 1, 'the first is in flight');
    // The first is visibly unanswered (held); the others must still be waiting behind it.
    assert.equal((await rowOf('o-2')).status, 'pending');
    assert.equal(to('o-2').length + to('o-3').length, 0);
    held.shift()!.writeHead(200).end();
    await until(async () => (await rowOf('o-3'))?.status === 'delivered', 'all three delivered');
    const order = sink.requests
      .filter((r) => ['o-1', 'o-2', 'o-3'].includes(String(r.headers['idempotency-key'])))
      .map((r) => r.headers['idempotency-key']);
    assert.deepEqual(order, ['o-1', 'o-2', 'o-3']);
  });

  it('an unanswered delivery stays pending and is sent by the next scheduler run, even of another instance (restart)', async () => {
    downStatus = 503;
    const key = 'down-1';
    await ok(client, 'queue_webhook', {
      format: 'a2a',
      url: `${sink.base}/down`,
      event: 'a2a.task',
      body: { task: { id: 'd' } },
      token: 'tok-d',
      idempotency_key: key,
    });
    await until(async () => (await rowOf(key))?.last_error != null, 'the first round failed');
    const failedRound = await rowOf(key);
    assert.equal(failedRound.status, 'pending');
    assert.equal(failedRound.response_status, 503);
    assert.equal(to(key).length, 4, 'one round: the first send and three retries');
    // A new instance (the first one stopped), with a short retry delay, takes it from the table.
    downStatus = 200;
    const other = service({ scheduledRetry: { firstRetryMs: 10, maxRetryMs: 10, maxAttempts: 5 } });
    await makeDue(key);
    const pass = await other.sendScheduledDeliveries();
    // The first instance's scheduler still runs: under load its tick may claim the due row first
    // (then it is the one that sends it). Either way it is delivered once.
    await until(
      async () => (await rowOf(key))?.status === 'delivered',
      'the row delivered',
      async () => ({
        pass,
        sends: to(key).map((r) => r.url),
        row: (
          await db.query(`SELECT *, now() AS db_now FROM automation.scheduled_deliveries WHERE delivery_id = $1`, [key])
        ).rows[0],
      }),
    );
    const done = await rowOf(key);
    assert.equal(done.status, 'delivered');
    assert.equal(done.attempts, 2);
    assert.equal(to(key).length, 5);
    assert.equal(to(key)[4]!.headers['x-a2a-notification-token'], 'tok-d');
  });

  it('a round that outlived its lease does not undo the delivery made by the process that claimed the row after it', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    // Its held request must outlast the steps below however loaded the machine is: had it timed
    // out, its retry (answered 200) would deliver, and no round of it would end unrecorded.
    const first = service({ logger, delivery: { ...delivery, timeoutMs: 60_000 } });
    const second = service();
    const key = 'stale-1';
    await first.queueWebhook({
      format: 'a2a',
      url: `${sink.base}/held-once`,
      event: 'a2a.task',
      body: { task: { id: 's' } },
      content_type: 'application/json',
      token: 'tok-s',
      idempotency_key: key,
    });
    await until(() => heldOnce.length === 1, "the first process's round is in flight");
    // The round outlives its lease (a receiver slower than the budget): another process claims the row and is answered.
    await makeDue(key);
    await second.sendScheduledDeliveries();
    await until(async () => (await rowOf(key))?.status === 'delivered', 'delivered by the second process');
    // The first round then ends without an answer (503 to it and to its retries).
    heldOnce.shift()!.writeHead(503).end();
    await until(
      () => lines.some((l) => l['deliveryId'] === key && String(l['msg']).includes('failure not recorded')),
      "the first process's round ended",
    );
    const row = await rowOf(key);
    assert.equal(row.status, 'delivered');
    assert.equal(row.attempts, 2);
    assert.equal(row.response_status, 200);
    assert.equal(row.last_error, null);
    assert.equal(to(key).length, 5, 'the held send and its three retries, and the second process s one send');
  });

  it('a 4xx other than 408/429 is a final refusal: given up, not retried', async () => {
    downStatus = 410;
    const key = 'gone-1';
    await ok(client, 'queue_webhook', {
      format: 'a2a',
      url: `${sink.base}/down`,
      event: 'a2a.task',
      body: { task: { id: 'g' } },
      token: 'tok-g',
      idempotency_key: key,
    });
    await until(async () => (await rowOf(key))?.status === 'gave_up', 'given up');
    assert.equal(to(key).length, 1);
    const row = await rowOf(key);
    assert.equal(row.response_status, 410);
    assert.equal(row.payload.token, undefined);
  });

  it('refuses what the egress guard refuses, a reused key for another URL, and bad input', async () => {
    const metadata = await fails(client, 'queue_webhook', {
      format: 'a2a',
      url: 'http://169.254.169.254/latest',
      event: 'a2a.task',
      body: {},
      idempotency_key: 'ssrf-1',
    });
    assert.equal(metadata.code, 'forbidden');
    assert.equal(await rowOf('ssrf-1'), undefined);
    const reused = await fails(client, 'queue_webhook', {
      format: 'a2a',
      url: `${sink.base}/other`,
      event: 'a2a.task',
      body: {},
      idempotency_key: 'flaky-1',
    });
    assert.equal(reused.code, 'illegal_state');
    const header = await fails(client, 'queue_webhook', {
      format: 'a2a',
      url: `${sink.base}/ok`,
      event: 'a2a.task',
      body: {},
      token: 'a\r\nx-evil: 1',
      idempotency_key: 'bad-1',
    });
    assert.match(header.text, /line breaks|invalid/i);
    const format = await fails(client, 'queue_webhook', {
      format: 'soap',
      url: `${sink.base}/ok`,
      event: 'a2a.task',
      body: {},
      idempotency_key: 'bad-2',
    });
    assert.ok(format.text.length > 0);
  });
});

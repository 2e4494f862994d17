import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createLogger, createPgPool, newId } from '@switchyard/platform';
import { McpConnector, parseServerConfig, type CallToolRequest } from '@switchyard/connectors';
import {
  AutomationService,
  createAutomationServer,
  EgressGuard,
  keyedMessageId,
  smtpTransport,
  startMailbox,
  startMcpHttpServer,
  type McpHttpServerHandle,
  type RunningMailbox,
} from '@switchyard/mcp-servers';
import { freshDatabase, until } from '@switchyard/testing';

const logger = createLogger('call-keys-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * A workflow step that calls `send_webhook` or `send_email` without an `idempotency_key`
 * argument was sent again, under a new delivery id, when the step was redispatched after a
 * restart: the engine keys every step's call, but only the connector that made the call knew
 * the key, and a restart forgets it. The connector now passes the call's key upstream in
 * `_meta["io.switchyard/idempotency_key"]` and the automation server keys the send with it
 * (per caller, as argument keys are). A restart is played by a second connector, whose memory
 * is empty, calling the same real automation server over HTTP.
 */
describe('a keyed call reaches the automation server with its key (real connector, automation server, PostgreSQL, SMTP mailbox, local receiver)', () => {
  let pool: pg.Pool;
  let svc: AutomationService;
  let http: McpHttpServerHandle;
  let mailbox: RunningMailbox;
  let sink: { base: string; hits: { url: string; headers: IncomingHttpHeaders }[]; close: () => Promise<void> };
  const closers: (() => Promise<void>)[] = [];
  const STARTER = 'apikey:00000000000000c3';

  /** A connector as the launcher makes one: a fresh one stands for the process after a restart. */
  async function connector(): Promise<McpConnector> {
    const c = new McpConnector({
      config: parseServerConfig({
        name: 'automation',
        role: 'automation',
        transport: { kind: 'http', url: http.url },
        health: { ping_interval_ms: 0 },
        retry: { max_attempts: 1 },
      }),
      logger,
    });
    await c.start();
    closers.push(() => c.close());
    return c;
  }
  /** A workflow step's call as the engine sends it: its call key, the engine as actor, for its starter. */
  async function step(
    c: McpConnector,
    tool: string,
    args: Record<string, unknown>,
    callKey: string | undefined,
  ): Promise<Record<string, any>> {
    const req: CallToolRequest = {
      tool,
      arguments: args,
      actor: 'system:orchestrator',
      on_behalf_of: STARTER,
      correlation_id: `corr-${newId()}`,
      ...(callKey ? { idempotency_key: callKey } : {}),
    };
    const r: CallToolResult = await c.callTool(req);
    assert.notEqual(r.isError, true, `${tool} failed: ${JSON.stringify(r.content)}`);
    return r.structuredContent as Record<string, any>;
  }
  const hitsOf = (event: string) => sink.hits.filter((h) => h.url === `/hooks?e=${event}`);
  const notify = (event: string) => ({ webhook: 'hooks', event, payload: { order: 42 } });

  before(async () => {
    const url = await freshDatabase('call_keys');
    pool = createPgPool({ connectionString: url, max: 6 }, { name: 'call-keys-test', logger });
    mailbox = await startMailbox({ pool, logger, port: 0, maxMessageBytes: 64 * 1024, maxMessages: 50 });
    const transport = smtpTransport(mailbox.smtpUrl);
    const hits: { url: string; headers: IncomingHttpHeaders }[] = [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hits.push({ url: req.url ?? '', headers: req.headers });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    sink = {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      hits,
      close: () =>
        new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        }),
    };
    svc = new AutomationService({
      pool,
      logger,
      guard: new EgressGuard({ allowCidrs: ['127.0.0.0/8'] }),
      mail: { transport, from: 'Switchyard <robot@switchyard.test>', retries: 0 },
    });
    await svc.migrate();
    await svc.start();
    http = await startMcpHttpServer({
      name: 'automation',
      serverFactory: () => createAutomationServer({ service: svc, logger }),
      port: 0,
      logger,
    });
    closers.push(async () => transport.close());
  });

  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await http?.close();
    await svc?.close();
    await mailbox?.close();
    await sink?.close();
    await pool?.end();
  });

  it('send_webhook: the same call key twice, across a restart, is one POST; both answers name the same delivery', async () => {
    await svc.registerWebhook({
      name: 'hooks',
      url: `${sink.base}/hooks?e=order.paid`,
      secret: 'a-long-shared-secret-123',
      events: [],
    });
    const key = `${newId()}:notify:1`;
    const first = await step(await connector(), 'send_webhook', notify('order.paid'), key);
    // The launcher restarted: its connector forgot the call; the engine redispatches the step.
    const again = await step(await connector(), 'send_webhook', notify('order.paid'), key);
    assert.equal(first['delivery'].deduplicated, false);
    assert.equal(again['delivery'].deduplicated, true, 'the repeat is answered from the record');
    assert.equal(first['delivery'].delivery_id, `${STARTER}/${key}`, "the call's key, in its starter's scope");
    assert.equal(again['delivery'].delivery_id, first['delivery'].delivery_id);
    assert.equal(again['delivery'].status, first['delivery'].status);
    const hits = hitsOf('order.paid');
    assert.equal(hits.length, 1, 'one POST reached the receiver');
    assert.equal(hits[0]!.headers['idempotency-key'], first['delivery'].delivery_id);
    assert.equal(hits[0]!.headers['x-switchyard-delivery'], first['delivery'].delivery_id);
    const rows = await pool.query<{ status: string; key_scope: string }>(
      `SELECT status, key_scope FROM automation.deliveries WHERE delivery_id = $1`,
      [first['delivery'].delivery_id],
    );
    assert.deepEqual(
      rows.rows.map((r) => [r.status, r.key_scope]),
      [['answered', STARTER]],
    );
  });

  it('send_webhook: different call keys are two deliveries, with two delivery ids', async () => {
    await svc.updateWebhook({ webhook: 'hooks', url: `${sink.base}/hooks?e=order.shipped` });
    const c = await connector();
    const a = await step(c, 'send_webhook', notify('order.shipped'), `${newId()}:notify:1`);
    const b = await step(c, 'send_webhook', notify('order.shipped'), `${newId()}:notify:1`);
    assert.notEqual(a['delivery'].delivery_id, b['delivery'].delivery_id);
    const hits = hitsOf('order.shipped');
    assert.equal(hits.length, 2);
    assert.notEqual(hits[0]!.headers['idempotency-key'], hits[1]!.headers['idempotency-key']);
  });

  it('send_webhook: an argument key wins over the call key; a call with no key is sent every time', async () => {
    await svc.updateWebhook({ webhook: 'hooks', url: `${sink.base}/hooks?e=order.refunded` });
    const c = await connector();
    const own = `refund-${newId()}`;
    const a = await step(c, 'send_webhook', { ...notify('order.refunded'), idempotency_key: own }, `${newId()}:n:1`);
    const b = await step(c, 'send_webhook', { ...notify('order.refunded'), idempotency_key: own }, `${newId()}:n:1`);
    assert.equal(a['delivery'].delivery_id, `${STARTER}/${own}`);
    assert.equal(b['delivery'].deduplicated, true, 'the same argument key under another call key is the same delivery');
    assert.equal(hitsOf('order.refunded').length, 1);
    // Unkeyed calls (no call key, no argument key) keep their old meaning: a new id, always sent.
    await svc.updateWebhook({ webhook: 'hooks', url: `${sink.base}/hooks?e=order.note` });
    const u1 = await step(c, 'send_webhook', notify('order.note'), undefined);
    const u2 = await step(c, 'send_webhook', notify('order.note'), undefined);
    assert.notEqual(u1['delivery'].delivery_id, u2['delivery'].delivery_id);
    assert.equal(hitsOf('order.note').length, 2);
  });

  it('send_email: the same call key twice, across a restart, is one mail; different call keys are two', async () => {
    const to = `customer-${newId().slice(0, 8)}@example.com`;
    const mail = { to, subject: 'Your order', text: 'It shipped.' };
    const key = `${newId()}:welcome:1`;
    const first = await step(await connector(), 'send_email', mail, key);
    const again = await step(await connector(), 'send_email', mail, key);
    assert.equal(first['email'].deduplicated, false);
    assert.equal(again['email'].deduplicated, true);
    assert.equal(again['email'].message_id, first['email'].message_id);
    const received = async () =>
      (
        await pool.query<{ message_id: string }>(
          `SELECT message_id FROM automation.mailbox WHERE $1 = ANY(rcpt_to) ORDER BY id`,
          [to],
        )
      ).rows;
    await until('the mail arrives', async () => (await received()).length === 1);
    assert.equal((await received())[0]!.message_id, keyedMessageId(`${STARTER}/${key}`));
    await step(await connector(), 'send_email', mail, `${newId()}:welcome:1`);
    await until('the second key’s mail arrives', async () => (await received()).length === 2);
    // Nothing more comes for the repeated key.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await received()).length, 2);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createPgPool } from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { httpClient, localHttp, silentLogger, type LocalHttp } from '../test-helpers.js';
import { keyedMessageId, mailFingerprint, smtpTransport } from './mail.js';
import { startMailbox, type RunningMailbox } from './mailbox.js';
import { createAutomationServer } from './server.js';
import { AutomationService } from './automation-service.js';

/**
 * Idempotency keys were one namespace for every caller, and the built-in
 * templates key their sends by execution id, which any viewer can read. An operator who used
 * `reply-<id>` first made the approved support reply fail `illegal_state` (its step is `continue`,
 * so the execution still completed). Each caller's key is now in its own namespace: the person the
 * call is for, `_meta.actor`, as the connectors set it (a workflow step's: its starter).
 */
describe('automation: an idempotency key is the caller’s own (real Postgres, real SMTP mailbox, local receiver)', () => {
  let pool: pg.Pool;
  let mailbox: RunningMailbox;
  let svc: AutomationService;
  let http: McpHttpServerHandle;
  let client: Client;
  let sink: LocalHttp;
  const closers: (() => Promise<void>)[] = [];
  const VICTIM = 'apikey:00000000000000a1';
  const ATTACKER = 'apikey:00000000000000b2';

  /** A call as the connectors make it: the person it is for in `_meta.actor` (none: the server's own token). */
  async function as(actor: string | undefined, name: string, args: Record<string, unknown>) {
    const r = (await client.callTool({
      name,
      arguments: args,
      ...(actor ? { _meta: { actor } } : {}),
    })) as CallToolResult;
    return r;
  }
  async function okAs(actor: string | undefined, name: string, args: Record<string, unknown>) {
    const r = await as(actor, name, args);
    assert.notEqual(r.isError, true, `${name} as ${actor} failed: ${JSON.stringify(r.content)}`);
    return r.structuredContent as Record<string, any>;
  }
  const received = async (to: string) =>
    (
      await pool.query<{ subject: string; message_id: string }>(
        `SELECT subject, message_id FROM automation.mailbox WHERE $1 = ANY(rcpt_to) ORDER BY id`,
        [to],
      )
    ).rows;

  before(async () => {
    const url = await freshDatabase('mcp_scoped_keys');
    pool = createPgPool({ connectionString: url, max: 6 }, { name: 'scoped-keys-test' });
    mailbox = await startMailbox({ pool, logger: silentLogger, port: 0, maxMessageBytes: 64 * 1024, maxMessages: 50 });
    const transport = smtpTransport(mailbox.smtpUrl);
    closers.push(async () => transport.close());
    sink = await localHttp((_req, res) => res.writeHead(200).end('ok'));
    svc = new AutomationService({
      pool,
      logger: silentLogger,
      guard: new EgressGuard({ allowCidrs: ['127.0.0.0/8'] }),
      mail: { transport, from: 'Switchyard <robot@switchyard.test>', retries: 0 },
    });
    await svc.migrate();
    await svc.start();
    await svc.registerWebhook({
      name: 'desk',
      url: `${sink.base}/desk`,
      secret: 'a-long-shared-secret-123',
      events: [],
    });
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
    for (const c of closers) await c();
    await svc?.close();
    await mailbox?.close();
    await sink?.close();
    await pool?.end();
  });

  it('send_email: a key another caller used first neither refuses nor suppresses this caller’s mail', async () => {
    // The reproduction: the attacker claims the reply's key with a mail of their own.
    const squat = await okAs(ATTACKER, 'send_email', {
      to: 'attacker@example.com',
      subject: 'x',
      text: 'squatted',
      idempotency_key: 'reply-exec-1',
    });
    assert.equal(squat['email'].deduplicated, false);
    // The approved reply, for its starter, under the same key: sent, not `illegal_state`.
    const reply = await okAs(VICTIM, 'send_email', {
      to: 'victim.customer@example.com',
      subject: 'Re: your email query',
      text: 'the approved reply',
      idempotency_key: 'reply-exec-1',
    });
    assert.equal(reply['email'].deduplicated, false);
    assert.equal(reply['email'].idempotency_key, 'reply-exec-1', 'the answer names the key as the caller gave it');
    await until('the reply arrives', async () => (await received('victim.customer@example.com')).length === 1);
    // Its Message-ID is the victim's key's, not the attacker's (a receiver dropping copies by it keeps both).
    const [got] = await received('victim.customer@example.com');
    assert.equal(got!.message_id, keyedMessageId(`${VICTIM}/reply-exec-1`));
    // Each caller's repeat still gets its own first result, sending nothing.
    const again = await okAs(VICTIM, 'send_email', {
      to: 'victim.customer@example.com',
      subject: 'Re: your email query',
      text: 'the approved reply',
      idempotency_key: 'reply-exec-1',
    });
    assert.equal(again['email'].deduplicated, true);
    const otherBody = await as(VICTIM, 'send_email', {
      to: 'victim.customer@example.com',
      subject: 'something else',
      text: 'x',
      idempotency_key: 'reply-exec-1',
    });
    assert.equal(otherBody.isError, true, 'a key reused by its own caller for another mail is still refused');
    assert.equal((await received('victim.customer@example.com')).length, 1);
  });

  it('send_webhook: another caller’s delivery under the key does not stand for this one, and the receiver sees two ids', async () => {
    const a = await okAs(ATTACKER, 'send_webhook', {
      webhook: 'desk',
      event: 'support.escalation',
      payload: { squat: true },
      idempotency_key: 'escalation-exec-2',
    });
    const v = await okAs(VICTIM, 'send_webhook', {
      webhook: 'desk',
      event: 'support.escalation',
      payload: { customer_email: 'victim.customer@example.com' },
      idempotency_key: 'escalation-exec-2',
    });
    assert.equal(v['delivery'].delivered, true);
    assert.equal(v['delivery'].deduplicated, false);
    const ids = sink.requests.map((r) => r.headers['idempotency-key']);
    assert.deepEqual(ids, [a['delivery'].delivery_id, v['delivery'].delivery_id]);
    assert.notEqual(ids[0], ids[1], 'the receiver deduplicating by Idempotency-Key keeps the victim’s');
    const repeat = await okAs(VICTIM, 'send_webhook', {
      webhook: 'desk',
      event: 'support.escalation',
      payload: { customer_email: 'victim.customer@example.com' },
      idempotency_key: 'escalation-exec-2',
    });
    assert.equal(repeat['delivery'].deduplicated, true);
    assert.equal(sink.requests.length, 2);
  });

  it('queue_webhook: another owner’s delivery under the key is a delivery of its own', async () => {
    const args = (url: string) => ({
      format: 'a2a',
      url,
      event: 'a2a.status-update',
      body: { kind: 'status-update' },
      idempotency_key: 'push-task-3',
    });
    const a = await okAs(ATTACKER, 'queue_webhook', args(`${sink.base}/attacker`));
    const v = await okAs(VICTIM, 'queue_webhook', args(`${sink.base}/victim`));
    assert.equal(v['delivery'].deduplicated, false);
    assert.notEqual(a['delivery'].delivery_id, v['delivery'].delivery_id);
    await until('the victim’s notification is sent', () => sink.requests.some((r) => r.url === '/victim'));
  });

  it('a key recorded before keys were scoped still answers for it (an upgrade sends nothing twice)', async () => {
    const message = { to: 'old@example.com', subject: 'sent before the upgrade', text: 'once' };
    await pool.query(
      `INSERT INTO automation.mail_sends (idempotency_key, request_fingerprint, status, result, sends, started_at, finished_at, key_scope)
       VALUES ('welcome-old:send_welcome', $1, 'sent', $2, 1, now(), now(), NULL)`,
      [
        mailFingerprint(message),
        JSON.stringify({
          message_id: '<old@x>',
          accepted: ['old@example.com'],
          rejected: [],
          response: '250',
          idempotency_key: 'welcome-old:send_welcome',
          deduplicated: false,
        }),
      ],
    );
    const r = await okAs(VICTIM, 'send_email', { ...message, idempotency_key: 'welcome-old:send_welcome' });
    assert.equal(r['email'].deduplicated, true);
    assert.equal((await received('old@example.com')).length, 0);
  });

  it('a call for nobody (the server’s own token, the scheduler) keeps the key as given', async () => {
    const r = await okAs(undefined, 'send_webhook', {
      webhook: 'desk',
      event: 'e',
      payload: {},
      idempotency_key: 'plain-key-4',
    });
    assert.equal(r['delivery'].delivery_id, 'plain-key-4');
  });
});

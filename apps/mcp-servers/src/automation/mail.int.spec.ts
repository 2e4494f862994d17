import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import type pg from 'pg';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createPgPool } from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { fails, httpClient, ok, silentLogger } from '../test-helpers.js';
import { keyedMessageId, smtpTransport, type MailResult } from './mail.js';
import { startMailbox, type RunningMailbox } from './mailbox.js';
import { createAutomationServer } from './server.js';
import { AutomationService, Scheduler } from './automation-service.js';

/** Read an SMTP reply (all lines of a multi-line one). */
function smtpDialogue(port: number): { say(line: string): Promise<string>; close(): void } {
  const socket = createConnection({ port, host: '127.0.0.1' });
  let buffer = '';
  let waiter: (() => void) | undefined;
  socket.on('data', (d) => {
    buffer += d.toString();
    waiter?.();
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(buffer);
      if (m) {
        const end = m.index + m[0].length;
        const out = buffer.slice(0, end);
        buffer = buffer.slice(end);
        return out;
      }
      await new Promise<void>((r) => (waiter = r));
    }
  };
  let greeted = false;
  return {
    async say(line) {
      if (!greeted) {
        greeted = true;
        await reply();
      }
      socket.write(`${line}\r\n`);
      return reply();
    },
    close: () => socket.destroy(),
  };
}

describe('send_email over real SMTP into the embedded development mailbox (real Postgres)', () => {
  let url: string;
  let pool: pg.Pool;
  let mailbox: RunningMailbox;
  let svc: AutomationService;
  let http: McpHttpServerHandle;
  let client: Client;
  const closers: (() => Promise<void>)[] = [];

  const stored = async (to: string) =>
    (
      await pool.query<{
        subject: string;
        text_body: string;
        message_id: string;
        mail_from: string;
        rcpt_to: string[];
      }>(
        `SELECT subject, text_body, message_id, mail_from, rcpt_to FROM automation.mailbox WHERE $1 = ANY(rcpt_to) ORDER BY id`,
        [to],
      )
    ).rows;

  before(async () => {
    url = await freshDatabase('mcp_mail');
    pool = createPgPool({ connectionString: url, max: 6 }, { name: 'mail-test' });
    mailbox = await startMailbox({ pool, logger: silentLogger, port: 0, maxMessageBytes: 64 * 1024, maxMessages: 20 });
    const transport = smtpTransport(mailbox.smtpUrl);
    svc = new AutomationService({
      pool,
      logger: silentLogger,
      guard: new EgressGuard({}),
      mail: { transport, from: 'Switchyard <robot@switchyard.test>', retries: 0 },
    });
    await svc.migrate();
    await svc.start();
    closers.push(async () => transport.close());
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
    await pool?.end();
  });

  it('the mailbox listens on loopback, on a port of its own, and refuses mail without its login', async () => {
    assert.equal(mailbox.host, '127.0.0.1');
    assert.ok(mailbox.port > 0);
    assert.match(mailbox.smtpUrl, new RegExp(`^smtp://switchyard:[A-Za-z0-9_-]{20,}@127\\.0\\.0\\.1:${mailbox.port}$`));
    const smtp = smtpDialogue(mailbox.port);
    try {
      assert.match(await smtp.say('EHLO test.local'), /AUTH PLAIN LOGIN/);
      assert.match(await smtp.say('MAIL FROM:<intruder@example.com>'), /^530 /m);
      const bad = Buffer.from('\0switchyard\0wrong-password').toString('base64');
      assert.match(await smtp.say(`AUTH PLAIN ${bad}`), /^535 /m);
    } finally {
      smtp.close();
    }
    // A transport with the wrong password: the send fails and nothing is stored.
    const wrong = smtpTransport(mailbox.smtpUrl.replace(/:[^:@]+@/, ':not-the-password@'));
    try {
      await assert.rejects(
        wrong.send({
          from: 'a@b.test',
          to: ['nobody@intrusion.test'],
          cc: [],
          subject: 'x',
          text: 'x',
          messageId: '<x@y>',
        }),
        /Invalid login|535/,
      );
    } finally {
      wrong.close();
    }
    assert.deepEqual(await stored('nobody@intrusion.test'), []);
  });

  it('sends over SMTP: the mail lands in PostgreSQL, parsed; the same key twice sends once', async () => {
    const args = {
      to: 'Ada@Example.com',
      cc: ['boss@example.com'],
      subject: 'Welcome, Ada',
      text: 'Hello Ada,\nwelcome aboard.',
      idempotency_key: 'welcome-42',
    };
    const first = (await ok<{ email: MailResult }>(client, 'send_email', args)).email;
    assert.equal(first.deduplicated, false);
    assert.equal(first.message_id, keyedMessageId('welcome-42'));
    assert.deepEqual(first.accepted.map((a) => a.toLowerCase()).sort(), ['ada@example.com', 'boss@example.com']);
    assert.match(first.response, /^250 /);

    const rows = await stored('ada@example.com');
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0], {
      subject: 'Welcome, Ada',
      text_body: 'Hello Ada,\nwelcome aboard.',
      message_id: keyedMessageId('welcome-42'),
      mail_from: 'robot@switchyard.test',
      rcpt_to: ['ada@example.com', 'boss@example.com'],
    });

    // The same key again (concurrently too): the first result, nothing sent.
    const [again, third] = await Promise.all([
      ok<{ email: MailResult }>(client, 'send_email', args),
      ok<{ email: MailResult }>(client, 'send_email', args),
    ]);
    for (const r of [again.email, third.email]) {
      assert.equal(r.deduplicated, true);
      assert.equal(r.message_id, first.message_id);
    }
    assert.equal((await stored('ada@example.com')).length, 1);
    const rec = await pool.query(
      `SELECT status, sends FROM automation.mail_sends WHERE idempotency_key = 'welcome-42'`,
    );
    assert.deepEqual(rec.rows, [{ status: 'sent', sends: 1 }]);

    // A new service (another process, same database): still never sent again.
    const other = new AutomationService({
      pool,
      logger: silentLogger,
      guard: new EgressGuard({}),
      mail: { transport: smtpTransport(mailbox.smtpUrl), from: 'x@y.test' },
    });
    try {
      const r = await other.sendEmail({
        to: 'Ada@Example.com',
        cc: ['boss@example.com'],
        subject: 'Welcome, Ada',
        text: 'Hello Ada,\nwelcome aboard.',
        idempotencyKey: 'welcome-42',
      });
      assert.equal(r.deduplicated, true);
    } finally {
      await other.close();
    }
    assert.equal((await stored('ada@example.com')).length, 1);

    // The key for a different message: refused.
    const reused = await fails(client, 'send_email', { ...args, subject: 'Something else' });
    assert.equal(reused.code, 'illegal_state');
    // Without a key every call sends.
    await ok(client, 'send_email', { to: 'twice@example.com', subject: 's', html: '<p>one</p>' });
    await ok(client, 'send_email', { to: 'twice@example.com', subject: 's', html: '<p>one</p>' });
    assert.equal((await stored('twice@example.com')).length, 2);
  });

  it('refuses bad input: no body, a bad address, a subject over two lines, a message over the size cap', async () => {
    assert.equal((await fails(client, 'send_email', { to: 'a@example.com', subject: 'no body' })).code, 'validation');
    assert.equal(await call400(client, { to: 'not-an-address', subject: 's', text: 't' }), true);
    assert.equal(await call400(client, { to: 'a@example.com', subject: 'two\r\nBcc: x@evil.test', text: 't' }), true);
    const big = await fails(client, 'send_email', {
      to: 'big@example.com',
      subject: 'big',
      text: 'x'.repeat(100 * 1024),
    });
    assert.equal(big.code, 'tool_error');
    assert.match(big.message, /552|exceeds/);
    assert.deepEqual(await stored('big@example.com'), []);
  });

  it('keeps the newest messages only, and lists them newest first with keyset paging and a recipient filter', async () => {
    for (let i = 0; i < 25; i++)
      await svc.sendEmail({ to: `page-${i % 2}@example.com`, subject: `m${i}`, text: `n${i}` });
    const total = (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM automation.mailbox`)).rows[0]!.n;
    assert.equal(total, 20, 'the cap of 20 messages');

    const page1 = await ok(client, 'list_mailbox', { to: 'PAGE-1@example.com', limit: 4 });
    assert.deepEqual(
      page1.messages.map((m: { subject: string }) => m.subject),
      ['m23', 'm21', 'm19', 'm17'],
    );
    assert.ok(page1.next_cursor);
    const page2 = await ok(client, 'list_mailbox', { to: 'page-1@example.com', limit: 4, cursor: page1.next_cursor });
    assert.deepEqual(
      page2.messages.map((m: { subject: string }) => m.subject),
      ['m15', 'm13', 'm11', 'm9'],
    );
    const m = page1.messages[0];
    assert.equal(m.from, 'robot@switchyard.test');
    assert.deepEqual(m.to, ['page-1@example.com']);
    assert.equal(m.text, 'n23');
    assert.match(m.message_id, /^<.+@switchyard>$/);
    assert.ok(!Number.isNaN(Date.parse(m.received_at)));
    // Everything older than the cap is gone: m5 was the 20th newest, m4 is not kept.
    const all = await ok(client, 'list_mailbox', { limit: 200 });
    assert.equal(all.messages.length, 20);
    assert.equal(all.next_cursor, null);
    assert.equal(all.messages.at(-1).subject, 'm5');
  });

  it('a one-shot e-mail schedule fires once, after its delay, and is then disabled', async () => {
    const scheduler = new Scheduler(svc, silentLogger, 100);
    scheduler.start();
    try {
      const s = (
        await ok(client, 'create_schedule', {
          name: 'follow-up-1',
          after: '1s',
          target: { kind: 'email', to: 'later@example.com', subject: 'Checking in', text: 'How is it going?' },
        })
      ).schedule;
      assert.equal(s.run_once, true);
      assert.equal(s.cron, null);
      const rows = await until('the scheduled mail is in the mailbox', async () => {
        const r = await stored('later@example.com');
        return r.length > 0 ? r : undefined;
      });
      assert.equal(rows[0]!.subject, 'Checking in');
      const listed = (await ok(client, 'list_schedules')).schedules.find(
        (x: { name: string }) => x.name === 'follow-up-1',
      );
      assert.equal(listed.enabled, false);
      assert.equal(listed.fire_count, 1);
      await svc.fireDue();
      assert.equal((await stored('later@example.com')).length, 1, 'fired once');
      const bad = await fails(client, 'create_schedule', {
        name: 'both',
        cron: '* * * * *',
        after: '1s',
        target: { kind: 'email', to: 'x@example.com', subject: 's', text: 't' },
      });
      assert.equal(bad.code, 'validation');
    } finally {
      await scheduler.stop();
    }
  });

  /** An input the tool's schema refuses (the SDK answers it as a tool error naming the field). */
  async function call400(c: Client, args: Record<string, unknown>): Promise<boolean> {
    const r = (await c.callTool({ name: 'send_email', arguments: args })) as { isError?: boolean };
    return r.isError === true;
  }
});

/**
 * E-mail on a fresh system: one launcher process with every role, its own PostgreSQL and
 * nats-server, no SMTP_URL and no webhook registered. The automation server's send_email goes over
 * real SMTP to the development mailbox the launcher runs; the test reads the mailbox through the
 * gateway (GET /api/v1/integration/mcp/automation/mailbox) like an operator would.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { freePort } from '@switchyard/platform';
import { until, scratchDataDir } from '@switchyard/testing';
import { newAdminKey, Proc, systemEnv, waitMcpServerUp, waitReady } from './launcher.js';
import { gatewayRequest } from './support.js';

interface Mail {
  id: string;
  message_id: string | null;
  from: string;
  to: string[];
  recipients: string[];
  subject: string;
  text: string | null;
  received_at: string;
}

describe('e-mail end to end: send_email, the development mailbox, onboarding welcome and follow-up, support escalation', () => {
  const adminKey = newAdminKey();
  const auth = { authorization: `Bearer ${adminKey}` };
  let dataDir: string;
  let proc: Proc;
  let base: string;
  const http = (method: string, url: string, body?: unknown) => gatewayRequest(base, auth, method, url, body);
  const inbox = async (to: string): Promise<Mail[]> => {
    const r = await http('GET', `/api/v1/integration/mcp/automation/mailbox?to=${encodeURIComponent(to)}&limit=200`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.messages as Mail[];
  };
  const run = async (template: string, input: unknown) => {
    const r = await http('POST', `/api/v1/workflows/start/${template}?wait=true&wait_ms=60000`, input);
    assert.equal(r.status, 200, `start ${template}: ${JSON.stringify(r.body)}`);
    assert.equal(
      r.body.status,
      'completed',
      `${template} ended ${r.body.status}: ${JSON.stringify(r.body.error ?? r.body)}`,
    );
    return r.body as { execution_id: string; output: Record<string, any> };
  };

  /** Poll an execution until it ends; it must complete. */
  const settled = async (id: string) =>
    until(
      `execution ${id} ended`,
      async () => {
        const r = await http('GET', `/api/v1/workflows/executions/${id}`);
        if (r.status !== 200 || r.body.status === 'running' || r.body.status === 'canceling') return undefined;
        assert.equal(r.body.status, 'completed', JSON.stringify(r.body.error ?? r.body));
        return r.body as { execution_id: string; output: Record<string, any> };
      },
      60_000,
      200,
    );

  before(async () => {
    dataDir = scratchDataDir('e2e-mail-');
    const gatewayPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    // No SMTP_URL (systemEnv drops it) and MAILBOX_SMTP_PORT unset: the mailbox binds a free port.
    const env = await systemEnv(dataDir, adminKey, {
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_NATS_PORT: String(await freePort()),
    });
    delete env['MAILBOX_SMTP_PORT'];
    proc = new Proc('all roles', [], env);
    proc.start();
    await proc.waitUp(120_000);
    await waitReady(base, proc);
    // The automation server is reachable through the connectors before any template runs.
    await waitMcpServerUp(base, { authorization: `Bearer ${adminKey}` }, 'automation');
  });

  after(async () => {
    await proc?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('the mailbox route: admin only, empty on a fresh system, validated query', async () => {
    const anonymous = await gatewayRequest(base, {}, 'GET', '/api/v1/integration/mcp/automation/mailbox');
    assert.equal(anonymous.status, 401);
    const empty = await http('GET', '/api/v1/integration/mcp/automation/mailbox?to=nobody@example.com');
    assert.deepEqual(empty.body, { messages: [], next_cursor: null });
    for (const q of ['limit=0', 'limit=abc', 'cursor=-1', 'to=not-an-address', 'colour=blue']) {
      const bad = await http('GET', `/api/v1/integration/mcp/automation/mailbox?${q}`);
      assert.equal(bad.status, 400, `${q}: ${JSON.stringify(bad.body)}`);
    }
    const spec = await http('GET', '/docs/openapi.json');
    assert.equal(spec.body.paths['/api/v1/integration/mcp/automation/mailbox'].get['x-required-role'], 'admin');

    // The automation server's list_mailbox tool reads the same mail: an operator reaches it by no
    // other door either (POST /mcp/call, a step of an ad-hoc workflow), an admin does.
    const created = await http('POST', '/api/v1/admin/api-keys', { name: 'mail-operator', role: 'operator' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const operator = (method: string, url: string, body?: unknown) =>
      gatewayRequest(base, { authorization: `Bearer ${created.body.key}` }, method, url, body);
    const call = { server: 'automation', tool: 'list_mailbox', arguments: { limit: 5 } };
    const refused = await operator('POST', '/api/v1/integration/mcp/call', call);
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.match(refused.body.detail, /automation\/list_mailbox needs the admin role/);
    const adHoc = await operator('POST', '/api/v1/integration/agents/workflow', {
      definition: { id: 'peek', steps: [{ id: 'read', uses: 'mcp:automation/list_mailbox', with: { limit: 5 } }] },
      input: {},
    });
    assert.equal(adHoc.status, 403, JSON.stringify(adHoc.body));
    assert.equal(
      (await operator('POST', '/api/v1/integration/mcp/call', { ...call, tool: 'list_webhooks', arguments: {} }))
        .status,
      200,
    );
    assert.equal((await http('POST', '/api/v1/integration/mcp/call', call)).status, 200);
  });

  it('send_email through the API: over SMTP into the mailbox; the same key twice sends once; keyset paging', async () => {
    const to = 'e2e.send@example.com';
    const args = { to, subject: 'Hello over SMTP', text: 'one body', idempotency_key: 'e2e-mail-1' };
    const first = await http('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'send_email',
      arguments: args,
    });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.result.email.deduplicated, false);
    const again = await http('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'send_email',
      arguments: args,
    });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.result.email.deduplicated, true);
    assert.equal(again.body.result.email.message_id, first.body.result.email.message_id);
    const got = await inbox(to);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.subject, 'Hello over SMTP');
    assert.equal(got[0]!.text, 'one body');
    assert.equal(got[0]!.message_id, first.body.result.email.message_id);
    assert.equal(got[0]!.from, 'switchyard@localhost');

    for (const n of [2, 3]) {
      const r = await http('POST', '/api/v1/integration/mcp/call', {
        server: 'automation',
        tool: 'send_email',
        arguments: { to, subject: `page ${n}`, text: String(n) },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const p1 = await http('GET', `/api/v1/integration/mcp/automation/mailbox?to=${to}&limit=2`);
    assert.deepEqual(
      p1.body.messages.map((m: Mail) => m.subject),
      ['page 3', 'page 2'],
    );
    assert.ok(p1.body.next_cursor);
    const p2 = await http(
      'GET',
      `/api/v1/integration/mcp/automation/mailbox?to=${to}&limit=2&cursor=${p1.body.next_cursor}`,
    );
    assert.deepEqual(
      p2.body.messages.map((m: Mail) => m.subject),
      ['Hello over SMTP'],
    );
    assert.equal(p2.body.next_cursor, null);
  });

  it('customer_onboarding on a fresh system: welcome_sent true, the welcome in the mailbox, a shortened follow-up delivered once', async () => {
    const email = `grace.${Date.now().toString(36)}@example.com`;
    const r = await run('customer_onboarding', {
      customer: { name: 'Grace Hopper Inc', email, plan: 'business', seats: 3 },
      follow_up_after: ['2s', '30d'],
    });
    assert.equal(r.output.status, 'onboarded');
    assert.equal(r.output.welcome_sent, true);
    assert.equal(r.output.welcome_error, null);
    assert.equal(r.output.follow_up_error, null);
    const id = r.output.customer_id as number;
    assert.deepEqual(
      r.output.follow_ups.slice().sort(),
      [`onboarding-${id}-after-2s`, `onboarding-${id}-after-30d`].sort(),
    );

    const welcome = (await inbox(email)).filter((m) => m.subject === 'Welcome to Switchyard, Grace Hopper Inc');
    assert.equal(welcome.length, 1);
    assert.ok(
      welcome[0]!.text!.startsWith(
        'Hi Grace Hopper Inc,\n\nWelcome to Switchyard! Your business plan with 3 seats is active.\n',
      ),
      welcome[0]!.text!,
    );

    // The 2 s follow-up: a real schedule on the automation server fires and mails it.
    const followUp = await until(
      'the follow-up mail arrives',
      async () => {
        const m = (await inbox(email)).filter((x) => x.subject === 'How is it going, Grace Hopper Inc?');
        return m.length > 0 ? m : undefined;
      },
      60_000,
      250,
    );
    assert.equal(followUp.length, 1);
    assert.match(followUp[0]!.text!, /you have been on the business plan for 2s now/);
    // Fired once: listed disabled with one fire; the 30-day one is still pending.
    const schedules = await http('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'list_schedules',
      arguments: {},
    });
    const mine = (
      schedules.body.result.schedules as { name: string; enabled: boolean; fire_count: number; run_once: boolean }[]
    ).filter((s) => s.name.startsWith(`onboarding-${id}-`));
    assert.deepEqual(
      mine.map((s) => [s.name, s.run_once, s.enabled, s.fire_count]).sort(),
      [
        [`onboarding-${id}-after-2s`, true, false, 1],
        [`onboarding-${id}-after-30d`, true, true, 0],
      ].sort(),
    );
    assert.equal((await inbox(email)).length, 2, 'the welcome and one follow-up, nothing else');
  });

  it('customer_support on a fresh system: an escalation with no webhook registered is mailed to the support address', async () => {
    const cust = await http('POST', '/api/v1/integration/mcp/database/query', {
      query: 'select email from business.customers order by id limit 1',
      params: [],
    });
    assert.equal(cust.status, 200, JSON.stringify(cust.body));
    const email = cust.body.result.rows[0].email as string;
    const before = (await inbox('support@localhost')).length;
    const angryQuery =
      'This is UNACCEPTABLE!! Production is down, all of our users cannot log in and we are losing money. Fix it immediately or we talk to our lawyer.';
    const started = await http('POST', '/api/v1/workflows/start/customer_support', {
      customer_email: email,
      query: angryQuery,
      channel: 'chat',
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    // An escalated reply waits for a person's approval: the approve_reply signal (kept for the wait step if it comes first).
    const approved = await http(
      'POST',
      `/api/v1/workflows/executions/${started.body.execution_id}/signals/approve_reply`,
      { approved: true, note: 'ok to send' },
    );
    assert.equal(approved.status, 202, JSON.stringify(approved.body));
    assert.ok(['consumed', 'buffered'].includes(approved.body.disposition), JSON.stringify(approved.body));
    const angry = await settled(started.body.execution_id);
    assert.equal(angry.output.escalation, 'sent');
    assert.equal(angry.output.escalated_via, 'email');
    assert.deepEqual(
      [angry.output.approval, angry.output.approval_note, angry.output.reply_sent],
      ['approved', 'ok to send', true],
    );
    const replies = (await inbox(email)).filter((x) => x.subject === 'Re: your chat query');
    assert.equal(replies.length, 1, 'the approved reply went to the customer once');
    assert.equal(replies[0]!.text!.trim(), angry.output.response.trim());
    const mails = await inbox('support@localhost');
    assert.equal(mails.length, before + 1);
    const m = mails[0]!;
    assert.equal(m.subject, `[${angry.output.priority}] Support escalation: ${email}`);
    assert.match(
      m.text!,
      new RegExp(`^A chat query from ${email.replace(/[.+]/g, '\\$&')} \\(.+, customer \\d+\\) needs a person\\.`),
    );
    assert.ok(m.text!.includes(angry.output.response), 'the drafted reply is in the mail');

    // Another address by input; a calm query mails nobody.
    const calm = await run('customer_support', {
      customer_email: email,
      query: 'Hello, how do I add two more seats? Thanks.',
      support_email: 'desk@corp.example',
    });
    assert.equal(calm.output.escalation, 'not_needed');
    assert.equal(calm.output.escalated_via, 'none');
    assert.equal(calm.output.approval, 'not_needed');
    assert.deepEqual(await inbox('desk@corp.example'), []);

    // Nobody approves within approval_timeout_ms: no reply goes out and the desk is mailed again.
    const unanswered = await run('customer_support', {
      customer_email: email,
      query: angryQuery,
      channel: 'chat',
      support_email: 'desk2@corp.example',
      approval_timeout_ms: 500,
    });
    assert.deepEqual(
      [unanswered.output.escalation, unanswered.output.approval, unanswered.output.reply_sent],
      ['sent', 'timed_out', false],
    );
    const desk = await inbox('desk2@corp.example');
    assert.deepEqual(
      desk.map((x) => x.subject).sort(),
      [
        `[${unanswered.output.priority}] Support escalation: ${email}`,
        `[unanswered] Support escalation waits for approval: ${email}`,
      ].sort(),
    );
    assert.equal(
      (await inbox(email)).filter((x) => x.subject === 'Re: your chat query').length,
      1,
      'no reply without an approval',
    );
  });
});

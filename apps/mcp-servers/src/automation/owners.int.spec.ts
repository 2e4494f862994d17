import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { pino } from 'pino';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createPgPool, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { httpClient, localHttp, silentLogger, type LocalHttp } from '../test-helpers.js';
import { smtpTransport } from './mail.js';
import { startMailbox, type RunningMailbox } from './mailbox.js';
import { createAutomationServer } from './server.js';
import { AutomationService } from './automation-service.js';

/**
 * Schedule names were one namespace for everyone, and the onboarding
 * template names its follow-ups from the next customer id, which any operator can read: one who
 * created `onboarding-<next id>-after-1d` first left the next onboarding without follow-ups. And
 * any operator could retarget another key's webhook (URL, secret) or pause and delete another's
 * schedule. Names are now per creator, and only the owner, an admin or the system changes them.
 */
describe('automation: names per creator, changes by the owner or an admin (real Postgres, event store, SMTP mailbox)', () => {
  let pool: pg.Pool;
  let mailbox: RunningMailbox;
  let svc: AutomationService;
  let http: McpHttpServerHandle;
  let client: Client;
  let sink: LocalHttp;
  const closers: (() => Promise<void>)[] = [];
  const keyId = () => newId().replace(/-/g, '').slice(0, 16);
  const [adminId, opId, op2Id] = [keyId(), keyId(), keyId()];
  const ADMIN = `apikey:${adminId}`;
  const OPERATOR = `apikey:${opId}`;
  const OPERATOR2 = `apikey:${op2Id}`;

  const call = async (actor: string | undefined, name: string, args: Record<string, unknown>) =>
    (await client.callTool({ name, arguments: args, ...(actor ? { _meta: { actor } } : {}) })) as CallToolResult;
  async function okAs(actor: string | undefined, name: string, args: Record<string, unknown>) {
    const r = await call(actor, name, args);
    assert.notEqual(r.isError, true, `${name} as ${actor} failed: ${JSON.stringify(r.content)}`);
    return r.structuredContent as Record<string, any>;
  }
  async function refusedAs(actor: string | undefined, name: string, args: Record<string, unknown>) {
    const r = await call(actor, name, args);
    assert.equal(r.isError, true, `${name} as ${actor} should be refused: ${JSON.stringify(r.structuredContent)}`);
    return (r.structuredContent as { error: { code: string; message: string } }).error;
  }
  /** An API key as the gateway records it (its stream, its event). */
  async function createKey(id: string, role: string): Promise<void> {
    const gateway = new PostgresEventStore({ pool, logger: silentLogger });
    try {
      await gateway.append(`apikey-${id}`, [
        {
          type: 'ApiKeyCreated',
          data: { id, name: `key ${id}`, role, hash: '0'.repeat(64), prefix: 'sy_' },
          metadata: { timestamp: new Date().toISOString(), correlationId: newId(), actor: 'system:bootstrap' },
        },
      ]);
    } finally {
      await gateway.close();
    }
  }
  const followUp = (to: string) => ({
    after: '30d',
    target: { kind: 'email', to, subject: 'How is it going?', text: 'Hi' },
  });

  before(async () => {
    const url = await freshDatabase('mcp_owners');
    pool = createPgPool({ connectionString: url, max: 8 }, { name: 'owners-test' });
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
    await createKey(adminId, 'admin');
    await createKey(opId, 'operator');
    await createKey(op2Id, 'operator');
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

  it('a schedule name another caller took first does not refuse this caller’s (the onboarding follow-ups)', async () => {
    // The reproduction: the operator takes the next customer's follow-up names first.
    for (const d of ['1d', '7d', '30d'])
      await okAs(OPERATOR2, 'create_schedule', {
        name: `onboarding-501-after-${d}`,
        ...followUp('attacker@example.com'),
      });
    // The onboarding, run for its starter, names its follow-ups the same: each is the starter's own.
    const mine = await okAs(ADMIN, 'create_schedule', {
      name: 'onboarding-501-after-1d',
      ...followUp('victim@example.com'),
    });
    assert.equal(mine['schedule'].name, 'onboarding-501-after-1d', 'the name is as given');
    assert.equal(mine['schedule'].owner, ADMIN);
    assert.equal(mine['schedule'].target.to, 'victim@example.com');
    // A retry of the same request (its first answer lost) finds it, as before.
    const again = await okAs(ADMIN, 'create_schedule', {
      name: 'onboarding-501-after-1d',
      ...followUp('victim@example.com'),
    });
    assert.equal(again['schedule'].id, mine['schedule'].id);
    // Within one's own names a name is still taken once.
    const clash = await refusedAs(ADMIN, 'create_schedule', {
      name: 'onboarding-501-after-1d',
      cron: '0 9 * * *',
      target: followUp('x@example.com').target,
    });
    assert.equal(clash.code, 'illegal_state');
    // Both are listed, each with its owner; a page boundary between them loses neither.
    const named = async (limit: number) => {
      const seen: Record<string, any>[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await okAs(ADMIN, 'list_schedules', { limit, ...(cursor ? { cursor } : {}) });
        seen.push(...page['schedules']);
        if (!page['next_cursor']) return seen.filter((s) => s.name === 'onboarding-501-after-1d');
        cursor = page['next_cursor'];
      }
    };
    for (const limit of [1, 2, 100])
      assert.deepEqual((await named(limit)).map((s) => s.owner).sort(), [ADMIN, OPERATOR2].sort(), `pages of ${limit}`);
    // Its owner's own calls reach their own by the name.
    const paused = await okAs(ADMIN, 'pause_schedule', { schedule: 'onboarding-501-after-1d' });
    assert.equal(paused['schedule'].id, mine['schedule'].id);
    const theirs = await okAs(OPERATOR2, 'pause_schedule', { schedule: 'onboarding-501-after-1d' });
    assert.notEqual(theirs['schedule'].id, mine['schedule'].id);
  });

  it('only its owner or an admin may pause, resume or delete a schedule', async () => {
    const nightly = await okAs(ADMIN, 'create_schedule', {
      name: 'admin-nightly',
      cron: '0 2 * * *',
      target: { kind: 'workflow', template_id: 'revenue_analysis' },
    });
    for (const tool of ['pause_schedule', 'delete_schedule', 'resume_schedule']) {
      const e = await refusedAs(OPERATOR, tool, { schedule: 'admin-nightly' });
      assert.equal(e.code, 'forbidden', `${tool}: ${e.message}`);
      assert.equal(
        (await refusedAs(OPERATOR, tool, { schedule: nightly['schedule'].id })).code,
        'forbidden',
        `${tool} by id`,
      );
    }
    const listed = (await okAs(ADMIN, 'list_schedules', { owner: ADMIN }))['schedules'].find(
      (s: { name: string }) => s.name === 'admin-nightly',
    );
    assert.deepEqual([listed.enabled, listed.owner], [true, ADMIN], 'still active, still the admin’s');
    // An operator's own schedule: theirs to change, and an admin's too.
    await okAs(OPERATOR, 'create_schedule', {
      name: 'op-hourly',
      cron: '0 * * * *',
      target: { kind: 'workflow', template_id: 't' },
    });
    await okAs(OPERATOR, 'pause_schedule', { schedule: 'op-hourly' });
    await okAs(OPERATOR, 'resume_schedule', { schedule: 'op-hourly' });
    const byAdmin = await okAs(ADMIN, 'pause_schedule', { schedule: 'op-hourly' });
    assert.equal(byAdmin['schedule'].enabled, false);
    assert.equal(byAdmin['schedule'].owner, OPERATOR, 'an admin’s pause does not take it over');
    await okAs(ADMIN, 'delete_schedule', { schedule: 'op-hourly' });
    // The server's own token (no _meta.actor: the system) still manages everything.
    await okAs(undefined, 'pause_schedule', { schedule: nightly['schedule'].id });
    await okAs(ADMIN, 'delete_schedule', { schedule: 'admin-nightly' });
  });

  it('several owners’ schedules of one name: an admin names the one meant by its id', async () => {
    await okAs(OPERATOR, 'create_schedule', {
      name: 'dup',
      after: '1d',
      target: { kind: 'workflow', template_id: 't' },
    });
    const b = await okAs(OPERATOR2, 'create_schedule', {
      name: 'dup',
      after: '1d',
      target: { kind: 'workflow', template_id: 't' },
    });
    const e = await refusedAs(ADMIN, 'delete_schedule', { schedule: 'dup' });
    assert.equal(e.code, 'validation');
    assert.match(e.message, /by its id/);
    await okAs(ADMIN, 'delete_schedule', { schedule: b['schedule'].id });
  });

  it('delete_schedule missing_ok: one not there answers deleted: false, missing: true; another owner’s is refused all the same; without it, not_found', async () => {
    const mine = (await okAs(OPERATOR, 'create_schedule', { name: 'op-follow-up', ...followUp('a@example.com') }))[
      'schedule'
    ];
    const theirs = (await okAs(OPERATOR2, 'create_schedule', { name: 'op2-follow-up', ...followUp('b@example.com') }))[
      'schedule'
    ];
    // Deleted once (an undo whose answer was lost), then sent again: the second send is done too.
    assert.deepEqual(await okAs(OPERATOR, 'delete_schedule', { schedule: mine.id, missing_ok: true }), {
      deleted: 'op-follow-up',
    });
    assert.deepEqual(await okAs(OPERATOR, 'delete_schedule', { schedule: mine.id, missing_ok: true }), {
      deleted: false,
      missing: true,
      schedule: mine.id,
    });
    assert.deepEqual(await okAs(OPERATOR, 'delete_schedule', { schedule: 'op-follow-up', missing_ok: true }), {
      deleted: false,
      missing: true,
      schedule: 'op-follow-up',
    });
    // Without missing_ok the answer is as it was.
    for (const ref of [mine.id, 'op-follow-up'])
      assert.equal((await refusedAs(OPERATOR, 'delete_schedule', { schedule: ref })).code, 'not_found', ref);
    // Another owner's schedule exists: missing_ok does not turn the refusal into "not there".
    for (const ref of [theirs.id, 'op2-follow-up'])
      assert.equal(
        (await refusedAs(OPERATOR, 'delete_schedule', { schedule: ref, missing_ok: true })).code,
        'forbidden',
        ref,
      );
    const left = (await okAs(ADMIN, 'list_schedules', { owner: OPERATOR2 }))['schedules'].map(
      (x: { id: string }) => x.id,
    );
    assert.ok(left.includes(theirs.id), 'still there');
    await okAs(OPERATOR2, 'delete_schedule', { schedule: theirs.id });
  });

  it("list_webhooks: a URL's credential-named query values are an admin's to read", async () => {
    await okAs(OPERATOR, 'register_webhook', {
      name: 'tokenhook',
      url: `${sink.base}/hook?token=QTOKEN&sig=SIGVAL&team=ops`,
      secret: 'tokenhook-secret-0123456789',
    });
    const asOperator = (await okAs(OPERATOR, 'list_webhooks', { webhook: 'tokenhook' }))['webhooks'][0];
    assert.equal(asOperator.url, `${sink.base}/hook?token=[redacted]&sig=[redacted]&team=ops`);
    const asAdmin = (await okAs(ADMIN, 'list_webhooks', { webhook: 'tokenhook' }))['webhooks'][0];
    assert.equal(asAdmin.url, `${sink.base}/hook?token=QTOKEN&sig=SIGVAL&team=ops`);
    await okAs(OPERATOR, 'delete_webhook', { webhook: 'tokenhook' });
  });

  it('only its owner or an admin may update or delete a webhook', async () => {
    await okAs(ADMIN, 'register_webhook', {
      name: 'adminhook',
      url: `${sink.base}/admin`,
      secret: 'admin-secret-0123456789',
    });
    const retarget = await refusedAs(OPERATOR, 'update_webhook', {
      webhook: 'adminhook',
      url: 'https://1.1.1.1/operator-receiver',
      secret: 'operator-secret-0123456789',
    });
    assert.equal(retarget.code, 'forbidden');
    assert.equal((await refusedAs(OPERATOR, 'delete_webhook', { webhook: 'adminhook' })).code, 'forbidden');
    const listed = (await okAs(OPERATOR, 'list_webhooks', { webhook: 'adminhook' }))['webhooks'][0];
    assert.equal(listed.url, `${sink.base}/admin`, 'unchanged');
    // The refused update left no secret behind.
    const secrets = await pool.query(
      `SELECT count(*)::int AS n FROM automation.webhook_secrets s JOIN automation.webhooks w ON w.id = s.webhook_id WHERE w.name = 'adminhook'`,
    );
    assert.equal(secrets.rows[0].n, 1);
    // Its owner may; so may an admin, an operator's.
    await okAs(ADMIN, 'update_webhook', { webhook: 'adminhook', events: ['a'] });
    await okAs(OPERATOR, 'register_webhook', {
      name: 'ophook',
      url: `${sink.base}/op`,
      secret: 'op-secret-0123456789',
    });
    await okAs(OPERATOR, 'update_webhook', { webhook: 'ophook', events: ['b'] });
    await okAs(ADMIN, 'update_webhook', { webhook: 'ophook', url: `${sink.base}/op2` });
    await okAs(ADMIN, 'delete_webhook', { webhook: 'ophook' });
  });

  it('a webhook registered before owners were recorded answers to the person its event names', async () => {
    // As an earlier server recorded it: no owner in the data, the caller in the metadata.
    const id = newId();
    await pool.query(
      `INSERT INTO automation.webhook_secrets (secret_id, webhook_id, secret, created_at) VALUES ($1, $2, 'old-secret-0123456789', now())`,
      [id, id],
    );
    const store = new PostgresEventStore({ pool, logger: silentLogger });
    try {
      await store.append('automation_webhook-oldhook', [
        {
          type: 'WebhookRegistered',
          data: {
            id,
            name: 'oldhook',
            url: `${sink.base}/old`,
            events: [],
            secret_id: id,
            registered_at: new Date().toISOString(),
          },
          metadata: { timestamp: new Date().toISOString(), correlationId: newId(), actor: ADMIN },
        },
      ]);
    } finally {
      await store.close();
    }
    await until(
      'the old registration projected',
      async () => (await pool.query(`SELECT 1 FROM automation.webhooks WHERE name = 'oldhook'`)).rowCount === 1,
    );
    assert.equal(
      (await refusedAs(OPERATOR, 'update_webhook', { webhook: 'oldhook', url: 'https://1.1.1.1/x' })).code,
      'forbidden',
    );
    await okAs(ADMIN, 'update_webhook', { webhook: 'oldhook', events: ['x'] });
  });

  it('an admin key created a moment ago is an admin at once', async () => {
    const freshId = keyId();
    await createKey(freshId, 'admin');
    await okAs(OPERATOR, 'create_schedule', {
      name: 'op-later',
      after: '2d',
      target: { kind: 'workflow', template_id: 't' },
    });
    await okAs(`apikey:${freshId}`, 'delete_schedule', { schedule: 'op-later' });
    // A revoked admin key is no admin.
    const gateway = new PostgresEventStore({ pool, logger: silentLogger });
    try {
      await gateway.append(`apikey-${freshId}`, [
        {
          type: 'ApiKeyRevoked',
          data: { id: freshId },
          metadata: { timestamp: new Date().toISOString(), correlationId: newId(), actor: ADMIN },
        },
      ]);
    } finally {
      await gateway.close();
    }
    await until(
      'the revocation known',
      async () =>
        (await pool.query(`SELECT 1 FROM automation.revoked_actors WHERE actor = $1`, [`apikey:${freshId}`]))
          .rowCount === 1,
    );
    await okAs(OPERATOR, 'create_schedule', {
      name: 'op-later',
      after: '2d',
      target: { kind: 'workflow', template_id: 't' },
    });
    assert.equal((await refusedAs(`apikey:${freshId}`, 'delete_schedule', { schedule: 'op-later' })).code, 'forbidden');
  });
  it('an active schedule with no owner (a direct call, or made before owners were recorded) is named at start, with the way out', async () => {
    await okAs(undefined, 'create_schedule', {
      name: 'nobody-owns-me',
      cron: '0 9 * * *',
      target: { kind: 'workflow', template_id: 't' },
    });
    const lines: { msg?: string; schedules?: string[] }[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l)) }) as never;
    const again = new AutomationService({ pool, logger, guard: new EgressGuard({ allowCidrs: ['127.0.0.0/8'] }) });
    try {
      await again.start();
      const warned = lines.find((l) => /without an owner/.test(l.msg ?? ''));
      assert.ok(warned, JSON.stringify(lines));
      assert.ok(warned.schedules?.includes('nobody-owns-me'), JSON.stringify(warned));
      assert.match(warned.msg!, /pause and resume/);
    } finally {
      await again.close();
    }
  });
});

/**
 * Webhook registrations and schedules as events, on a real PostgreSQL and the real event store,
 * with the automation server logged in as its least-privilege role (as the launcher runs it):
 * the MCP tools register, change and delete some, the events land in their streams (never with a
 * secret), and after truncating the read models and their checkpoints a replay of the log gives
 * the same rows back, secrets and scheduler state included.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import pg from 'pg';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { PostgresEventStore } from '@switchyard/event-store';
import {
  grantComponentAccess,
  markSchemaManaged,
  newId,
  provisionDatabaseRoles,
  type DatabaseRoles,
} from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { fails, httpClient, localHttp, ok, silentLogger, type LocalHttp } from '../test-helpers.js';
import { createAutomationServer } from './server.js';
import { AutomationService, type Clock } from './automation-service.js';
import { migrateAutomation } from './schema.js';

class FakeClock implements Clock {
  constructor(private t: Date) {}
  now(): Date {
    return new Date(this.t);
  }
  set(iso: string): void {
    this.t = new Date(iso);
  }
}

const firstSecret = 'beta-first-secret-0123456789';
const secondSecret = 'beta-second-secret-9876543210';
const sign = (secret: string, ts: string, body: string): string =>
  `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;

describe('automation: webhooks and schedules are events, their tables projections (real Postgres, automation role)', () => {
  let admin: pg.Pool;
  let rolePool: pg.Pool;
  let roles: DatabaseRoles;
  let store: PostgresEventStore;
  let sink: LocalHttp;
  let http: McpHttpServerHandle | undefined;
  let client: Client | undefined;
  let svc: AutomationService;
  const services: AutomationService[] = [];
  const clock = new FakeClock(new Date('2026-03-01T10:01:00.000Z'));
  const guard = new EgressGuard({ allowCidrs: ['127.0.0.0/8'] });

  function service(): AutomationService {
    const s = new AutomationService({
      pool: rolePool,
      logger: silentLogger,
      guard,
      clock,
      store,
      delivery: { retries: 0, initialDelayMs: 5, maxDelayMs: 5, timeoutMs: 5000 },
    });
    services.push(s);
    return s;
  }

  async function serve(s: AutomationService): Promise<void> {
    await client?.close();
    await http?.close();
    http = await startMcpHttpServer({
      name: 'automation',
      serverFactory: () => createAutomationServer({ service: s, logger: silentLogger }),
      port: 0,
      logger: silentLogger,
    });
    client = await httpClient(http.url);
  }

  /** The rows of both read models, and the tools' listings, as a reader sees them. */
  async function snapshot(): Promise<unknown> {
    const webhooks = await admin.query(`SELECT * FROM automation.webhooks ORDER BY id`);
    const schedules = await admin.query(`SELECT * FROM automation.schedules ORDER BY id`);
    return {
      webhooks: webhooks.rows,
      schedules: schedules.rows,
      listWebhooks: await ok(client!, 'list_webhooks'),
      listSchedules: await ok(client!, 'list_schedules'),
    };
  }

  before(async () => {
    const url = await freshDatabase('mcp_auto_events');
    admin = new pg.Pool({ connectionString: url, max: 2 });
    // As the launcher does: roles, then the owner migrates (event store, automation schema) and grants.
    roles = (await provisionDatabaseRoles(url, { logger: silentLogger }))!;
    assert.ok(roles, 'the test superuser provisions the roles');
    const owner = new pg.Pool({ connectionString: roles.urls.app, max: 2 });
    try {
      await new PostgresEventStore({ pool: owner }).init();
      await migrateAutomation(owner);
      await grantComponentAccess(owner, roles.names);
    } finally {
      await owner.end();
    }
    // The automation server's own login, without DDL rights.
    rolePool = markSchemaManaged(new pg.Pool({ connectionString: roles.urls.components.automation, max: 6 }));
    store = new PostgresEventStore({ pool: rolePool, logger: silentLogger });
    sink = await localHttp((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
    );
    svc = service();
    await svc.start();
    await serve(svc);
  });

  after(async () => {
    await client?.close();
    await http?.close();
    await sink?.close();
    for (const s of services) await s.close();
    await store?.close();
    await rolePool?.end();
    await admin?.end();
  });

  it('the automation role may append and read events, not change them, and has no DDL', async () => {
    const who = roles.names.components.automation;
    const can = async (table: string, priv: string) =>
      (await admin.query(`SELECT has_table_privilege($1, $2, $3) AS ok`, [who, table, priv])).rows[0].ok;
    assert.equal(await can('eventstore.events', 'SELECT'), true);
    assert.equal(await can('eventstore.events', 'INSERT'), true);
    for (const p of ['UPDATE', 'DELETE', 'TRUNCATE']) assert.equal(await can('eventstore.events', p), false, p);
    assert.equal(await can('automation.checkpoints', 'UPDATE'), true);
    await assert.rejects(rolePool.query(`DELETE FROM eventstore.events`), (e: { code?: string }) => e.code === '42501');
    await assert.rejects(
      rolePool.query(`CREATE TABLE automation.x (a int)`),
      (e: { code?: string }) => e.code === '42501',
    );
  });

  it('registers, updates and deletes webhooks through events; the secret is never in the log', async () => {
    const alpha = await ok(client!, 'register_webhook', {
      name: 'alpha',
      url: `${sink.base}/alpha`,
      secret: 'alpha-secret-0123456789',
      events: [],
    });
    assert.deepEqual(Object.keys(alpha.webhook).sort(), ['created_at', 'events', 'id', 'name', 'url']);
    await ok(client!, 'register_webhook', {
      name: 'beta',
      url: `${sink.base}/beta`,
      secret: firstSecret,
      events: ['a'],
    });
    const gamma = await ok(client!, 'register_webhook', {
      name: 'gamma',
      url: `${sink.base}/gamma`,
      secret: 'gamma-secret-0123456789',
      events: [],
    });
    const dup = await fails(client!, 'register_webhook', {
      name: 'alpha',
      url: `${sink.base}/x`,
      secret: 'alpha-secret-0123456789',
      events: [],
    });
    assert.equal(dup.code, 'illegal_state');

    const updated = await ok(client!, 'update_webhook', { webhook: 'beta', secret: secondSecret, events: ['a', 'b'] });
    assert.deepEqual(updated.webhook.events, ['a', 'b']);
    // Read-your-writes: the next call signs with the new secret.
    const sent = await ok(client!, 'send_webhook', { webhook: 'beta', event: 'b', payload: { n: 1 } });
    assert.equal(sent.delivery.delivered, true);
    const req = sink.requests.at(-1)!;
    assert.equal(
      req.headers['x-switchyard-signature'],
      sign(secondSecret, String(req.headers['x-switchyard-timestamp']), req.body),
    );

    assert.deepEqual(await ok(client!, 'delete_webhook', { webhook: gamma.webhook.id }), { deleted: 'gamma' });
    assert.equal((await fails(client!, 'delete_webhook', { webhook: gamma.webhook.id })).code, 'not_found');
    const again = await ok(client!, 'register_webhook', {
      name: 'gamma',
      url: `${sink.base}/gamma2`,
      secret: 'gamma-secret-0123456789',
      events: [],
    });
    assert.notEqual(again.webhook.id, gamma.webhook.id);

    const beta = await store.readStream('automation_webhook-beta');
    assert.deepEqual(
      beta.map((e) => e.type),
      ['WebhookRegistered', 'WebhookUpdated'],
    );
    assert.equal(beta[0]!.metadata.actor, 'mcp:automation');
    assert.ok(beta[0]!.metadata.correlationId);
    assert.deepEqual(
      (await store.readStream('automation_webhook-gamma')).map((e) => e.type),
      ['WebhookRegistered', 'WebhookDeleted', 'WebhookRegistered'],
    );
    const log = JSON.stringify(await store.readAll());
    for (const secret of [firstSecret, secondSecret, 'alpha-secret-0123456789', 'gamma-secret-0123456789'])
      assert.equal(log.includes(secret), false, 'a secret in the log');
  });

  it('creates, pauses, resumes and deletes schedules through events; firing stays operational', async () => {
    const every5 = await ok(client!, 'create_schedule', {
      name: 'every5',
      cron: '*/5 * * * *',
      target: { kind: 'webhook', webhook: 'alpha', event: 'tick' },
    });
    assert.equal(every5.schedule.next_fire_at, '2026-03-01T10:05:00.000Z');
    assert.deepEqual(Object.keys(every5.schedule).sort(), [
      'cron',
      'enabled',
      'fire_count',
      'id',
      'last_fired_at',
      'name',
      'next_fire_at',
      'owner',
      'paused_reason',
      'run_once',
      'target',
      'timezone',
    ]);
    assert.equal(every5.schedule.owner, null, 'a call that names no person (no _meta.actor) leaves no owner');
    await ok(client!, 'create_schedule', {
      name: 'once',
      after: '1h',
      target: { kind: 'workflow', template_id: 'tpl' },
    });
    await ok(client!, 'create_schedule', {
      name: 'hourly',
      cron: '0 * * * *',
      target: { kind: 'workflow', template_id: 'tpl' },
    });
    const gone = await ok(client!, 'create_schedule', {
      name: 'gone',
      cron: '0 * * * *',
      target: { kind: 'workflow', template_id: 'tpl' },
    });
    const paused = await ok(client!, 'pause_schedule', { schedule: 'hourly' });
    assert.equal(paused.schedule.enabled, false);
    assert.deepEqual(await ok(client!, 'delete_schedule', { schedule: gone.schedule.id }), { deleted: 'gone' });

    clock.set('2026-03-01T10:05:00.000Z');
    assert.equal(await svc.fireDue(), 1, 'every5 fires; hourly is paused');
    clock.set('2026-03-01T11:02:00.000Z');
    assert.equal(await svc.fireDue(), 2, 'every5 catches up, once fires');
    const resumed = await ok(client!, 'resume_schedule', { schedule: 'hourly' });
    assert.equal(resumed.schedule.enabled, true);
    assert.equal(
      resumed.schedule.next_fire_at,
      '2026-03-01T12:00:00.000Z',
      'the occurrence missed while paused is skipped',
    );
    const listed = (await ok(client!, 'list_schedules')).schedules as {
      name: string;
      enabled: boolean;
      fire_count: number;
    }[];
    assert.deepEqual(
      listed.map((s) => [s.name, s.enabled, s.fire_count]),
      [
        ['every5', true, 2],
        ['hourly', true, 0],
        ['once', false, 1],
      ],
    );
    assert.deepEqual(
      (await store.readStream('automation_schedule-hourly')).map((e) => e.type),
      ['ScheduleCreated', 'SchedulePaused', 'ScheduleResumed'],
    );
    // A one-shot that has fired stays done through a pause and a resume (its new plan is its old time).
    await ok(client!, 'pause_schedule', { schedule: 'once' });
    const onceAgain = await ok(client!, 'resume_schedule', { schedule: 'once' });
    assert.deepEqual([onceAgain.schedule.enabled, onceAgain.schedule.fire_count], [false, 1]);
    clock.set('2026-03-01T11:03:00.000Z');
    assert.equal(await svc.fireDue(), 0);
    assert.deepEqual(
      (await store.readStream('automation_schedule-every5')).map((e) => e.type),
      ['ScheduleCreated'],
      'fires are not events',
    );
  });

  it("a schedule answers to its owner: once their key is revoked it stops firing and is paused; another key's resume takes it over", async () => {
    /** A call as the connectors make it for an API key: the person in `_meta.actor`. */
    const as = async (actor: string, name: string, args: Record<string, unknown>) => {
      const r = (await client!.callTool({ name, arguments: args, _meta: { actor } })) as CallToolResult;
      assert.notEqual(r.isError, true, `tool ${name} failed: ${JSON.stringify(r.content)}`);
      return r.structuredContent as Record<string, any>;
    };
    const [keyA, keyB] = [newId(), newId()];
    const created = await as(`apikey:${keyA}`, 'create_schedule', {
      name: 'owned',
      cron: '*/10 * * * *',
      target: { kind: 'workflow', template_id: 'tpl', input: { n: 1 } },
    });
    assert.equal(created.schedule.owner, `apikey:${keyA}`);
    // Its name is in its creator's scope: the stream is theirs.
    const ownedStream = `automation_schedule-apikey:${keyA}/owned`;
    const [made] = await store.readStream(ownedStream);
    assert.equal((made!.data as { owner?: string }).owner, `apikey:${keyA}`);
    assert.equal(made!.metadata['actor'], `apikey:${keyA}`, "the event names the caller, not the server's token");
    // Something that is not a plain actor id is not taken as one.
    const odd = await as('apikey:a b', 'create_schedule', {
      name: 'odd',
      after: '1h',
      target: { kind: 'workflow', template_id: 'tpl' },
    });
    assert.equal(odd.schedule.owner, null);
    await ok(client!, 'delete_schedule', { schedule: 'odd' });

    // The gateway revokes key A (its own stream, its own event, appended as the gateway does).
    const gateway = new PostgresEventStore({ pool: admin, logger: silentLogger });
    try {
      await gateway.append(`apikey-${keyA}`, [
        {
          type: 'ApiKeyRevoked',
          data: { id: keyA },
          metadata: { timestamp: clock.now().toISOString(), correlationId: newId(), actor: 'apikey:admin' },
        },
      ]);
    } finally {
      await gateway.close();
    }
    await until(
      'the revocation known to the automation server',
      async () =>
        (await admin.query(`SELECT 1 FROM automation.revoked_actors WHERE actor = $1`, [`apikey:${keyA}`])).rowCount ===
        1,
      10_000,
    );
    clock.set('2026-03-01T11:10:00.000Z');
    await svc.fireDue();
    const owned = async () =>
      ((await ok(client!, 'list_schedules')).schedules as Record<string, any>[]).find((x) => x.name === 'owned')!;
    const stopped = await owned();
    assert.deepEqual(
      [stopped.enabled, stopped.paused_reason, stopped.fire_count, stopped.owner],
      [false, 'owner_revoked', 0, `apikey:${keyA}`],
      'due at 11:10, not fired: paused as its owner was revoked',
    );
    const events = await store.readStream(ownedStream);
    assert.deepEqual(
      events.map((e) => e.type),
      ['ScheduleCreated', 'SchedulePaused'],
    );
    assert.equal((events[1]!.data as { reason?: string }).reason, 'owner_revoked');
    assert.equal(events[1]!.metadata['actor'], 'mcp:automation:owner-revoked');
    clock.set('2026-03-01T11:11:00.000Z');
    await svc.fireDue();
    assert.equal((await store.readStream(ownedStream)).length, 2, 'paused once, not at every tick');

    // A resume that names nobody is refused: it would fire again until the next tick paused it.
    const anonymous = (await client!.callTool({
      name: 'resume_schedule',
      arguments: { schedule: 'owned' },
    })) as CallToolResult;
    assert.equal(anonymous.isError, true);
    assert.match(JSON.stringify(anonymous.content), /answers to a revoked key/);
    assert.equal((await owned()).enabled, false);
    // Key B resumes it: B answers for it now, and its fires start workflows for B.
    const resumed = await as(`apikey:${keyB}`, 'resume_schedule', { schedule: 'owned' });
    assert.deepEqual(
      [resumed.schedule.enabled, resumed.schedule.owner, resumed.schedule.paused_reason, resumed.schedule.next_fire_at],
      [true, `apikey:${keyB}`, null, '2026-03-01T11:20:00.000Z'],
    );
    clock.set('2026-03-01T11:20:00.000Z');
    await svc.fireDue();
    assert.equal((await owned()).fire_count, 1);
    const trigger = await admin.query(`SELECT on_behalf_of FROM automation.triggers WHERE schedule_id = $1`, [
      created.schedule.id,
    ]);
    assert.deepEqual(
      trigger.rows.map((r) => r.on_behalf_of),
      [`apikey:${keyB}`],
    );
  });

  it('truncating the read models and their checkpoints, then replaying the log, reproduces every row', async () => {
    const before = await snapshot();
    await svc.close();
    await admin.query(`TRUNCATE automation.webhooks, automation.schedules`);
    await admin.query(`DELETE FROM automation.checkpoints`);
    assert.equal((await admin.query(`SELECT count(*)::int AS n FROM automation.webhooks`)).rows[0].n, 0);

    svc = service();
    await svc.start();
    await svc.events.runner.waitFor();
    await serve(svc);
    assert.deepEqual(await snapshot(), before);
    // The secrets and the scheduler's state were not in the read models: still there.
    const sent = await ok(client!, 'send_webhook', { webhook: 'beta', event: 'a', payload: { n: 2 } });
    assert.equal(sent.delivery.delivered, true);
    const req = sink.requests.at(-1)!;
    assert.equal(
      req.headers['x-switchyard-signature'],
      sign(secondSecret, String(req.headers['x-switchyard-timestamp']), req.body),
    );

    // The runner's own rebuild (reset, then replay) gives the same rows too.
    await svc.rebuildReadModels();
    assert.deepEqual(await snapshot(), before);
  });

  it('adopts rows written before webhooks and schedules were events: one creating event each, then they survive a rebuild', async () => {
    // Rows as the earlier server wrote them (secret in the row, run state in the schedule row).
    const hookId = '0190b000-0000-7000-8000-0000000000c1';
    const schedId = '0190b000-0000-7000-8000-0000000000c2';
    await admin.query(
      `INSERT INTO automation.webhooks (id, name, url, secret, events, created_at) VALUES ($1, 'legacy', $2, 'legacy-secret-0123456789', '{}', '2026-01-01T00:00:00Z')`,
      [hookId, `${sink.base}/legacy`],
    );
    await admin.query(
      `INSERT INTO automation.schedules (id, name, cron, timezone, target, next_fire_at, last_fired_at, fire_count, created_at)
       VALUES ($1, 'legacy-daily', '0 9 * * *', 'UTC', '{"kind":"workflow","template_id":"tpl","input":{}}', '2026-03-02T09:00:00Z', '2026-03-01T09:00:00Z', 5, '2026-01-01T00:00:00Z')`,
      [schedId],
    );
    const owner = new pg.Pool({ connectionString: roles.urls.app, max: 1 });
    try {
      await migrateAutomation(owner); // the next start's migration moves the secret and the run state out
    } finally {
      await owner.end();
    }
    await svc.close();
    svc = service();
    await svc.start();
    await svc.events.runner.waitFor();
    await serve(svc);
    assert.deepEqual(
      (await store.readStream('automation_webhook-legacy')).map((e) => e.type),
      ['WebhookRegistered'],
    );
    assert.deepEqual(
      (await store.readStream('automation_schedule-legacy-daily')).map((e) => e.type),
      ['ScheduleCreated'],
    );
    const sent = await ok(client!, 'send_webhook', { webhook: 'legacy', event: 'x' });
    assert.equal(sent.delivery.delivered, true);
    const req = sink.requests.at(-1)!;
    assert.equal(
      req.headers['x-switchyard-signature'],
      sign('legacy-secret-0123456789', String(req.headers['x-switchyard-timestamp']), req.body),
    );
    const daily = (await ok(client!, 'list_schedules')).schedules.find(
      (s: { name: string }) => s.name === 'legacy-daily',
    );
    assert.deepEqual(
      [daily.next_fire_at, daily.last_fired_at, daily.fire_count, daily.enabled],
      ['2026-03-02T09:00:00.000Z', '2026-03-01T09:00:00.000Z', 5, true],
    );
    const before = await snapshot();
    await svc.rebuildReadModels();
    assert.deepEqual(await snapshot(), before);
  });
});

/**
 * One PostgreSQL role per component, on a real PostgreSQL: the privileges each role really has
 * after the launcher's migration phase (has_table_privilege / has_schema_privilege and the
 * statements themselves), and a system started in this process whose every backend is logged in
 * as a component role, never as the superuser or the schema owner.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { agentAuditStreamId } from '@switchyard/agents';
import { mcpServerStreamId } from '@switchyard/contracts';
import { PostgresEventStore } from '@switchyard/event-store';
import { mcpAuditStreamId, scheduleStream, webhookStream } from '@switchyard/mcp-servers';
import { alertRulesStream, streamOf, type MonitorEvent } from '@switchyard/monitor';
import {
  COMPONENTS,
  createLogger,
  createPgPool,
  ensureDatabase,
  freePort,
  markSchemaManaged,
  parseConfig,
  provisionDatabaseRoles,
  startNatsServer,
  type DatabaseRoles,
  type NatsServerHandle,
} from '@switchyard/platform';
import { migrateAsOwner } from './migrations.js';
import { startSystem, type RunningSystem } from './system.js';
import { Supervisor } from './supervisor.js';

const logger = createLogger('roles-spec', 'silent');
const serverUrl = process.env.TEST_DATABASE_URL;

/** Run one statement as `url`'s login; the SQLSTATE when it fails. */
async function as(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<{ code?: string; rows?: Record<string, unknown>[] }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return { rows: (await c.query(sql, params)).rows };
  } catch (err) {
    return { code: (err as { code?: string }).code ?? 'none' };
  } finally {
    await c.end();
  }
}

describe(
  'component roles: least privilege per component',
  { skip: serverUrl ? false : 'TEST_DATABASE_URL is unset (run through scripts/run-tests.mjs int)' },
  () => {
    let dbUrl: string;
    let admin: pg.Pool;
    let roles: DatabaseRoles;
    const role = (c: (typeof COMPONENTS)[number]) => roles.names.components[c];
    const can = async (who: string, table: string, priv: string): Promise<boolean> =>
      (await admin.query<{ ok: boolean }>('select has_table_privilege($1, $2, $3) as ok', [who, table, priv])).rows[0]!
        .ok;
    const usage = async (who: string, schema: string): Promise<boolean> =>
      (await admin.query<{ ok: boolean }>(`select has_schema_privilege($1, $2, 'USAGE') as ok`, [who, schema])).rows[0]!
        .ok;

    /** The migration phase as the launcher runs it, as the owner role. */
    const migrate = async () => {
      const owner = createPgPool({ connectionString: roles.urls.app, max: 2 }, { name: 'owner', logger });
      try {
        await migrateAsOwner({
          pool: owner,
          url: roles.urls.app,
          roles,
          logger,
          externalEventStore: false,
          demoData: true,
        });
      } finally {
        await owner.end();
      }
    };

    before(async () => {
      dbUrl = await ensureDatabase(serverUrl!, `roles_${process.pid}_${Date.now() % 100000}`);
      admin = new pg.Pool({ connectionString: dbUrl, max: 2 });
      roles = (await provisionDatabaseRoles(dbUrl, { logger }))!;
      assert.ok(roles, 'the superuser provisions the roles');
      await migrate();
    });
    after(async () => {
      await admin?.end();
    });

    it('every component role: not superuser, no CREATEROLE/CREATEDB/REPLICATION/BYPASSRLS, member of nothing, no DDL anywhere', async () => {
      assert.equal(COMPONENTS.length, 10);
      for (const c of COMPONENTS) {
        const r = (
          await admin.query(
            `select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin,
                (select count(*)::int from pg_auth_members m where m.member = r.oid) as memberships,
                has_database_privilege(r.rolname, current_database(), 'CREATE') as db_create,
                has_database_privilege(r.rolname, current_database(), 'TEMPORARY') as db_temp,
                (select count(*)::int from pg_namespace n where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
                   and has_schema_privilege(r.rolname, n.oid, 'CREATE')) as create_schemas,
                (select count(*)::int from pg_class t join pg_namespace n on n.oid = t.relnamespace
                   where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema' and pg_get_userbyid(t.relowner) = r.rolname) as owns
           from pg_roles r where r.rolname = $1`,
            [role(c)],
          )
        ).rows[0];
        assert.deepEqual(
          r,
          {
            rolsuper: false,
            rolcreaterole: false,
            rolcreatedb: false,
            rolreplication: false,
            rolbypassrls: false,
            rolcanlogin: true,
            memberships: 0,
            db_create: false,
            db_temp: false,
            create_schemas: 0,
            owns: 0,
          },
          c,
        );
        // DDL refused as the role itself.
        assert.equal((await as(roles.urls.components[c], 'create table eventstore.x (a int)')).code, '42501', c);
        assert.equal((await as(roles.urls.components[c], 'select * from switchyard_roles.passwords')).code, '42501', c);
      }
    });

    it('a password given for a login is the one set and kept; provisioning again without it keeps it; the others stay generated', async () => {
      const given = `g${randomBytes(16).toString('hex')}`;
      const withGiven = (await provisionDatabaseRoles(dbUrl, {
        logger,
        passwords: { gateway: given, mcp_reader: given },
      }))!;
      assert.equal(decodeURIComponent(new URL(withGiven.urls.components.gateway).password), given);
      assert.equal(decodeURIComponent(new URL(withGiven.urls.reader).password), given);
      assert.equal(
        withGiven.urls.components.engine,
        roles.urls.components.engine,
        'a login not given keeps its password',
      );
      const gatewayLogin = new URL(dbUrl);
      gatewayLogin.username = roles.names.components.gateway;
      gatewayLogin.password = given;
      assert.deepEqual((await as(gatewayLogin.toString(), 'select current_user as u')).rows, [
        { u: roles.names.components.gateway },
      ]);
      const old = new pg.Client({ connectionString: roles.urls.components.gateway });
      await assert.rejects(old.connect(), { code: '28P01' }, 'the old password no longer logs in');
      await old.end().catch(() => undefined);
      const again = (await provisionDatabaseRoles(dbUrl, { logger }))!;
      assert.equal(again.urls.components.gateway, withGiven.urls.components.gateway);
      // Back to what the other tests of this file use.
      roles = again;
    });

    it('the event store: appenders may SELECT and INSERT and execute the append, never UPDATE/DELETE/TRUNCATE; readers only SELECT', async () => {
      for (const c of ['gateway', 'engine', 'dispatcher', 'monitor', 'sink', 'automation'] as const) {
        assert.equal(await can(role(c), 'eventstore.events', 'INSERT'), true, c);
        for (const p of ['UPDATE', 'DELETE', 'TRUNCATE'])
          assert.equal(await can(role(c), 'eventstore.events', p), false, `${c} ${p}`);
        assert.equal(
          (
            await admin.query(`select has_function_privilege($1, 'eventstore.append_batch(jsonb)', 'EXECUTE') as ok`, [
              role(c),
            ])
          ).rows[0].ok,
          true,
          c,
        );
      }
      for (const c of ['relay', 'projections'] as const) {
        assert.equal(await can(role(c), 'eventstore.events', 'SELECT'), true, c);
        assert.equal(await can(role(c), 'eventstore.events', 'INSERT'), false, c);
        assert.equal(
          (
            await admin.query(`select has_function_privilege($1, 'eventstore.append_batch(jsonb)', 'EXECUTE') as ok`, [
              role(c),
            ])
          ).rows[0].ok,
          false,
          c,
        );
      }
      for (const c of ['agents', 'analytics'] as const) assert.equal(await usage(role(c), 'eventstore'), false, c);
      for (const who of [roles.names.reader, roles.names.writer]) {
        assert.equal(
          (
            await admin.query(`select has_function_privilege($1, 'eventstore.append_batch(jsonb)', 'EXECUTE') as ok`, [
              who,
            ])
          ).rows[0].ok,
          false,
          who,
        );
      }
      // For real, as the gateway: the delete is refused, an append through the store works.
      assert.equal((await as(roles.urls.components.gateway, 'delete from eventstore.events')).code, '42501');
      assert.equal((await as(roles.urls.components.gateway, 'update eventstore.events set type = type')).code, '42501');
      const sinkPool = markSchemaManaged(
        createPgPool({ connectionString: roles.urls.components.sink, max: 1 }, { name: 'sink', logger }),
      );
      const store = new PostgresEventStore({ pool: sinkPool, logger });
      try {
        await store.init(); // no DDL on a schema-managed pool: it must not fail
        const r = await store.append('mcpaudit-roles-spec-1', [
          {
            type: 'Checked',
            data: { ok: true },
            metadata: { correlationId: 'roles-spec', timestamp: new Date().toISOString() },
          },
        ]);
        assert.equal((await store.readStream('mcpaudit-roles-spec-1')).length, 1, JSON.stringify(r));
        assert.equal((await as(roles.urls.components.sink, 'delete from eventstore.events')).code, '42501');
      } finally {
        await store.close();
        await sinkPool.end();
      }
    });

    it('the sink appends to the audit streams only and the automation server to its schedules and webhooks (row-level security); the gateway to any stream', async () => {
      // The prefixes are those of the streams the code really writes.
      const sinkStreams = [mcpAuditStreamId('db'), mcpServerStreamId('db'), agentAuditStreamId('data_analyst')];
      const automationStreams = [scheduleStream('nightly'), webhookStream('crm')];
      const monitorStreams = [
        streamOf({ type: 'AlertFired', data: { fingerprint: 'f1' } } as unknown as MonitorEvent),
        streamOf({ type: 'SilenceAdded', data: { silence: { id: 's1' } } } as unknown as MonitorEvent),
        streamOf({ type: 'ServiceWentDown', data: { service: 'db' } } as unknown as MonitorEvent),
        alertRulesStream(),
      ];
      const append = async (
        c: 'sink' | 'automation' | 'monitor' | 'gateway' | 'engine' | 'dispatcher',
        streamId: string,
      ): Promise<string> => {
        const pool = markSchemaManaged(
          createPgPool({ connectionString: roles.urls.components[c], max: 1 }, { name: c, logger }),
        );
        const store = new PostgresEventStore({ pool, logger });
        try {
          await store.append(streamId, [
            { type: 'Checked', data: {}, metadata: { correlationId: 'rls', timestamp: new Date().toISOString() } },
          ]);
          return 'ok';
        } catch (err) {
          return (err as { code?: string }).code ?? (err as Error).message;
        } finally {
          await store.close();
          await pool.end();
        }
      };
      const tag = randomBytes(3).toString('hex');
      for (const stream of sinkStreams) assert.equal(await append('sink', `${stream}-${tag}`), 'ok', stream);
      for (const stream of automationStreams)
        assert.equal(await append('automation', `${stream}-${tag}`), 'ok', stream);
      for (const stream of monitorStreams) assert.equal(await append('monitor', `${stream}-${tag}`), 'ok', stream);
      assert.equal(await append('monitor', `task-${tag}`), '42501');
      // What a compromised connectors or agents process would forge for the engine or the dispatcher to act on.
      for (const forged of [`workflow_execution-${tag}`, `task-${tag}`, `apikey-${tag}`, `automation_schedule-${tag}`])
        assert.equal(await append('sink', forged), '42501', `sink -> ${forged}`);
      for (const forged of [`workflow_execution-${tag}`, `mcpaudit-${tag}`])
        assert.equal(await append('automation', forged), '42501', `automation -> ${forged}`);
      assert.equal(await append('gateway', `workflow_execution-${tag}`), 'ok');
      // The engine and the dispatcher write what they run, and cannot mint an API key or a schedule.
      for (const stream of ['workflow_execution', 'workflow_batch', 'workflow_definition'])
        assert.equal(await append('engine', `${stream}-${tag}`), 'ok', stream);
      for (const stream of ['task', 'external_agent'])
        assert.equal(await append('dispatcher', `${stream}-${tag}`), 'ok', stream);
      for (const forged of [`apikey-${tag}`, `alert-${tag}`, `automation_schedule-${tag}`, `task-e-${tag}`])
        assert.equal(await append('engine', forged), '42501', `engine -> ${forged}`);
      for (const forged of [`apikey-${tag}`, `workflow_execution-d-${tag}`, `mcp_virtual_server-${tag}`])
        assert.equal(await append('dispatcher', forged), '42501', `dispatcher -> ${forged}`);
      // A batch with one forbidden stream appends nothing.
      const batch = await as(roles.urls.components.sink, `select * from eventstore.append_batch($1::jsonb)`, [
        JSON.stringify(
          [`mcpaudit-b-${tag}`, `task-b-${tag}`].map((stream) => ({
            stream,
            mode: 'any',
            events: [{ id: randomUUID(), type: 'Checked', data: {}, metadata: {} }],
          })),
        ),
      ]);
      assert.equal(batch.code, '42501');
      assert.equal(
        (await admin.query(`select count(*)::int as n from eventstore.events where stream_id like $1`, [`%-b-${tag}`]))
          .rows[0].n,
        0,
      );
    });

    it('security.api_keys: only the gateway; the relay, monitor, engine, dispatcher, agents cannot read it', async () => {
      assert.equal(await can(role('gateway'), 'security.api_keys', 'SELECT'), true);
      assert.equal(await can(role('gateway'), 'security.api_keys', 'DELETE'), false);
      for (const c of COMPONENTS.filter((x) => x !== 'gateway')) {
        assert.equal(await usage(role(c), 'security'), false, c);
        assert.equal(await can(role(c), 'security.api_keys', 'SELECT'), false, c);
      }
      assert.equal((await as(roles.urls.components.relay, 'select * from security.api_keys')).code, '42501');
      assert.equal((await as(roles.urls.components.monitor, 'select * from security.api_keys')).code, '42501');
    });

    it('each component writes its own schema only', async () => {
      // The relay: its checkpoint, not the workflows or read models.
      assert.equal(await can(role('relay'), 'relay.checkpoint', 'UPDATE'), true);
      assert.equal(await usage(role('relay'), 'workflows'), false);
      // The monitor: monitoring; of workflows and delegation, only the engines' and dispatchers' heartbeats, read.
      assert.equal(await can(role('monitor'), 'monitoring.samples', 'INSERT'), true);
      assert.equal(await can(role('monitor'), 'workflows.engine_members', 'SELECT'), true);
      assert.equal(await can(role('monitor'), 'delegation.dispatcher_members', 'SELECT'), true);
      for (const p of ['INSERT', 'UPDATE', 'DELETE']) {
        assert.equal(await can(role('monitor'), 'workflows.engine_members', p), false, p);
        assert.equal(await can(role('monitor'), 'delegation.dispatcher_members', p), false, p);
      }
      for (const t of ['workflows.definitions', 'workflows.timers', 'delegation.tasks', 'delegation.assignments'])
        assert.equal(await can(role('monitor'), t, 'SELECT'), false, t);
      for (const p of ['INSERT', 'UPDATE', 'DELETE'])
        assert.equal(await can(role('monitor'), 'workflows.definitions', p), false, p);
      assert.equal(
        (
          await as(
            roles.urls.components.monitor,
            `insert into workflows.definitions select * from workflows.definitions limit 0`,
          )
        ).code,
        '42501',
      );
      // The engine: workflows and the workflow read model, not delegation or monitoring.
      assert.equal(await can(role('engine'), 'workflows.timers', 'DELETE'), true);
      assert.equal(await can(role('engine'), 'read_models.workflow_executions', 'INSERT'), true);
      assert.equal(await usage(role('engine'), 'delegation'), false);
      assert.equal(await usage(role('engine'), 'monitoring'), false);
      // The engine's trigger starter: reads and marks automation.triggers, nothing else of automation.
      assert.equal(await usage(role('engine'), 'automation'), true);
      assert.equal(await can(role('engine'), 'automation.triggers', 'SELECT'), true);
      assert.equal(await can(role('engine'), 'automation.triggers', 'UPDATE'), true);
      for (const p of ['INSERT', 'DELETE', 'TRUNCATE'])
        assert.equal(await can(role('engine'), 'automation.triggers', p), false, p);
      for (const t of ['automation.webhooks', 'automation.schedules', 'automation.deliveries', 'automation.mailbox'])
        assert.equal(await can(role('engine'), t, 'SELECT'), false, t);
      // The dispatcher: delegation, and only the checkpoints of read_models.
      assert.equal(await can(role('dispatcher'), 'delegation.tasks', 'UPDATE'), true);
      assert.equal(await can(role('dispatcher'), 'read_models.checkpoints', 'UPDATE'), true);
      assert.equal(await can(role('dispatcher'), 'read_models.workflow_executions', 'SELECT'), false);
      // The external agents' tokens: the dispatcher alone; roles that read the delegation read models do not.
      assert.equal(await can(role('dispatcher'), 'delegation_secrets.external_agent_tokens', 'SELECT'), true);
      assert.equal(await can(role('dispatcher'), 'delegation_secrets.external_agent_tokens', 'INSERT'), true);
      for (const r of ['gateway', 'projections', 'engine', 'monitor', 'relay'] as const)
        assert.equal(await can(role(r), 'delegation_secrets.external_agent_tokens', 'SELECT'), false, r);
      // The projections: status, reading what they join.
      assert.equal(await can(role('projections'), 'status.mcp_servers', 'INSERT'), true);
      assert.equal(await can(role('projections'), 'delegation.tasks', 'SELECT'), true);
      assert.equal(await can(role('projections'), 'delegation.tasks', 'UPDATE'), false);
      // The gateway: reads the read models, writes keys, idempotency, definitions; not timers.
      assert.equal(await can(role('gateway'), 'read_models.workflow_executions', 'SELECT'), true);
      assert.equal(await can(role('gateway'), 'read_models.workflow_executions', 'UPDATE'), false);
      assert.equal(await can(role('gateway'), 'gateway.idempotency_keys', 'DELETE'), true);
      // The shared rate limits: the limiter's upsert and purge, nothing more; no other role reaches them.
      for (const p of ['SELECT', 'INSERT', 'UPDATE', 'DELETE'])
        assert.equal(await can(role('gateway'), 'gateway.rate_limits', p), true, p);
      assert.equal(await can(role('gateway'), 'gateway.rate_limits', 'TRUNCATE'), false);
      for (const c of COMPONENTS.filter((x) => x !== 'gateway'))
        assert.equal(await can(role(c), 'gateway.rate_limits', 'SELECT'), false, c);
      assert.equal(await can(role('gateway'), 'workflows.definitions', 'INSERT'), true);
      // It runs the definitions projection: that checkpoint too, no other read model's rows.
      assert.equal(await can(role('gateway'), 'read_models.checkpoints', 'UPDATE'), true);
      assert.equal(await can(role('gateway'), 'workflows.timers', 'INSERT'), false);
      // It counts a starter's open executions (WORKFLOW_MAX_OPEN_PER_STARTER), and changes none.
      assert.equal(await can(role('gateway'), 'workflows.active_executions', 'SELECT'), true);
      assert.equal(await can(role('gateway'), 'workflows.active_executions', 'DELETE'), false);
      // The agents read the demo data, nothing else; automation and analytics their schema.
      assert.equal(await can(role('agents'), 'business.customers', 'SELECT'), true);
      assert.equal(await can(role('agents'), 'business.customers', 'INSERT'), false);
      assert.equal(await usage(role('agents'), 'workflows'), false);
      assert.equal(await can(role('automation'), 'automation.webhooks', 'DELETE'), true);
      assert.equal(await usage(role('automation'), 'analytics'), false);
      assert.equal(await can(role('analytics'), 'analytics.metrics', 'INSERT'), true);
      assert.equal(await can(role('analytics'), 'read_models.workflow_executions', 'SELECT'), true);
      assert.equal(await usage(role('analytics'), 'automation'), false);
    });

    it('a table the owner creates later is covered by the default privileges; running the migration phase again keeps every grant', async () => {
      assert.equal((await as(roles.urls.app, 'create table monitoring.later (a int)')).code, undefined);
      assert.equal(await can(role('monitor'), 'monitoring.later', 'INSERT'), true);
      assert.equal(await can(role('engine'), 'monitoring.later', 'SELECT'), false);
      await migrate();
      assert.equal(await can(role('monitor'), 'monitoring.later', 'INSERT'), true);
      assert.equal(await can(role('gateway'), 'eventstore.events', 'DELETE'), false);
      assert.equal(await can(role('gateway'), 'eventstore.events', 'INSERT'), true);
    });

    it('three launchers running the migration phase at once all finish (they take turns) and the grants hold', async () => {
      const phase = async () => {
        const owner = createPgPool({ connectionString: roles.urls.app, max: 2 }, { name: 'owner', logger });
        try {
          await migrateAsOwner({
            pool: owner,
            url: roles.urls.app,
            roles,
            logger,
            externalEventStore: false,
            demoData: true,
          });
          return 'done';
        } finally {
          await owner.end();
        }
      };
      // Generous: a phase takes about a second here; a hang (a phase waiting on its own pool) never ends.
      const outcome = await Promise.race([
        Promise.all([phase(), phase(), phase()]),
        new Promise((r) => setTimeout(() => r('hung'), 120_000).unref()),
      ]);
      assert.deepEqual(outcome, ['done', 'done', 'done']);
      assert.equal(await can(role('gateway'), 'eventstore.events', 'INSERT'), true);
      assert.equal(await can(role('relay'), 'security.api_keys', 'SELECT'), false);
      assert.equal(await can(role('agents'), 'business.orders', 'SELECT'), true);
    });
  },
);

describe(
  'a system started with the roles',
  { skip: serverUrl ? false : 'TEST_DATABASE_URL is unset (run through scripts/run-tests.mjs int)' },
  () => {
    let system: RunningSystem | undefined;
    let nats: NatsServerHandle | undefined;
    let dataDir: string;
    let dbUrl: string;
    let admin: pg.Pool;

    before(async () => {
      dataDir = mkdtempSync(path.join(os.tmpdir(), 'roles-system-'));
      dbUrl = await ensureDatabase(serverUrl!, `roles_sys_${process.pid}_${Date.now() % 100000}`);
      admin = new pg.Pool({ connectionString: dbUrl, max: 1 });
      nats = await startNatsServer({ port: await freePort(), storeDir: path.join(dataDir, 'nats'), logger });
      const config = parseConfig({
        DATABASE_URL: dbUrl,
        NATS_URL: nats.url,
        GATEWAY_PORT: String(await freePort()),
        LOG_LEVEL: 'silent',
        DATA_DIR: dataDir,
      });
      system = await startSystem(
        config,
        ['relay', 'dispatcher', 'workflows', 'read-models', 'monitor', 'gateway'],
        logger,
        new Supervisor({ logger }),
      );
    });
    after(async () => {
      await system?.stop();
      await admin?.end();
      await nats?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('after start, every backend of the system is a component role: none superuser, none the schema owner', async () => {
      const database = new URL(dbUrl).pathname.slice(1);
      const prefix = database.toLowerCase();
      const sessions = await admin.query<{ usename: string; rolsuper: boolean; n: number }>(
        `select a.usename, r.rolsuper, count(*)::int as n from pg_stat_activity a join pg_roles r on r.rolname = a.usename
        where a.datname = $1 and a.pid <> pg_backend_pid() group by 1, 2 order by 1`,
        [database],
      );
      const users = sessions.rows.map((r) => r.usename);
      const allowed = COMPONENTS.map((c) => `${prefix}_${c}`);
      assert.ok(users.length > 0, 'the system has sessions');
      assert.ok(
        users.every((u) => allowed.includes(u)),
        JSON.stringify(sessions.rows),
      );
      assert.ok(!users.includes(`${prefix}_app`), 'the owner role is not used after the migrations');
      assert.ok(
        sessions.rows.every((r) => !r.rolsuper),
        JSON.stringify(sessions.rows),
      );
      // Each running component logs in as its own role.
      for (const c of ['gateway', 'engine', 'dispatcher', 'relay', 'projections', 'monitor'] as const)
        assert.ok(users.includes(`${prefix}_${c}`), `${c}: ${JSON.stringify(sessions.rows)}`);
      // And the system works under them: the gateway answers ready with every unit up.
      const gw = system!.gatewayUrl!;
      const ready = await fetch(`${gw}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
      assert.deepEqual(system!.supervisor.degraded(), []);
      // The workflow read model's thread logs in as the engine's role (whose schema it writes) and keeps up.
      const thread = await admin.query<{ usename: string }>(
        `select usename from pg_stat_activity where datname = $1 and application_name = 'switchyard-read-models'`,
        [database],
      );
      assert.ok(
        thread.rows.length > 0 && thread.rows.every((r) => r.usename === `${prefix}_engine`),
        JSON.stringify(thread.rows),
      );
    });
  },
);

describe(
  'fallback: a DATABASE_URL login that may not create roles',
  { skip: serverUrl ? false : 'TEST_DATABASE_URL is unset (run through scripts/run-tests.mjs int)' },
  () => {
    let system: RunningSystem | undefined;
    let nats: NatsServerHandle | undefined;
    let dataDir: string;
    let server: pg.Pool;
    const suffix = `${process.pid}_${Date.now() % 100000}`;
    const login = `roles_plain_${suffix}`;
    const database = `roles_plain_db_${suffix}`;
    const password = `pw_${suffix}`;
    const agentNames = [
      'DATA_ANALYST',
      'FINANCIAL_ADVISOR',
      'OPERATIONS_MANAGER',
      'AUTOMATION_SPECIALIST',
      'CONTENT_CREATOR',
      'CUSTOMER_SUCCESS',
    ].map((n) => `AGENT_${n}_PORT`);
    const saved = new Map<string, string | undefined>();

    before(async () => {
      dataDir = mkdtempSync(path.join(os.tmpdir(), 'roles-fallback-'));
      server = new pg.Pool({ connectionString: serverUrl, max: 1 });
      await server.query(`create role ${login} login nosuperuser nocreaterole nocreatedb password '${password}'`);
      await server.query(`create database ${database} owner ${login}`);
      const url = new URL(serverUrl!);
      url.username = login;
      url.password = password;
      url.pathname = `/${database}`;
      nats = await startNatsServer({ port: await freePort(), storeDir: path.join(dataDir, 'nats'), logger });
      // The agents' HTTP contract off its seed ports (the launcher reads AGENT_<NAME>_PORT from the environment).
      for (const a of agentNames) {
        saved.set(a, process.env[a]);
        process.env[a] = String(await freePort());
      }
      const config = parseConfig({
        DATABASE_URL: url.toString(),
        NATS_URL: nats.url,
        GATEWAY_PORT: String(await freePort()),
        LOG_LEVEL: 'silent',
        DATA_DIR: dataDir,
      });
      const roleSet = ['relay', 'agents', 'dispatcher', 'workflows', 'monitor', 'gateway'] as const;
      // Twice: the second start finds the demo data loaded (the loader's other path) and every schema made.
      const first = await startSystem(config, roleSet, logger, new Supervisor({ logger }));
      await first.stop();
      system = await startSystem(config, roleSet, logger, new Supervisor({ logger }));
    });
    after(async () => {
      await system?.stop();
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await nats?.stop();
      await server.query(`drop database if exists ${database} with (force)`).catch(() => undefined);
      await server.query(`drop role if exists ${login}`).catch(() => undefined);
      await server.end();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('runs every component as that login, migrating at each start as before, loads the demo data, and answers ready after a restart', async () => {
      // Client sessions only: an autovacuum worker in the database shows with no user.
      const sessions = await server.query<{ usename: string }>(
        `select distinct usename from pg_stat_activity where datname = $1 and backend_type = 'client backend'`,
        [database],
      );
      assert.deepEqual(
        sessions.rows.map((r) => r.usename),
        [login],
      );
      assert.equal(
        (await server.query(`select 1 from pg_roles where rolname = $1`, [`${database}_gateway`])).rowCount,
        0,
        'no component role was made',
      );
      const ready = await fetch(`${system!.gatewayUrl!}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
      // The components made their schemas themselves, owned by the login.
      const inDb = new URL(serverUrl!);
      inDb.pathname = `/${database}`;
      const owners = await as(
        inDb.toString(),
        `select nspname as s, pg_get_userbyid(nspowner) as o from pg_namespace where nspname in ('eventstore', 'workflows', 'delegation', 'monitoring', 'security') order by 1`,
      );
      assert.deepEqual(
        owners.rows,
        ['delegation', 'eventstore', 'monitoring', 'security', 'workflows'].map((s) => ({ s, o: login })),
      );
      const customers = await as(inDb.toString(), 'select count(*)::int as n from business.customers');
      assert.ok(Number(customers.rows?.[0]?.n) > 0, JSON.stringify(customers));
    });
  },
);

/**
 * The database MCP server attacked the way a security review did it, against real PostgreSQL
 * with the least-privilege roles provisioned as the launcher does (provisionDatabaseRoles):
 * an installation whose internal schemas (security, delegation, eventstore) were made by the
 * superuser before the roles existed, the demo schema made by the app role afterwards.
 * Each attack is refused twice over: by the statement guard in front of the server, and by
 * the reader role itself when the SQL goes to PostgreSQL directly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { DANGEROUS_ROLES, grantDemoAccess, provisionDatabaseRoles, type DatabaseRoles } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { runMcpServer, type RunningMcpServer } from '../runtime.js';
import { fails, httpClient, ok, silentLogger } from '../test-helpers.js';

describe('database MCP server: least privilege (real Postgres, provisioned roles)', () => {
  let adminUrl: string;
  let admin: pg.Pool;
  let roles: DatabaseRoles;
  let reader: RunningMcpServer;
  let writer: RunningMcpServer;
  let rc: Client;
  let wc: Client;
  const marker = path.join(tmpdir(), `dbpriv-${randomBytes(6).toString('hex')}`);

  /** The SQL straight to PostgreSQL as one of our roles, bypassing the server's guard. */
  const direct = async (url: string, sql: string): Promise<{ code?: string; message: string; rows?: unknown[] }> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query(sql);
      return { message: 'ok', rows: r.rows };
    } catch (e) {
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    } finally {
      await c.end();
    }
  };

  before(async () => {
    adminUrl = await freshDatabase('mcp_priv');
    admin = new pg.Pool({ connectionString: adminUrl, max: 3 });
    // An installation from before the roles: internal schemas owned by the superuser.
    await admin.query(`
      CREATE SCHEMA security; CREATE TABLE security.api_keys (id text PRIMARY KEY, role text, secret_hash text);
      INSERT INTO security.api_keys VALUES ('k1', 'admin', 'deadbeef');
      CREATE SCHEMA delegation; CREATE TABLE delegation.external_agents (name text PRIMARY KEY, url text, token text);
      INSERT INTO delegation.external_agents VALUES ('ext', 'http://x', 'agent-token-secret');
      CREATE SCHEMA eventstore; CREATE TABLE eventstore.events (position bigserial PRIMARY KEY, stream_id text, data jsonb);
      INSERT INTO eventstore.events (stream_id, data) VALUES ('s-1', '{"a":1}');
      CREATE FUNCTION eventstore.head() RETURNS bigint LANGUAGE sql AS 'select max(position) from eventstore.events';`);
    const provisioned = await provisionDatabaseRoles(adminUrl, { logger: silentLogger });
    assert.ok(provisioned, 'the superuser provisions the roles');
    roles = provisioned;
    // The demo schema as the launcher makes it: loaded by the app role, then the grants.
    const app = new pg.Pool({ connectionString: roles.urls.app, max: 2 });
    try {
      await app.query(`
        CREATE SCHEMA business;
        CREATE TABLE business.customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
        CREATE TABLE business.subscriptions (id int PRIMARY KEY, customer_id int, plan text);
        CREATE TABLE business.orders (id int PRIMARY KEY, customer_id int, amount numeric);
        INSERT INTO business.customers VALUES (1, 'Acme', 'a@x'), (2, 'Globex', 'g@x'), (3, 'Initech', 'i@x');
        INSERT INTO business.orders VALUES (1, 1, 10), (2, 2, 20);`);
      await grantDemoAccess(app, roles.names);
    } finally {
      await app.end();
    }
    reader = await runMcpServer('database', {
      port: 0,
      host: '127.0.0.1',
      logger: silentLogger,
      env: {
        MCP_AUTH_DISABLED: 'true',
        DATABASE_URL: roles.urls.reader,
        DATABASE_STATEMENT_TIMEOUT_MS: '500',
        LOG_LEVEL: 'silent',
      },
    });
    writer = await runMcpServer('database', {
      port: 0,
      host: '127.0.0.1',
      logger: silentLogger,
      env: {
        MCP_AUTH_DISABLED: 'true',
        DATABASE_URL: roles.urls.writer,
        DATABASE_ALLOW_WRITES: 'true',
        LOG_LEVEL: 'silent',
      },
    });
    rc = await httpClient(reader.url!);
    wc = await httpClient(writer.url!);
  });

  after(async () => {
    rmSync(marker, { force: true });
    await rc?.close();
    await wc?.close();
    await reader?.close();
    await writer?.close();
    await admin?.end();
  });

  it('refuses DO ... COPY TO PROGRAM and COPY TO PROGRAM: no file is written', async () => {
    const attack = `DO $$ begin execute 'copy (select 1) to program ''id > ${marker}'''; end $$`;
    const e = await fails(rc, 'query', { sql: attack });
    assert.equal(e.code, 'forbidden', e.text);
    assert.match(e.message, /\bDO\b/);
    const copy = await fails(rc, 'query', { sql: `COPY (SELECT 1) TO PROGRAM 'id > ${marker}'` });
    assert.equal(copy.code, 'forbidden', copy.text);
    const explained = await fails(rc, 'explain', { sql: attack });
    assert.equal(explained.code, 'forbidden');
    // Past the guard, the reader role itself may not run programs on the server.
    const raw = await direct(roles.urls.reader, attack);
    assert.equal(raw.code, '42501', raw.message);
    assert.equal(existsSync(marker), false, 'no file written by the database server');
  });

  it('refuses server-file and extension functions: pg_read_file, pg_ls_dir, lo_import, dblink, set_config', async () => {
    const attacks = [
      `select pg_read_file('/etc/passwd')`,
      `select * from pg_catalog.pg_ls_dir('.')`,
      `select lo_import('/etc/passwd')`,
      `select pg_read_binary_file('/etc/passwd')`,
      `select * from dblink('host=127.0.0.1', 'select 1') as t(x int)`,
      `select set_config('statement_timeout', '0', false)`,
      `select count(*) from business.customers where name = (select pg_read_file('/etc/passwd'))`,
    ];
    for (const sql of attacks) {
      const e = await fails(rc, 'query', { sql });
      assert.equal(e.code, 'forbidden', `${sql}: ${e.text}`);
      assert.doesNotMatch(e.text, /root:x:/);
    }
    for (const sql of [
      `select pg_read_file('/etc/passwd')`,
      `select pg_ls_dir('.')`,
      `select lo_import('/etc/passwd')`,
    ]) {
      const raw = await direct(roles.urls.reader, sql);
      assert.equal(raw.code, '42501', `${sql} as the reader role: ${raw.message}`);
    }
    const fns = [
      'pg_read_file(text)',
      'pg_read_binary_file(text)',
      'pg_ls_dir(text)',
      'lo_import(text)',
      'lo_export(oid, text)',
      'pg_stat_file(text)',
    ];
    for (const who of [roles.names.reader, roles.names.writer, roles.names.app]) {
      for (const fn of fns) {
        const r = await admin.query('select has_function_privilege($1, $2, $3) as ok', [who, fn, 'EXECUTE']);
        assert.equal(r.rows[0].ok, false, `${who} may not execute ${fn}`);
      }
    }
  });

  it('refuses the internal schemas and catalog secrets: api keys, agent tokens, the event store, the role passwords', async () => {
    for (const sql of [
      'select * from security.api_keys',
      'select token from delegation.external_agents',
      'select * from eventstore.events',
      'select eventstore.head()',
      'select * from switchyard_roles.passwords',
      'select rolpassword from pg_catalog.pg_authid',
    ]) {
      const e = await fails(rc, 'query', { sql });
      assert.equal(e.code, 'forbidden', `${sql}: ${e.text}`);
      assert.doesNotMatch(e.text, /deadbeef|agent-token-secret|SCRAM-SHA-256/);
    }
    const raw = await direct(roles.urls.reader, 'select * from security.api_keys');
    assert.equal(raw.code, '42501');
    const schemas = await ok(rc, 'list_schemas');
    assert.deepEqual(schemas.schemas, ['business', 'public']);
    const hidden = await ok(rc, 'list_tables', { schema: 'security' });
    assert.deepEqual(hidden.tables, []);
  });

  it('still answers the demo queries', async () => {
    const r = await ok(rc, 'query', { sql: 'select count(*)::int as n from business.customers' });
    assert.deepEqual(r.rows, [{ n: 3 }]);
    const j = await ok(rc, 'query', {
      sql: "select lower(c.name) as name, coalesce(sum(o.amount), 0)::float8 as total, date_trunc('month', now()) is not null as t from business.customers c left join business.orders o on o.customer_id = c.id group by c.name order by c.name",
    });
    assert.equal(j.rows.length, 3);
    assert.deepEqual(j.rows[0], { name: 'acme', total: 10, t: true });
  });

  it('the roles are least privilege in PostgreSQL itself: no superuser, no server-file or program role', async () => {
    for (const who of [roles.names.reader, roles.names.writer, roles.names.app]) {
      const r = await admin.query(
        'select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin from pg_roles where rolname = $1',
        [who],
      );
      assert.deepEqual(
        r.rows[0],
        {
          rolsuper: false,
          rolcreaterole: false,
          rolcreatedb: false,
          rolreplication: false,
          rolbypassrls: false,
          rolcanlogin: true,
        },
        who,
      );
      for (const dangerous of DANGEROUS_ROLES) {
        const m = await admin.query('select pg_has_role($1, $2, $3) as m', [who, dangerous, 'MEMBER']);
        assert.equal(m.rows[0].m, false, `${who} member of ${dangerous}`);
      }
    }
    const asReader = await direct(
      roles.urls.reader,
      'select current_user as u, (select rolsuper from pg_roles where rolname = current_user) as s',
    );
    assert.deepEqual(asReader.rows, [{ u: roles.names.reader, s: false }]);
    // The application role got the internal schemas (made by the superuser before the roles) and can use them...
    const owners = await admin.query(
      `select nspname, pg_get_userbyid(nspowner) as owner from pg_namespace where nspname in ('security', 'delegation', 'eventstore', 'business') order by 1`,
    );
    assert.ok(
      owners.rows.every((o) => o.owner === roles.names.app),
      JSON.stringify(owners.rows),
    );
    assert.deepEqual((await direct(roles.urls.app, 'select eventstore.head()::int as h')).rows, [{ h: 1 }]);
    // ...but not the role passwords, and no server files either.
    assert.equal((await direct(roles.urls.app, 'select * from switchyard_roles.passwords')).code, '42501');
    assert.equal((await direct(roles.urls.app, `select pg_read_file('/etc/passwd')`)).code, '42501');
  });

  it('a statement beyond statement_timeout is cancelled and answered as a timeout', async () => {
    const e = await fails(rc, 'query', { sql: 'select pg_sleep(5)' });
    assert.equal(e.code, 'timeout', e.text);
    assert.equal(e.details['sqlstate'], '57014');
    const r = await ok(rc, 'query', { sql: 'select 1 as one' });
    assert.deepEqual(r.rows, [{ one: 1 }]);
  });

  it('the reader refuses writes before they reach the server, including a write hidden in a CTE', async () => {
    for (const sql of [
      'insert into business.customers values (9, $1, null)',
      'with d as (delete from business.orders returning id) select count(*) from d',
    ]) {
      const e = await fails(rc, 'query', { sql, params: sql.includes('$1') ? ['x'] : [] });
      assert.equal(e.code, 'forbidden', e.text);
      assert.match(e.message, /writes are not allowed/);
    }
    assert.equal((await admin.query('select count(*)::int as n from business.orders')).rows[0].n, 2);
  });

  it('the writer writes the onboarding tables only', async () => {
    const ins = await ok(wc, 'query', {
      sql: 'insert into business.customers (id, name, email) values ($1, $2, $3) returning id',
      params: [10, 'New', 'n@x'],
    });
    assert.deepEqual(ins.rows, [{ id: 10 }]);
    const del = await fails(wc, 'query', { sql: 'delete from business.orders' });
    assert.equal(del.code, 'forbidden', del.text);
    assert.match(del.message, /permission denied/);
    const sec = await fails(wc, 'query', { sql: 'select * from security.api_keys' });
    assert.equal(sec.code, 'forbidden');
    const doBlock = await fails(wc, 'query', { sql: `DO $$ begin delete from business.orders; end $$` });
    assert.equal(doBlock.code, 'forbidden');
    const ddl = await fails(wc, 'query', { sql: 'drop table business.orders' });
    assert.equal(ddl.code, 'forbidden');
    assert.equal((await admin.query('select count(*)::int as n from business.orders')).rows[0].n, 2);
    await admin.query('delete from business.customers where id = 10');
  });

  it('maps real PostgreSQL errors by SQLSTATE class: 22 and 42 are validation, 23 is illegal_state (409)', async () => {
    const div = await fails(rc, 'query', { sql: 'select 1/0' });
    assert.deepEqual([div.code, div.details['sqlstate']], ['validation', '22012']);
    const missing = await fails(rc, 'query', { sql: 'select * from business.nope' });
    assert.deepEqual([missing.code, missing.details['sqlstate']], ['validation', '42P01']);
    const dup = await fails(wc, 'query', {
      sql: 'insert into business.customers (id, name) values (1, $1)',
      params: ['dup'],
    });
    assert.deepEqual([dup.code, dup.details['sqlstate']], ['illegal_state', '23505']);
    const notNull = await fails(wc, 'query', { sql: 'insert into business.customers (id, name) values (11, null)' });
    assert.deepEqual([notNull.code, notNull.details['sqlstate']], ['illegal_state', '23502']);
  });

  it('an external DATABASE_URL: a CREATEROLE owner of the database provisions; a plain login falls back with a warning', async () => {
    const tag = randomBytes(4).toString('hex');
    const ownerPw = randomBytes(12).toString('hex');
    await admin.query(`create role ext_owner_${tag} login createrole password '${ownerPw}'`);
    await admin.query(`create database ext_db_${tag} owner ext_owner_${tag}`);
    const u = new URL(adminUrl);
    u.pathname = `/ext_db_${tag}`;
    u.username = `ext_owner_${tag}`;
    u.password = ownerPw;
    const ext = await provisionDatabaseRoles(u.toString(), { logger: silentLogger });
    assert.ok(ext, 'a CREATEROLE user owning the database provisions the roles');
    const asReader = await direct(
      ext.urls.reader,
      `select current_user as u, (select rolsuper from pg_roles where rolname = current_user) as s`,
    );
    assert.deepEqual(asReader.rows, [{ u: ext.names.reader, s: false }]);
    assert.equal((await direct(ext.urls.reader, `select pg_read_file('/etc/passwd')`)).code, '42501');

    const plainPw = randomBytes(12).toString('hex');
    await admin.query(`create role ext_plain_${tag} login password '${plainPw}'`);
    u.username = `ext_plain_${tag}`;
    u.password = plainPw;
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    assert.equal(await provisionDatabaseRoles(u.toString(), { logger }), undefined);
    assert.ok(
      lines.some((l) => /"level":40/.test(l) && /may not create roles/.test(l)),
      lines.join(''),
    );
    assert.ok(
      lines.every((l) => !l.includes(plainPw)),
      'no password in the log',
    );
  });

  it('provisioning again keeps the roles and their passwords working (a restart)', async () => {
    const again = await provisionDatabaseRoles(adminUrl, { logger: silentLogger });
    assert.ok(again);
    assert.deepEqual(again.names, roles.names);
    assert.equal(again.urls.reader, roles.urls.reader);
    const r = await ok(rc, 'query', { sql: 'select count(*)::int as n from business.customers' });
    assert.deepEqual(r.rows, [{ n: 3 }]);
    assert.deepEqual((await direct(again.urls.app, 'select 1 as x')).rows, [{ x: 1 }]);
  });
});

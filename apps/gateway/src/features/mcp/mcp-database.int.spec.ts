/**
 * The database MCP servers behind the gateway as the launcher wires them: the reader
 * (`database`, reader role, read-only) and the writer (`database_writer`, writer role), on
 * least-privilege roles provisioned in a fresh database, through NATS and the connectors, with
 * API keys on. Two gateways share them: one with DATABASE_ALLOW_WRITES unset, one with it true.
 * Checks the writer rule (admin key and the flag) and that every PostgreSQL error class answers
 * its status, never 500.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { parseServerConfig, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { PostgresEventStore } from '@switchyard/event-store';
import { runMcpServer, type RunningMcpServer } from '@switchyard/mcp-servers';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, grantDemoAccess, provisionDatabaseRoles, type DatabaseRoles } from '@switchyard/platform';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import { createGateway, type Gateway } from '../../gateway.js';
import { WorkflowsFeatureModule } from '../workflows/workflows.module.js';
import { McpFeatureModule } from './mcp.module.js';

const logger = createLogger('mcp-database-test', process.env.LOG_LEVEL ?? 'silent');
const adminKey = `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;

describe('database servers behind the gateway: least-privilege roles, the writer rule, SQLSTATE statuses', () => {
  let roles: DatabaseRoles;
  let admin: pg.Pool;
  let appPool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let reader: RunningMcpServer;
  let writer: RunningMcpServer;
  let connectors: RunningConnectors;
  let closedGw: Gateway;
  let openGw: Gateway;
  let closedBase: string;
  let openBase: string;
  let operatorKey: string;

  const post = async (base: string, key: string, p: string, body: unknown) => {
    const res = await fetch(`${base}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: (await res.json()) as Record<string, any>,
    };
  };
  const customers = async () =>
    (await admin.query('select count(*)::int as n from business.customers')).rows[0].n as number;

  before(async () => {
    const adminUrl = await freshDatabase('mcp_dbpriv');
    admin = new pg.Pool({ connectionString: adminUrl, max: 3 });
    const provisioned = await provisionDatabaseRoles(adminUrl, { logger });
    assert.ok(provisioned);
    roles = provisioned;
    appPool = new pg.Pool({ connectionString: roles.urls.app, max: 6 });
    await appPool.query(`
      create schema business;
      create table business.customers (id int primary key, name text not null, email text unique);
      create table business.subscriptions (id int primary key, customer_id int, plan text);
      insert into business.customers values (1, 'Acme', 'a@x'), (2, 'Globex', 'g@x');`);
    await grantDemoAccess(appPool, roles.names);
    // The gateway and the event store as the launcher runs them: as the app role.
    store = new PostgresEventStore({ pool: appPool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'mcp-database-test', logger });
    reader = await runMcpServer('database', {
      port: 0,
      host: '127.0.0.1',
      logger,
      env: {
        MCP_AUTH_DISABLED: 'true',
        DATABASE_URL: roles.urls.reader,
        DATABASE_STATEMENT_TIMEOUT_MS: '1500',
        LOG_LEVEL: 'silent',
      },
    });
    writer = await runMcpServer('database', {
      port: 0,
      host: '127.0.0.1',
      logger,
      env: {
        MCP_AUTH_DISABLED: 'true',
        DATABASE_URL: roles.urls.writer,
        DATABASE_ALLOW_WRITES: 'true',
        LOG_LEVEL: 'silent',
      },
    });
    const fast = {
      timeouts: { connect_ms: 5_000, call_ms: 10_000 },
      retry: { max_attempts: 1 },
      breaker: { consecutive_failures: 50, half_open_after_ms: 500 },
    };
    connectors = await startConnectors({
      nats: nc,
      registry: [
        parseServerConfig({
          name: 'database',
          role: 'database',
          transport: { kind: 'http', url: reader.url! },
          ...fast,
        }),
        parseServerConfig({
          name: 'database_writer',
          role: 'database',
          transport: { kind: 'http', url: writer.url! },
          ...fast,
        }),
      ],
      logger,
    });
    const auth = { enabled: true, adminKey };
    const modules = [McpFeatureModule, WorkflowsFeatureModule];
    closedGw = await createGateway(
      { eventStore: store, pgPool: appPool, nats: nc, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
      { modules, auth },
    );
    closedBase = (await closedGw.listen(0, '127.0.0.1')).url;
    openGw = await createGateway(
      {
        eventStore: store,
        pgPool: appPool,
        nats: nc,
        logger,
        config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1', DATABASE_ALLOW_WRITES: true },
      },
      { modules, auth },
    );
    openBase = (await openGw.listen(0, '127.0.0.1')).url;
    const made = await post(closedBase, adminKey, '/api/v1/admin/api-keys', { name: 'ops', role: 'operator' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    operatorKey = made.body.key as string;
    await until(
      'the reader answers through the connectors',
      async () =>
        (
          await post(closedBase, operatorKey, '/api/v1/integration/mcp/database/query', {
            query: 'select 1 as one',
            params: [],
          })
        ).status === 200,
    );
  });

  after(async () => {
    await closedGw?.close();
    await openGw?.close();
    await connectors?.stop();
    await reader?.close();
    await writer?.close();
    if (nc) await closeNats(nc);
    await store?.close();
    await appPool?.end();
    await admin?.end();
  });

  it('the reader answers operators on the demo schema and refuses the attacks', async () => {
    const ok = await post(closedBase, operatorKey, '/api/v1/integration/mcp/database/query', {
      query: 'select count(*)::int as n from business.customers',
      params: [],
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.result.rows, [{ n: 2 }]);
    // A row cap past the server's configured ceiling (DATABASE_MAX_ROWS, 1000) is the caller's
    // input the server's schema refused: 400, not a tool's own failure (422).
    const over = await post(closedBase, operatorKey, '/api/v1/integration/mcp/database/query', {
      query: 'select 1',
      params: [],
      max_rows: 5_000,
    });
    assert.equal(over.status, 400, JSON.stringify(over.body));
    assert.equal(over.body.code, 'validation');
    assert.match(over.body.detail, /max_rows/);
    for (const query of [
      "DO $$ begin execute 'copy (select 1) to program ''id > /tmp/switchyard-dbpriv'''; end $$",
      "select pg_read_file('/etc/passwd')",
      'select * from security.api_keys',
      'select * from eventstore.events',
    ]) {
      const r = await post(closedBase, operatorKey, '/api/v1/integration/mcp/database/query', { query, params: [] });
      assert.equal(r.status, 403, `${query}: ${JSON.stringify(r.body)}`);
      assert.match(r.type, /problem\+json/);
      assert.doesNotMatch(JSON.stringify(r.body), /root:x:|sy_/);
    }
  });

  it('an unqualified demo table resolves on both servers (the business schema is on their search_path); SET stays refused', async () => {
    // The specification's example body, as written: `params` an empty object.
    const seed = await post(closedBase, operatorKey, '/api/v1/integration/mcp/database/query', {
      query: 'SELECT COUNT(*) FROM customers',
      params: {},
    });
    assert.equal(seed.status, 200, JSON.stringify(seed.body));
    assert.deepEqual(seed.body.result.rows, [{ count: String(await customers()) }]);
    const viaWriter = await post(openBase, adminKey, '/api/v1/integration/mcp/call', {
      server: 'database_writer',
      tool: 'query',
      arguments: { sql: 'select count(*)::int as n from customers', params: [] },
    });
    assert.equal(viaWriter.status, 200, JSON.stringify(viaWriter.body));
    assert.equal(
      JSON.stringify(viaWriter.body).includes(`"n":${await customers()}`),
      true,
      JSON.stringify(viaWriter.body),
    );
    const set = await post(closedBase, operatorKey, '/api/v1/integration/mcp/database/query', {
      query: 'SET search_path = public',
      params: [],
    });
    assert.equal(set.status, 400, JSON.stringify(set.body));
    assert.match(String(set.body.detail), /SET\/RESET/);
  });

  it('database_writer through POST /mcp/call: 403 for an operator, 403 for an admin while writes are disabled, 200 for an admin with DATABASE_ALLOW_WRITES', async () => {
    const insert = (id: number) => ({
      server: 'database_writer',
      tool: 'query',
      arguments: {
        sql: 'insert into business.customers (id, name) values ($1, $2) returning id',
        params: [id, `c${id}`],
      },
    });
    const before = await customers();
    const asOperator = await post(openBase, operatorKey, '/api/v1/integration/mcp/call', insert(10));
    assert.equal(asOperator.status, 403, JSON.stringify(asOperator.body));
    assert.match(asOperator.body.detail, /admin role/);
    const closed = await post(closedBase, adminKey, '/api/v1/integration/mcp/call', insert(11));
    assert.equal(closed.status, 403, JSON.stringify(closed.body));
    assert.match(closed.body.detail, /DATABASE_ALLOW_WRITES/);
    const operatorClosed = await post(closedBase, operatorKey, '/api/v1/integration/mcp/call', {
      server: 'database_writer',
      tool: 'list_schemas',
      arguments: {},
    });
    assert.equal(operatorClosed.status, 403);
    assert.equal(await customers(), before, 'nothing written');
    const open = await post(openBase, adminKey, '/api/v1/integration/mcp/call', insert(12));
    assert.equal(open.status, 200, JSON.stringify(open.body));
    assert.deepEqual(open.body.result.rows, [{ id: 12 }]);
    assert.equal(await customers(), before + 1);
    // The writer role, not the gateway, keeps even an admin off the other schemas.
    const beyond = await post(openBase, adminKey, '/api/v1/integration/mcp/call', {
      server: 'database_writer',
      tool: 'query',
      arguments: { sql: 'select * from security.api_keys', params: [] },
    });
    assert.equal(beyond.status, 403, JSON.stringify(beyond.body));
    assert.match(beyond.body.detail, /permission denied/);
    await admin.query('delete from business.customers where id = 12');
  });

  it('an ad-hoc workflow naming database_writer follows the same rule', async () => {
    const definition = {
      id: 'sneaky',
      steps: [
        { id: 'w', uses: 'mcp:database_writer/query', with: { sql: 'delete from business.customers', params: [] } },
      ],
    };
    const asOperator = await post(openBase, operatorKey, '/api/v1/integration/agents/workflow', {
      definition,
      input: {},
    });
    assert.equal(asOperator.status, 403, JSON.stringify(asOperator.body));
    const closed = await post(closedBase, adminKey, '/api/v1/integration/agents/workflow', { definition, input: {} });
    assert.equal(closed.status, 403, JSON.stringify(closed.body));
    assert.equal(await customers(), 2);
  });

  it('answers each PostgreSQL error class with its status, never 500', async () => {
    const q = (base: string, key: string, query: string) =>
      post(base, key, '/api/v1/integration/mcp/database/query', { query, params: [] });
    const cases: [string, number, string][] = [
      ['select 1/0', 400, '22012'],
      ["select 'x'::int", 400, '22P02'],
      ['select * from business.nope', 400, '42P01'],
      ['select nope from business.customers', 400, '42703'],
      ['select (select id from business.customers)', 400, '21000'],
      ['select * from business.customers for update', 403, '25006'],
    ];
    for (const [query, status, sqlstate] of cases) {
      const r = await q(closedBase, operatorKey, query);
      assert.equal(r.status, status, `${query}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.sqlstate, sqlstate, `${query}: ${JSON.stringify(r.body)}`);
      assert.match(r.type, /problem\+json/);
    }
    // 23xxx through the writer: 409.
    const dup = await post(openBase, adminKey, '/api/v1/integration/mcp/call', {
      server: 'database_writer',
      tool: 'query',
      arguments: { sql: 'insert into business.customers (id, name) values (1, $1)', params: ['dup'] },
    });
    assert.equal(dup.status, 409, JSON.stringify(dup.body));
    assert.equal(dup.body.sqlstate, '23505');
    // 57014 (statement_timeout): a timeout, 504.
    const slow = await q(closedBase, operatorKey, 'select pg_sleep(10)');
    assert.equal(slow.status, 504, JSON.stringify(slow.body));
    assert.equal(slow.body.sqlstate, '57014');
    // 57P01 (the backend terminated under the query): 503.
    const running = q(closedBase, operatorKey, 'select pg_sleep(1.2)');
    let terminated = false;
    await until(
      'the reader backend running the query is terminated',
      async () => {
        const r = await admin.query(
          `select pg_terminate_backend(pid) as t from pg_stat_activity where usename = $1 and query like '%pg_sleep(1.2)%' and state = 'active'`,
          [roles.names.reader],
        );
        terminated = r.rows.some((x) => x.t === true);
        return terminated;
      },
      5_000,
      20,
    );
    const gone = await running;
    assert.equal(gone.status, 503, JSON.stringify(gone.body));
    assert.equal(gone.body.sqlstate, '57P01');
    const after = await q(closedBase, operatorKey, 'select 1 as one');
    assert.equal(after.status, 200, 'the server recovers with a fresh connection');
  });
});

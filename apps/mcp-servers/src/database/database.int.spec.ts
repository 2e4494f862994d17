import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { freshDatabase } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { RESULT_MAX_DEPTH } from '../common/tools.js';
import { fails, httpClient, ok, silentLogger } from '../test-helpers.js';
import { createDatabaseServer } from './server.js';

describe('database MCP server (real Postgres, Streamable HTTP)', () => {
  let pool: pg.Pool;
  let ro: McpHttpServerHandle;
  let rw: McpHttpServerHandle;
  let roClient: Client;
  let rwClient: Client;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('mcp_db'), max: 4 });
    await pool.query(`
      CREATE TABLE public.users (id int PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL DEFAULT now());
      CREATE UNIQUE INDEX users_email ON public.users (email);
      INSERT INTO public.users (id, name, email) SELECT g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, 25) g;
      CREATE SCHEMA sales;
      CREATE TABLE sales.orders (id bigint, user_id int REFERENCES public.users(id), amount numeric(10,2), PRIMARY KEY (id, user_id));`);
    ro = await startMcpHttpServer({
      name: 'database',
      serverFactory: () => createDatabaseServer({ pool, logger: silentLogger, maxRows: 10 }),
      port: 0,
      logger: silentLogger,
    });
    rw = await startMcpHttpServer({
      name: 'database-rw',
      serverFactory: () => createDatabaseServer({ pool, logger: silentLogger, allowWrites: true }),
      port: 0,
      logger: silentLogger,
    });
    roClient = await httpClient(ro.url);
    rwClient = await httpClient(rw.url);
  });

  after(async () => {
    await roClient?.close();
    await rwClient?.close();
    await ro?.close();
    await rw?.close();
    await pool?.end();
  });

  it('lists its tools', async () => {
    const listed = (await roClient.listTools()).tools;
    const tools = listed.map((t) => t.name).sort();
    assert.deepEqual(tools, ['describe_table', 'explain', 'list_schemas', 'list_tables', 'query']);
    // The input schemas (built once, shared by the per-request servers) list their fields and limits.
    const query = listed.find((t) => t.name === 'query')!.inputSchema as {
      properties: Record<string, { maximum?: number }>;
      required?: string[];
    };
    assert.deepEqual(Object.keys(query.properties).sort(), ['max_rows', 'params', 'sql']);
    assert.deepEqual(query.required, ['sql']);
    assert.equal(typeof query.properties['max_rows']!.maximum, 'number');
    const describe = listed.find((t) => t.name === 'describe_table')!.inputSchema as {
      properties: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(describe.properties).sort(), ['schema', 'table']);
  });

  it('runs a select with positional parameters', async () => {
    const r = await ok(roClient, 'query', {
      sql: 'SELECT id, name FROM users WHERE id = $1 OR name = $2 ORDER BY id',
      params: [3, 'user7'],
    });
    assert.deepEqual(r.rows, [
      { id: 3, name: 'user3' },
      { id: 7, name: 'user7' },
    ]);
    assert.equal(r.truncated, false);
    assert.deepEqual(
      r.columns.map((c: { name: string }) => c.name),
      ['id', 'name'],
    );
  });

  it('keeps an injection attempt in a parameter inert', async () => {
    const evil = "x'; DROP TABLE users; --";
    const r = await ok(rwClient, 'query', {
      sql: 'SELECT count(*)::int AS n FROM users WHERE name = $1',
      params: [evil],
    });
    assert.equal(r.rows[0].n, 0);
    const still = await pool.query('SELECT count(*)::int AS n FROM users');
    assert.equal(still.rows[0].n, 25);
  });

  it('refuses several statements in one call (no piggy-backed writes)', async () => {
    const e = await fails(rwClient, 'query', { sql: 'SELECT 1; DELETE FROM users' });
    assert.match(e.message, /multiple commands|cannot insert multiple/i);
    assert.equal((await pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 25);
  });

  it('refuses a write without the allow flag, with a clear error', async () => {
    const e = await fails(roClient, 'query', { sql: 'DELETE FROM users WHERE id = $1', params: [1] });
    assert.equal(e.code, 'forbidden');
    assert.match(e.message, /writes are not allowed/);
    assert.match(e.text, /^\[forbidden\]/);
    const sneaky = await fails(roClient, 'query', { sql: '/* hi */ COMMIT' });
    assert.equal(sneaky.code, 'validation');
    assert.equal((await pool.query('SELECT count(*)::int AS n FROM users WHERE id = 1')).rows[0].n, 1);
  });

  it('performs a write when started with allowWrites', async () => {
    const r = await ok(rwClient, 'query', {
      sql: 'INSERT INTO users (id, name) VALUES ($1, $2) RETURNING id, name',
      params: [100, 'new'],
    });
    assert.deepEqual(r.rows, [{ id: 100, name: 'new' }]);
    const u = await ok(rwClient, 'query', {
      sql: 'UPDATE users SET email = $1 WHERE id = $2',
      params: ['n@example.com', 100],
    });
    assert.equal(u.command, 'UPDATE');
    assert.equal(u.row_count, 1);
    const seen = await pool.query('SELECT email FROM users WHERE id = 100');
    assert.equal(seen.rows[0].email, 'n@example.com');
    await pool.query('DELETE FROM users WHERE id = 100');
  });

  it('truncates at the row limit and says so', async () => {
    const r = await ok(roClient, 'query', { sql: 'SELECT id FROM users ORDER BY id' });
    assert.equal(r.rows.length, 10);
    assert.equal(r.truncated, true);
    const small = await ok(roClient, 'query', { sql: 'SELECT id FROM users ORDER BY id', max_rows: 3 });
    assert.deepEqual(
      small.rows.map((x: { id: number }) => x.id),
      [1, 2, 3],
    );
    assert.equal(small.truncated, true);
    const exact = await ok(roClient, 'query', { sql: 'SELECT id FROM users WHERE id <= $1', params: [10] });
    assert.equal(exact.rows.length, 10);
    assert.equal(exact.truncated, false);
  });

  it('reports a statement timeout as a coded error', async () => {
    const slow = await startMcpHttpServer({
      name: 'db-slow',
      serverFactory: () => createDatabaseServer({ pool, logger: silentLogger, statementTimeoutMs: 200 }),
      port: 0,
      logger: silentLogger,
    });
    const c = await httpClient(slow.url);
    try {
      const e = await fails(c, 'query', { sql: 'SELECT pg_sleep(5)' });
      assert.equal(e.code, 'timeout');
    } finally {
      await c.close();
      await slow.close();
    }
  });

  it('refuses a result larger than its byte cap (one huge value or many rows) and goes on serving', async () => {
    const capped = await startMcpHttpServer({
      name: 'db-capped',
      // A statement timeout far above what the server needs to build the value, so a busy
      // machine cannot turn the byte cap's refusal into a timeout.
      serverFactory: () =>
        createDatabaseServer({ pool, logger: silentLogger, maxResultBytes: 64 * 1024, statementTimeoutMs: 120_000 }),
      port: 0,
      logger: silentLogger,
    });
    const c = await httpClient(capped.url);
    try {
      const rssBefore = process.memoryUsage().rss;
      // 64 MB in one value: the row cap cannot bound it; the byte cap stops it on the wire.
      // Buffered whole, pg would hold the 64 MB message and then its 64 MB string; cut at
      // 64 KB the process grows by far less than one copy.
      const huge = await fails(c, 'query', { sql: "SELECT repeat('x', 64000000) AS v" });
      assert.equal(huge.code, 'result_too_large');
      assert.match(huge.message, /DATABASE_MAX_RESULT_BYTES/);
      const grew = process.memoryUsage().rss - rssBefore;
      assert.ok(grew < 32 * 1024 * 1024, `the process grew ${Math.round(grew / 1048576)} MB`);
      const wide = await fails(c, 'query', { sql: "SELECT repeat('y', 1000) AS v FROM generate_series(1, 500)" });
      assert.equal(wide.code, 'result_too_large');
      // Under the cap, and on the connections that remain, the same tool answers.
      const fits = await ok(c, 'query', { sql: "SELECT repeat('z', 1000) AS v FROM generate_series(1, 20)" });
      assert.equal(fits.rows.length, 20);
      for (let i = 0; i < 5; i++) assert.equal((await ok(c, 'query', { sql: 'SELECT 1 AS one' })).rows[0].one, 1);
    } finally {
      await c.close();
      await capped.close();
    }
  });

  it('refuses a result nested past RESULT_MAX_DEPTH as result_too_large naming the limit (not internal); 1,000 deep passes', async () => {
    const nested = (n: number) => ({ sql: `SELECT (repeat('[', ${n}) || repeat(']', ${n}))::jsonb AS v` });
    // (PostgreSQL itself refuses to build much deeper jsonb: "stack depth limit exceeded".)
    for (const depth of [6_000, RESULT_MAX_DEPTH]) {
      const deep = await fails(roClient, 'query', nested(depth));
      assert.equal(deep.code, 'result_too_large', `${depth}: ${deep.text}`);
      assert.equal(deep.details['reason'], 'result_too_deep');
      assert.equal(deep.details['max_depth'], RESULT_MAX_DEPTH);
      assert.match(deep.message, new RegExp(`nests deeper than ${RESULT_MAX_DEPTH} levels`));
    }
    // {rows: [{v: ...}]} adds three levels to the value's own.
    let v: unknown = (await ok(roClient, 'query', nested(1_000))).rows[0].v;
    let depth = 0;
    while (Array.isArray(v)) [v, depth] = [v[0], depth + 1];
    assert.equal(depth, 1_000);
    assert.equal((await ok(roClient, 'query', nested(RESULT_MAX_DEPTH - 3))).rows.length, 1);
    assert.equal((await ok(roClient, 'query', { sql: 'SELECT 1 AS one' })).rows[0].one, 1);
  });

  it('lists schemas and tables', async () => {
    const s = await ok(roClient, 'list_schemas');
    assert.ok(s.schemas.includes('public') && s.schemas.includes('sales'));
    assert.ok(!s.schemas.includes('pg_catalog'));
    const t = await ok(roClient, 'list_tables', { schema: 'sales' });
    assert.deepEqual(
      t.tables.map((x: { name: string }) => x.name),
      ['orders'],
    );
  });

  it('describes a table: columns, nullability, primary key, indexes', async () => {
    const d = await ok(roClient, 'describe_table', { schema: 'public', table: 'users' });
    const cols = Object.fromEntries(
      d.columns.map((c: { name: string; type: string; nullable: boolean }) => [c.name, c]),
    );
    assert.equal(cols.id.type, 'integer');
    assert.equal(cols.id.nullable, false);
    assert.equal(cols.email.nullable, true);
    assert.deepEqual(d.primary_key, ['id']);
    const idx = d.indexes.map((i: { name: string }) => i.name).sort();
    assert.deepEqual(idx, ['users_email', 'users_pkey']);
    const o = await ok(roClient, 'describe_table', { schema: 'sales', table: 'orders' });
    assert.deepEqual(o.primary_key, ['id', 'user_id']);
    const missing = await fails(roClient, 'describe_table', { table: 'nope' });
    assert.equal(missing.code, 'not_found');
  });

  it('explains a parameterised query as JSON without running it', async () => {
    const r = await ok(roClient, 'explain', { sql: 'SELECT * FROM users WHERE id = $1', params: [5] });
    assert.ok(Array.isArray(r.plan));
    assert.ok(r.plan[0].Plan['Node Type']);
    const w = await fails(roClient, 'explain', { sql: 'DELETE FROM users WHERE id = $1', params: [1], analyze: true });
    assert.equal(w.code, 'forbidden');
  });

  it('exposes table schemas as resources', async () => {
    const list = await roClient.listResources();
    const uri = list.resources.find((r) => r.name === 'public.users')?.uri;
    assert.ok(uri, 'public.users resource listed');
    const read = await roClient.readResource({ uri });
    const body = JSON.parse((read.contents[0] as { text: string }).text);
    assert.deepEqual(body.primary_key, ['id']);
  });

  it('turns bad SQL into a validation error and stays up', async () => {
    const e = await fails(roClient, 'query', { sql: 'SELEC 1' });
    assert.equal(e.code, 'validation');
    const r = await ok(roClient, 'query', { sql: 'SELECT 1 AS one' });
    assert.equal(r.rows[0].one, 1);
  });
});

import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type pg from 'pg';
import { AppError, type Logger } from '@switchyard/platform';
import { tool } from '../common/tools.js';
import { sharedJsonSchemaValidator } from '../common/validator.js';
import { LimitedQuery, type LimitedOutcome } from './limited-query.js';
import { mapPgError } from './pg-errors.js';
import { preloadParser, vetStatement } from './statement-vetting.js';

export { mapPgError } from './pg-errors.js';

export interface DatabaseServerDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Writes are refused (read-only transaction) unless this is explicitly true. */
  readonly allowWrites?: boolean;
  /** Per-statement timeout, set with SET LOCAL inside the call's transaction. Default 10 s. */
  readonly statementTimeoutMs?: number;
  /** Default and ceiling of rows returned by `query`. Default 1000. */
  readonly maxRows?: number;
  /**
   * Most bytes one `query` answer may take off the wire (rows as PostgreSQL sends them). Past
   * it the connection is dropped, which stops the server sending, and the call fails
   * `result_too_large`. Default 1 MiB (the NATS reply that carries a result holds no more).
   */
  readonly maxResultBytes?: number;
}

/** The byte cap's default: what one NATS reply holds. */
export const DEFAULT_MAX_RESULT_BYTES = 1_048_576;

/** First keyword of a statement, skipping whitespace and comments. */
export function leadingKeyword(sql: string): string {
  const stripped = sql.replace(/^(\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/)+/, '');
  return (/^[a-z]+/i.exec(stripped)?.[0] ?? '').toLowerCase();
}

/** JSON-safe cell values: bytea as \x-hex, bigint as string. */
function jsonSafe(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** Pooled connections whose session already carries the `query` tool's settings (value: the SET that ran). */
const sessionSettings = new WeakMap<object, string>();

/**
 * The `query` tool's statement, in one round trip on a pooled connection. The connection's
 * session is set up once (READ ONLY by default unless `write`, statement_timeout) and keeps it:
 * the statement then runs in its own implicit transaction, which the pipelined Sync commits
 * (a write) or ends (a read), and a failure rolls back. Why no BEGIN / SET LOCAL / ROLLBACK /
 * DISCARD ALL per call (six round trips before): the guard (sql-guard.ts) admits one
 * SELECT/INSERT/UPDATE/DELETE/MERGE with pure built-in functions only, so a statement can change
 * neither the session's settings nor its role, and nothing it does outlives its transaction.
 */
async function runLimited(
  pool: pg.Pool,
  write: boolean,
  timeoutMs: number,
  sql: string,
  params: readonly (string | number | boolean | null)[],
  maxRows: number,
  maxResultBytes: number,
): Promise<LimitedOutcome> {
  const client = await pool.connect();
  let broken = false;
  const onError = (): void => {
    broken = true;
  };
  client.on('error', onError);
  // The row cap bounds how many rows, not how large they are (`repeat('x', 1e8)`, a wide
  // string_agg): the bytes are counted as they arrive on the socket, before pg buffers a whole
  // message, and past the cap the socket is destroyed, so neither this process nor the server
  // goes on with it.
  const socket = (client as unknown as { connection: { stream: NodeJS.EventEmitter & { destroy(): void } } }).connection
    .stream;
  let received = 0;
  let tooLarge = false;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received > maxResultBytes && !tooLarge) {
      tooLarge = true;
      broken = true;
      socket.destroy();
    }
  };
  try {
    const settings = `SET statement_timeout = ${Math.max(0, Math.floor(timeoutMs))}; SET default_transaction_read_only = ${write ? 'off' : 'on'}`;
    if (sessionSettings.get(client) !== settings) {
      await client.query(settings);
      sessionSettings.set(client, settings);
    }
    const q = new LimitedQuery(sql, params, maxRows);
    socket.on('data', onData);
    void client.query(q as unknown as pg.QueryConfig);
    return await q.done;
  } catch (e) {
    if (tooLarge)
      throw new AppError(
        'result_too_large',
        `the result is larger than ${maxResultBytes} bytes (DATABASE_MAX_RESULT_BYTES): select fewer or narrower rows`,
        { max_bytes: maxResultBytes },
      );
    if ((e as { severity?: string }).severity === 'FATAL' || (e as { severity?: string }).severity === 'PANIC')
      broken = true;
    throw e;
  } finally {
    socket.removeListener('data', onData);
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/**
 * Run `body` on one connection inside a transaction that is READ ONLY unless `write`,
 * with SET LOCAL statement_timeout. Always rolled back when read-only (nothing to keep),
 * and the session is reset afterwards so nothing a statement changed leaks to the next caller.
 */
async function inTransaction<T>(
  pool: pg.Pool,
  write: boolean,
  timeoutMs: number,
  body: (c: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  // A backend terminated under a statement (57P01, a restart) makes the checked-out client emit
  // 'error': without a listener that takes the process down; with it, the client is not reused.
  const onError = (): void => {
    broken = true;
  };
  client.on('error', onError);
  try {
    await client.query(write ? 'BEGIN READ WRITE' : 'BEGIN READ ONLY');
    await client.query(`SELECT set_config('statement_timeout', $1, true)`, [String(timeoutMs)]);
    const out = await body(client);
    await client.query(write ? 'COMMIT' : 'ROLLBACK');
    return out;
  } catch (e) {
    if ((e as { severity?: string }).severity === 'FATAL' || (e as { severity?: string }).severity === 'PANIC')
      broken = true;
    if (!broken) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
    }
    throw e;
  } finally {
    if (!broken) await client.query('DISCARD ALL').catch(() => (broken = true));
    // DISCARD ALL also dropped the session settings runLimited keeps on the connection.
    sessionSettings.delete(client);
    client.removeListener('error', onError);
    client.release(broken);
  }
}

const sqlInput = z.string().min(1).max(100_000);
const paramsInput = z
  .array(z.union([z.string(), z.number(), z.boolean(), z.null()]))
  .max(1000)
  .default([])
  .describe('positional parameters bound to $1..$n (never spliced into the SQL text)');

// The tools' input shapes, built once: the server is built per HTTP request (stateless), and
// building zod schemas costs more than the parse of a call's arguments.
const listSchemasInput = z.object({ include_system: z.boolean().default(false) });
const listTablesInput = z.object({ schema: z.string().min(1).max(63).default('public') });
const describeTableInput = z.object({
  schema: z.string().min(1).max(63).default('public'),
  table: z.string().min(1).max(63),
});
const explainInput = z.object({ sql: sqlInput, params: paramsInput, analyze: z.boolean().default(false) });
const queryInputs = new Map<number, ReturnType<typeof makeQueryInput>>();
const makeQueryInput = (maxRows: number) =>
  z.object({
    sql: sqlInput,
    params: paramsInput,
    max_rows: z.number().int().min(1).max(maxRows).optional().describe(`row cap (default and ceiling ${maxRows})`),
  });
const queryInput = (maxRows: number) => {
  let schema = queryInputs.get(maxRows);
  if (!schema) {
    schema = makeQueryInput(maxRows);
    queryInputs.set(maxRows, schema);
  }
  return schema;
};

/** Describe a table: columns, primary key, indexes. Throws not_found when it does not exist. */
async function describeTable(c: pg.PoolClient, schema: string, table: string): Promise<Record<string, unknown>> {
  const exists = await c.query(
    `SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND has_schema_privilege(n.oid, 'USAGE')`,
    [schema, table],
  );
  if (exists.rowCount === 0)
    throw new AppError('not_found', `table ${schema}.${table} does not exist`, { schema, table });
  const oid = exists.rows[0].oid as number;
  const columns = await c.query(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
            pg_get_expr(d.adbin, d.adrelid) AS "default", a.attnum AS position
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [oid],
  );
  const pk = await c.query(
    `SELECT a.attname AS name FROM pg_index i
       JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord`,
    [oid],
  );
  const indexes = await c.query(
    `SELECT ic.relname AS name, i.indisunique AS unique, i.indisprimary AS primary, pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 ORDER BY ic.relname`,
    [oid],
  );
  const kinds: Record<string, string> = {
    r: 'table',
    v: 'view',
    m: 'materialized_view',
    p: 'partitioned_table',
    f: 'foreign_table',
  };
  return {
    schema,
    table,
    kind: kinds[exists.rows[0].relkind as string] ?? exists.rows[0].relkind,
    columns: columns.rows,
    primary_key: pk.rows.map((r) => r.name as string),
    indexes: indexes.rows,
  };
}

/**
 * The database MCP server: parameterised SQL against Postgres in a read-only transaction
 * (writes only when started with `allowWrites`), with a statement timeout and a row cap,
 * plus catalogue tools and one resource per table schema.
 */
export function createDatabaseServer(deps: DatabaseServerDeps): McpServer {
  const { pool, logger } = deps;
  const maxRows = deps.maxRows ?? 1000;
  const timeoutMs = deps.statementTimeoutMs ?? 10_000;
  const maxResultBytes = deps.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
  const write = deps.allowWrites === true;
  preloadParser();
  const server = new McpServer(
    { name: 'switchyard-database', version: '0.1.0' },
    { jsonSchemaValidator: sharedJsonSchemaValidator },
  );

  server.registerTool(
    'query',
    {
      description: `Run one SQL statement with positional parameters ($1..$n). ${write ? 'Writes are allowed.' : 'Read-only: writes are refused.'} At most max_rows rows come back; "truncated" says when there were more.`,
      inputSchema: queryInput(maxRows),
      annotations: { readOnlyHint: !write, destructiveHint: write },
    },
    tool(
      'query',
      logger,
      async (args) => {
        // PostgreSQL's own parser first: one statement, no DO/COPY/DDL/session control, only
        // pure built-in functions, no write on the read-only server (sql-guard.ts).
        await vetStatement(args.sql, { allowWrites: write });
        const limit = args.max_rows ?? maxRows;
        // One statement only (the extended protocol refuses "; DROP ..."), and never more than
        // limit + 1 rows leave the server.
        const out = await runLimited(pool, write, timeoutMs, args.sql, args.params, limit + 1, maxResultBytes);
        const truncated = out.more || out.rows.length > limit;
        const rows = out.rows
          .slice(0, limit)
          .map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonSafe(v)])));
        return {
          command: out.command,
          columns: out.fields.map((f) => ({ name: f.name, type_oid: f.dataTypeID })),
          rows,
          row_count: out.fields.length > 0 ? rows.length : out.rowCount,
          truncated,
        };
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'list_schemas',
    {
      description: 'List schemas (system schemas excluded unless include_system).',
      inputSchema: listSchemasInput,
      annotations: { readOnlyHint: true },
    },
    tool(
      'list_schemas',
      logger,
      async (args) => {
        const r = await pool.query(
          `SELECT nspname AS name FROM pg_namespace
          WHERE $1 OR (nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' AND has_schema_privilege(oid, 'USAGE')) ORDER BY nspname`,
          [args.include_system],
        );
        return { schemas: r.rows.map((x) => x.name as string) };
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'list_tables',
    {
      description: 'List tables and views of a schema with an estimated row count.',
      inputSchema: listTablesInput,
      annotations: { readOnlyHint: true },
    },
    tool(
      'list_tables',
      logger,
      async (args) => {
        const r = await pool.query(
          `SELECT c.relname AS name,
                CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view'
                               WHEN 'p' THEN 'partitioned_table' WHEN 'f' THEN 'foreign_table' END AS kind,
                GREATEST(c.reltuples, 0)::bigint AS estimated_rows
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND has_schema_privilege(n.oid, 'USAGE') AND c.relkind IN ('r','v','m','p','f') ORDER BY c.relname`,
          [args.schema],
        );
        return { schema: args.schema, tables: r.rows.map((t) => ({ ...t, estimated_rows: Number(t.estimated_rows) })) };
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'describe_table',
    {
      description: 'Columns (type, nullability, default), primary key and indexes of a table.',
      inputSchema: describeTableInput,
      annotations: { readOnlyHint: true },
    },
    tool(
      'describe_table',
      logger,
      async (args) => inTransaction(pool, false, timeoutMs, (c) => describeTable(c, args.schema, args.table)),
      mapPgError,
    ),
  );

  server.registerTool(
    'explain',
    {
      description:
        'EXPLAIN (FORMAT JSON) of a statement, always in a read-only transaction. analyze=true runs it (reads only).',
      inputSchema: explainInput,
      annotations: { readOnlyHint: true },
    },
    tool(
      'explain',
      logger,
      async (args) => {
        // Vetted as a read: ANALYZE runs the statement.
        await vetStatement(args.sql, { allowWrites: false });
        return inTransaction(pool, false, timeoutMs, async (c) => {
          const prefix = args.analyze ? 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' : 'EXPLAIN (FORMAT JSON) ';
          // Forced extended protocol: exactly one statement after the prefix, parameters bound by the server.
          const r = await c.query({
            text: prefix + args.sql,
            values: args.params,
            queryMode: 'extended',
          } as pg.QueryConfig);
          return { plan: r.rows[0]?.['QUERY PLAN'] };
        });
      },
      mapPgError,
    ),
  );

  // One resource per table: cheap (catalogue queries) and lets clients browse the schema.
  server.registerResource(
    'table-schema',
    new ResourceTemplate('postgres://schema/{schema}/{table}', {
      list: async () => {
        const r = await pool.query(
          `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r','v','m','p') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
              AND has_schema_privilege(n.oid, 'USAGE')
            ORDER BY 1, 2 LIMIT 500`,
        );
        return {
          resources: r.rows.map((t) => ({
            uri: `postgres://schema/${encodeURIComponent(t.schema)}/${encodeURIComponent(t.table)}`,
            name: `${t.schema}.${t.table}`,
            mimeType: 'application/json',
          })),
        };
      },
    }),
    { description: 'Columns, primary key and indexes of a table', mimeType: 'application/json' },
    async (uri, vars) => {
      const schema = decodeURIComponent(String(vars['schema']));
      const table = decodeURIComponent(String(vars['table']));
      const d = await inTransaction(pool, false, timeoutMs, (c) => describeTable(c, schema, table));
      return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(d) }] };
    },
  );
  return server;
}

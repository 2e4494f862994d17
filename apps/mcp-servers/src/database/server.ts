import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type pg from 'pg';
import Cursor from 'pg-cursor';
import { AppError, isConnectionError, type Logger } from '@switchyard/platform';
import { tool } from '../common/tools.js';
import { sharedJsonSchemaValidator } from '../common/validator.js';

export interface DatabaseServerDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Writes are refused (read-only transaction) unless this is explicitly true. */
  readonly allowWrites?: boolean;
  /** Per-statement timeout, set with SET LOCAL inside the call's transaction. Default 10 s. */
  readonly statementTimeoutMs?: number;
  /** Default and ceiling of rows returned by `query`. Default 1000. */
  readonly maxRows?: number;
}

/**
 * Statement kinds refused up front: they would end our READ ONLY transaction early or
 * change the pooled session for the next caller. The read-only transaction is the real
 * guard against writes; this list only keeps the transaction and session intact.
 */
const sessionStatements = /^(begin|start|commit|end|rollback|abort|savepoint|release|prepare|deallocate|set|reset|discard|listen|unlisten|load|copy|vacuum|checkpoint)\b/i;

/** First keyword of a statement, skipping whitespace and comments. */
export function leadingKeyword(sql: string): string {
  const stripped = sql.replace(/^(\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/)+/, '');
  return (/^[a-z]+/i.exec(stripped)?.[0] ?? '').toLowerCase();
}

/** Postgres error -> coded AppError with the server's own words kept. */
export function mapPgError(e: unknown): AppError | undefined {
  const err = e as { code?: string; message?: string; position?: string; detail?: string; hint?: string };
  // No session (refused, reset, terminated): the database is restarting or the connection was cut;
  // another attempt may well work, so not an internal error.
  if (isConnectionError(e) && !(typeof err?.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code))) {
    return new AppError('unavailable', `database unavailable: ${err?.message ?? 'connection failed'}`, { cause: err?.code ?? null }, true);
  }
  if (typeof err?.code !== 'string' || !/^[0-9A-Z]{5}$/.test(err.code)) return undefined;
  const details = { sqlstate: err.code, position: err.position, detail: err.detail, hint: err.hint };
  switch (err.code) {
    case '25006':
      return new AppError('forbidden', `writes are not allowed: this database server is read-only (${err.message})`, details, false);
    case '57014':
      return new AppError('timeout', `statement cancelled: ${err.message}`, details, false);
    case '42P01':
    case '42703':
    case '3F000':
    case '42883':
      return new AppError('not_found', err.message ?? 'not found', details);
    case '42501':
      return new AppError('forbidden', err.message ?? 'permission denied', details);
    case '23505':
    case '23503':
    case '23502':
    case '23514':
      return new AppError('conflict', err.message ?? 'constraint violation', details, false);
    case '40001':
    case '40P01':
      return new AppError('conflict', err.message ?? 'serialization failure', details, true);
    default:
      if (err.code.startsWith('42') || err.code.startsWith('22') || err.code === '08P01') {
        return new AppError('validation', err.message ?? 'invalid statement', details);
      }
      if (err.code.startsWith('08') || err.code.startsWith('53') || err.code.startsWith('57')) {
        return new AppError('unavailable', err.message ?? 'database unavailable', details, true);
      }
      return new AppError('internal', err.message ?? 'database error', details);
  }
}

/** JSON-safe cell values: bytea as \x-hex, bigint as string. */
function jsonSafe(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  if (typeof v === 'bigint') return v.toString();
  return v;
}

interface CursorOutcome {
  rows: Record<string, unknown>[];
  fields: { name: string; dataTypeID: number }[];
  command: string;
  rowCount: number | null;
}

function readCursor(cursor: Cursor, n: number): Promise<CursorOutcome> {
  return new Promise((resolve, reject) => {
    cursor.read(n, (err, rows, result) => {
      if (err) reject(err);
      else resolve({ rows, fields: result.fields ?? [], command: result.command, rowCount: result.rowCount });
    });
  });
}

/**
 * Run `body` on one connection inside a transaction that is READ ONLY unless `write`,
 * with SET LOCAL statement_timeout. Always rolled back when read-only (nothing to keep),
 * and the session is reset afterwards so nothing a statement changed leaks to the next caller.
 */
async function inTransaction<T>(pool: pg.Pool, write: boolean, timeoutMs: number, body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query(write ? 'BEGIN READ WRITE' : 'BEGIN READ ONLY');
    await client.query(`SELECT set_config('statement_timeout', $1, true)`, [String(timeoutMs)]);
    const out = await body(client);
    await client.query(write ? 'COMMIT' : 'ROLLBACK');
    return out;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw e;
  } finally {
    if (!broken) await client.query('DISCARD ALL').catch(() => (broken = true));
    client.release(broken);
  }
}

const sqlInput = z.string().min(1).max(100_000);
const paramsInput = z
  .array(z.union([z.string(), z.number(), z.boolean(), z.null()]))
  .max(1000)
  .default([])
  .describe('positional parameters bound to $1..$n (never spliced into the SQL text)');

/** Describe a table: columns, primary key, indexes. Throws not_found when it does not exist. */
async function describeTable(c: pg.PoolClient, schema: string, table: string): Promise<Record<string, unknown>> {
  const exists = await c.query(
    `SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, table],
  );
  if (exists.rowCount === 0) throw new AppError('not_found', `table ${schema}.${table} does not exist`, { schema, table });
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
  const kinds: Record<string, string> = { r: 'table', v: 'view', m: 'materialized_view', p: 'partitioned_table', f: 'foreign_table' };
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
  const write = deps.allowWrites === true;
  const server = new McpServer({ name: 'switchyard-database', version: '0.1.0' }, { jsonSchemaValidator: sharedJsonSchemaValidator });

  server.registerTool(
    'query',
    {
      description: `Run one SQL statement with positional parameters ($1..$n). ${write ? 'Writes are allowed.' : 'Read-only: writes are refused.'} At most max_rows rows come back; "truncated" says when there were more.`,
      inputSchema: {
        sql: sqlInput,
        params: paramsInput,
        max_rows: z.number().int().min(1).max(maxRows).optional().describe(`row cap (default and ceiling ${maxRows})`),
      },
      annotations: { readOnlyHint: !write, destructiveHint: write },
    },
    tool(
      'query',
      logger,
      async (args) => {
        const kw = leadingKeyword(args.sql);
        if (sessionStatements.test(kw)) {
          throw new AppError('validation', `${kw.toUpperCase()} statements are not accepted: each call runs in its own transaction managed by the server`, { keyword: kw });
        }
        const limit = args.max_rows ?? maxRows;
        return inTransaction(pool, write, timeoutMs, async (client) => {
          // A cursor over the extended protocol: one statement only (no "; DROP ..."), and
          // never more than limit + 1 rows leave the server.
          const cursor = client.query(new Cursor(args.sql, args.params));
          let lost = false;
          try {
            const out = await readCursor(cursor, limit + 1).catch((err: unknown) => {
              lost = isConnectionError(err);
              throw err;
            });
            const truncated = out.rows.length > limit;
            const rows = out.rows.slice(0, limit).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonSafe(v)])));
            return {
              command: out.command,
              columns: out.fields.map((f) => ({ name: f.name, type_oid: f.dataTypeID })),
              rows,
              row_count: out.fields.length > 0 ? rows.length : out.rowCount,
              truncated,
            };
          } finally {
            // A cursor whose session died (backend terminated) would wait forever for the server's
            // answer to its close, and hold the call: the portal is gone with the session anyway.
            if (!lost) await cursor.close().catch(() => undefined);
          }
        });
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'list_schemas',
    {
      description: 'List schemas (system schemas excluded unless include_system).',
      inputSchema: { include_system: z.boolean().default(false) },
      annotations: { readOnlyHint: true },
    },
    tool('list_schemas', logger, async (args) => {
      const r = await pool.query(
        `SELECT nspname AS name FROM pg_namespace
          WHERE $1 OR (nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema') ORDER BY nspname`,
        [args.include_system],
      );
      return { schemas: r.rows.map((x) => x.name as string) };
    }, mapPgError),
  );

  server.registerTool(
    'list_tables',
    {
      description: 'List tables and views of a schema with an estimated row count.',
      inputSchema: { schema: z.string().min(1).max(63).default('public') },
      annotations: { readOnlyHint: true },
    },
    tool('list_tables', logger, async (args) => {
      const r = await pool.query(
        `SELECT c.relname AS name,
                CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view'
                               WHEN 'p' THEN 'partitioned_table' WHEN 'f' THEN 'foreign_table' END AS kind,
                GREATEST(c.reltuples, 0)::bigint AS estimated_rows
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r','v','m','p','f') ORDER BY c.relname`,
        [args.schema],
      );
      return { schema: args.schema, tables: r.rows.map((t) => ({ ...t, estimated_rows: Number(t.estimated_rows) })) };
    }, mapPgError),
  );

  server.registerTool(
    'describe_table',
    {
      description: 'Columns (type, nullability, default), primary key and indexes of a table.',
      inputSchema: { schema: z.string().min(1).max(63).default('public'), table: z.string().min(1).max(63) },
      annotations: { readOnlyHint: true },
    },
    tool('describe_table', logger, async (args) => inTransaction(pool, false, timeoutMs, (c) => describeTable(c, args.schema, args.table)), mapPgError),
  );

  server.registerTool(
    'explain',
    {
      description: 'EXPLAIN (FORMAT JSON) of a statement, always in a read-only transaction. analyze=true runs it (reads only).',
      inputSchema: { sql: sqlInput, params: paramsInput, analyze: z.boolean().default(false) },
      annotations: { readOnlyHint: true },
    },
    tool(
      'explain',
      logger,
      async (args) => {
        const kw = leadingKeyword(args.sql);
        if (sessionStatements.test(kw)) throw new AppError('validation', `cannot explain a ${kw.toUpperCase()} statement`, { keyword: kw });
        return inTransaction(pool, false, timeoutMs, async (c) => {
          const prefix = args.analyze ? 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' : 'EXPLAIN (FORMAT JSON) ';
          // Forced extended protocol: exactly one statement after the prefix, parameters bound by the server.
          const r = await c.query({ text: prefix + args.sql, values: args.params, queryMode: 'extended' } as pg.QueryConfig);
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

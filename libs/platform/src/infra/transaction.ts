import type pg from 'pg';
import { isSchemaManaged } from './roles.js';

/**
 * Run `fn` in one transaction on a pooled connection: commit when it returns, roll back when it
 * throws (the error goes on), release the connection either way.
 */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** SQLSTATEs of a transaction PostgreSQL ended to break a lock cycle or a serialization conflict: run again, it may pass. */
const RERUNNABLE = new Set(['40P01', '40001']);

/**
 * Run `run` again (up to `attempts` times in all, a few tens of milliseconds apart) when
 * PostgreSQL ended its transaction as a deadlock's victim or on a serialization conflict. For
 * idempotent work only, such as a component's migrations at start: processes started together
 * (three dispatchers and a monitor) clear and create rows other processes' first writes touch,
 * and one of them lost a deadlock and exited.
 */
export async function rerunOnDeadlock<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (attempt >= attempts || typeof code !== 'string' || !RERUNNABLE.has(code)) throw err;
      await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 30));
    }
  }
}

/**
 * Run idempotent DDL in one transaction under a transaction-scoped advisory lock, so several
 * processes starting at once do not race on CREATE ... IF NOT EXISTS (which can still collide
 * in the catalogs). A no-op on a pool marked schema-managed (the owner role migrated already).
 */
export async function migrateUnderLock(pool: pg.Pool, lockName: string, ddl: string): Promise<void> {
  if (isSchemaManaged(pool)) return;
  await rerunOnDeadlock(() =>
    withTransaction(pool, async (c) => {
      await c.query('select pg_advisory_xact_lock(hashtext($1))', [lockName]);
      await c.query(ddl);
    }),
  );
}

/** Bounds of a batched delete: rows per statement, rows in all for one call. */
export interface DeleteBounds {
  /** Rows per statement (default 20,000). */
  readonly batch?: number;
  /** Rows in all for this call (default 1,000,000); the next call goes on. */
  readonly maxRows?: number;
}

/**
 * Delete the rows of `table` whose `ctid` the query `selectCtids` (with `params`) names, in
 * statements of at most `batch` rows and at most `maxRows` in all: a backlog of millions of rows
 * deleted by one statement holds its locks and writes its WAL in one go. Returns rows deleted.
 */
export async function deleteInBatches(
  db: Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>,
  table: string,
  selectCtids: string,
  params: readonly unknown[],
  bounds: DeleteBounds = {},
): Promise<number> {
  const batch = bounds.batch ?? 20_000;
  const maxRows = bounds.maxRows ?? 1_000_000;
  let deleted = 0;
  while (deleted < maxRows) {
    const limit = Math.min(batch, maxRows - deleted);
    const r = await db.query(`delete from ${table} where ctid = any(array(${selectCtids} limit ${limit}))`, [
      ...params,
    ]);
    deleted += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < limit) break;
  }
  return deleted;
}

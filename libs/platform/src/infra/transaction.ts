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

/**
 * Run idempotent DDL in one transaction under a transaction-scoped advisory lock, so several
 * processes starting at once do not race on CREATE ... IF NOT EXISTS (which can still collide
 * in the catalogs). A no-op on a pool marked schema-managed (the owner role migrated already).
 */
export async function migrateUnderLock(pool: pg.Pool, lockName: string, ddl: string): Promise<void> {
  if (isSchemaManaged(pool)) return;
  await withTransaction(pool, async (c) => {
    await c.query('select pg_advisory_xact_lock(hashtext($1))', [lockName]);
    await c.query(ddl);
  });
}

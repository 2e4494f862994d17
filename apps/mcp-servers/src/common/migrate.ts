import type pg from 'pg';

/**
 * Run a server's idempotent DDL in one transaction under a transaction-scoped advisory lock,
 * so several instances starting at once do not race on CREATE ... IF NOT EXISTS.
 */
export async function migrateUnderLock(pool: pg.Pool, lockName: string, ddl: string): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockName]);
    await c.query(ddl);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

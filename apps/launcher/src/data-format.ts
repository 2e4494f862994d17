import { readFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';

/** This checkout's version (the root package.json's), for the record of who wrote the data. */
export function buildVersion(): string {
  try {
    const file = path.resolve(import.meta.dirname, '..', '..', '..', 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The format of the data this build writes, raised whenever a migration leaves data an older
 * build would misread: a projection renamed over the same table (an older build, started on the
 * data again, resumed its old checkpoint and counted every task a second time). Format 1 is this
 * release's; builds before it did not check, so a downgrade to one of them is not refused.
 */
export const DATA_FORMAT = 1;

/**
 * Refuse a database a newer Switchyard wrote (its format above DATA_FORMAT), before any migration
 * touches it; otherwise record this build's format. Run by the migration phase, as the schema owner.
 */
export async function checkDataFormat(pool: pg.Pool, build: string): Promise<void> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS switchyard;
    CREATE TABLE IF NOT EXISTS switchyard.data_format (
      id int PRIMARY KEY CHECK (id = 1),
      format int NOT NULL,
      written_by text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
  const r = await pool.query<{ format: number; written_by: string }>(
    `SELECT format, written_by FROM switchyard.data_format WHERE id = 1`,
  );
  const stored = r.rows[0];
  if (stored && stored.format > DATA_FORMAT)
    throw new Error(
      `this database was written by a newer Switchyard (${stored.written_by}, data format ${stored.format}); this build writes format ${DATA_FORMAT}. Downgrades are not supported: run the newer build, or restore a backup taken before the upgrade`,
    );
  await pool.query(
    `INSERT INTO switchyard.data_format (id, format, written_by) VALUES (1, $1, $2)
     ON CONFLICT (id) DO UPDATE SET format = excluded.format, written_by = excluded.written_by, updated_at = now()`,
    [DATA_FORMAT, build],
  );
}

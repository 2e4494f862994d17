import { readFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';

/**
 * This checkout's version (the root package.json's) and, in a git checkout, its commit: the record
 * of who wrote the data names the build, not only a version every build of a release shares.
 */
export function buildVersion(): string {
  const root = path.resolve(import.meta.dirname, '..', '..', '..');
  let version = 'unknown';
  try {
    version =
      (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // no package.json: the version stays unknown
  }
  const commit = gitCommit(root);
  return commit ? `${version} (commit ${commit.slice(0, 12)})` : version;
}

/** The commit checked out at `root` (read from .git, no git binary needed), or undefined. */
function gitCommit(root: string): string | undefined {
  try {
    const head = readFileSync(path.join(root, '.git', 'HEAD'), 'utf8').trim();
    if (/^[0-9a-f]{40}$/.test(head)) return head;
    const ref = /^ref: (refs\/[\w./-]+)$/.exec(head)?.[1];
    if (!ref) return undefined;
    try {
      return readFileSync(path.join(root, '.git', ref), 'utf8').trim();
    } catch {
      const packed = readFileSync(path.join(root, '.git', 'packed-refs'), 'utf8');
      return packed
        .split('\n')
        .find((l) => l.endsWith(` ${ref}`))
        ?.split(' ')[0];
    }
  } catch {
    return undefined;
  }
}

/**
 * The format of the data this build writes, raised whenever it writes what an older build would
 * misread: a projection renamed over the same table (an older build, started on the data again,
 * resumed its old checkpoint and counted every task a second time), an event type or a stored
 * status value it does not know (its health report answered 500 on every call), a built-in
 * template version it cannot evaluate (it ran customer_onboarding v10 and reported an onboarding
 * that had made the customer `failed`). data-format.unit.spec.ts pins what older builds must read
 * with this number, so a change to it is a decision. Format 1: the first build that checked (builds
 * before it do not, so a downgrade to one of them is not refused); 2: `unconfigured` services,
 * A2A origin claims, customer_onboarding v10, the trimmed task latencies.
 */
export const DATA_FORMAT = 2;

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

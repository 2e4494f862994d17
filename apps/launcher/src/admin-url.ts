import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AppError, embeddedSuperuserPasswordFile, type Config } from '@switchyard/platform';

/**
 * The database an operator's command works on: DATABASE_URL, else the embedded PostgreSQL of
 * DATA_DIR on EMBEDDED_PG_PORT as its superuser (the password file beside the cluster), which is
 * the one `npm start` runs.
 */
export function operatorDatabaseUrl(config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR' | 'EMBEDDED_PG_PORT'>): string {
  if (config.DATABASE_URL) return config.DATABASE_URL;
  const file = embeddedSuperuserPasswordFile(path.resolve(config.DATA_DIR, 'postgres'));
  if (!existsSync(file))
    throw new AppError(
      'validation',
      `no DATABASE_URL, and no embedded PostgreSQL in DATA_DIR ${path.resolve(config.DATA_DIR)} (${file} is missing): set DATABASE_URL, or DATA_DIR to the data dir npm start uses`,
    );
  const password = encodeURIComponent(readFileSync(file, 'utf8').trim());
  return `postgres://postgres:${password}@127.0.0.1:${config.EMBEDDED_PG_PORT}/switchyard`;
}

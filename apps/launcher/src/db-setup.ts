/**
 * Provision the least-privilege PostgreSQL roles and migrate every schema, then exit: the Docker
 * Compose setup's one-shot `db-setup` container, the only process given the administrative
 * DATABASE_URL. Every other process is given its roles' own logins (DATABASE_URL_<LOGIN>, built
 * from the DATABASE_PASSWORD_<LOGIN> set here), so none holds a login that may create roles, run
 * DDL or reach the server's files and programs.
 *
 *   DATABASE_URL=postgres://admin:...@db/switchyard DATABASE_PASSWORD_GATEWAY=... \
 *     node apps/launcher/dist/db-setup.js
 */
import {
  ConfigError,
  createLogger,
  DATABASE_LOGINS,
  databaseLoginEnv,
  givenDatabaseLoginValues,
  loginRoleName,
  parseConfig,
} from '@switchyard/platform';
import { logFatal } from './fatal.js';
import { provisionAndMigrate } from './migrations.js';

const logger = createLogger('db-setup');
try {
  const config = parseConfig();
  if (!config.DATABASE_URL)
    throw new ConfigError([
      { variable: 'DATABASE_URL', message: 'the setup needs the administrative login (one that may create roles)' },
    ]);
  const passwords = givenDatabaseLoginValues(process.env, 'PASSWORD');
  const roles = await provisionAndMigrate(config.DATABASE_URL, {
    logger,
    passwords,
    externalEventStore: Boolean(config.EVENTSTORE_URL),
    demoData: true,
  });
  if (!roles) {
    logger.fatal('the DATABASE_URL login may not create roles (neither superuser nor CREATEROLE): nothing was set up');
    process.exit(1);
  }
  // The login names a process's DATABASE_URL_<LOGIN> must use; never the passwords.
  const logins = Object.fromEntries(
    DATABASE_LOGINS.map((l) => [databaseLoginEnv(l, 'URL'), loginRoleName(roles.names, l)]),
  );
  const generated = DATABASE_LOGINS.filter((l) => !passwords[l]).map((l) => databaseLoginEnv(l, 'PASSWORD'));
  if (generated.length > 0)
    logger.warn(
      { generated },
      'no password given for these logins: they keep a generated one, and no process can be handed their URL',
    );
  logger.info({ logins }, 'database roles and schemas ready');
} catch (err) {
  logFatal(logger, err, 'setting up the database failed');
  process.exit(1);
}

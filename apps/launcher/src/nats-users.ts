import path from 'node:path';
import {
  EVENTS_SUBJECT_WILDCARD,
  NATS_SETUP_PASSWORD_ENV,
  natsPasswordEnv,
  natsRolePermissions,
  natsRoleUserEntries,
  natsRoleUsers,
  natsSetupUserEntry,
} from '@switchyard/contracts';
import {
  embeddedNatsEventsPassword,
  embeddedNatsRolePassword,
  embeddedNatsToken,
  isNatsUserSeed,
  natsAuthorizationLines,
  type Config,
} from '@switchyard/platform';

/** Where the Docker Compose setup keeps its nats-server config, from the repository root. */
export const COMPOSE_NATS_CONFIG = 'deploy/nats/nats-server.conf';

/**
 * The nats-server config of the Docker Compose setup: JetStream in /data, monitoring on 8222 for
 * the healthcheck, a user per role with that role's subjects (natsRolePermissions) and the setup
 * user that makes the JetStream streams (the one-shot nats-setup container), each
 * password read by nats-server from its environment (`$NATS_PASSWORD_GATEWAY`, ...), which
 * compose fills from .env. The same text is committed at COMPOSE_NATS_CONFIG (a spec keeps the
 * two equal), so a change of a role's subjects changes the file with it.
 */
export function composeNatsConfig(): string {
  return [
    "# The Docker Compose nats-server: a user per role of the system, with only that role's subjects.",
    '# Generated from libs/contracts/src/nats-permissions.ts (composeNatsConfig in apps/launcher):',
    '# test/deploy/compose.unit.spec.ts fails when the two differ. Passwords come from the environment.',
    'port: 4222',
    'http_port: 8222',
    'jetstream { store_dir: "/data" }',
    'authorization {',
    '  users = [',
    ...natsRoleUserEntries((user) => `$${natsPasswordEnv(user)}`).map((e) => `    ${e}`),
    `    ${natsSetupUserEntry(`$${NATS_SETUP_PASSWORD_ENV}`)}`,
    '  ]',
    '}',
    '',
  ].join('\n');
}

/**
 * The embedded nats-server's `authorization` block for a nats-server of the operator's (each node
 * of a cluster): the same users with the same subjects, named by public nkey (the block holds no
 * secret). Seeds: NATS_TOKEN and NATS_PASSWORD_<ROLE> when given, else DATA_DIR/nats's files
 * (made when missing, as the embedded server makes them); the `events` user's from its file.
 */
export function printedNatsAuthorization(config: Config): string {
  const storeDir = path.resolve(config.DATA_DIR, 'nats');
  const given = (value: string | undefined, variable: string): string | undefined => {
    if (value === undefined) return undefined;
    if (!isNatsUserSeed(value))
      throw new Error(
        `${variable} must be an nkey user seed (SU...) for an nkey user: leave it unset to use DATA_DIR/nats`,
      );
    return value;
  };
  const seed = given(config.NATS_TOKEN, 'NATS_TOKEN') ?? embeddedNatsToken(storeDir);
  const roles = natsRoleUsers.map((user) => ({
    user,
    seed:
      given(config[natsPasswordEnv(user) as keyof Config] as string | undefined, natsPasswordEnv(user)) ??
      embeddedNatsRolePassword(storeDir, user),
    ...natsRolePermissions(user),
  }));
  const events = { seed: embeddedNatsEventsPassword(storeDir), subjects: [EVENTS_SUBJECT_WILDCARD] };
  return [
    "# The Switchyard users (public nkeys; the seeds are the processes' NATS_TOKEN and NATS_PASSWORD_<ROLE>):",
    `# in this order: all subjects (${config.NATS_TOKEN ? 'NATS_TOKEN' : path.join(storeDir, 'token')}), events (${path.join(storeDir, 'events-password')}), then the roles: ${natsRoleUsers.map((u) => (config[natsPasswordEnv(u) as keyof Config] ? natsPasswordEnv(u) : `${u}-password`)).join(', ')}.`,
    ...natsAuthorizationLines(seed, events, roles),
    '',
  ].join('\n');
}

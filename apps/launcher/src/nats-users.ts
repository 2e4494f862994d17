import {
  NATS_SETUP_PASSWORD_ENV,
  natsPasswordEnv,
  natsRoleUserEntries,
  natsSetupUserEntry,
} from '@switchyard/contracts';

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

/**
 * For this package's int specs (not exported from the index): a gateway on the real test
 * Postgres and nats-server with auth on, its generated first admin key, and helpers
 * to make keys of each role.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { createLogger, createPgPool, type Logger } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { createGateway, type Gateway } from '../gateway.js';
import type { GatewayOptions } from '../tokens.js';
import type { Role } from './roles.js';

export interface SecuredGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly databaseUrl: string;
  readonly pool: pg.Pool;
  readonly store: PostgresEventStore;
  readonly nats: NatsConnection;
  /** What printAdminKey received (the generated first admin key), in order. */
  readonly printed: string[];
  /** The first admin key (generated or SWITCHYARD_ADMIN_KEY); '' when the database had one already. */
  readonly adminKey: string;
  /** Make a key of a role through the admin API; returns the full key and its id. */
  makeKey(role: Role, name?: string): Promise<{ key: string; id: string }>;
  close(): Promise<void>;
}

export async function startSecuredGateway(
  prefix: string,
  options: GatewayOptions = {},
  databaseUrl?: string,
  natsUrl?: string,
  /** Where the gateway logs (default: silent unless LOG_LEVEL says). */
  logger: Logger = createLogger('gateway-test', process.env.LOG_LEVEL ?? 'silent'),
): Promise<SecuredGateway> {
  const dbUrl = databaseUrl ?? (await freshDatabase(prefix));
  const pool = createPgPool({ connectionString: dbUrl, max: 6 }, { name: 'gateway-test' });
  const store = new PostgresEventStore({ pool });
  await store.init();
  const nats = await connect({ servers: natsUrl ?? (await testNatsUrl()) });
  const printed: string[] = [];
  const gateway = await createGateway(
    { eventStore: store, pgPool: pool, nats, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } },
    { ...options, auth: { enabled: true, printAdminKey: (k) => printed.push(k), ...options.auth } },
  );
  const { url } = await gateway.listen(0, '127.0.0.1');
  // Empty when the database already had an admin key and none was given.
  const adminKey = options.auth?.adminKey ?? printed[0] ?? '';
  return {
    gateway,
    url,
    databaseUrl: dbUrl,
    pool,
    store,
    nats,
    printed,
    adminKey,
    async makeKey(role, name = `${role}-key`) {
      const res = await fetch(`${url}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, role }),
      });
      if (res.status !== 201) throw new Error(`making a ${role} key: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { key: string; id: string };
      return { key: body.key, id: body.id };
    },
    async close() {
      await gateway.close();
      await nats.close();
      await store.close();
      await pool.end();
    },
  };
}

export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

import type pg from 'pg';
import type { Logger } from 'pino';
import { createPgClient } from './pg.js';

/** A PostgreSQL session advisory lock held on a connection of its own (see trySessionLock). */
export interface SessionLock {
  /** Resolves when the lock's connection is lost (the lock went with it); never after release(). */
  readonly lost: Promise<Error>;
  /** Give the lock back by ending its connection. */
  release(): Promise<void>;
}

/**
 * Take the session advisory lock (`namespace`, `name`) (both hashed) on a connection of its own,
 * or undefined when another session holds it. The lock lives as long as that connection: when
 * the process dies PostgreSQL drops the connection and the lock with it, so whoever waits as a
 * standby takes over without a lease to run out. `lost` tells the holder when the connection
 * fails or ends while it holds the lock. The relay and the monitor run once per deployment so.
 */
export async function trySessionLock(
  config: pg.ClientConfig,
  lock: { readonly namespace: string; readonly name: string },
  opts: { readonly connectionName: string; readonly logger?: Logger | undefined },
): Promise<SessionLock | undefined> {
  let held = false;
  let signalLost!: (err: Error) => void;
  const lost = new Promise<Error>((r) => (signalLost = r));
  const client = createPgClient(config, {
    name: opts.connectionName,
    ...(opts.logger ? { logger: opts.logger } : {}),
    onError: (err) => {
      if (held) signalLost(err);
    },
  });
  client.on('end', () => {
    if (held) signalLost(new Error(`the ${opts.connectionName} connection ended`));
  });
  await client.connect();
  try {
    const r = await client.query<{ locked: boolean }>(
      `select pg_try_advisory_lock(hashtext($1), hashtext($2)) as locked`,
      [lock.namespace, lock.name],
    );
    if (r.rows[0]?.locked) {
      held = true;
      return {
        lost,
        release: async () => {
          held = false;
          await client.end().catch(() => undefined);
        },
      };
    }
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  await client.end().catch(() => undefined);
  return undefined;
}

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

/** How long a lock's connection may sit unused before PostgreSQL ends it (see trySessionLock). */
export const SESSION_LOCK_IDLE_MS = 10_000;

/**
 * Ask PostgreSQL to end this session once it sits idle for `ms`: a process frozen (SIGSTOP, a
 * paused VM, a long stall) keeps its TCP connection, and with it every session lock, for as long
 * as it is frozen; a live holder uses its connection more often than that. False where the server
 * has no such setting (before PostgreSQL 14): the lock then lasts as long as the connection.
 */
export async function endSessionWhenIdle(client: Pick<pg.Client, 'query'>, ms: number): Promise<boolean> {
  try {
    await client.query(`select set_config('idle_session_timeout', $1, false)`, [`${Math.round(ms)}ms`]);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '42704') return false; // unrecognized configuration parameter
    throw err;
  }
}

/**
 * Take the session advisory lock (`namespace`, `name`) (both hashed) on a connection of its own,
 * or undefined when another session holds it. The lock lives as long as that connection: when
 * the process dies PostgreSQL drops the connection and the lock with it, so whoever waits as a
 * standby takes over without a lease to run out. A process that stops running without dying
 * loses it too: the holder touches its connection every quarter of `idleMs` (default
 * SESSION_LOCK_IDLE_MS), and PostgreSQL ends a session left idle that long. `lost` tells the
 * holder when the connection fails or ends while it holds the lock. The relay and the monitor
 * run once per deployment so.
 */
export async function trySessionLock(
  config: pg.ClientConfig,
  lock: { readonly namespace: string; readonly name: string },
  opts: { readonly connectionName: string; readonly logger?: Logger | undefined; readonly idleMs?: number },
): Promise<SessionLock | undefined> {
  let held = false;
  let keepAlive: NodeJS.Timeout | undefined;
  let signalLost!: (err: Error) => void;
  const lost = new Promise<Error>((r) => (signalLost = r));
  void lost.then(() => clearInterval(keepAlive));
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
    const idleMs = opts.idleMs ?? SESSION_LOCK_IDLE_MS;
    const endsWhenIdle = await endSessionWhenIdle(client, idleMs);
    const r = await client.query<{ locked: boolean }>(
      `select pg_try_advisory_lock(hashtext($1), hashtext($2)) as locked`,
      [lock.namespace, lock.name],
    );
    if (r.rows[0]?.locked) {
      held = true;
      if (endsWhenIdle) {
        keepAlive = setInterval(() => {
          client.query('select 1').catch((err: unknown) => {
            if (held) signalLost(err instanceof Error ? err : new Error(String(err)));
          });
        }, idleMs / 4);
        keepAlive.unref();
      }
      return {
        lost,
        release: async () => {
          held = false;
          clearInterval(keepAlive);
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

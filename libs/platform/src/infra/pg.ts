import pg from 'pg';
import type { Logger } from 'pino';

/**
 * The one way the code base makes PostgreSQL connections. A `pg.Client` (and so every client of
 * a `pg.Pool`) is an EventEmitter that emits 'error' when its connection dies (the backend is
 * terminated, the server restarts, a socket resets). An 'error' event with no listener throws,
 * and takes the whole process down with it; `pg.Pool` only listens on a client while it is idle
 * in the pool, not while it is checked out (pool.connect(), a transaction, a cursor). These
 * helpers attach the listeners at creation; `pg-guard.unit.spec.ts` fails when a pool or client
 * is created anywhere else.
 */

export interface PgGuardOptions {
  /** Named in the log lines ("which pool"). */
  readonly name: string;
  readonly logger?: Logger;
}

/** Node/pg errno codes of a lost, refused or unresolvable connection (no SQLSTATE). */
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** What pg says when the connection went away under it. */
const CONNECTION_MESSAGES =
  /Connection terminated|not queryable|terminating connection|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/i;

/** Connection-level failures: the session is gone (or never came), a new one may work. */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
    if (CONNECTION_ERRNOS.has(code)) return true;
  }
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' && CONNECTION_MESSAGES.test(message);
}

/**
 * Attach the error listeners to a pool made elsewhere (idempotent): the pool's own 'error'
 * (an idle client died: the pool drops it and connects anew on next use) and every client's,
 * including while checked out (the query in flight is rejected; the client is dropped on release).
 */
export function guardPgPool<P extends pg.Pool>(pool: P, opts: PgGuardOptions): P {
  const marked = pool as P & { __switchyardGuarded?: boolean };
  if (marked.__switchyardGuarded) return pool;
  marked.__switchyardGuarded = true;
  const log = opts.logger?.child({ pool: opts.name });
  pool.on('error', (err) =>
    log?.warn({ err: errSummary(err) }, 'idle PostgreSQL connection failed; the pool replaces it'),
  );
  pool.on('connect', (client) => {
    client.on('error', (err) =>
      log?.warn(
        { err: errSummary(err) },
        'PostgreSQL connection failed while in use; its query fails and the pool replaces it',
      ),
    );
  });
  failQueuedOnEnd(pool);
  return pool;
}

/** What a request for a connection gets when the pool ends before one was free (pg-pool's own words for later requests). */
export const POOL_ENDED_MESSAGE = 'Cannot use a pool after calling end on the pool';

/**
 * pg-pool's end() drops the requests already queued for a connection without ever answering
 * them: a `pool.query` waiting for a free client then never settles, and whoever awaits it
 * (a subscription's read, a stop() that waits for its loop) hangs for good. End rejects them
 * instead, as it rejects every request made after it. The queue is pg-pool's internal
 * `_pendingQueue` of items with a `callback(err)`; pg.unit.spec.ts fails if that ever changes.
 */
function failQueuedOnEnd(pool: pg.Pool): void {
  const end = pool.end.bind(pool) as (cb?: () => void) => Promise<void> | void;
  (pool as { end: (cb?: () => void) => Promise<void> | void }).end = (cb?: () => void) => {
    const queue = (pool as unknown as { _pendingQueue?: { callback?: (err: Error) => void }[] })._pendingQueue;
    const result = end(cb);
    if (Array.isArray(queue)) for (const item of queue.splice(0)) item.callback?.(new Error(POOL_ENDED_MESSAGE));
    return result;
  };
}

/**
 * What every pool and dedicated client gets unless its config says otherwise:
 * - `connectionTimeoutMillis`: a bounded wait for a connection, and for a free client of a full
 *   pool. Without it a request queues for good behind a database that does not answer or a pool
 *   that some stuck work holds, and so does whoever awaits it; with it the request fails as a
 *   connection error (retryable: the gateway answers 503).
 * - `idle_in_transaction_session_timeout`: the server ends a session left idle inside a
 *   transaction (its process frozen, stopped or wedged between two statements), so the row and
 *   advisory locks it holds cannot stall every other process for good. Every transaction here is
 *   a few statements with no waiting in between; the mcp database server runs its own limits.
 * - `keepAlive`: a peer that vanished without closing (a host gone, a cut network) is noticed.
 */
export const PG_CONNECTION_DEFAULTS = {
  connectionTimeoutMillis: 30_000,
  idle_in_transaction_session_timeout: 60_000,
  keepAlive: true,
} as const satisfies pg.PoolConfig;

/** A guarded `pg.Pool` (see guardPgPool) with PG_CONNECTION_DEFAULTS under its config. */
export function createPgPool(config: pg.PoolConfig, opts: PgGuardOptions): pg.Pool {
  return guardPgPool(new pg.Pool({ ...PG_CONNECTION_DEFAULTS, ...config }), opts);
}

/**
 * A dedicated `pg.Client` (LISTEN, session advisory locks, liveness) with an 'error' listener.
 * `onError` is the owner's lost-connection path (reconnect, give up a lock); it runs once per
 * client, and the client is ended. Without it the error is logged and the owner finds out on
 * its next query.
 */
export function createPgClient(
  config: pg.ClientConfig,
  opts: PgGuardOptions & { onError?: (err: Error) => void },
): pg.Client {
  const client = new pg.Client({ ...PG_CONNECTION_DEFAULTS, ...config });
  const log = opts.logger?.child({ connection: opts.name });
  let failed = false;
  client.on('error', (err) => {
    if (failed) return;
    failed = true;
    log?.warn({ err: errSummary(err) }, 'PostgreSQL connection failed');
    client.end().catch(() => undefined);
    try {
      opts.onError?.(err);
    } catch (e) {
      log?.error({ err: e }, 'lost-connection handler threw');
    }
  });
  return client;
}

/**
 * Where connections made with `config` go, as pg itself resolves it (a URL without a database
 * means the user's; `?host=` and `?port=` count; PG* variables fill what is unset), or undefined
 * when pg cannot say. Nothing connects.
 */
export function pgTarget(config: pg.ClientConfig): { host: string; port: number; database: string } | undefined {
  try {
    const p = (
      new pg.Client(config) as unknown as {
        connectionParameters?: { host?: unknown; port?: unknown; database?: unknown };
      }
    ).connectionParameters;
    if (!p || typeof p.host !== 'string' || typeof p.database !== 'string' || !p.database) return undefined;
    return { host: p.host, port: Number(p.port), database: p.database };
  } catch {
    return undefined;
  }
}

/** The fields worth a log line, without the whole socket object some errors carry. */
function errSummary(err: unknown): Record<string, unknown> {
  const e = err as { message?: string; code?: string; name?: string };
  return { name: e?.name, code: e?.code, message: e?.message };
}

import type { TLSSocket } from 'node:tls';
import pg from 'pg';
import type { Logger } from 'pino';
import { z } from 'zod';

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
  /**
   * Whether the password may go to a server that asks for it in clear text or MD5 over a
   * connection that is not TLS with a verified certificate. Default: DATABASE_ALLOW_PLAIN_PASSWORD
   * (false). The embedded server's own connections pass false: it only does SCRAM.
   */
  readonly allowPlainPassword?: boolean;
}

/**
 * DATABASE_ALLOW_PLAIN_PASSWORD: `true` lets connections answer a server's request for a clear-text
 * or MD5 password without TLS (an external server with `password`/`md5` in its pg_hba.conf).
 * Off by default: on a loopback port any local user can listen while the server is down, and
 * such a request would hand it the password (SCRAM gives a stand-in nothing usable).
 */
export const allowPlainPasswordSchema = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes')
  .default(false);

/** What a refused clear-text or MD5 password request fails with (a connection error: the real server may be back later). */
export const PLAIN_PASSWORD_REFUSED = 'PLAIN_PASSWORD_REFUSED';

/** The server asked for the password in a form a listener could read or replay, on a connection that does not authenticate it. */
export class PlainPasswordRefusedError extends Error {
  readonly code = PLAIN_PASSWORD_REFUSED;
  constructor(
    readonly target: string,
    readonly method: 'clear text' | 'MD5',
  ) {
    super(
      `the server at ${target} asked for the password ${method === 'MD5' ? 'as an MD5 hash' : 'in clear text'}; Switchyard sends it only by SCRAM or over TLS with a verified certificate (for an external server that needs it, set DATABASE_ALLOW_PLAIN_PASSWORD=true)`,
    );
    this.name = 'PlainPasswordRefusedError';
  }
}

/** DATABASE_ALLOW_PLAIN_PASSWORD as this process's environment gives it. */
export function allowPlainPasswordFromEnv(): boolean {
  return allowPlainPasswordSchema.parse(process.env.DATABASE_ALLOW_PLAIN_PASSWORD || undefined);
}

/** pg.Client's handlers of the server's password requests, which this module overrides (pg.unit.spec.ts checks they exist). */
export const PG_PASSWORD_HANDLERS = ['_handleAuthCleartextPassword', '_handleAuthMD5Password'] as const;

interface PgClientInternals {
  readonly host: string;
  readonly port: number;
  readonly connection: { stream?: Partial<TLSSocket>; emit(event: 'error', err: Error): boolean };
  _handleAuthCleartextPassword(msg: unknown): void;
  _handleAuthMD5Password(msg: unknown): void;
}

/**
 * A pg.Client that gives its password only by SCRAM-SHA-256 (which a stand-in server learns
 * nothing usable from), or in clear text / MD5 over TLS whose server certificate was verified.
 * Every other request for it fails the connection with PlainPasswordRefusedError and sends
 * nothing. pg answers AuthenticationCleartextPassword with the password itself, whoever asks.
 */
class ScramOnlyClient extends pg.Client {
  /** Whether this password request may be answered: over TLS with a verified server, only. */
  private plainAllowed(method: 'clear text' | 'MD5'): boolean {
    const self = this as unknown as PgClientInternals;
    const stream = self.connection.stream;
    if (stream?.encrypted === true && stream.authorized === true) return true;
    const err = new PlainPasswordRefusedError(`${self.host}:${self.port}`, method);
    self.connection.emit('error', err);
    // Nothing more on this socket: the stand-in gets neither the password nor a Terminate.
    (stream as { destroy?: () => void } | undefined)?.destroy?.();
    return false;
  }

  _handleAuthCleartextPassword(msg: unknown): void {
    if (this.plainAllowed('clear text'))
      (pg.Client.prototype as unknown as PgClientInternals)._handleAuthCleartextPassword.call(this, msg);
  }

  _handleAuthMD5Password(msg: unknown): void {
    if (this.plainAllowed('MD5'))
      (pg.Client.prototype as unknown as PgClientInternals)._handleAuthMD5Password.call(this, msg);
  }
}

/** The Client class connections are made with: pg's own only when plain passwords are allowed. */
function clientClass(opts: Pick<PgGuardOptions, 'allowPlainPassword'>): typeof pg.Client {
  return (opts.allowPlainPassword ?? allowPlainPasswordFromEnv()) ? pg.Client : ScramOnlyClient;
}

/** Node/pg errno codes of a lost, refused or unresolvable connection (no SQLSTATE). */
const CONNECTION_ERRNOS = new Set([
  // A stand-in on the port while the real server restarts: a later connection may reach the real one.
  PLAIN_PASSWORD_REFUSED,
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  // Out of file descriptors (this process's, or the system's): no socket for a connection now.
  'EMFILE',
  'ENFILE',
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
 * PostgreSQL short of a resource (SQLSTATE class 53: disk full, out of memory, too many
 * connections, a configured limit): nothing is wrong with the statement, and it may work once the
 * resource is back, as with a lost connection. Not a caller's error, nor an internal one.
 */
export function isResourceShortage(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^53[0-9A-Z]{3}$/.test(code);
}

/** A failure that may pass by itself: the connection (isConnectionError) or a resource (isResourceShortage). */
export const isPassingDatabaseFailure = (err: unknown): boolean => isConnectionError(err) || isResourceShortage(err);

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

/**
 * A guarded `pg.Pool` (see guardPgPool) with PG_CONNECTION_DEFAULTS under its config, whose
 * clients send the password by SCRAM only (see ScramOnlyClient, PgGuardOptions.allowPlainPassword).
 */
export function createPgPool(config: pg.PoolConfig, opts: PgGuardOptions): pg.Pool {
  return guardPgPool(new pg.Pool({ ...PG_CONNECTION_DEFAULTS, ...config, Client: clientClass(opts) }), opts);
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
  const Client = clientClass(opts);
  const client = new Client({ ...PG_CONNECTION_DEFAULTS, ...config });
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

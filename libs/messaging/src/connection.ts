import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { createInbox, nkeyAuthenticator, type NatsConnection, type Status } from '@nats-io/nats-core';
import {
  AppError,
  isNatsUserSeed,
  natsInboxPrefix,
  natsTokenCredentials,
  natsUserCredentials,
  type Logger,
} from '@switchyard/platform';

export type { NatsConnection };

export interface ConnectNatsOptions {
  /** One URL or several (a cluster): an array, or a comma-separated string as NATS_URL gives it; `nats://host:port`. */
  readonly url: string | readonly string[];
  /** Client name shown by the server (`nats server report connections`); use the app name. */
  readonly name: string;
  readonly logger: Logger;
  /**
   * Token the server asks for, or an nkey user seed (`SU...`: the embedded server's); default
   * `process.env.NATS_TOKEN`. Never logged.
   */
  readonly token?: string;
  /**
   * Connect as this user instead of with the token: a role's own user (see natsRoleUsers), whose
   * answers come to its own inboxes (`_INBOX.<user>`), the only ones it may read. `pass` may be an
   * nkey user seed (the embedded server's role users). Never logged.
   */
  readonly user?: { readonly user: string; readonly pass: string };
  /** Extra transport options; they win over the defaults below. */
  readonly options?: Partial<NodeConnectionOptions>;
}

/**
 * Connect to NATS with settings for a long-running service:
 * - reconnect forever (a broker restart must not kill the process) with jittered waits,
 * - wait for the first connect a bounded time so a bad URL fails the start fast,
 * - ping often enough to notice a dead server within ~1 minute.
 * Status changes (disconnect, reconnect, errors, slow consumers) are logged.
 * Authenticates with `token`, else with NATS_TOKEN from the environment when set, so every
 * process (launcher, stand-alone relay, connectors, workflows, agent instances) honours it
 * without wiring of its own (see natsAuthOptions for how each kind of credential is presented).
 * The credential never appears in logs or errors.
 * Throws AppError('unavailable') when the first connect fails (also when the token is refused).
 */
export async function connectNats(opts: ConnectNatsOptions): Promise<NatsConnection> {
  const servers = (typeof opts.url === 'string' ? [opts.url] : [...opts.url])
    .flatMap((u) => u.split(','))
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  const log = opts.logger.child({ component: 'nats', client: opts.name });
  // An empty NATS_TOKEN means unset, as in parseConfig. A role user needs no token.
  const token = opts.user ? undefined : opts.token || process.env.NATS_TOKEN || undefined;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
      reconnectJitter: 500,
      // A cluster: the client tries the servers in random order, and learns the others the servers announce.
      pingInterval: 20_000,
      maxPingOut: 3,
      timeout: 10_000,
      // Otherwise every request builds an Error up front for its stack (a visible share of the
      // CPU in bench/workflows); request() names the subject in every failure instead.
      noAsyncTraces: true,
      ...natsAuthOptions({ ...(token ? { token } : {}), ...(opts.user ? { user: opts.user } : {}) }),
      ...opts.options,
    });
  } catch (err) {
    // Say which credential to look at; the token itself stays out of the message.
    const refused = err instanceof Error && err.name === 'AuthorizationError';
    const credential = opts.user
      ? `the password of the NATS user "${opts.user.user}"`
      : // A process of one role in a split deployment connects as that role's user, not with the token.
        "NATS_TOKEN, or for one role's process NATS_PASSWORD_<ROLE> (its NATS user's password; see the README's scale-out section)";
    const why = refused
      ? ` (authorization refused: check ${credential}${token || opts.user ? '' : ', none was given'})`
      : '';
    throw new AppError('unavailable', `cannot connect to NATS at ${servers.join(',')}${why}`, {
      servers,
      cause: String(err),
    });
  }
  const kind = (secret: string) => (isNatsUserSeed(secret) ? 'nkey ' : '');
  log.info(
    {
      server: nc.getServer(),
      auth: opts.user ? `${kind(opts.user.pass)}user ${opts.user.user}` : token ? `${kind(token)}token` : 'none',
    },
    'connected to NATS',
  );
  void watchStatus(nc, log);
  return nc;
}

/**
 * The nats.js options that present a credential. An nkey user seed (`SU...`) signs the nonce the
 * server sends on every (re)connect and is never sent itself, so a stranger that answers on the
 * port while the server restarts gets a signature of its own nonce, of no use anywhere else; the
 * embedded server's users are all nkeys. Anything else is sent as it is, in clear, for a NATS_URL
 * server of the operator's: a token goes both as a token and as the password of the user
 * `switchyard`, a user's password as that user's.
 */
export function natsAuthOptions(c: {
  readonly token?: string;
  readonly user?: { readonly user: string; readonly pass: string };
}): Partial<NodeConnectionOptions> {
  const secret = c.user ? c.user.pass : c.token;
  if (secret && isNatsUserSeed(secret))
    return {
      authenticator: nkeyAuthenticator(new TextEncoder().encode(secret)),
      ...(c.user ? { inboxPrefix: natsInboxPrefix(c.user.user) } : {}),
    };
  if (c.user) return natsUserCredentials(c.user.user, c.user.pass);
  return c.token ? natsTokenCredentials(c.token) : {};
}

async function watchStatus(nc: NatsConnection, log: Logger): Promise<void> {
  try {
    for await (const s of nc.status()) logStatus(log, s);
  } catch (err) {
    log.warn({ err }, 'NATS status watcher stopped');
  }
}

/**
 * A new inbox of this connection, under its inbox prefix: where a caller asks workers to send
 * notices beside the reply. A role user may read its own inboxes only (`_INBOX.<user>.>`).
 */
export function newInbox(nc: NatsConnection): string {
  return createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
}

function logStatus(log: Logger, s: Status): void {
  switch (s.type) {
    case 'disconnect':
      return log.warn({ server: s.server }, 'NATS disconnected');
    case 'reconnecting':
      return log.debug({}, 'NATS reconnecting');
    case 'reconnect':
      return log.info({ server: s.server }, 'NATS reconnected');
    case 'error':
      return log.error({ err: s.error }, 'NATS error');
    case 'ldm':
      return log.warn({ server: s.server }, 'NATS server entering lame duck mode');
    case 'slowConsumer':
      return log.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
    case 'staleConnection':
      return log.warn({}, 'NATS connection stale');
    case 'close':
      return log.info({}, 'NATS connection closed');
    default:
      // ping, cluster updates, forced reconnects: noise at info level.
      return log.trace({ status: s }, 'NATS status');
  }
}

/**
 * Drain and close: finish in-flight messages and flush publishes before closing,
 * so a graceful shutdown loses nothing. Falls back to close() when the drain
 * fails or takes longer than `timeoutMs`. Safe to call twice.
 */
export async function closeNats(nc: NatsConnection, opts: { logger?: Logger; timeoutMs?: number } = {}): Promise<void> {
  if (nc.isClosed()) return;
  if (nc.isDraining()) {
    await nc.closed();
    return;
  }
  const timeoutMs = opts.timeoutMs ?? 5_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      nc.drain(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`drain took longer than ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    opts.logger?.warn({ err }, 'NATS drain failed; closing');
    await nc.close().catch(() => undefined);
  } finally {
    clearTimeout(timer);
  }
}

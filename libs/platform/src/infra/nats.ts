import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fchmodSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { Socket } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { serverChildEnv } from './child-env.js';
import { isListening, waitForPort } from './ports.js';

export interface NatsServerHandle {
  readonly url: string;
  readonly kind: 'nats-server' | 'adopted';
  /** The server process (undefined when adopted). */
  readonly pid?: number;
  /** Resolves with the exit code when the server process ends, asked to or not (undefined when adopted). */
  readonly exited?: Promise<number>;
  stop(): Promise<void>;
  /** Kill at once (synchronous: usable in a process 'exit' handler). */
  kill(): void;
  /** Let this process exit while the server still runs (tests: the 'exit' hook kills it). */
  unref(): void;
}

/** Where the real nats-server binary is, or undefined (Debian installs /usr/bin/nats-server). */
export function findNatsServer(): string | undefined {
  for (const p of [
    process.env.NATS_SERVER_BIN,
    '/usr/bin/nats-server',
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
  ]) {
    if (p && existsSync(p)) return p;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server']).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

export const NATS_INSTALL_HINT =
  'nats-server is not installed: on Debian/Ubuntu run `apt-get install nats-server` (npm start does this itself as root), ' +
  'or download it from the NATS project, or point NATS_URL at a running server';

/** The embedded nats-server's token, in its store dir (DATA_DIR/nats/token): the password of its user `switchyard`. */
export const NATS_TOKEN_FILE = 'token';
/** The password of the embedded nats-server's read-only user `events`, in its store dir. */
export const NATS_EVENTS_PASSWORD_FILE = 'events-password';
/**
 * The embedded nats-server's users. `switchyard`: the system's own processes, every subject; its
 * password is the token, and clients present the token both ways (see connectNats), so a server
 * that asks for the token alone (a NATS_URL server) takes them too. `events`: another process
 * that follows the system's events, which may subscribe to them and do nothing else.
 */
export const NATS_SYSTEM_USER = 'switchyard';
export const NATS_EVENTS_USER = 'events';

/**
 * How a holder of the token connects (nats.js options): as the token and as the `switchyard`
 * user's password at once. A server configured with a token alone checks the first, the embedded
 * one (users) the second; each ignores the other.
 */
export function natsTokenCredentials(token: string): { token: string; user: string; pass: string } {
  return { token, user: NATS_SYSTEM_USER, pass: token };
}

/**
 * Where a user's connection gets its answers: `_INBOX.<user>.<id>`. A role's user may subscribe
 * to its own inboxes only, so no other role reads its answers.
 */
export const natsInboxPrefix = (user: string): string => `_INBOX.${user}`;

/** How a user (a role's, the setup user) connects (nats.js options): its password, and its own inboxes. */
export function natsUserCredentials(user: string, pass: string): { user: string; pass: string; inboxPrefix: string } {
  return { user, pass, inboxPrefix: natsInboxPrefix(user) };
}
/** The config file startNatsServer writes into the store dir and runs nats-server with. */
export const NATS_CONFIG_FILE = 'nats-server.conf';

/**
 * The token in `<storeDir>/token`, or undefined when there is none yet (the doctor reads it and
 * never makes one). Whitespace around it is dropped.
 */
export function readEmbeddedNatsToken(storeDir: string): string | undefined {
  return readSecret(storeDir, NATS_TOKEN_FILE);
}

function readSecret(storeDir: string, name: string): string | undefined {
  try {
    return readFileSync(path.join(storeDir, name), 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The token of the embedded nats-server of a store dir, made once per data dir: 32 random bytes
 * (base64url) in `<storeDir>/token`, mode 0600 in a 0700 dir. Kept on disk so a restarted launcher
 * that adopts the still-running server presents the same token, and so other local processes of
 * the same user can read it (README: Security). A looser mode left on either is tightened.
 */
export function embeddedNatsToken(storeDir: string): string {
  return embeddedSecret(storeDir, NATS_TOKEN_FILE);
}

/**
 * The `events` user's password, made once per data dir like the token (32 random bytes in
 * `<storeDir>/events-password`, mode 0600): what a process that only follows the events is given.
 */
export function embeddedNatsEventsPassword(storeDir: string): string {
  return embeddedSecret(storeDir, NATS_EVENTS_PASSWORD_FILE);
}

/** The file of a role user's password in the store dir: `<role>-password`. */
export const natsRolePasswordFile = (user: string): string => `${user}-password`;

/**
 * A role user's password, made once per data dir like the token (32 random bytes in
 * `<storeDir>/<role>-password`, mode 0600): what a process running that role alone is given.
 */
export function embeddedNatsRolePassword(storeDir: string, user: string): string {
  // A letter first: the same password may go into a nats-server config as `$NATS_PASSWORD_<ROLE>`,
  // which the server reads unquoted (see NATS_PASSWORD_PATTERN).
  return embeddedSecret(storeDir, natsRolePasswordFile(user), 'p');
}

/**
 * What a role user's password given in the environment must look like: a letter, then letters,
 * digits, `-` or `_`, 16 or more in all. nats-server reads `$NATS_PASSWORD_<ROLE>` from its
 * environment as an unquoted value: one like `1e5abc` is a number to it (and the server does not
 * start), `#` or `;` cut it short.
 */
export const NATS_PASSWORD_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{15,}$/;

function embeddedSecret(storeDir: string, name: string, prefix = ''): string {
  const dir = path.resolve(storeDir);
  privateDir(dir);
  const file = path.join(dir, name);
  const existing = readSecret(dir, name);
  if (existing) {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return existing;
  }
  const token = `${prefix}${randomBytes(32).toString('base64url')}`;
  try {
    // wx: two launchers starting at once on one data dir agree on the first one's token.
    writeFileSync(file, `${token}\n`, { flag: 'wx', mode: 0o600 });
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const raced = readSecret(dir, name);
  if (raced) return raced;
  // An empty file (a crash between create and write): replace it.
  writePrivateFile(file, `${token}\n`);
  return token;
}

/** mkdir -p with mode 0700, and 0700 on a dir that was already there. */
function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** Write a file only its owner may read: the mode is set before the content goes in, also on an existing file. */
function writePrivateFile(file: string, content: string): void {
  const fd = openSync(file, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

/**
 * A token nats-server's config parser takes verbatim inside double quotes: printable ASCII
 * without quote, backslash or space, and not `$2...` (the server would treat it as a bcrypt hash).
 */
function checkToken(token: string, what = 'the embedded nats-server token (NATS_TOKEN or DATA_DIR/nats/token)'): void {
  if (!/^[\x21-\x7e]+$/.test(token) || /["\\]/.test(token) || token.startsWith('$2'))
    throw new Error(`${what} must be printable ASCII without spaces, quotes or backslashes, and not start with $2`);
}

/** Who may only follow the events: the `events` user's password and the subjects it may subscribe to. */
export interface NatsEventsReader {
  readonly password: string;
  readonly subjects: readonly string[];
}

/** A user of one role of the system: what it may publish and subscribe to. */
export interface NatsRoleAccount {
  readonly user: string;
  readonly password: string;
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/**
 * One entry of a nats-server `users` list for a role's user: `password` is the text that goes in
 * the file (a quoted password, or `$VAR` for the server to take from its environment). A user
 * that answers requests needs the callers' inboxes in its `publish` list.
 */
export function natsRoleUserEntry(
  account: Pick<NatsRoleAccount, 'user' | 'publish' | 'subscribe'>,
  password: string,
): string {
  const list = (xs: readonly string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return `{ user: "${account.user}", password: ${password}, permissions: { publish: { allow: ${list(account.publish)} }, subscribe: { allow: ${list(account.subscribe)} } } }`;
}

/**
 * The config file of one server: listen on loopback, JetStream in the store dir, and, with a
 * token, two users: `switchyard` (password: the token) with every subject, and `events`, which may
 * subscribe to the event subjects and publish nothing. Publishing nothing matters beyond the
 * service subjects: a JetStream API request (a consumer's deliver subject, a request's reply
 * subject) makes the server publish to a subject the requester names, so a reader allowed the
 * API could still put messages on the service subjects.
 */
function natsConfig(
  port: number,
  storeDir: string,
  token: string | undefined,
  events?: NatsEventsReader,
  roles: readonly NatsRoleAccount[] = [],
): string {
  const users = token
    ? [
        `    { user: "${NATS_SYSTEM_USER}", password: "${token}" }`,
        ...(events
          ? [
              `    { user: "${NATS_EVENTS_USER}", password: "${events.password}", permissions: { publish: { deny: [">"] }, subscribe: { allow: [${events.subjects.map((x) => JSON.stringify(x)).join(', ')}] } } }`,
            ]
          : []),
        ...roles.map((r) => `    ${natsRoleUserEntry(r, `"${r.password}"`)}`),
      ]
    : [];
  return [
    '# Written by startNatsServer (Switchyard) at each start: edits are overwritten.',
    `listen: "127.0.0.1:${port}"`,
    `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
    ...(users.length ? ['authorization {', '  users = [', ...users, '  ]', '}'] : []),
    '',
  ].join('\n');
}

/** Subjects the config file takes verbatim: NATS subject tokens and wildcards only. */
function checkSubjects(subjects: readonly string[], whose = "the events reader's", allowEmpty = false): void {
  if (
    (subjects.length === 0 && !allowEmpty) ||
    subjects.some((x) => !/^\$?[A-Za-z0-9_-]+(\.([A-Za-z0-9_-]+|\*))*(\.>)?$/.test(x))
  )
    throw new Error(`${whose} subjects must be NATS subjects: ${subjects.join(', ')}`);
}

/**
 * What the server on the port says to a client holding `credential`: `open` (it asks for no
 * credentials), `accepted` or `refused`. A token is presented as connectNats does: as the token
 * and as the `switchyard` user's password. Plain NATS protocol (INFO, CONNECT, PING), so the
 * platform needs no NATS client for the check.
 */
export function probeNatsAuth(
  port: number,
  credential: string | { readonly user: string; readonly pass: string },
  timeoutMs = 3_000,
): Promise<'open' | 'accepted' | 'refused'> {
  const c = typeof credential === 'string' ? natsTokenCredentials(credential) : credential;
  const auth = { ...('token' in c && { auth_token: c.token }), user: c.user, pass: c.pass };
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let buf = '';
    let sent = false;
    let settled = false;
    const done = (err: Error | undefined, result?: 'open' | 'accepted' | 'refused') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(
      () => done(new Error(`no NATS answer on 127.0.0.1:${port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('error', (err) => done(err));
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      if (!sent) {
        const end = buf.indexOf('\r\n');
        if (end < 0) return;
        const line = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (!line.startsWith('INFO ')) return done(new Error(`not a NATS server on 127.0.0.1:${port}`));
        let info: { auth_required?: boolean };
        try {
          info = JSON.parse(line.slice(5)) as { auth_required?: boolean };
        } catch {
          return done(new Error(`not a NATS server on 127.0.0.1:${port}`));
        }
        if (!info.auth_required) return done(undefined, 'open');
        sent = true;
        socket.write(
          `CONNECT ${JSON.stringify({ ...auth, verbose: false, pedantic: false, name: 'switchyard-probe' })}\r\nPING\r\n`,
        );
      }
      if (/^PONG\r\n/m.test(buf)) return done(undefined, 'accepted');
      if (/^-ERR/m.test(buf)) return done(undefined, 'refused');
    });
    // The server closes the connection after an authorization error.
    socket.on('close', () =>
      sent ? done(undefined, 'refused') : done(new Error(`127.0.0.1:${port} closed before a NATS greeting`)),
    );
    socket.connect(port, '127.0.0.1');
  });
}

/**
 * Start the real nats-server with JetStream on 127.0.0.1, from a config file written into the
 * store dir (mode 0600). With `token`, clients must present it (as the `switchyard` user's
 * password); with `events` too, the `events` user may follow the event subjects and nothing else.
 * The secrets go in that file, never on the command line or in the server's environment, since
 * /proc/<pid>/cmdline is readable by every local user. Without a token the server asks for nothing
 * (the test harness).
 * If a server already answers on the port (left by a killed run), adopt it; with `token`, only
 * when it asks for credentials and takes these, so a server left without authentication (or
 * another data dir's) is not silently used.
 */
export async function startNatsServer(opts: {
  port: number;
  storeDir: string;
  logger?: Logger;
  token?: string;
  events?: NatsEventsReader;
  /** Users of the roles (see NatsRoleAccount); with a token only. */
  roles?: readonly NatsRoleAccount[];
}): Promise<NatsServerHandle> {
  const url = `nats://127.0.0.1:${opts.port}`;
  if (opts.token !== undefined) checkToken(opts.token);
  if (opts.events) {
    if (opts.token === undefined)
      throw new Error('the events reader needs a token: a server without one asks for nothing');
    checkToken(opts.events.password);
    checkSubjects(opts.events.subjects);
  }
  const roles = opts.roles ?? [];
  if (roles.length > 0 && opts.token === undefined)
    throw new Error("the roles' users need a token: a server without one asks for nothing");
  for (const r of roles) {
    if (!/^[a-z][a-z0-9_-]*$/.test(r.user)) throw new Error(`a NATS role user's name must be plain: ${r.user}`);
    checkToken(r.password, `the ${r.user} user's password`);
    checkSubjects(r.publish, `the ${r.user} user's`, true);
    checkSubjects(r.subscribe, `the ${r.user} user's`, true);
  }
  if (await isListening(opts.port)) {
    if (opts.token !== undefined) {
      const auth = await probeNatsAuth(opts.port, opts.token);
      if (auth === 'open')
        throw new Error(
          `a NATS server that asks for no token already runs on 127.0.0.1:${opts.port} (left by an older Switchyard?): stop it, and the launcher starts one that does`,
        );
      if (auth === 'refused')
        throw new Error(
          `the NATS server already on 127.0.0.1:${opts.port} refuses this data dir's token (NATS_TOKEN or DATA_DIR/nats/token): it belongs to another data dir or token; stop it or use another EMBEDDED_NATS_PORT`,
        );
      if (
        opts.events &&
        (await probeNatsAuth(opts.port, { user: NATS_EVENTS_USER, pass: opts.events.password })) !== 'accepted'
      )
        throw new Error(
          `the NATS server already on 127.0.0.1:${opts.port} has no "${NATS_EVENTS_USER}" user with this data dir's password (DATA_DIR/nats/${NATS_EVENTS_PASSWORD_FILE}); it was started by an older Switchyard: stop it, and the launcher starts one that has`,
        );
      for (const r of roles)
        if ((await probeNatsAuth(opts.port, { user: r.user, pass: r.password })) !== 'accepted')
          throw new Error(
            `the NATS server already on 127.0.0.1:${opts.port} has no "${r.user}" user with this data dir's password; it was started by an older Switchyard: stop it, and the launcher starts one that has`,
          );
    }
    opts.logger?.info({ port: opts.port }, 'adopting the NATS server already running on the port');
    return { url, kind: 'adopted', stop: async () => undefined, kill: () => undefined, unref: () => undefined };
  }
  const bin = findNatsServer();
  if (!bin) throw new Error(NATS_INSTALL_HINT);
  const storeDir = path.resolve(opts.storeDir);
  privateDir(storeDir);
  const conf = path.join(storeDir, NATS_CONFIG_FILE);
  writePrivateFile(conf, natsConfig(opts.port, storeDir, opts.token, opts.events, roles));
  const log = opts.logger?.child({ component: 'nats-server' });
  // NATS_TOKEN stays out of the server's environment too (it reads the token from the file), as does every other credential of ours.
  const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'], env: serverChildEnv() });
  const relay = (b: Buffer) => log?.debug({ nats: b.toString().trim() }, 'nats-server');
  child.stdout?.on('data', relay);
  child.stderr?.on('data', relay);
  let exited: number | null = null;
  let resolveExited!: (code: number) => void;
  const exitedPromise = new Promise<number>((r) => (resolveExited = r));
  child.once('exit', (code) => {
    exited = code ?? -1;
    resolveExited(exited);
  });
  // A spawn that fails (binary missing, not executable) emits 'error': without a listener it would end this process.
  child.on('error', (err) => {
    log?.error({ err }, 'nats-server process error');
    exited ??= -1;
    resolveExited(exited);
  });
  try {
    await waitForPort(opts.port, 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`nats-server did not start (exit ${exited}): ${String(err)}`, { cause: err });
  }
  return {
    url,
    kind: 'nats-server',
    ...(child.pid !== undefined ? { pid: child.pid } : {}),
    exited: exitedPromise,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    unref: () => {
      child.unref();
      (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
      (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.ref(); // after unref(), waiting for the exit must keep the process alive
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

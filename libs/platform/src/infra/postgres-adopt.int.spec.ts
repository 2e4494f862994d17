import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { embeddedSuperuserPasswordFile, startEmbeddedPostgres, type PostgresHandle } from './postgres.js';
import { freePort, isListening } from './ports.js';

/**
 * A launcher killed with SIGKILL leaves its PostgreSQL running; the next start adopts it. The
 * adopting process must then own it: its clean stop stops the server (else a restart after a
 * crash leaves a server running after Ctrl-C). A server on the port that runs another cluster is
 * used but never stopped. Real embedded PostgreSQL, in a directory of the test's own.
 */
describe('an adopted PostgreSQL server is stopped by its adopter only when it runs our cluster', () => {
  let scratch: string;
  let first: PostgresHandle;
  let port: number;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'pg-adopt-'));
    chmodSync(scratch, 0o755);
    port = await freePort();
    // The process that "crashed": its server keeps running, as after a SIGKILL of its launcher.
    first = await startEmbeddedPostgres({ dataDir: path.join(scratch, 'postgres'), port, fallback: 'off' });
  });

  after(async () => {
    await first?.stop().catch(() => undefined);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('a start on another port does not put an empty cluster in place of the one still running on the data dir', async () => {
    const dataDir = path.join(scratch, 'postgres');
    await assert.rejects(
      startEmbeddedPostgres({ dataDir, port: await freePort(), fallback: 'on' }),
      (err: Error) =>
        /its data is there: not starting an empty cluster/.test(err.message) &&
        err.message.includes(`EMBEDDED_PG_PORT=${port}`),
    );
    assert.equal(existsSync(`${dataDir}-debian`), false, 'no fallback cluster was made');
  });

  it("another cluster's server on the port is adopted but left running at stop", async () => {
    // A server we can log in to (the same superuser password) that runs another cluster.
    const password = readFileSync(embeddedSuperuserPasswordFile(path.join(scratch, 'postgres')), 'utf8').trim();
    const other = await startEmbeddedPostgres({
      dataDir: path.join(scratch, 'not-this-one'),
      port,
      password,
      fallback: 'off',
    });
    assert.equal(other.kind, 'adopted');
    assert.equal(other.pid, undefined);
    await other.stop();
    assert.ok(await isListening(port), 'the server still answers');
  });

  it("a copy of the running data dir (its postmaster.pid with it) never adopts the original's server as its own", async () => {
    const copy = path.join(scratch, 'copied');
    cpSync(path.join(scratch, 'postgres'), copy, { recursive: true });
    cpSync(embeddedSuperuserPasswordFile(path.join(scratch, 'postgres')), embeddedSuperuserPasswordFile(copy));
    // On the original's port (as the old advice said): not adopted (before, the copy ran on the
    // original's database, and its clean stop shut that server down).
    await assert.rejects(
      startEmbeddedPostgres({ dataDir: copy, port, fallback: 'off' }),
      /is taken by something that is not our PostgreSQL/,
    );
    assert.ok(await isListening(port), "the original's server still answers");
    // On a port of its own: refused, saying the pid file came with a copy.
    await assert.rejects(
      startEmbeddedPostgres({ dataDir: copy, port: await freePort(), fallback: 'on' }),
      (err: Error) =>
        /names another data dir .*copied from a running system. Remove that file/.test(err.message) &&
        !err.message.includes(`EMBEDDED_PG_PORT=${port} to use it`),
    );
  });

  it("our cluster's server is adopted with its pid, and the adopter's stop shuts it down", async () => {
    const again = await startEmbeddedPostgres({ dataDir: path.join(scratch, 'postgres'), port, fallback: 'off' });
    assert.equal(again.kind, 'adopted');
    assert.equal(again.pid, first.pid);
    await again.stop();
    const code = await Promise.race([first.exited!, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    assert.notEqual(code, 'still running');
    assert.equal(await isListening(port), false);
  });

  it('an adopted server of ours that exits on its own is seen to exit (so the launcher starts it again)', async () => {
    const dataDir = path.join(scratch, 'postgres');
    const started = await startEmbeddedPostgres({ dataDir, port, fallback: 'off' });
    const adopted = await startEmbeddedPostgres({ dataDir, port, fallback: 'off' });
    try {
      assert.equal(adopted.kind, 'adopted');
      assert.ok(adopted.exited, 'an adopted server of ours is watched');
      process.kill(started.pid!, 'SIGINT'); // a fast shutdown nobody here asked for
      const code = await Promise.race([adopted.exited, new Promise((r) => setTimeout(() => r('not seen'), 10_000))]);
      assert.equal(code, -1, 'its exit is seen (its code is not ours to read)');
    } finally {
      await started.stop().catch(() => undefined);
    }
  });
});

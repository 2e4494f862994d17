/**
 * `npm run doctor` is a check: on a built checkout its bootstrap step installs and builds nothing
 * (an `npm ci` or a rebuild beside a running system would change the files that system runs from).
 * Run with no PATH: a bootstrap that went on to build could not find `npx` and would fail.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bootstrap = (args: string[]) =>
  spawnSync(process.execPath, [path.join(root, 'scripts', 'bootstrap.mjs'), '--quiet', ...args], {
    cwd: root,
    env: { PATH: '', HOME: process.env.HOME ?? '/tmp', NATS_URL: 'nats://127.0.0.1:1' },
    encoding: 'utf8',
  });

describe("npm run doctor's bootstrap", () => {
  it('changes nothing on a built checkout (--if-unbuilt); the full bootstrap would build', () => {
    const check = bootstrap(['--if-unbuilt']);
    assert.equal(check.status, 0, check.stderr);
    const full = bootstrap([]);
    assert.notEqual(full.status, 0, 'without --if-unbuilt it goes on to build (npx is not on this PATH)');
    assert.match(full.stderr, /failed: npx tsc -b/);
  });
});

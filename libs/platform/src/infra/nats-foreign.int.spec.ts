import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { natsUserSeed, startNatsServer } from './nats.js';
import { freePort, isListening } from './ports.js';

// A listener of another OS user needs root to make (setpriv to nobody) and Linux to see.
// The listener is perl's (Debian's essential perl-base), not node: this node may sit in a
// directory the other user cannot enter (under /root).
const canPlayAnotherUser =
  process.getuid?.() === 0 &&
  spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0 &&
  spawnSync('/usr/bin/perl', ['-MIO::Socket::INET', '-e', '1'], { stdio: 'ignore' }).status === 0;
const skip = canPlayAnotherUser
  ? false
  : 'needs root, setpriv and /usr/bin/perl to listen as another OS user: not tested here';
if (skip) console.log(`# foreign NATS listener spec skipped: ${skip}`);

describe('the embedded nats-server is not adopted from another OS user', { skip }, () => {
  const storeDir = mkdtempSync(path.join(tmpdir(), 'nats-foreign-'));
  let squatter: ChildProcess | undefined;
  after(() => {
    squatter?.kill('SIGKILL');
    rmSync(storeDir, { recursive: true, force: true });
  });

  it('refuses a listener of another user on the port, whatever it would answer, and starts nothing', async () => {
    const port = await freePort();
    // Someone who took the port while it was free, as nobody: it would take any signature.
    squatter = spawn(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '/usr/bin/perl',
        '-MIO::Socket::INET',
        '-e',
        `$s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => ${port}, Listen => 5, ReuseAddr => 1) or die;` +
          ` while ($c = $s->accept) { print $c qq(INFO {"auth_required":true,"nonce":"abc"}\\r\\n) }`,
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 200 && !(await isListening(port)); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(await isListening(port), 'the other user listens');
    await assert.rejects(
      startNatsServer({ port, storeDir, seed: natsUserSeed('this-data-dir') }),
      /held by a process of another OS user \(uid 65534\)/,
    );
  });
});

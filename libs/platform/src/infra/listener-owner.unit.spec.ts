import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { foreignListener, listenerUids } from './listener-owner.js';

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
// 127.0.0.1:4222 (0x107E) listening as uid 65534; 127.0.0.1:4222 connected (01) as uid 0; 0.0.0.0:8080 listening as 0.
const TCP =
  HEADER +
  '   0: 0100007F:107E 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1 1 0000000000000000 100 0 0 10 0\n' +
  '   1: 0100007F:107E 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1\n' +
  '   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0\n';
const TCP6 =
  HEADER +
  '   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 100 0 0 10 0\n';

describe('listenerUids / foreignListener: who listens on a port', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'listener-owner-'));
  const tcp = path.join(dir, 'tcp');
  const tcp6 = path.join(dir, 'tcp6');
  writeFileSync(tcp, TCP);
  writeFileSync(tcp6, TCP6);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the listeners of a port from both tables, not its connections', () => {
    assert.deepEqual([...listenerUids(4222, [tcp, tcp6])!], [65534]);
    assert.deepEqual([...listenerUids(8080, [tcp, tcp6])!].sort(), [0, 1000]);
    assert.deepEqual([...listenerUids(9999, [tcp, tcp6])!], []);
    assert.equal(listenerUids(4222, [path.join(dir, 'none')]), undefined, 'no table to read: unknown');
  });

  it('names a listener of another OS user; our own listener (a real socket) is not foreign', async (t) => {
    if (process.getuid === undefined || !listenerUids(1)) return t.skip('no kernel socket tables here (not Linux)');
    const own = process.getuid();
    const fake = path.join(dir, 'foreign');
    writeFileSync(fake, TCP.replace('65534', own === 65534 ? '4242' : '65534'));
    assert.match(foreignListener(4222, [fake]) ?? '', /another OS user \(uid \d+\)/);
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      assert.ok(listenerUids(port)!.has(own), 'our socket is listed with our uid');
      assert.equal(foreignListener(port), undefined);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});

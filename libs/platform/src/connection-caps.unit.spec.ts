import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { addressShare, capConnections, capsWithinDescriptors, openFilesLimit } from './connection-caps.js';

/** Opens a raw connection; resolves with it and whether the server closed it within `ms`. */
const connectAndWatch = async (port: number, ms: number) => {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  const closed = await Promise.race([
    new Promise<boolean>((r) => socket.once('close', () => r(true))),
    sleep(ms).then(() => false),
  ]);
  return { socket, closed };
};

describe('capConnections (a real HTTP server on loopback)', () => {
  it('closes connections past the per-address share and past the total, and takes them again once some close', async () => {
    const refused: string[] = [];
    const server = http.createServer((_req, res) => res.end('ok'));
    capConnections(server, { max: 6, perAddress: 4 }, (why) => refused.push(why.limit));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const c = await connectAndWatch(port, 100);
        assert.equal(c.closed, false, `connection ${i + 1} of 4 stays open`);
        held.push(c.socket);
      }
      const fifth = await connectAndWatch(port, 1_000);
      assert.equal(fifth.closed, true, 'the fifth from the same address is closed at once');
      assert.deepEqual(refused, ['perAddress']);
      held.pop()!.destroy();
      await sleep(100);
      const again = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } });
      assert.equal(await again.text(), 'ok', 'a freed slot is taken again');
    } finally {
      for (const s of held) s.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("the total is the server's maxConnections", () => {
    const server = http.createServer();
    capConnections(server, { max: 7, perAddress: 3 });
    assert.equal(server.maxConnections, 7);
  });

  it('counts an IPv6 client by its /64, an IPv4 one (mapped or not) by its address', () => {
    assert.equal(addressShare('127.0.0.1'), '127.0.0.1');
    assert.equal(addressShare('::ffff:10.0.0.7'), '::ffff:10.0.0.7');
    assert.equal(addressShare('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(addressShare('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(addressShare('2001:0db8:0001:0002::9'), '2001:db8:1:2::/64');
    assert.equal(addressShare('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressShare('::1'), '0:0:0:0::/64');
    assert.equal(addressShare('fe80::1%eth0'), 'fe80:0:0:0::/64');
  });
});

describe('capsWithinDescriptors', () => {
  it("keeps a listener's caps within its share of the open-files limit, a quarter of that per address", () => {
    const caps = { max: 2_048, perAddress: 512 };
    assert.deepEqual(capsWithinDescriptors(caps, 0.5, 512), { max: 256, perAddress: 64 });
    assert.deepEqual(capsWithinDescriptors(caps, 0.5, 1_048_576), caps, 'a large limit changes nothing');
    assert.deepEqual(capsWithinDescriptors(caps, 0.5, undefined), caps, 'an unknown limit changes nothing');
    assert.deepEqual(capsWithinDescriptors({ max: 512, perAddress: 512 }, 1 / 32, 512), { max: 16, perAddress: 4 });
    // Caps already below the limit's share stay as configured (the per-address share too).
    assert.deepEqual(capsWithinDescriptors({ max: 64, perAddress: 24 }, 0.5, 1_048_576), { max: 64, perAddress: 24 });
  });

  it("reads this process's limit", () => {
    const limit = openFilesLimit();
    if (process.platform === 'linux') assert.ok(Number.isInteger(limit) && limit! > 0, String(limit));
    else assert.equal(limit, undefined);
  });
});

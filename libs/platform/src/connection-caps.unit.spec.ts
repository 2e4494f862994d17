import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import {
  addressShare,
  capConnections,
  capsWithinDescriptors,
  ConnectionBudget,
  INTERNAL_LISTENER_CAPS,
  internalListenerCaps,
  openFilesLimit,
} from './connection-caps.js';

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

  it('two listeners sharing a budget together keep at most its size open, and take one again once one closes', async () => {
    const refused: string[] = [];
    const budget = new ConnectionBudget(5);
    const servers = [http.createServer(), http.createServer()];
    for (const server of servers)
      capConnections(server, { max: 4, perAddress: 4 }, (why) => refused.push(why.limit), budget);
    const ports: number[] = [];
    for (const server of servers) {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      ports.push((server.address() as AddressInfo).port);
    }
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push((await connectAndWatch(ports[0]!, 100)).socket);
      for (let i = 0; i < 2; i++) {
        const c = await connectAndWatch(ports[1]!, 100);
        assert.equal(c.closed, false, `the second listener's connection ${i + 1} of 2 stays open`);
        held.push(c.socket);
      }
      assert.equal(budget.open, 5);
      const past = await connectAndWatch(ports[1]!, 1_000);
      assert.equal(past.closed, true, "the sixth in all is closed at once, though under the second listener's own cap");
      assert.deepEqual(refused, ['budget']);
      held.shift()!.destroy();
      await sleep(100);
      const again = await connectAndWatch(ports[1]!, 200);
      assert.equal(again.closed, false, 'a freed slot of the budget is taken again');
      held.push(again.socket);
    } finally {
      for (const s of held) s.destroy();
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
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

  it("fits the internal listeners' caps to the limit: each a sixteenth (not under 32), all together a quarter", () => {
    assert.deepEqual(internalListenerCaps(1_024), { caps: { max: 64, perAddress: 64 }, budget: 256 });
    assert.deepEqual(internalListenerCaps(256), { caps: { max: 32, perAddress: 32 }, budget: 64 });
    assert.deepEqual(internalListenerCaps(100), { caps: { max: 32, perAddress: 32 }, budget: 32 });
    const large = internalListenerCaps(1_048_576);
    assert.deepEqual(large.caps, INTERNAL_LISTENER_CAPS, 'a large limit changes nothing');
    assert.equal(large.budget, 262_144);
    assert.deepEqual(internalListenerCaps(undefined), {
      caps: INTERNAL_LISTENER_CAPS,
      budget: Number.POSITIVE_INFINITY,
    });
  });

  it(
    'a process under ulimit -n 1024 gives each internal listener 64 and reports the lowered caps once',
    { skip: process.platform !== 'linux' },
    () => {
      // The limit is the process's own (read from /proc/self/limits): a child started under a low one.
      const script = `
      import http from 'node:http';
      const { boundInternalListener } = await import(process.argv[1]);
      const lowered = [];
      const servers = [http.createServer(), http.createServer()];
      for (const s of servers) boundInternalListener(s, undefined, (l) => lowered.push(l));
      console.log(JSON.stringify({ max: servers.map((s) => s.maxConnections), lowered }));`;
      const out = execFileSync(
        'sh',
        [
          '-c',
          'ulimit -n 1024 && exec "$0" --input-type=module -e "$1" "$2"',
          process.execPath,
          script,
          new URL('./connection-caps.js', import.meta.url).href,
        ],
        { encoding: 'utf8' },
      );
      const seen = JSON.parse(out) as {
        max: number[];
        lowered: { applied: unknown; budget: number; openFilesLimit: number }[];
      };
      assert.deepEqual(seen.max, [64, 64]);
      assert.equal(seen.lowered.length, 1, 'one warning for the process');
      assert.deepEqual(seen.lowered[0]!.applied, { max: 64, perAddress: 64 });
      assert.equal(seen.lowered[0]!.budget, 256);
      assert.equal(seen.lowered[0]!.openFilesLimit, 1_024);
    },
  );

  it("reads this process's limit", () => {
    const limit = openFilesLimit();
    if (process.platform === 'linux') assert.ok(Number.isInteger(limit) && limit! > 0, String(limit));
    else assert.equal(limit, undefined);
    const hard = openFilesLimit('hard');
    if (process.platform === 'linux' && hard !== undefined) assert.ok(hard >= limit!, `${hard} >= ${limit}`);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import {
  embeddedNatsEventsPassword,
  embeddedNatsToken,
  isNatsUserSeed,
  NATS_CONFIG_FILE,
  NATS_EVENTS_PASSWORD_FILE,
  NATS_TOKEN_FILE,
  natsPublicKey,
  natsUserSeed,
  probeNatsAuth,
  readEmbeddedNatsToken,
  startNatsServer,
  type NatsServerHandle,
} from './nats.js';
import { freePort, isListening } from './ports.js';

const mode = (file: string) => statSync(file).mode & 0o777;

const SEED = /^SU[A-Z2-7]{56}$/;

/**
 * The launcher's nats-server names its users by nkey: the seeds are in 0600 files of its store
 * dir, the config file holds public keys only, nothing is on the command line (readable by every
 * local user). A real nats-server.
 */
describe('the embedded nats-server with nkeys', () => {
  let scratch: string;
  let storeDir: string;
  let token: string;
  let port: number;
  let server: NatsServerHandle;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'nats-token-'));
    chmodSync(scratch, 0o755);
    storeDir = path.join(scratch, 'nats');
    token = embeddedNatsToken(storeDir);
    port = await freePort();
    // A credential of this process that the server must not inherit (see the environment test).
    process.env.MCP_AUTH_TOKEN = 'not-for-nats-server-3f9c';
    try {
      server = await startNatsServer({ port, storeDir, seed: token });
    } finally {
      delete process.env.MCP_AUTH_TOKEN;
    }
  });

  after(async () => {
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('makes one nkey user seed per store dir in a 0600 file in a 0700 dir, and keeps it', () => {
    assert.match(token, SEED);
    assert.ok(isNatsUserSeed(token));
    assert.equal(embeddedNatsToken(storeDir), token);
    assert.equal(readEmbeddedNatsToken(storeDir), token);
    assert.equal(mode(storeDir), 0o700);
    assert.equal(mode(path.join(storeDir, NATS_TOKEN_FILE)), 0o600);
    assert.equal(readEmbeddedNatsToken(path.join(scratch, 'none')), undefined);
  });

  it('tightens a looser mode left on the dir or the token file', () => {
    chmodSync(path.join(storeDir, NATS_TOKEN_FILE), 0o644);
    chmodSync(storeDir, 0o755);
    assert.equal(embeddedNatsToken(storeDir), token);
    assert.equal(mode(storeDir), 0o700);
    assert.equal(mode(path.join(storeDir, NATS_TOKEN_FILE)), 0o600);
  });

  it('runs nats-server from a 0600 config file of public keys; the seed is not in it, on its command line nor in its environment', () => {
    const conf = path.join(storeDir, NATS_CONFIG_FILE);
    assert.equal(mode(conf), 0o600);
    assert.ok(readFileSync(conf, 'utf8').includes(`{ nkey: "${natsPublicKey(token)}" }`));
    assert.ok(!readFileSync(conf, 'utf8').includes(token), 'the seed is in the config file');
    assert.doesNotMatch(readFileSync(conf, 'utf8'), /password/);
    assert.match(readFileSync(conf, 'utf8'), /listen: "127\.0\.0\.1:\d+"/);
    assert.ok(server.pid);
    const cmdline = readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').split('\0');
    assert.deepEqual(cmdline.slice(1, 3), ['-c', conf]);
    assert.ok(!cmdline.join(' ').includes(token), 'the token is on the command line');
    const environ = readFileSync(`/proc/${server.pid}/environ`, 'utf8');
    assert.ok(!environ.includes(token), 'the token is in the environment');
    assert.ok(
      !environ.includes('not-for-nats-server-3f9c'),
      "another credential of ours is in the server's environment",
    );
    assert.match(environ, /(^|\0)PATH=/);
  });

  it("refuses another seed, a password, or the seed sent as a password; accepts the seed's signature", async () => {
    assert.equal(await probeNatsAuth(port, { seed: natsUserSeed('wrong') }), 'refused');
    assert.equal(await probeNatsAuth(port, { user: 'switchyard', pass: token }), 'refused');
    assert.equal(await probeNatsAuth(port, { seed: token }), 'accepted');
  });

  it('adopts the running server only for the same seed', async () => {
    const again = await startNatsServer({ port, storeDir, seed: token });
    assert.equal(again.kind, 'adopted');
    assert.equal(again.pid, server.pid, 'the adopted server is known as ours: it runs on our config file');
    // The same seed from another data dir adopts it as another's: its stop leaves it running.
    const elsewhere = await startNatsServer({ port, storeDir: path.join(scratch, 'same-seed'), seed: token });
    assert.equal(elsewhere.kind, 'adopted');
    assert.equal(elsewhere.pid, undefined);
    await elsewhere.stop();
    assert.equal(await probeNatsAuth(port, { seed: token }), 'accepted', 'stopped by a launcher of another data dir');
    const other = natsUserSeed('another-token');
    await assert.rejects(
      startNatsServer({ port, storeDir: path.join(scratch, 'other'), seed: other }),
      (e: Error) => /refuses this data dir's nkey/.test(e.message) && !e.message.includes(other),
    );
    // Started without the events reader (as an older launcher did): a launcher that gives one does not adopt it.
    const events = { seed: embeddedNatsEventsPassword(storeDir), subjects: ['switchyard.events.>'] };
    await assert.rejects(
      startNatsServer({ port, storeDir, seed: token, events }),
      (e: Error) => /has no "events" user/.test(e.message) && !e.message.includes(events.seed),
    );
  });

  it('stops an adopted server of ours on a clean stop, as a restarted launcher must after a crash left it running', async () => {
    const dir = path.join(scratch, 'outlived');
    const seed = embeddedNatsToken(dir);
    const p = await freePort();
    const first = await startNatsServer({ port: p, storeDir: dir, seed });
    first.unref(); // the launcher that started it is gone; its server runs on
    const adopted = await startNatsServer({ port: p, storeDir: dir, seed });
    try {
      assert.equal(adopted.kind, 'adopted');
      assert.equal(adopted.pid, first.pid);
      await adopted.stop();
      assert.notEqual(await first.exited, -1, 'it ended on the SIGTERM, not killed');
      assert.equal(await adopted.exited, -1, 'the adopted handle sees its end');
      assert.equal(await isListening(p), false);
    } finally {
      first.kill();
    }
  });

  it('writes the events reader into the config: subscribe to its subjects, publish nothing', async () => {
    const dir = path.join(scratch, 'with-events');
    const events = { seed: embeddedNatsEventsPassword(dir), subjects: ['switchyard.events.>'] };
    assert.match(events.seed, SEED);
    assert.equal(mode(path.join(dir, NATS_EVENTS_PASSWORD_FILE)), 0o600);
    assert.equal(embeddedNatsEventsPassword(dir), events.seed, 'kept');
    const p = await freePort();
    const withEvents = await startNatsServer({ port: p, storeDir: dir, seed: embeddedNatsToken(dir), events });
    try {
      const conf = readFileSync(path.join(dir, NATS_CONFIG_FILE), 'utf8');
      assert.ok(
        conf.includes(
          `{ nkey: "${natsPublicKey(events.seed)}", permissions: { publish: { deny: [">"] }, subscribe: { allow: ["switchyard.events.>"] } } }`,
        ),
        conf,
      );
      assert.equal(await probeNatsAuth(p, { seed: events.seed }), 'accepted');
      assert.equal(await probeNatsAuth(p, { user: 'events', pass: events.seed }), 'refused');
      assert.equal(await probeNatsAuth(p, { seed: embeddedNatsToken(dir) }), 'accepted');
      // Adopted again with the same secrets.
      assert.equal(
        (await startNatsServer({ port: p, storeDir: dir, seed: embeddedNatsToken(dir), events })).kind,
        'adopted',
      );
    } finally {
      await withEvents.stop();
    }
    await assert.rejects(
      startNatsServer({
        port: await freePort(),
        storeDir: dir,
        seed: embeddedNatsToken(dir),
        events: { ...events, subjects: ['a b'] },
      }),
      /must be NATS subjects/,
    );
  });

  it('refuses a credential that is not an nkey user seed', async () => {
    // The character changed is inside the key: the last one of a seed holds padding bits as well, so
    // changing it can leave the same seed.
    const inside = 20;
    const damaged = token.slice(0, inside) + (token[inside] === 'A' ? 'B' : 'A') + token.slice(inside + 1);
    for (const bad of ['a-password-of-old', natsPublicKey(token), damaged]) {
      const started = await startNatsServer({
        port: await freePort(),
        storeDir: path.join(scratch, 'refused'),
        seed: bad,
      }).catch((e: Error) => e);
      if (!(started instanceof Error)) await started.stop();
      assert.ok(started instanceof Error, `a server started with ${bad.slice(0, 4)}…`);
      assert.match(started.message, /nkey user seed/);
    }
  });

  it('makes the same seed of the same other secret (NATS_TOKEN given), and keeps a seed as it is', () => {
    assert.match(natsUserSeed('chosen-token'), SEED);
    assert.equal(natsUserSeed('chosen-token'), natsUserSeed('chosen-token'));
    assert.notEqual(natsUserSeed('chosen-token'), natsUserSeed('chosen-tokem'));
    assert.equal(natsUserSeed(token), token);
  });

  it('replaces an empty seed file, and one of an older Switchyard that holds a password', () => {
    for (const [name, old] of [
      ['empty', ''],
      ['old', 'oTMgyGsoAbcdefghijklmnopqrstuvwxyz0123456789'],
    ] as const) {
      const dir = path.join(scratch, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, NATS_TOKEN_FILE), old, { mode: 0o600 });
      assert.equal(readEmbeddedNatsToken(dir), undefined);
      const made = embeddedNatsToken(dir);
      assert.match(made, SEED);
      assert.equal(readEmbeddedNatsToken(dir), made);
      assert.equal(mode(path.join(dir, NATS_TOKEN_FILE)), 0o600);
    }
  });
});

describe('a server left without a token on the port', () => {
  let scratch: string;
  let open: NatsServerHandle;
  let port: number;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'nats-open-'));
    port = await freePort();
    // As the test harness starts it, and as an older launcher left it.
    open = await startNatsServer({ port, storeDir: path.join(scratch, 'nats') });
  });

  after(async () => {
    await open?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('asks for nothing without a seed (the test harness)', async () => {
    assert.equal(await probeNatsAuth(port, { seed: natsUserSeed('anything') }), 'open');
    assert.doesNotMatch(readFileSync(path.join(scratch, 'nats', NATS_CONFIG_FILE), 'utf8'), /authorization/);
  });

  it('is not adopted by a launcher that has seeds', async () => {
    const storeDir = path.join(scratch, 'nats');
    await assert.rejects(
      startNatsServer({ port, storeDir, seed: embeddedNatsToken(storeDir) }),
      /asks for no token already runs/,
    );
  });
});

describe('probeNatsAuth against something on the port that is not a nats-server', () => {
  it('stops reading a line that never ends (a listener streaming bytes) and says it is not NATS', async () => {
    const chunk = Buffer.alloc(16 * 1024, 'x');
    let sent = 0;
    const server = createServer((s) => {
      s.on('error', () => undefined);
      const pump = () => {
        while (sent < 64 * 1024 * 1024 && s.write(chunk)) sent += chunk.length;
      };
      s.on('drain', pump);
      pump();
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      await assert.rejects(probeNatsAuth(port, { seed: natsUserSeed('x') }, 10_000), /not a NATS server/);
      assert.ok(sent < 64 * 1024 * 1024, 'it stopped reading long before the stream ended');
    } finally {
      server.close();
    }
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  embeddedNatsEventsPassword,
  embeddedNatsToken,
  NATS_CONFIG_FILE,
  NATS_EVENTS_PASSWORD_FILE,
  NATS_TOKEN_FILE,
  probeNatsAuth,
  readEmbeddedNatsToken,
  startNatsServer,
  type NatsServerHandle,
} from './nats.js';
import { freePort } from './ports.js';

const mode = (file: string) => statSync(file).mode & 0o777;

/**
 * The launcher's nats-server asks for a token kept in its store dir; the token is in a 0600 config
 * file, never on the command line (readable by every local user). A real nats-server.
 */
describe('the embedded nats-server with a token', () => {
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
      server = await startNatsServer({ port, storeDir, token });
    } finally {
      delete process.env.MCP_AUTH_TOKEN;
    }
  });

  after(async () => {
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('makes one token per store dir (32 random bytes, base64url) in a 0600 file in a 0700 dir, and keeps it', () => {
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
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

  it('runs nats-server from a 0600 config file; the token is not on its command line nor in its environment', () => {
    const conf = path.join(storeDir, NATS_CONFIG_FILE);
    assert.equal(mode(conf), 0o600);
    assert.match(readFileSync(conf, 'utf8'), /\{ user: "switchyard", password: "[A-Za-z0-9_-]{43}" \}/);
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

  it('refuses a client without the token or with a wrong one, accepts the token', async () => {
    assert.equal(await probeNatsAuth(port, 'wrong'), 'refused');
    assert.equal(await probeNatsAuth(port, ''), 'refused');
    assert.equal(await probeNatsAuth(port, token), 'accepted');
  });

  it('adopts the running server only for the same token', async () => {
    const again = await startNatsServer({ port, storeDir, token });
    assert.equal(again.kind, 'adopted');
    await assert.rejects(
      startNatsServer({ port, storeDir: path.join(scratch, 'other'), token: 'another-token' }),
      (e: Error) => /refuses this data dir's token/.test(e.message) && !e.message.includes('another-token'),
    );
    // Started without the events reader (as an older launcher did): a launcher that gives one does not adopt it.
    const events = { password: embeddedNatsEventsPassword(storeDir), subjects: ['switchyard.events.>'] };
    await assert.rejects(
      startNatsServer({ port, storeDir, token, events }),
      (e: Error) => /has no "events" user/.test(e.message) && !e.message.includes(events.password),
    );
  });

  it('writes the events reader into the config: subscribe to its subjects, publish nothing', async () => {
    const dir = path.join(scratch, 'with-events');
    const events = { password: embeddedNatsEventsPassword(dir), subjects: ['switchyard.events.>'] };
    assert.match(events.password, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(mode(path.join(dir, NATS_EVENTS_PASSWORD_FILE)), 0o600);
    assert.equal(embeddedNatsEventsPassword(dir), events.password, 'kept');
    const p = await freePort();
    const withEvents = await startNatsServer({ port: p, storeDir: dir, token: embeddedNatsToken(dir), events });
    try {
      const conf = readFileSync(path.join(dir, NATS_CONFIG_FILE), 'utf8');
      assert.ok(
        conf.includes(
          `{ user: "events", password: "${events.password}", permissions: { publish: { deny: [">"] }, subscribe: { allow: ["switchyard.events.>"] } } }`,
        ),
        conf,
      );
      assert.equal(await probeNatsAuth(p, { user: 'events', pass: events.password }), 'accepted');
      assert.equal(await probeNatsAuth(p, { user: 'events', pass: 'wrong' }), 'refused');
      assert.equal(await probeNatsAuth(p, embeddedNatsToken(dir)), 'accepted');
      // Adopted again with the same secrets.
      assert.equal(
        (await startNatsServer({ port: p, storeDir: dir, token: embeddedNatsToken(dir), events })).kind,
        'adopted',
      );
    } finally {
      await withEvents.stop();
    }
    await assert.rejects(
      startNatsServer({ port: await freePort(), storeDir: dir, token: 'x', events: { ...events, subjects: ['a b'] } }),
      /must be NATS subjects/,
    );
  });

  it('refuses a token the config file cannot hold', async () => {
    for (const bad of ['has space', 'quo"te', 'back\\slash', '$2a$10$bcrypt'])
      await assert.rejects(startNatsServer({ port: await freePort(), storeDir, token: bad }), /printable ASCII/);
  });

  it('replaces an empty token file', () => {
    const dir = path.join(scratch, 'empty');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, NATS_TOKEN_FILE), '');
    const made = embeddedNatsToken(dir);
    assert.match(made, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(readEmbeddedNatsToken(dir), made);
    assert.equal(mode(path.join(dir, NATS_TOKEN_FILE)), 0o600);
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

  it('asks for nothing without a token (the test harness)', async () => {
    assert.equal(await probeNatsAuth(port, 'anything'), 'open');
    assert.doesNotMatch(readFileSync(path.join(scratch, 'nats', NATS_CONFIG_FILE), 'utf8'), /authorization/);
  });

  it('is not adopted by a launcher that wants a token', async () => {
    const storeDir = path.join(scratch, 'nats');
    await assert.rejects(
      startNatsServer({ port, storeDir, token: embeddedNatsToken(storeDir) }),
      /asks for no token already runs/,
    );
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nkeyAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { EVENTS_SUBJECT_WILDCARD, natsRolePermissions } from '@switchyard/contracts';
import {
  AppError,
  createLogger,
  embeddedNatsEventsPassword,
  embeddedNatsRolePassword,
  embeddedNatsToken,
  findNatsServer,
  freePort,
  natsUserSeed,
  probeNatsAuth,
  startNatsServer,
  waitForPort,
  type NatsServerHandle,
} from '@switchyard/platform';
import { startFakeNatsServer } from '@switchyard/testing';
import { closeNats, connectNats } from './index.js';

const logger = createLogger('connection-int', 'silent');

const nkeyOf = (seed: string) => nkeyAuthenticator(new TextEncoder().encode(seed));

/** connectNats against a real nats-server whose users are nkeys, with the events reader (as the launcher's is). */
describe("connectNats with the embedded server's nkey seed", () => {
  let scratch: string;
  let server: NatsServerHandle;
  let token: string;
  let eventsPassword: string;
  const saved = process.env.NATS_TOKEN;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'nats-conn-'));
    const storeDir = path.join(scratch, 'nats');
    token = embeddedNatsToken(storeDir);
    eventsPassword = embeddedNatsEventsPassword(storeDir);
    server = await startNatsServer({
      port: await freePort(),
      storeDir,
      seed: token,
      events: { seed: eventsPassword, subjects: [EVENTS_SUBJECT_WILDCARD] },
    });
  });

  after(async () => {
    if (saved === undefined) delete process.env.NATS_TOKEN;
    else process.env.NATS_TOKEN = saved;
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('the server refuses nats.js without credentials, with another seed, or with the seed sent in clear (AuthorizationError)', async () => {
    for (const o of [
      {},
      { authenticator: nkeyOf(natsUserSeed('wrong-token')) },
      { token },
      { user: 'switchyard', pass: token },
    ])
      await assert.rejects(
        connect({ servers: server.url, reconnect: false, ...o }),
        (e: Error) => e.name === 'AuthorizationError',
      );
  });

  it('fails unavailable naming NATS_TOKEN, never the token', async () => {
    delete process.env.NATS_TOKEN;
    for (const t of [undefined, 'wrong-token', natsUserSeed('wrong-token')]) {
      await assert.rejects(
        connectNats({ url: server.url, name: 'no-token', logger, ...(t ? { token: t } : {}) }),
        (e: unknown) =>
          e instanceof AppError &&
          e.code === 'unavailable' &&
          /authorization refused: check NATS_TOKEN, or for one role's process NATS_PASSWORD_<ROLE>/.test(e.message) &&
          !JSON.stringify({ m: e.message, d: e.details }).includes(t ?? 'wrong-token'),
      );
    }
  });

  it('connects with the seed given, or with NATS_TOKEN from the environment', async () => {
    delete process.env.NATS_TOKEN;
    const given = await connectNats({ url: server.url, name: 'given', logger, token });
    assert.ok((await given.rtt()) >= 0);
    await closeNats(given);
    process.env.NATS_TOKEN = token;
    const fromEnv = await connectNats({ url: server.url, name: 'from-env', logger });
    assert.ok((await fromEnv.rtt()) >= 0);
    await closeNats(fromEnv);
    // The option wins over the environment.
    await assert.rejects(connectNats({ url: server.url, name: 'option-wins', logger, token: 'wrong-token' }));
  });

  it('the events user follows the events and can do nothing else: no publish, no request, no other subject, no JetStream API', async () => {
    const system = await connectNats({ url: server.url, name: 'system', logger, token });
    // As an external subscriber does (README): nkey auth with the seed of DATA_DIR/nats/events-password.
    const reader = await connect({ servers: server.url, authenticator: nkeyOf(eventsPassword), reconnect: false });
    const readerErrors: string[] = [];
    void (async () => {
      for await (const st of reader.status()) if (st.type === 'error') readerErrors.push(String(st.error));
    })();
    try {
      // What it is for: the events, as the relay publishes them (to JetStream; core subscribers get them too).
      const jsm = await jetstreamManager(system);
      await jsm.streams.add({ name: 'READER_TEST', subjects: ['switchyard.events.>'] });
      const live = reader.subscribe(EVENTS_SUBJECT_WILDCARD, { max: 1 });
      await reader.flush();
      await jetstream(system).publish(
        'switchyard.events.task.TaskCompleted',
        JSON.stringify({ type: 'TaskCompleted' }),
      );
      for await (const m of live) assert.equal(m.json<{ type: string }>().type, 'TaskCompleted');

      // A service call: its subject is the system's; the reader's publish never reaches it.
      let served = 0;
      const service = system.subscribe('switchyard.svc.mcp.v1.database_writer.call_tool', {
        callback: (_err, m) => {
          served++;
          m.respond('{}');
        },
      });
      await system.flush();
      await assert.rejects(reader.request('switchyard.svc.mcp.v1.database_writer.call_tool', '{}', { timeout: 1_000 }));
      reader.publish('switchyard.svc.mcp.v1.database_writer.call_tool', '{}');
      // Nor the JetStream API, whose answers go where the requester says (a deliver or reply subject).
      await assert.rejects(reader.request('$JS.API.INFO', '', { timeout: 1_000 }));
      // Nor may it listen to the service calls or to the answers the system's requests get.
      const spies = [reader.subscribe('switchyard.svc.>'), reader.subscribe('_INBOX.>')];
      const spied: string[] = [];
      const spyEnds = spies.map(async (spy) => {
        try {
          for await (const m of spy) spied.push(m.subject);
          return 'ended';
        } catch (err) {
          return (err as Error).name;
        }
      });
      await reader.flush().catch(() => undefined);
      assert.equal(
        (await system.request('switchyard.svc.mcp.v1.database_writer.call_tool', '{}', { timeout: 2_000 })).string(),
        '{}',
        "the system's own call is answered",
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(served, 1, "only the system's call reached the service");
      assert.deepEqual(spied, [], 'the reader saw no service call and no answer');
      assert.deepEqual(await Promise.all(spyEnds), ['PermissionViolationError', 'PermissionViolationError']);
      assert.ok(
        readerErrors.some((e) => /Permissions Violation/i.test(e)),
        `the server refused the reader: ${readerErrors.join('; ')}`,
      );
      service.unsubscribe();
      await jsm.streams.delete('READER_TEST');
    } finally {
      await reader.close().catch(() => undefined);
      await closeNats(system);
    }
    assert.equal(
      await probeNatsAuth(Number(new URL(server.url).port), { seed: natsUserSeed(`${eventsPassword}x`) }),
      'refused',
    );
  });
});

/**
 * A local user who takes the NATS port while the server restarts answers every client that
 * reconnects: with nkeys each signs that stranger's nonce and sends no secret of any kind.
 */
describe('clients reconnecting to a stranger on the port', () => {
  let scratch: string;

  before(() => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'nats-squat-'));
  });

  after(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('the system, a role user and the events reader send the fake only their public keys and signatures', async () => {
    const storeDir = path.join(scratch, 'nats');
    const port = await freePort();
    const seed = embeddedNatsToken(storeDir);
    const events = embeddedNatsEventsPassword(storeDir);
    const gateway = embeddedNatsRolePassword(storeDir, 'gateway');
    const real = await startNatsServer({
      port,
      storeDir,
      seed,
      events: { seed: events, subjects: [EVENTS_SUBJECT_WILDCARD] },
      roles: [{ user: 'gateway', seed: gateway, ...natsRolePermissions('gateway') }],
    });
    const fast = { reconnectTimeWait: 50, reconnectJitter: 0 };
    const clients = [
      await connectNats({ url: real.url, name: 'squat-system', logger, token: seed, options: fast }),
      await connectNats({
        url: real.url,
        name: 'squat-gateway',
        logger,
        user: { user: 'gateway', pass: gateway },
        options: fast,
      }),
      await connect({ servers: real.url, name: 'squat-events', authenticator: nkeyOf(events), ...fast }),
    ];
    await real.stop();
    const fake = await startFakeNatsServer(port);
    try {
      const names = () => new Set(fake.connects.map((c) => c.name));
      const deadline = Date.now() + 15_000;
      while (['squat-system', 'squat-gateway', 'squat-events'].some((n) => !names().has(n))) {
        assert.ok(Date.now() < deadline, `not every client reconnected: ${[...names()].join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // The probe signs the stranger's nonce too.
      assert.equal(await probeNatsAuth(port, { seed }), 'refused');
      const sent = JSON.stringify(fake.connects);
      for (const secret of [seed, events, gateway])
        assert.ok(!sent.includes(secret) && !sent.includes(secret.slice(2, 20)), 'a seed reached the fake');
      for (const c of fake.connects) {
        assert.equal(c.auth_token, undefined);
        assert.equal(c.pass, undefined);
        assert.match(String(c.nkey), /^U[A-Z2-7]{55}$/);
        assert.ok(typeof c.sig === 'string' && c.sig.length > 0);
      }
    } finally {
      for (const c of clients) await c.close().catch(() => undefined);
      await fake.close();
    }
  });

  it("the probe sends nothing to a stranger that asks for credentials without a nonce (the embedded server's always has one)", async () => {
    const fake = await startFakeNatsServer(await freePort(), { nonce: false, accept: true });
    try {
      assert.equal(await probeNatsAuth(fake.port, { seed: embeddedNatsToken(path.join(scratch, 'nats')) }), 'refused');
      assert.deepEqual(fake.connects, []);
    } finally {
      await fake.close();
    }
  });
});

/** A NATS_URL server configured with a token alone (no users) still takes what connectNats presents. */
describe('connectNats against a server that asks for a token alone', () => {
  let scratch: string;
  let url: string;
  let stop: () => void;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'nats-token-only-'));
    const port = await freePort();
    const conf = path.join(scratch, 'token-only.conf');
    writeFileSync(conf, `listen: "127.0.0.1:${port}"\nauthorization { token: "token-only-secret" }\n`, { mode: 0o600 });
    const child = spawn(findNatsServer()!, ['-c', conf], { stdio: 'ignore' });
    stop = () => child.kill('SIGTERM');
    url = `nats://127.0.0.1:${port}`;
    await waitForPort(port, 15_000);
  });

  after(() => {
    stop?.();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('connects with the token (sent both as a token and as the system user), refuses a wrong one', async () => {
    const nc: NatsConnection = await connectNats({ url, name: 'token-only', logger, token: 'token-only-secret' });
    assert.ok((await nc.rtt()) >= 0);
    await closeNats(nc);
    await assert.rejects(connectNats({ url, name: 'token-only-wrong', logger, token: 'wrong-token' }));
  });
});

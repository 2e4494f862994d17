import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EVENTS_STREAM, natsRolePermissions } from '@switchyard/contracts';
import { PostgresEventStore } from '@switchyard/event-store';
import { closeNats, connectNats, ensureEventsStream } from '@switchyard/messaging';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  createLogger,
  embeddedNatsRolePassword,
  embeddedNatsToken,
  freePort,
  startNatsServer,
  type NatsServerHandle,
} from '@switchyard/platform';
import { runRelay } from '@switchyard/relay';
import { freshDatabase, startFakeNatsServer } from '@switchyard/testing';
import { Supervisor } from './supervisor.js';

const logger = createLogger('relay-restart-int', 'silent');

async function waitUntil(what: string, check: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`gave up waiting for: ${what}`);
    await sleep(50);
  }
}

/**
 * A stranger that holds the NATS port while the server restarts refuses the relay's connection
 * until nats.js closes it for good; the relay unit then fails, the supervisor says so, and starts
 * it again once the real server is back. Real nats-server (nkeys, the relay's role user) and PostgreSQL.
 */
describe('the relay unit when its NATS connection closes for good', () => {
  let scratch: string;
  let port: number;
  let storeDir: string;
  let server: NatsServerHandle | undefined;
  const supervisor = new Supervisor({ logger, initialBackoffMs: 100, maxBackoffMs: 500 });

  const start = () =>
    startNatsServer({
      port,
      storeDir,
      seed: embeddedNatsToken(storeDir),
      roles: [{ user: 'relay', seed: embeddedNatsRolePassword(storeDir, 'relay'), ...natsRolePermissions('relay') }],
    });

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'relay-restart-'));
    storeDir = path.join(scratch, 'nats');
    port = await freePort();
    server = await start();
  });

  after(async () => {
    await supervisor.stopAll();
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('fails the unit, shows it not running, and the restarted relay publishes again', async () => {
    const url = `nats://127.0.0.1:${port}`;
    // The stream as the launcher's setup connection makes it (the relay's role user may not).
    const setup = await connectNats({ url, name: 'setup', logger, token: embeddedNatsToken(storeDir) });
    await ensureEventsStream(await jetstreamManager(setup), { name: EVENTS_STREAM, subjects: ['switchyard.events.>'] });
    const dbUrl = await freshDatabase('relay_restart');
    const store = new PostgresEventStore({ connectionString: dbUrl });
    await store.init();
    const append = (i: number) =>
      store.append(`order-${i}`, [
        { type: 'OrderPlaced', data: { i }, metadata: { correlationId: `c${i}`, timestamp: new Date().toISOString() } },
      ]);
    const stored = async () =>
      (await jetstreamManager(setup)).streams.info(EVENTS_STREAM).then((s) => s.state.messages);
    let starts = 0;
    await supervisor.add({
      name: 'relay',
      start: async () => {
        starts++;
        const relay = await runRelay(
          {
            DATABASE_URL: dbUrl,
            NATS_URL: url,
            NATS_PASSWORD_RELAY: embeddedNatsRolePassword(storeDir, 'relay'),
            RELAY_NAME: 'rr',
            RELAY_STREAM: EVENTS_STREAM,
            RELAY_SUBJECT_PREFIX: 'switchyard.events',
            RELAY_CHECKPOINT_EVERY: 1,
            RELAY_CHECKPOINT_INTERVAL_MS: 100,
            RELAY_DUPLICATE_WINDOW_MS: 60_000,
            RELAY_RESUME_FROM_STREAM: true,
            NATS_STREAM_REPLICAS: 1,
            NATS_EVENTS_MAX_BYTES: 64 * 1024 * 1024,
          },
          logger,
          store,
        );
        return { stop: () => relay.stop(), failed: relay.closed };
      },
    });
    try {
      await append(1);
      await waitUntil('the first event is published', async () => (await stored()) === 1);

      // The server goes away and a stranger takes its port: it refuses the relay until nats.js gives up.
      await closeNats(setup);
      await server!.stop();
      server = undefined;
      const fake = await startFakeNatsServer(port);
      try {
        await waitUntil('the supervisor sees the relay fail', () =>
          supervisor.status().some((s) => s.name === 'relay' && s.state !== 'running'),
        );
      } finally {
        await fake.close();
      }
      server = await start();
      await waitUntil('the relay is started again', () =>
        supervisor.status().some((s) => s.name === 'relay' && s.state === 'running' && s.restarts >= 1),
      );
      assert.ok(starts >= 2);
      const again = await connectNats({ url, name: 'check', logger, token: embeddedNatsToken(storeDir) });
      try {
        await append(2);
        await waitUntil('the restarted relay publishes the next event', async () => {
          const info = await (await jetstreamManager(again)).streams.info(EVENTS_STREAM);
          return info.state.messages === 2;
        });
      } finally {
        await closeNats(again);
      }
    } finally {
      await supervisor.stopAll();
      await closeNats(setup);
      await store.close();
    }
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import {
  createLogger,
  findNatsServer,
  freePort,
  startNatsServer,
  waitForPort,
  type NatsServerHandle,
} from '@switchyard/platform';
import { until } from '@switchyard/testing';
import { freeBytes, JetStreamWatch } from './jetstream-watch.js';
import { setUpNatsStreams } from './nats-streams.js';

const logger = createLogger('jetstream-watch-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * The watch against real nats-servers: one with JetStream, and one whose JetStream answers
 * nothing (started without it: what a server that turned JetStream off for a full disk looks like
 * to a client, the API subjects without responders).
 */
describe('JetStreamWatch', () => {
  let dir: string;
  let withJs: NatsServerHandle;
  let withoutJs: ChildProcess;
  let ncWith: NatsConnection;
  let ncWithout: NatsConnection;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'js-watch-'));
    withJs = await startNatsServer({ port: await freePort(), storeDir: dir, logger });
    const port = await freePort();
    withoutJs = spawn(findNatsServer()!, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    withoutJs.on('error', () => undefined);
    await waitForPort(port, 15_000);
    ncWith = await connectNats({ url: withJs.url, name: 'js-watch-with', logger });
    ncWithout = await connectNats({ url: `nats://127.0.0.1:${port}`, name: 'js-watch-without', logger });
  });

  after(async () => {
    await closeNats(ncWith);
    await closeNats(ncWithout);
    await withJs?.stop();
    withoutJs?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const watch = (nc: NatsConnection, free: number, restarts: string[]) =>
    new JetStreamWatch({
      nc,
      logger,
      storeDir: dir,
      freeBytesNeeded: 1_000,
      free: () => free,
      restart: (why) => restarts.push(why),
      intervalMs: 50,
      probeTimeoutMs: 500,
      failuresBeforeTrouble: 2,
      failuresBeforeRestart: 4,
    });

  it('a JetStream that answers is no trouble and nothing is restarted', async () => {
    const restarts: string[] = [];
    const w = watch(ncWith, 10_000, restarts);
    w.start();
    await new Promise((r) => setTimeout(r, 800));
    await w.stop();
    assert.equal(w.trouble(), undefined);
    assert.deepEqual(restarts, []);
  });

  it('a JetStream that answers nothing is reported, and the server restarted once there is room on its disk', async () => {
    const restarts: string[] = [];
    const w = watch(ncWithout, 10_000, restarts);
    w.start();
    const trouble = await until('the watch to report JetStream gone', () => w.trouble(), 15_000);
    assert.match(trouble, /JetStream does not answer/);
    await until('the restart', () => restarts.length > 0 || undefined, 15_000);
    await new Promise((r) => setTimeout(r, 300));
    await w.stop();
    assert.equal(restarts.length, 1, 'asked once: the restart replaces this watch');
  });

  it('with too little room on the disk it reports the trouble and restarts nothing (a start would fail and take core NATS down too)', async () => {
    const restarts: string[] = [];
    const w = watch(ncWithout, 10, restarts);
    w.start();
    await until('the watch to report JetStream gone', () => w.trouble(), 15_000);
    await new Promise((r) => setTimeout(r, 500));
    await w.stop();
    assert.deepEqual(restarts, []);
  });

  it('a JetStream without the room the streams reserve: the start says which setting to lower', async () => {
    // A server whose JetStream may keep 512 MiB (as on a small disk): the 1 GiB events stream does not fit, 1 MiB does.
    const small = path.join(dir, 'small');
    mkdirSync(small, { recursive: true });
    const conf = path.join(small, 'nats.conf');
    const port = await freePort();
    writeFileSync(
      conf,
      `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(small)}, max_file_store: 512MB }\n`,
    );
    const server = spawn(findNatsServer()!, ['-c', conf], { stdio: 'ignore' });
    server.on('error', () => undefined);
    try {
      await waitForPort(port, 15_000);
      const nc = await connectNats({ url: `nats://127.0.0.1:${port}`, name: 'js-small', logger });
      try {
        await assert.rejects(
          setUpNatsStreams(nc, { replicas: 1, logger, eventsMaxBytes: 1024 * 1024 * 1024 }),
          /JetStream has not the disk space.*lower NATS_EVENTS_MAX_BYTES/,
        );
        await setUpNatsStreams(nc, { replicas: 1, logger, eventsMaxBytes: 1024 * 1024 });
      } finally {
        await closeNats(nc);
      }
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('freeBytes reads the free space of the disk a directory is on', () => {
    const n = freeBytes(dir);
    assert.ok(Number.isSafeInteger(n) && n > 0, String(n));
  });
});

import path from 'node:path';
import { chmodSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  createLogger,
  ensureDatabase,
  freePort,
  startEmbeddedPostgres,
  startNatsServer,
  type NatsServerHandle,
  type PostgresHandle,
} from '@switchyard/platform';

/**
 * Real infrastructure for integration tests. `npm test` (scripts/run-tests.mjs) starts one
 * PostgreSQL and one nats-server for the whole run and passes TEST_DATABASE_URL and
 * TEST_NATS_URL; a spec run on its own (`node --test file.js`) starts its own here.
 */
let ownPg: Promise<PostgresHandle> | undefined;
let ownNats: Promise<NatsServerHandle> | undefined;
let tmpRoot: string | undefined;
let natsCount = 0;
const logger = createLogger('test-fixture', process.env.TEST_INFRA_LOG ?? 'warn');

function scratchDir(): string {
  if (!tmpRoot) {
    const base = path.resolve('.tmp');
    mkdirSync(base, { recursive: true });
    tmpRoot = mkdtempSync(path.join(base, 'fixture-'));
    // mkdtemp makes it 0700; as root, Postgres runs as the `postgres` user and must reach its data dir below.
    chmodSync(tmpRoot, 0o755);
    process.once('exit', () => rmSync(tmpRoot!, { recursive: true, force: true }));
  }
  return tmpRoot;
}

async function serverUrl(): Promise<string> {
  if (process.env.TEST_DATABASE_URL) return process.env.TEST_DATABASE_URL;
  ownPg ??= (async () =>
    startEmbeddedPostgres({ dataDir: path.join(scratchDir(), 'pg'), port: await freePort(), logger }))();
  return (await ownPg).url;
}

/** A fresh, empty database on the test PostgreSQL server; returns its URL. */
export async function freshDatabase(prefix = 'test'): Promise<string> {
  const name = `${prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  return ensureDatabase(await serverUrl(), name);
}

/**
 * URL of a nats-server (JetStream on) for this test file alone. Test files run in parallel,
 * and services in a queue group on a shared server would answer each other's requests, so
 * each test process starts its own (it takes ~100 ms); TEST_SHARED_NATS=1 uses the runner's.
 */
export async function testNatsUrl(): Promise<string> {
  if (process.env.TEST_SHARED_NATS === '1' && process.env.TEST_NATS_URL) return process.env.TEST_NATS_URL;
  ownNats ??= (async () => {
    const server = await startNatsServer({
      port: await freePort(),
      storeDir: path.join(scratchDir(), `nats-${++natsCount}`),
      logger,
    });
    // The file's process must be free to exit when its tests are done; the server goes with it.
    server.unref();
    process.once('exit', () => server.kill());
    return server;
  })();
  return (await ownNats).url;
}

/** Stop what this process started itself (nothing when the runner provided the servers). */
export async function stopOwnInfra(): Promise<void> {
  await Promise.all([ownPg?.then((p) => p.stop()), ownNats?.then((n) => n.stop())]);
  ownPg = undefined;
  ownNats = undefined;
}

/**
 * The start banner's "Console" line on a real system (the gateway role started in this process, on
 * the test runner's PostgreSQL and its own nats-server): the gateway serves the console build at
 * /ui outside its route registry, and the banner still says so.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createLogger,
  ensureDatabase,
  freePort,
  parseConfig,
  startNatsServer,
  type NatsServerHandle,
} from '@switchyard/platform';
import { startBanner } from './banner.js';
import { startSystem, type RunningSystem } from './system.js';
import { Supervisor } from './supervisor.js';

const logger = createLogger('console-banner-spec', 'silent');
const serverUrl = process.env.TEST_DATABASE_URL;
const consoleApp = path.resolve(import.meta.dirname, '..', '..', 'console');

describe(
  'start banner of a system whose gateway serves the console',
  { skip: serverUrl ? false : 'TEST_DATABASE_URL is unset (run through scripts/run-tests.mjs int)' },
  () => {
    let system: RunningSystem | undefined;
    let nats: NatsServerHandle | undefined;
    let dataDir: string;

    before(async () => {
      // The console's build, as `npm start` and `npm test` make it (a bare `tsc -b` does not).
      if (!existsSync(path.join(consoleApp, 'dist', 'index.html'))) {
        const r = spawnSync('npx', ['vite', 'build', '--logLevel', 'warn'], { cwd: consoleApp, stdio: 'inherit' });
        assert.equal(r.status, 0, 'vite build of apps/console failed');
      }
      dataDir = mkdtempSync(path.join(os.tmpdir(), 'console-banner-'));
      const dbUrl = await ensureDatabase(serverUrl!, `console_banner_${process.pid}_${Date.now() % 100000}`);
      nats = await startNatsServer({ port: await freePort(), storeDir: path.join(dataDir, 'nats'), logger });
      const config = parseConfig({
        DATABASE_URL: dbUrl,
        NATS_URL: nats.url,
        GATEWAY_PORT: String(await freePort()),
        LOG_LEVEL: 'silent',
        DATA_DIR: dataDir,
      });
      system = await startSystem(config, ['gateway'], logger, new Supervisor({ logger }));
    });
    after(async () => {
      await system?.stop();
      await nats?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it('shows the Console line with the /ui address the gateway answers', async () => {
      const gatewayUrl = system!.gatewayUrl!;
      const page = await fetch(`${gatewayUrl}/ui/`);
      assert.equal(page.status, 200, 'the gateway serves the console');
      assert.match(await page.text(), /<html/i);
      assert.equal(system!.startInfo.dashboardUrl, `${gatewayUrl}/ui`);
      const banner = startBanner(system!.startInfo);
      assert.ok(banner.includes(`  Console    ${gatewayUrl}/ui\n`), banner);
    });
  },
);

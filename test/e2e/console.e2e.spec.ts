/**
 * The operator console in a real browser: starts the whole system in one launcher process (its
 * own PostgreSQL and nats-server, every port free, as `npm start` runs it), then runs the
 * Playwright scenarios of apps/console/e2e with Debian's Chromium against its gateway, and
 * fails with their report when one fails. The scenarios write their screenshots to .tmp/console-screenshots/ (docs/console/, the README's, with UPDATE_SCREENSHOTS=1).
 *
 * What the browser needs from here: an admin key (the system's), a viewer key, and a definition
 * whose first step waits on a slow HTTP answer (a local receiver; the fetch server may reach
 * loopback through FETCH_ALLOW_CIDRS), so there is a running execution to cancel.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { freePort } from '@switchyard/platform';
import { newAdminKey, Proc, root, systemEnv, waitReady, sleep } from './launcher.js';
import { gatewayRequest } from './support.js';
import { scratchDataDir } from '@switchyard/testing';

const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const consoleDir = path.join(root, 'apps', 'console');
const adminKey = newAdminKey();
const auth = { authorization: `Bearer ${adminKey}` };
const SLOW_MS = 6_000;

let dataDir: string;
let base: string;
let system: Proc;
let receiver: Server;
let receiverUrl: string;
const pending = new Set<ServerResponse>();

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

const haveBrowser = existsSync(chromium) && existsSync(path.join(root, 'node_modules', '@playwright', 'test'));

describe(
  'operator console in Chromium',
  {
    skip: haveBrowser
      ? false
      : `no browser: ${chromium} or @playwright/test is missing (apt-get install chromium; npm ci)`,
  },
  () => {
    before(async () => {
      // 1. The console's build (npm start and npm test build it; a bare `tsc -b` does not).
      if (!existsSync(path.join(consoleDir, 'dist', 'index.html'))) {
        const r = spawnSync('npx', ['vite', 'build', '--logLevel', 'warn'], { cwd: consoleDir, stdio: 'inherit' });
        assert.equal(r.status, 0, 'vite build of apps/console failed');
      }
      // 2. The slow receiver: answers /slow after SLOW_MS, long enough to press Cancel meanwhile.
      receiver = createServer((req, res) => {
        pending.add(res);
        res.on('close', () => pending.delete(res));
        const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end('late');
        if (req.url?.startsWith('/slow')) setTimeout(answer, SLOW_MS).unref();
        else answer();
      });
      const receiverPort = await freePort();
      await new Promise<void>((r) => receiver.listen(receiverPort, '127.0.0.1', r));
      receiverUrl = `http://127.0.0.1:${receiverPort}`;
      // 3. The system.
      dataDir = scratchDataDir('e2e-console-');
      const gatewayPort = await freePort();
      base = `http://127.0.0.1:${gatewayPort}`;
      const env = await systemEnv(dataDir, adminKey, {
        GATEWAY_PORT: String(gatewayPort),
        EMBEDDED_PG_PORT: String(await freePort()),
        EMBEDDED_NATS_PORT: String(await freePort()),
        FETCH_ALLOW_CIDRS: '127.0.0.1/32',
        // Samples every second, so the test's alert rule fires within seconds.
        MONITOR_SAMPLE_INTERVAL_MS: '1000',
      });
      delete env['GITHUB_PERSONAL_ACCESS_TOKEN'];
      delete env['MAILBOX_SMTP_PORT'];
      system = new Proc('system (npm start)', [], env);
      system.start();
      await system.waitUp(150_000);
      await waitReady(base, system, 120_000);
      await until(
        'the database, fetch and analytics MCP servers up',
        async () => {
          const servers: { server: string; state: string }[] =
            (await gatewayRequest(base, auth, 'GET', '/api/v1/integration/mcp/health')).body?.servers ?? [];
          return ['database', 'fetch', 'analytics', 'filesystem'].every((n) =>
            servers.some((s) => s.server === n && s.state === 'up'),
          );
        },
        90_000,
      );
    });

    after(async () => {
      for (const res of pending) res.destroy();
      await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
      await system?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it('serves the console at /ui with its CSP, index.html for client routes, immutable hashed assets', async () => {
      const page = await fetch(`${base}/ui/workflows/executions/x`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      assert.equal(page.headers.get('cache-control'), 'no-cache');
      const html = await page.text();
      const asset = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      assert.ok(asset, html);
      const js = await fetch(`${base}${asset}`);
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type') ?? '', /javascript/);
      assert.match(js.headers.get('cache-control') ?? '', /max-age=31536000, immutable/);
      assert.equal((await fetch(`${base}/ui/assets/gone-0000.js`)).status, 404);
      const who = await gatewayRequest(base, auth, 'GET', '/api/v1/auth/whoami');
      assert.deepEqual(who.body, {
        id: adminKey.split('_')[1],
        name: 'SWITCHYARD_ADMIN_KEY',
        role: 'admin',
        auth_enabled: true,
      });
    });

    it('passes every browser scenario (Playwright, Chromium, axe)', async (t) => {
      // A viewer key for the role scenario, and the slow definition for the cancel scenario.
      const viewer = await gatewayRequest(base, auth, 'POST', '/api/v1/admin/api-keys', {
        name: 'console-viewer',
        role: 'viewer',
      });
      assert.equal(viewer.status, 201, JSON.stringify(viewer.body));
      const slow = await gatewayRequest(base, auth, 'POST', '/api/v1/workflows/definitions', {
        id: 'console_slow',
        version: 1,
        name: 'Slow (console test)',
        description: 'A step that waits on a slow HTTP answer, then one that records a metric',
        steps: [
          {
            id: 'slow',
            uses: 'mcp:fetch/http_request',
            with: { url: `${receiverUrl}/slow`, method: 'GET', timeout_ms: 60_000 },
            timeout_ms: 90_000,
          },
          {
            id: 'after',
            uses: 'mcp:analytics/record_metric',
            needs: ['slow'],
            with: { name: 'console_after_cancel', value: 1 },
          },
        ],
      });
      assert.ok(slow.status === 201 || slow.status === 200, JSON.stringify(slow.body));
      mkdirSync(path.join(root, 'docs', 'console'), { recursive: true });
      const started = Date.now();
      const child = spawn('npx', ['playwright', 'test', '-c', 'playwright.config.ts'], {
        cwd: consoleDir,
        env: {
          ...process.env,
          CONSOLE_BASE_URL: base,
          CONSOLE_ADMIN_KEY: adminKey,
          CONSOLE_VIEWER_KEY: viewer.body.key,
          CONSOLE_SLOW_DEFINITION: 'console_slow',
          CHROMIUM_PATH: chromium,
          PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1',
          FORCE_COLOR: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      for (const line of out.split('\n').filter((l) => /^\s+(✓|✘|-)\s|passed|failed|skipped/.test(l)))
        t.diagnostic(line.trim());
      t.diagnostic(`browser run took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      assert.equal(code, 0, `playwright failed:\n${out.slice(-12_000)}`);
    });
  },
);

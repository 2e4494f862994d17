/**
 * Browser tests of the console against a running system. They are started by
 * test/e2e/console.e2e.spec.ts (`node scripts/run-tests.mjs e2e console`), which starts the
 * system on free ports and passes CONSOLE_BASE_URL and the keys. Debian's Chromium is used
 * (Playwright's own browser download is not reachable from our machines).
 */
import { defineConfig } from '@playwright/test';

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.pw.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 30_000 },
  reporter: [['list']],
  outputDir: '../../.tmp/playwright-results',
  use: {
    baseURL: process.env.CONSOLE_BASE_URL,
    browserName: 'chromium',
    viewport: { width: 1360, height: 900 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [...(asRoot ? ['--no-sandbox'] : []), '--disable-dev-shm-usage', '--disable-gpu'],
    },
    trace: 'off',
    screenshot: 'only-on-failure',
  },
});

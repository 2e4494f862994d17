#!/usr/bin/env node
// Installs what is missing, then builds. Runs before `npm start` and `npm test`,
// so it may use nothing but Node itself (node_modules may not exist yet).
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
// `npm run doctor` is a check: on a checkout already built it installs and builds nothing (an
// install or rebuild beside a running system would change the files it runs from).
if (
  process.argv.includes('--if-unbuilt') &&
  existsSync(path.join(root, 'apps', 'launcher', 'dist', 'doctor.js')) &&
  existsSync(path.join(root, 'node_modules', '.package-lock.json'))
)
  process.exit(0);
const say = (m) => quiet || console.error(`[bootstrap] ${m}`);
const run = (cmd) => {
  say(cmd);
  const r = spawnSync(cmd, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', shell: true });
  if (r.status !== 0) {
    console.error(`[bootstrap] failed: ${cmd} (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
};
const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

// 1. Node itself: 22 or later is supported (package.json engines). 20.19+ still starts but is
// end-of-life and unsupported (some dependencies declare Node >= 22); older cannot run the code.
const [maj, min] = process.versions.node.split('.').map(Number);
if (maj < 20 || (maj === 20 && min < 19)) {
  console.error(`[bootstrap] Node.js >= 22 is needed (found ${process.versions.node})`);
  process.exit(1);
}
if (maj < 22) {
  console.error(
    `[bootstrap] WARNING: Node.js ${process.versions.node} is older than the supported Node.js 22 (LTS) or 24; ` +
      'it is end-of-life and some dependencies require Node >= 22. Upgrade Node (e.g. nvm install 22, ' +
      'or `npm install --prefix ~/.node22 node@22` and put ~/.node22/node_modules/node/bin first on PATH).',
  );
}

// 2. npm packages: install when node_modules is missing or does not hold what the lock file says.
// Compared by content, not mtime: a checkout or copy gives the lock file a new mtime, and a
// needless `npm ci` while another checkout process runs from node_modules would pull it away.
const lock = path.join(root, 'package-lock.json');
const installed = path.join(root, 'node_modules', '.package-lock.json');
/** True when every package the lock file names is installed at its version (optional ones for other platforms aside). */
function installedMatchesLock() {
  try {
    const want = JSON.parse(readFileSync(lock, 'utf8')).packages ?? {};
    const have = JSON.parse(readFileSync(installed, 'utf8')).packages ?? {};
    return Object.entries(want).every(([key, p]) => {
      if (!key.startsWith('node_modules/') && !key.includes('/node_modules/')) return true; // the root and the workspaces
      if (!have[key]) return p.optional === true || p.devOptional === true;
      return p.link ? have[key].resolved === p.resolved : have[key].version === p.version;
    });
  } catch {
    return false;
  }
}
if (!existsSync(lock)) {
  if (!existsSync(installed)) run('npm install --no-audit --no-fund');
} else if (!installedMatchesLock()) {
  run('npm ci --no-audit --no-fund');
}

// 3. nats-server, needed unless NATS_URL points at a running one.
const natsFound =
  ['/usr/bin/nats-server', '/usr/sbin/nats-server', '/usr/local/bin/nats-server'].some(existsSync) ||
  has('nats-server');
if (!process.env.NATS_URL && !natsFound) {
  if (process.getuid?.() === 0 && has('apt-get')) {
    run('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server');
  } else {
    console.error(
      '[bootstrap] nats-server is missing. Install it (Debian/Ubuntu: sudo apt-get install nats-server; ' +
        'macOS: brew install nats-server) or set NATS_URL to a running NATS server with JetStream.',
    );
    process.exit(1);
  }
}

// 3b. bubblewrap, the sandbox stdio MCP servers run in (MCP_STDIO_SANDBOX=auto): installed when it
// can be (root with apt-get); without it they run as plain children, with a warning at start.
if (!has('bwrap') && process.getuid?.() === 0 && has('apt-get')) {
  const cmd =
    'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap)';
  say(cmd);
  if (spawnSync(cmd, { cwd: root, stdio: quiet ? 'ignore' : 'inherit', shell: true }).status !== 0)
    console.error('[bootstrap] bubblewrap could not be installed: stdio MCP servers will run without a sandbox.');
}

// 4. Build (incremental: a no-op when nothing changed).
run('npx tsc -b');

// 5. The operator console (apps/console, served at /ui): `vite build` only when its sources, or the
// domain build it bundles, are newer than its dist, so an unchanged checkout starts without it.
// A failed build is a warning: the gateway serves the API either way and answers /ui with 503.
{
  const { readdirSync, statSync } = await import('node:fs');
  const newest = (p) => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return 0;
    }
    if (!st.isDirectory()) return st.mtimeMs;
    return readdirSync(p).reduce(
      (m, e) => (e === 'node_modules' ? m : Math.max(m, newest(path.join(p, e)))),
      st.mtimeMs,
    );
  };
  const app = path.join(root, 'apps', 'console');
  const built = newest(path.join(app, 'dist', 'index.html'));
  const sources = Math.max(
    ...['src', 'index.html', 'vite.config.ts', 'package.json'].map((f) => newest(path.join(app, f))),
    newest(path.join(root, 'libs', 'domain', 'dist')),
  );
  if (existsSync(path.join(root, 'node_modules', '.bin', 'vite')) && sources > built) {
    say('vite build (apps/console)');
    const r = spawnSync('npx vite build --logLevel warn', {
      cwd: app,
      stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit',
      shell: true,
    });
    if (r.status !== 0)
      console.error('[bootstrap] WARNING: the console build failed; the gateway answers /ui with 503 until it builds');
  }
}

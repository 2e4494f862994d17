#!/usr/bin/env node
// Runs the compiled test files of one tier (unit | int | e2e | all) with Node's test runner.
// For int and e2e it first starts one real PostgreSQL and one real nats-server on free ports
// and hands their addresses to the tests (each suite makes its own database inside).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tier = process.argv[2] ?? 'all';
const filter = process.argv[3]; // optional substring of the file path (several: comma-separated) (for lint: the name of one check)
// The lint phase runs first (scripts/lint.mjs); a failure there fails the run, but the tests still
// run so that one run reports everything.
let lintCode = 0;
if (tier === 'lint' || tier === 'all') {
  const { lint } = await import('./lint.mjs');
  lintCode = await lint(tier === 'lint' && filter ? [filter] : []);
  if (tier === 'lint') process.exit(lintCode);
}
const tiers = tier === 'all' ? ['unit', 'int', 'e2e'] : [tier];

function findSpecs(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e === 'node_modules' || e.startsWith('.')) continue;
    const p = path.join(dir, e);
    const st = statSync(p);
    if (st.isDirectory()) findSpecs(p, out);
    else if (tiers.some((t) => e.endsWith(`.${t}.spec.js`) || e.endsWith(`.${t}.spec.mjs`))) out.push(p);
  }
  return out;
}
const dists = [];
for (const group of ['libs', 'apps']) {
  for (const pkg of readdirSync(path.join(root, group))) dists.push(path.join(root, group, pkg, 'dist'));
}
dists.push(path.join(root, 'test', 'dist'));
// The console is bundled by Vite, not compiled to dist: its pure helpers' specs are plain .mjs
// beside their sources (Node loads the .ts they test).
dists.push(path.join(root, 'apps', 'console', 'src'));
let files = dists.flatMap((d) => findSpecs(d)).sort();
if (filter) files = files.filter((f) => filter.split(',').some((part) => f.includes(part)));
if (files.length === 0) {
  console.error(`no ${tier} test files found (did the build run?)`);
  process.exit(1);
}
// Longest first (the time each file took in a recorded run, scripts/test-durations.txt): two
// files run at once, and a long file started last kept one lane busy minutes after the other
// was done. A file not in the record is guessed by its tier.
const recorded = new Map();
try {
  for (const line of readFileSync(path.join(root, 'scripts', 'test-durations.txt'), 'utf8').split('\n')) {
    const m = /^\s*([0-9.]+) s {2}(\S+)(?: {2}\(tests [0-9.]+ s\))?$/.exec(line);
    if (m) recorded.set(m[2], Number(m[1]));
  }
} catch {
  // No record: every file is guessed.
}
const guess = { unit: 0.5, int: 5, e2e: 30 };
const expectedSeconds = (f) =>
  recorded.get(path.relative(root, f)) ??
  guess[tiers.find((t) => f.endsWith(`.${t}.spec.js`) || f.endsWith(`.${t}.spec.mjs`)) ?? 'int'] ??
  5;
files.sort((a, b) => expectedSeconds(b) - expectedSeconds(a) || a.localeCompare(b));

const env = { ...process.env, NODE_ENV: 'test', LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' };
const stops = [];
if (tiers.some((t) => t !== 'unit')) {
  const { startEmbeddedPostgres, startNatsServer, freePort, createLogger } = await import('@switchyard/platform');
  const logger = createLogger('test-infra', process.env.TEST_INFRA_LOG ?? 'warn');
  const tmp = path.join(root, '.tmp', `test-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  stops.push(async () => rmSync(tmp, { recursive: true, force: true }));
  if (!process.env.TEST_DATABASE_URL) {
    const pg = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort(), logger });
    stops.unshift(async () => {
      await pg.stop();
      // A cluster moved out of the repo (see reachableDataDir) is removed with the rest.
      if (pg.dataDir && !pg.dataDir.startsWith(tmp)) rmSync(path.dirname(pg.dataDir), { recursive: true, force: true });
    });
    env.TEST_DATABASE_URL = pg.url;
    console.log(
      `# test PostgreSQL (${pg.kind}) at ${pg.url.replace(/:[^:@]+@/, ':***@')}, data in ${pg.dataDir ?? '(adopted server)'}`,
    );
  }
  if (!process.env.TEST_NATS_URL) {
    const nats = await startNatsServer({ port: await freePort(), storeDir: path.join(tmp, 'nats'), logger });
    stops.unshift(() => nats.stop());
    env.TEST_NATS_URL = nats.url;
    console.log(`# test nats-server at ${nats.url}`);
  }
}

// No forced exit: with it, a file's process can end before the runner has read all of its
// verdicts, and the run reports fewer tests than ran, exit 0 (seen: the last five suites of a
// file missing from a green run; a known Node test-runner bug). A failed test in that tail would
// go unseen. Without it, a file whose failed test left a connection open does not end; the run's
// own deadline below ends such a run, failed, after the failure was printed.
// TEST_TIMEOUT_MS (default 5 min): a test or hook that hangs fails, named, after this long instead
// of holding the whole run until CI's own limit ends it with nothing said (seen: a stop() waiting
// on a query its pool had dropped). Far above the slowest test.
// Where each file's time goes (scripts/test-timings.mjs); the slowest are printed at the end.
// Copied to scripts/test-durations.txt, a full run's record orders the next runs (see above).
mkdirSync(path.join(root, '.tmp'), { recursive: true });
const timingsFile = path.join(root, '.tmp', `test-timings-${tier}.txt`);
rmSync(timingsFile, { force: true });
const args = [path.join(root, 'scripts', 'test-files.mjs'), timingsFile, ...files];
// A process group of its own: the deadline below, or a Ctrl-C, ends every spec file's process
// with the runner (killing the runner alone left them running).
const child = spawn(process.execPath, args, { cwd: root, env, stdio: 'inherit', detached: true });
const killRun = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
};
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => killRun(signal));
// The whole run's deadline (TEST_RUN_TIMEOUT_MS, default 45 min, well under CI's 90): a file that
// never ends (see above) fails the run, named by the runner as the test still running.
const runTimeoutMs = Number(process.env.TEST_RUN_TIMEOUT_MS ?? 45 * 60_000);
const deadline = setTimeout(() => {
  console.error(
    `# the test run did not end within ${Math.round(runTimeoutMs / 60_000)} min: a spec file did not exit after its tests (a connection or timer left open, often after a failure above); stopping it`,
  );
  killRun('SIGKILL');
}, runTimeoutMs);
const code = await new Promise((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
clearTimeout(deadline);
// No timings when the run was stopped before the reporter wrote them.
const timings = existsSync(timingsFile) ? readFileSync(timingsFile, 'utf8').trimEnd().split('\n') : [];
if (timings.length > 1) {
  console.log(`# the slowest spec files (all of them in ${path.relative(root, timingsFile)}):`);
  const slowest = timings.slice(0, -1).slice(0, 12);
  for (const line of [...slowest, timings.at(-1)]) console.log(`# ${line}`);
}
for (const stop of stops) await stop().catch((e) => console.error('cleanup failed:', e));
if (lintCode !== 0) console.error('# the lint phase failed (see its output at the start of this run)');
process.exit(code || lintCode);

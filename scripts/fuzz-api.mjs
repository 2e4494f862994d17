#!/usr/bin/env node
// The long run of the OpenAPI-driven fuzzer (apps/gateway/src/openapi/fuzz.int.spec.ts): the same
// spec, with more requests, a larger time budget and a summary per route, kind and status.
//   npm run fuzz                     # 5000 requests, at most 10 minutes
//   npm run fuzz -- --runs 20000 --minutes 30 --seed 42
// Starts its own PostgreSQL and nats-server (through scripts/run-tests.mjs) and a gateway on free ports.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const runs = Number(opt('runs', process.env.FUZZ_RUNS ?? 5000));
const minutes = Number(opt('minutes', 10));
const seed = opt('seed', process.env.FUZZ_SEED);
if (!Number.isInteger(runs) || runs < 1 || !(minutes > 0)) {
  console.error('usage: npm run fuzz -- [--runs N] [--minutes M] [--seed S]');
  process.exit(2);
}
const env = {
  ...process.env,
  FUZZ_RUNS: String(runs),
  FUZZ_BUDGET_MS: String(Math.round(minutes * 60_000)),
  FUZZ_SUMMARY: '1',
  FUZZ_SEED: seed !== undefined ? String(seed) : 'random',
};
console.log(
  `# fuzzing the REST API: up to ${runs} requests, at most ${minutes} min${seed !== undefined ? `, seed ${seed}` : ''}`,
);
const child = spawn(
  process.execPath,
  [path.join(root, 'scripts/run-tests.mjs'), 'int', path.join('apps', 'gateway', 'dist', 'openapi', 'fuzz.int.spec')],
  {
    cwd: root,
    env,
    stdio: 'inherit',
  },
);
child.on('exit', (code, sig) => process.exit(code ?? (sig ? 1 : 0)));

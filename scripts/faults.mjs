#!/usr/bin/env node
// The long fault run: the fault suite with bigger batches, then the random role kills with
// 1,000 workflows and 1,000 delegations (the CI variant of both runs in `npm test` with small sizes).
// Sizes can be overridden: FAULTS_BATCH, KILLS_WORKFLOWS, KILLS_DELEGATIONS, KILLS_EVERY_MS.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = {
  ...process.env,
  FAULTS_BATCH: process.env.FAULTS_BATCH ?? '50',
  KILLS_WORKFLOWS: process.env.KILLS_WORKFLOWS ?? '1000',
  KILLS_DELEGATIONS: process.env.KILLS_DELEGATIONS ?? '1000',
  KILLS_EVERY_MS: process.env.KILLS_EVERY_MS ?? '6000',
};
let failed = 0;
for (const spec of ['e2e/faults.e2e', 'e2e/kills.e2e']) {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'run-tests.mjs'), 'e2e', spec], {
    cwd: root,
    env,
    stdio: 'inherit',
  });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);

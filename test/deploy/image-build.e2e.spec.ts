/**
 * The image build without Docker (no engine here): the build stage of the Dockerfile replayed in
 * an empty directory. Its COPY lines copy what they name from the repository minus .dockerignore,
 * its RUN lines run there in order; then the compiled launcher must load with only the
 * production dependencies left. Catches what broke the image before: a tsconfig referring to a
 * folder the Dockerfile does not copy (TS5083).
 *
 * npm resolves from its cache first (npm_config_prefer_offline): what the lock names was
 * installed on this machine already, so no download is needed; one not in the cache is fetched.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { applyCopy, dockerIgnore, readDockerfile, root } from './dockerfile.js';

/** Run a shell command in `cwd`; resolve with its exit code and the tail of its output. */
function sh(
  command: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-8000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output, ms: Date.now() - started }));
  });
}

/** The environment of a `docker build` RUN: no test runner or outer npm settings leak in. */
function buildEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('npm_') || k.startsWith('TEST_') || k === 'NODE_ENV' || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return { ...env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' };
}

describe('the Docker image build, replayed without Docker', () => {
  it(
    'copies what the build stage copies, runs its steps, and the pruned tree loads the launcher',
    { timeout: 30 * 60_000 },
    async () => {
      const stages = readDockerfile();
      const build = stages.find((s) => s.name === 'build');
      assert.ok(build, 'the Dockerfile has a stage named `build`');
      const runtime = stages.at(-1)!;
      assert.ok(
        runtime.instructions.some((i) => i.keyword === 'COPY' && i.args.startsWith('--from=build ')),
        'the runtime stage copies the build stage',
      );

      const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-image-'));
      try {
        const ignored = dockerIgnore(root);
        const env = buildEnv();
        let workdir: string | undefined;
        for (const ins of build.instructions) {
          switch (ins.keyword) {
            case 'WORKDIR':
              // The image's WORKDIR stands for the temporary directory; a second one would move below it.
              assert.equal(workdir, undefined, `line ${ins.line}: one WORKDIR in the build stage`);
              workdir = dir;
              break;
            case 'COPY':
              assert.ok(workdir, `line ${ins.line}: COPY before WORKDIR`);
              applyCopy(ins.args, root, workdir, ignored);
              break;
            case 'RUN': {
              assert.ok(workdir, `line ${ins.line}: RUN before WORKDIR`);
              const r = await sh(ins.args, workdir, env);
              console.log(`# RUN ${ins.args}: exit ${r.code} in ${(r.ms / 1000).toFixed(1)} s`);
              assert.equal(r.code, 0, `Dockerfile line ${ins.line}: RUN ${ins.args} failed:\n${r.output}`);
              break;
            }
            default:
              assert.fail(
                `Dockerfile line ${ins.line}: ${ins.keyword} in the build stage is not replayed by this test`,
              );
          }
        }
        assert.ok(existsSync(path.join(dir, 'apps', 'launcher', 'dist', 'main.js')), 'the launcher is compiled');
        assert.ok(
          existsSync(path.join(dir, 'apps', 'launcher', 'dist', 'healthcheck.js')),
          'the healthcheck is compiled',
        );
        assert.ok(
          existsSync(path.join(dir, 'apps', 'console', 'dist', 'index.html')),
          'the console is built (the gateway serves it at /ui)',
        );
        assert.ok(!existsSync(path.join(dir, 'node_modules', 'typescript')), 'the dev dependencies are pruned');
        // Every module the launcher runs, loaded from the pruned tree (no dev dependency needed at run time).
        const load = await sh(
          `node --input-type=module -e "await import('./apps/launcher/dist/system.js'); await import('./apps/launcher/dist/index.js'); console.log('loaded')"`,
          dir,
          { ...env, NODE_ENV: 'production' },
        );
        assert.equal(load.code, 0, `the launcher does not load from the pruned tree:\n${load.output}`);
        assert.match(load.output, /loaded/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

// The lint phase of `npm test` (and `npm run lint`): eslint (type-aware), prettier --check, knip,
// and the console's type check.
// The checks run side by side (eslint alone keeps one core busy for most of the phase), each one's
// output is printed when it ends, and the phase fails when any check does, after all have run.
// eslint needs the built declarations of the workspace packages (npx tsc -b). Outside CI eslint and
// prettier keep caches in node_modules/.cache (CI always checks from scratch).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (p) => path.join(root, 'node_modules', p);
const local = !process.env.CI;

export const checks = [
  {
    name: 'eslint',
    args: [
      bin('eslint/bin/eslint.js'),
      '--max-warnings',
      '0',
      ...(local ? ['--cache', '--cache-strategy', 'content', '--cache-location', bin('.cache/eslint/')] : []),
      '.',
    ],
  },
  {
    name: 'prettier',
    args: [bin('prettier/bin/prettier.cjs'), '--check', '--log-level', 'warn', ...(local ? ['--cache'] : []), '.'],
  },
  { name: 'knip', args: [bin('knip/bin/knip.js'), '--no-progress'] },
  // The console is built by vite, which does not type-check; tsc -b does not include it.
  { name: 'console-types', args: [bin('typescript/bin/tsc'), '-p', path.join(root, 'apps/console/tsconfig.json')] },
];

function run(check) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, check.args, { cwd: root, env: { ...process.env, FORCE_COLOR: '0' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (err) => (out += `${String(err)}\n`));
    child.on('close', (code, sig) => {
      resolve({ name: check.name, code: code ?? (sig ? 1 : 0), out, s: (performance.now() - t0) / 1000 });
    });
  });
}

/** Runs the checks named in `only` (all when empty); resolves to 0 when every one passed. */
export async function lint(only = []) {
  const started = performance.now();
  const chosen = checks.filter((c) => only.length === 0 || only.includes(c.name));
  if (chosen.length === 0)
    throw new Error(`no lint check named ${only.join(', ')} (have: ${checks.map((c) => c.name).join(', ')})`);
  console.log(`# lint: ${chosen.map((c) => c.name).join(', ')} (side by side)`);
  const failed = [];
  await Promise.all(
    chosen.map(async (check) => {
      const r = await run(check);
      if (r.out.trim()) process.stdout.write(`# lint: ${r.name} output:\n${r.out.replace(/\n?$/, '\n')}`);
      console.log(`# lint: ${r.name} ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`} in ${r.s.toFixed(1)} s`);
      if (r.code !== 0) failed.push(r.name);
    }),
  );
  const total = ((performance.now() - started) / 1000).toFixed(1);
  if (failed.length > 0)
    console.error(`# lint: failed: ${failed.join(', ')} (${total} s); docs/checks.md has the usual fixes`);
  else console.log(`# lint: all checks passed in ${total} s`);
  return failed.length === 0 ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(await lint(process.argv.slice(2)));

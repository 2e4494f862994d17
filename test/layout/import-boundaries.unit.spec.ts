/**
 * The layout rule: a folder under apps/ is one process role, and apps depend on libs only; the
 * launcher (apps/launcher) is the one place that composes apps. Wire contracts that two apps share
 * live in libs/contracts, so no app needs another app to talk to it.
 *
 * Checked here on the sources and package manifests:
 * - no app's runtime code (every file under apps/<app>/src but the specs and their
 *   `*.spec-fixture.ts`) imports another app,
 *   statically, dynamically or by a relative path out of its folder; the launcher excepted;
 * - no lib imports an app at all, specs included, nor lists one in its package.json;
 * - an app's `dependencies` name no other app; an integration spec that starts other apps as its
 *   fixtures (a gateway spec with a real dispatcher) may import them, declared as devDependencies.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

// test/dist/layout -> the repository root.
const root = path.resolve(import.meta.dirname, '..', '..', '..');
const LAUNCHER = 'launcher';
// Specs, and the fixtures specs share (test code too, never imported by runtime code).
const SPEC = /\.((unit|int|e2e)\.spec|spec-fixture)\.tsx?$/;

interface Pkg {
  readonly dir: string;
  readonly group: 'apps' | 'libs';
  readonly name: string;
  readonly dependencies: readonly string[];
  readonly devDependencies: readonly string[];
}

function packages(): Pkg[] {
  const out: Pkg[] = [];
  for (const group of ['apps', 'libs'] as const) {
    for (const dir of readdirSync(path.join(root, group))) {
      const manifest = path.join(root, group, dir, 'package.json');
      if (!existsSync(manifest)) continue;
      const p = JSON.parse(readFileSync(manifest, 'utf8')) as {
        name: string;
        dependencies?: object;
        devDependencies?: object;
      };
      out.push({
        dir,
        group,
        name: p.name,
        dependencies: Object.keys(p.dependencies ?? {}),
        devDependencies: Object.keys(p.devDependencies ?? {}),
      });
    }
  }
  return out;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      if (e === 'node_modules' || e === 'dist' || e.startsWith('.')) continue;
      const p = path.join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|tsx|mts)$/.test(e) && !e.endsWith('.d.ts')) out.push(p);
    }
  };
  if (statSync(dir, { throwIfNoEntry: false })?.isDirectory()) walk(dir);
  return out;
}

/** Every module specifier of a file: `from '...'`, `import('...')`, `require('...')`, with its line. */
export function specifiersOf(text: string): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])([^'"\n]+)\1/gm)) {
    out.push({ spec: m[2]!, line: text.slice(0, m.index).split('\n').length });
  }
  return out;
}

/** The package a bare specifier names (`@switchyard/x/sub` -> `@switchyard/x`). */
const packageOf = (spec: string): string =>
  spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;

describe('layout: apps depend on libs only; the launcher composes', () => {
  const pkgs = packages();
  const apps = new Map(pkgs.filter((p) => p.group === 'apps').map((p) => [p.name, p]));

  it('finds the packages and reads the specifiers it checks', () => {
    assert.ok(apps.size >= 8 && pkgs.length >= 15, `apps and libs found under ${root}`);
    assert.ok(apps.has('@switchyard/launcher') && apps.has('@switchyard/gateway'));
    const sample =
      "import { a } from '@switchyard/agents';\nexport { b } from \"./b.js\";\nconst c = await import('@switchyard/monitor/x');\nimport '@switchyard/relay';\n";
    assert.deepEqual(
      specifiersOf(sample).map((s) => `${s.line}:${packageOf(s.spec)}`),
      ['1:@switchyard/agents', '2:.', '3:@switchyard/monitor', '4:@switchyard/relay'],
    );
  });

  it("no app's runtime code imports another app (the launcher excepted), by name or by a relative path", () => {
    const offenders: string[] = [];
    let checked = 0;
    for (const app of apps.values()) {
      if (app.dir === LAUNCHER) continue;
      const base = path.join(root, 'apps', app.dir);
      for (const file of sources(path.join(base, 'src'))) {
        if (SPEC.test(file)) continue;
        checked++;
        for (const { spec, line } of specifiersOf(readFileSync(file, 'utf8'))) {
          const where = `${path.relative(root, file)}:${line}: '${spec}'`;
          if (spec.startsWith('.')) {
            if (path.relative(base, path.resolve(path.dirname(file), spec)).startsWith('..'))
              offenders.push(`${where} (leaves ${app.dir})`);
            // A spec fixture may compose apps: runtime code reaching one would too.
            else if (/\.spec-fixture(\.js)?$/.test(spec)) offenders.push(`${where} (a spec fixture)`);
          } else if (apps.has(packageOf(spec)) && packageOf(spec) !== app.name) offenders.push(where);
        }
      }
    }
    assert.ok(checked > 200, `checked ${checked} files`);
    assert.deepEqual(
      offenders,
      [],
      'an app talks to another through libs/contracts (NATS subjects and schemas), and only apps/launcher composes apps',
    );
  });

  it('an app spec imports another app only as a declared devDependency (a fixture), never a runtime dependency', () => {
    const offenders: string[] = [];
    for (const app of apps.values()) {
      if (app.dir === LAUNCHER) continue;
      for (const dep of app.dependencies)
        if (apps.has(dep)) offenders.push(`apps/${app.dir}/package.json: dependency ${dep}`);
      for (const file of sources(path.join(root, 'apps', app.dir, 'src'))) {
        if (!SPEC.test(file)) continue;
        for (const { spec, line } of specifiersOf(readFileSync(file, 'utf8'))) {
          const name = packageOf(spec);
          if (apps.has(name) && name !== app.name && !app.devDependencies.includes(name)) {
            offenders.push(`${path.relative(root, file)}:${line}: '${spec}' is not a devDependency of ${app.name}`);
          }
        }
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('no lib imports an app or lists one in its package.json', () => {
    const offenders: string[] = [];
    for (const lib of pkgs.filter((p) => p.group === 'libs')) {
      for (const dep of [...lib.dependencies, ...lib.devDependencies])
        if (apps.has(dep)) offenders.push(`libs/${lib.dir}/package.json: ${dep}`);
      for (const file of sources(path.join(root, 'libs', lib.dir, 'src'))) {
        for (const { spec, line } of specifiersOf(readFileSync(file, 'utf8'))) {
          if (apps.has(packageOf(spec))) offenders.push(`${path.relative(root, file)}:${line}: '${spec}'`);
        }
      }
    }
    assert.deepEqual(offenders, []);
  });
});

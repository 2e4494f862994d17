import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

// test/dist/architecture -> the repository root.
const root = path.resolve(import.meta.dirname, '..', '..', '..');

/**
 * Deciders are pure: the same command and state give the same events, so a replay or a retry
 * after a conflict decides the same way. That holds only if they read no clock, no randomness,
 * no environment and do no I/O: time and ids come in with the command. A decider is every file
 * under libs/domain/src, every `*.decider.ts`, and every file in a `domain/` folder of an app.
 */
function deciderSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string, inDomain: boolean) => {
    for (const e of readdirSync(dir)) {
      if (e === 'node_modules' || e === 'dist' || e.startsWith('.')) continue;
      const p = path.join(dir, e);
      if (statSync(p).isDirectory()) walk(p, inDomain || e === 'domain');
      else if (
        e.endsWith('.ts') &&
        !e.endsWith('.d.ts') &&
        !/\.(unit|int|e2e)\.spec\.ts$/.test(e) &&
        (inDomain || e.endsWith('.decider.ts'))
      )
        out.push(p);
    }
  };
  walk(path.join(root, 'libs', 'domain', 'src'), true);
  for (const group of ['apps', 'libs']) {
    for (const pkg of readdirSync(path.join(root, group))) {
      const src = path.join(root, group, pkg, 'src');
      if (pkg !== 'domain' && statSync(src, { throwIfNoEntry: false })?.isDirectory()) walk(src, false);
    }
  }
  return out;
}

/** What a pure decider must not touch, with why it is refused. */
const IMPURE: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bDate\.now\(\)|new Date\(\s*\)/, 'reads the clock (pass the time in the command)'],
  [/\bMath\.random\(|randomUUID\(|\bnewId\(/, 'makes a random value (pass ids in the command)'],
  [/\bprocess\.(env|argv|hrtime|cwd)\b|\bperformance\.now\(/, 'reads the process environment'],
  [/\b(setTimeout|setInterval|setImmediate|fetch)\(/, 'schedules work or does I/O'],
  [
    /from\s+'(node:[^']+|fs|http|https|net|child_process|pg|pg-[^']+|nats|@nats-io\/[^']+|@eventstore\/[^']+|pino)'/,
    'imports an I/O module',
  ],
];

describe('deciders are pure', () => {
  it('no decider reads the clock, randomness or the environment, or imports an I/O module', () => {
    const files = deciderSources();
    assert.ok(files.length > 20, `found the deciders (${files.length} files under ${root})`);
    assert.ok(
      files.some((f) => f.endsWith(path.join('security', 'api-key.decider.ts'))),
      'the API key decider is among them',
    );
    assert.ok(
      files.some((f) => f.includes(path.join('monitor', 'src', 'domain'))),
      "the monitor's health and alert deciders are among them",
    );
    const offenders: string[] = [];
    for (const file of files) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        // A comment may name what the code must not do.
        if (/^\s*(\/\/|\*|\/\*)/.test(line)) return;
        for (const [pattern, why] of IMPURE)
          if (pattern.test(line)) offenders.push(`${path.relative(root, file)}:${i + 1} ${why}: ${line.trim()}`);
      });
    }
    assert.deepEqual(offenders, [], `impure deciders:\n${offenders.join('\n')}`);
  });

  it('libs/domain depends on no other workspace package (the console bundles it for the browser, where Node modules do not load)', () => {
    const offenders: string[] = [];
    for (const file of deciderSources().filter((f) => f.startsWith(path.join(root, 'libs', 'domain', 'src')))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/from\s+'@switchyard\//.test(line))
            offenders.push(`${path.relative(root, file)}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(offenders, []);
    const pkg = JSON.parse(readFileSync(path.join(root, 'libs', 'domain', 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    assert.deepEqual(
      Object.keys(pkg.dependencies ?? {}).filter((d) => d.startsWith('@switchyard/')),
      [],
    );
  });
});

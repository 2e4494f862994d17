/**
 * Comments and docs cite nothing outside the repository: no paths into a sibling checkout
 * (`../shared`), no issue or pull-request numbers, no numbered habits of a style guide that is not
 * in the repository. A reader of the repository alone must be able to follow every reference.
 * Scans the comments of the TypeScript/JavaScript sources and the whole text of the Markdown files
 * under apps/, libs/, test/, bench/, scripts/, docs/ and README.md.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const self = 'test/checks/citations.unit.spec';

/** What a reference outside the repository looks like, with the reason each is refused. */
const forbidden: { pattern: RegExp; why: string }[] = [
  { pattern: /\.\.\/shared\b|\/work\/shared\b/, why: 'a path outside the repository' },
  { pattern: /\bissues?\s*#\s*\d+/i, why: 'an issue number' },
  { pattern: /\b(?:PR|pull request)\s*#?\s*\d+/i, why: 'a pull-request number' },
  { pattern: /\/(?:issues|pull)\/\d+/, why: 'a link to an issue or pull request' },
  { pattern: /(?:^|[\s([,;])#\d{1,6}\b(?![-\w])/, why: 'an issue-style reference (#12)' },
  { pattern: /\bSTYLE(?:\.md| habit)/, why: 'the style guide, which is not in the repository' },
];

const roots = ['apps', 'libs', 'test', 'bench', 'scripts', 'docs'];
const skipDirs = new Set(['node_modules', 'dist', '.tmp', '.data', 'coverage']);
const code = /\.(?:ts|tsx|js|mjs|cjs)$/;

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    if (skipDirs.has(name) || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (code.test(name) || name.endsWith('.md')) out.push(p);
  }
  return out;
}

/** The comment text of a source file, line by line (other lines blank, so line numbers hold). */
function commentsOf(text: string): string[] {
  const lines = text.split('\n').map(() => '');
  const src = text.split('\n');
  let inBlock = false;
  src.forEach((line, i) => {
    let rest = line;
    let kept = '';
    for (;;) {
      if (inBlock) {
        const end = rest.indexOf('*/');
        if (end < 0) {
          kept += rest;
          break;
        }
        kept += rest.slice(0, end);
        rest = rest.slice(end + 2);
        inBlock = false;
        continue;
      }
      // A comment starts at `//` or `/*` outside a string literal (a rough but sufficient test:
      // the opener is preceded by whitespace or starts the line).
      const m = /(?:^|\s)(\/\/|\/\*)/.exec(rest);
      if (!m) break;
      const at = m.index + m[0].length - 2;
      if (m[1] === '//') {
        kept += rest.slice(at + 2);
        break;
      }
      inBlock = true;
      rest = rest.slice(at + 2);
    }
    lines[i] = kept;
  });
  return lines;
}

describe('citations', () => {
  it('comments and docs cite nothing outside the repository', () => {
    const files = [...roots.flatMap((r) => walk(path.join(root, r), [])), path.join(root, 'README.md')];
    assert.ok(files.length > 100, `expected to scan the repository, found ${files.length} files under ${root}`);
    const findings: string[] = [];
    for (const file of files) {
      const rel = path.relative(root, file);
      if (rel.startsWith(self)) continue; // this file spells out the patterns
      const text = readFileSync(file, 'utf8');
      const lines = code.test(file) ? commentsOf(text) : text.split('\n');
      lines.forEach((line, i) => {
        for (const { pattern, why } of forbidden) {
          const m = pattern.exec(line);
          if (m) findings.push(`${rel}:${i + 1}: ${why}: "${m[0].trim()}"`);
        }
      });
    }
    assert.deepEqual(
      findings,
      [],
      `references outside the repository (say it in the repository's own words instead):\n${findings.join('\n')}`,
    );
  });

  it('the patterns catch what they are for, and leave colours and counters alone', () => {
    const hit = (s: string) => forbidden.some(({ pattern }) => pattern.test(s));
    for (const s of [
      'see ../shared/STYLE.md',
      'fixes issue #12',
      '(#14)',
      'as in #1',
      'PR 31',
      'github.com/o/r/issues/3',
      'STYLE habit 6',
    ]) {
      assert.ok(hit(s), s);
    }
    for (const s of ["fill='#111827'", 'color: #1d4ed8', 'StepScheduled#1', 'gateway#1', 'step 12', '# Heading']) {
      assert.ok(!hit(s), s);
    }
    assert.deepEqual(commentsOf("const a = '//x'; // issue #3\n/* b\n c */ d"), [' issue #3', ' b', ' c ']);
  });
});

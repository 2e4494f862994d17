/**
 * The docs' curl commands work when copied: one that sends a body (`-d`, `--data...`) says it is
 * JSON (`Content-Type: application/json`, or `--json`). curl's `-d` alone sends a form type, which
 * the gateway refuses with 415, so a reader pasting the command got an error, not the answer shown.
 * Scans the shell lines of README.md and docs/*.md (a command continued with `\` read as one).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The curl commands of a Markdown text, continued lines joined, with the line each starts on. */
function curlCommands(text: string): { line: number; command: string }[] {
  const out: { line: number; command: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/(?:^|[\s`$(|])curl\s/.test(lines[i]!)) continue;
    const start = i;
    let command = lines[i]!;
    while (command.trimEnd().endsWith('\\') && i + 1 < lines.length)
      command = `${command.trimEnd().slice(0, -1)} ${lines[++i]}`;
    out.push({ line: start + 1, command });
  }
  return out;
}

const sendsBody = /\s(?:-d|--data(?:-raw|-binary|-urlencode)?)[\s=@'"]/;
const saysJson = /content-type:\s*application\/json|\s--json\s/i;

describe('the docs’ curl commands', () => {
  it('each one that sends a body says it is JSON', () => {
    const files = [
      'README.md',
      ...readdirSync(path.join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
    ];
    const bad: string[] = [];
    let checked = 0;
    for (const file of files) {
      const text = readFileSync(path.join(root, file), 'utf8');
      // Shell arrays of headers the file defines (`H=(-H '...' ...)`) that say JSON: "${H[@]}" in a command does.
      const jsonArrays = [...text.matchAll(/\b([A-Z_]+)=\(([^)]*)\)/g)]
        .filter((m) => saysJson.test(` ${m[2]!.replace(/\\\n/g, ' ')} `))
        .map((m) => m[1]!);
      for (const { line, command } of curlCommands(text)) {
        if (!sendsBody.test(command)) continue;
        checked++;
        const viaArray = jsonArrays.some((name) => command.includes(`"\${${name}[@]}"`));
        if (!saysJson.test(command) && !viaArray) bad.push(`${file}:${line}: ${command.trim().slice(0, 160)}`);
      }
    }
    assert.ok(checked > 10, `only ${checked} commands with a body found: is the scan reading the docs?`);
    assert.deepEqual(bad, [], `curl -d without a JSON content type (the gateway answers 415):\n${bad.join('\n')}`);
  });
});

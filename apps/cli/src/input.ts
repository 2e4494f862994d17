import { readFileSync } from 'node:fs';
import { CliError, EXIT } from './errors.js';

/**
 * A JSON object given on the command line: inline (`'{"a":1}'`), `@file.json`, a file path, or `-` (stdin).
 */
export function readJsonObject(value: string | undefined, what: string): Record<string, unknown> {
  if (value === undefined) return {};
  let text = value.trim();
  if (!text.startsWith('{')) {
    const file = text === '-' ? 0 : text.replace(/^@/, '');
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(
        `${what}: not a JSON object and not a readable file: ${value} (${(err as Error).message})`,
        EXIT.usage,
      );
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${what}: bad JSON: ${(err as Error).message}`, EXIT.usage);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new CliError(`${what}: must be a JSON object`, EXIT.usage);
  return parsed as Record<string, unknown>;
}

/**
 * Asks on the terminal for a secret, without echoing what is typed (stdin in raw mode): Enter
 * ends it, Backspace removes a character, Ctrl-C or Ctrl-D gives up.
 */
export function askHidden(question: string, input: NodeJS.ReadStream = process.stdin): Promise<string> {
  return new Promise((resolve, reject) => {
    process.stderr.write(question);
    let typed = '';
    const done = (err?: Error) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(typed.trim());
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(new CliError('no key given', EXIT.usage));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else if (ch >= ' ') typed += ch;
      }
    };
    input.setRawMode(true);
    input.resume();
    input.on('data', onData);
  });
}

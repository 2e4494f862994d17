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

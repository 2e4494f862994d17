import type { RE2JS } from 're2js';
import { BoundedRe2Cache, re2SizeProblem } from '@switchyard/domain';

/**
 * Silence matcher patterns are RE2 (as in Prometheus' Alertmanager), matched in linear time by
 * re2js: a pattern like `(a+)+$` cannot stall alert evaluation the way a backtracking RegExp
 * does. A pattern is anchored on the whole label value. Compiled patterns are cached, and one too
 * large once compiled is refused before compiling (BoundedRe2Cache).
 */
const cache = new BoundedRe2Cache((pattern) => `^(?:${pattern})$`);

function compiled(pattern: string): RE2JS | string {
  const c = cache.compile(pattern);
  return typeof c === 'string' ? (re2SizeProblem(pattern) ?? `not a valid RE2 regular expression: ${c}`) : c;
}

/** Why `pattern` is not a usable matcher regex, or null when it is. */
export function matcherRegexProblem(pattern: string): string | null {
  const c = compiled(pattern);
  return typeof c === 'string' ? c : null;
}

/** Whether `value` matches the whole of `pattern`; null when the pattern is not valid. */
export function matchesWhole(pattern: string, value: string): boolean | null {
  const c = compiled(pattern);
  return typeof c === 'string' ? null : c.matches(value);
}

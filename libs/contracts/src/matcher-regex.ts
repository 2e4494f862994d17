import type { RE2JS } from 're2js';
import { BoundedRe2Cache, isSizeRefusal } from '@switchyard/domain';

/**
 * Silence matcher patterns are RE2 (as in Prometheus' Alertmanager), matched in linear time by
 * re2js: a pattern like `(a+)+$` cannot stall alert evaluation the way a backtracking RegExp
 * does. A pattern is anchored on the whole label value. Compiled patterns are cached, and one too
 * large once compiled is refused before compiling (BoundedRe2Cache).
 */
/** The text RE2 compiles for a matcher: anchored on the whole value. */
export const matcherRegexText = (pattern: string): string => `^(?:${pattern})$`;
const cache = new BoundedRe2Cache(matcherRegexText);

function compiled(pattern: string): RE2JS | string {
  const c = cache.compile(pattern);
  return typeof c === 'string' ? (isSizeRefusal(c) ? c : `not a valid RE2 regular expression: ${c}`) : c;
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

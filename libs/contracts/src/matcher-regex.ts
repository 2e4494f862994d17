import { RE2JS } from 're2js';

/**
 * Silence matcher patterns are RE2 (as in Prometheus' Alertmanager), matched in linear time by
 * re2js: a pattern like `(a+)+$` cannot stall alert evaluation the way a backtracking RegExp
 * does. A pattern is anchored on the whole label value. Compiled patterns are cached (bounded).
 */
const cache = new Map<string, RE2JS | string>();

function compiled(pattern: string): RE2JS | string {
  let c = cache.get(pattern);
  if (c === undefined) {
    try {
      c = RE2JS.compile(`^(?:${pattern})$`);
    } catch (e) {
      c = e instanceof Error ? e.message : String(e);
    }
    if (cache.size > 1_000) cache.clear();
    cache.set(pattern, c);
  }
  return c;
}

/** Why `pattern` is not a usable matcher regex, or null when it is. */
export function matcherRegexProblem(pattern: string): string | null {
  const c = compiled(pattern);
  return typeof c === 'string' ? `not a valid RE2 regular expression: ${c}` : null;
}

/** Whether `value` matches the whole of `pattern`; null when the pattern is not valid. */
export function matchesWhole(pattern: string, value: string): boolean | null {
  const c = compiled(pattern);
  return typeof c === 'string' ? null : c.matches(value);
}

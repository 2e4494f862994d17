/**
 * Glob patterns a filesystem tool call may carry (`search_files`' `pattern` and `excludePatterns`
 * of the official filesystem server). That server matches them with minimatch, whose extended
 * globs (`+(a|aa)`, `*(...)`, `@(...)`, `!(...)`, `?(...)`) backtrack without bound: one such
 * pattern pinned the server's only thread until it was replaced, for every caller. Plain globs
 * (`*`, `**`, `?`, `[...]`, `{a,b}`) are what the tool is for and stay allowed, within a size.
 */
export const GLOB_MAX_CHARS = 256;
const MAX_STARS = 16;
const MAX_BRACES = 8;
const EXTGLOB = /[?*+@!]\(/;

/** Why a glob is refused, or undefined when it may be matched. */
export function globRefusal(pattern: string): string | undefined {
  if (pattern.length > GLOB_MAX_CHARS) return `a pattern is at most ${GLOB_MAX_CHARS} characters`;
  if (EXTGLOB.test(pattern)) return 'extended glob patterns (+(...), *(...), @(...), !(...), ?(...)) are not accepted';
  if ((pattern.match(/\*/g)?.length ?? 0) > MAX_STARS) return `a pattern has at most ${MAX_STARS} "*"`;
  if ((pattern.match(/\{/g)?.length ?? 0) > MAX_BRACES) return `a pattern has at most ${MAX_BRACES} "{...}" groups`;
  return undefined;
}

/** The first refused glob among a filesystem tool's arguments (`pattern`, `excludePatterns`), named by its field. */
export function filesystemGlobRefusal(args: Record<string, unknown> | undefined): string | undefined {
  if (!args) return undefined;
  const globs: [string, unknown][] = [['pattern', args['pattern']]];
  const excluded = args['excludePatterns'];
  if (Array.isArray(excluded)) excluded.forEach((p, i) => globs.push([`excludePatterns[${i}]`, p]));
  for (const [field, value] of globs) {
    if (typeof value !== 'string') continue;
    const why = globRefusal(value);
    if (why) return `${field}: ${why}`;
  }
  return undefined;
}

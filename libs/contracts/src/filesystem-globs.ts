/**
 * Glob patterns a filesystem tool call may carry (`search_files`' `pattern`, the
 * `excludePatterns` of `search_files` and `directory_tree` of the official filesystem server).
 * That server matches them with minimatch, once per file: extended globs (`+(a|aa)`, `!(x)`,
 * ...) and runs of wildcards backtrack without bound, and brace ranges (`{1..99999}`) expand to
 * as many patterns, rebuilt for every file. One such pattern pinned the server's only thread for
 * every caller until it was replaced. What the tool is for stays allowed, within bounds: `*`,
 * `?`, `[...]` and `{a,b}` in a segment, `**` as a segment of its own.
 */
export const GLOB_MAX_CHARS = 256;
/** `*` and `?` in one path segment (each can backtrack over the rest of the name). */
const MAX_WILDCARDS_PER_SEGMENT = 4;
/** `**` segments in one pattern. */
const MAX_GLOBSTARS = 4;
/** Patterns one pattern's braces expand to. */
const MAX_EXPANSIONS = 64;

/** Why a glob is refused, or undefined when it may be matched. */
export function globRefusal(pattern: string): string | undefined {
  if (pattern.length > GLOB_MAX_CHARS) return `a pattern is at most ${GLOB_MAX_CHARS} characters`;
  // Every extended glob needs a parenthesis, also one that braces would put together.
  if (pattern.includes('(') || pattern.includes(')'))
    return 'parentheses are not accepted (extended glob patterns such as +(...), !(...) backtrack without bound)';
  const braces = braceRefusal(pattern);
  if (braces) return braces;
  const segments = pattern.split('/');
  if (segments.filter((s) => s === '**').length > MAX_GLOBSTARS) return `a pattern has at most ${MAX_GLOBSTARS} "**"`;
  for (const segment of segments) {
    if (segment === '**') continue;
    const wildcards = segment.match(/[*?]/g)?.length ?? 0;
    if (wildcards > MAX_WILDCARDS_PER_SEGMENT)
      return `a path segment has at most ${MAX_WILDCARDS_PER_SEGMENT} "*" or "?" ("**" as a segment of its own)`;
  }
  return undefined;
}

/** Why a pattern's braces are refused: nested groups, ranges, or more than MAX_EXPANSIONS patterns. */
function braceRefusal(pattern: string): string | undefined {
  let expansions = 1;
  let depth = 0;
  let alternatives = 1;
  let group = '';
  for (const c of pattern) {
    if (c === '{') {
      if (depth > 0) return 'nested "{...}" groups are not accepted';
      depth = 1;
      alternatives = 1;
      group = '';
    } else if (c === '}' && depth > 0) {
      depth = 0;
      if (group.includes('..')) return 'brace ranges ({a..b}) are not accepted';
      expansions *= alternatives;
      if (expansions > MAX_EXPANSIONS) return `a pattern's "{...}" groups expand to at most ${MAX_EXPANSIONS} patterns`;
    } else if (depth > 0) {
      if (c === ',') alternatives++;
      group += c;
    }
  }
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

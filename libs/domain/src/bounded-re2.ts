import { RE2JS } from 're2js';

/**
 * RE2 matches in linear time, but compiling a pattern costs time and memory in proportion to its
 * compiled program, which counted repetition multiplies: `a{1000}` repeated 1,390 times is 9.7 KB
 * of text and 1.39 million instructions (5 s of compiling on one core, 1 GB at the peak, 106 MB
 * kept). Every pattern a caller can send (a definition's input schema, a CEL `matches`, a silence
 * matcher) goes through here: its program size is estimated from its text first, and one past
 * MAX_PROGRAM_SIZE is refused without compiling.
 */
export const MAX_PROGRAM_SIZE = 10_000;
/** Estimated instructions the compiled patterns kept in one cache may add up to (about 76 bytes each). */
const CACHE_PROGRAM_BUDGET = 400_000;

/** Instructions an atom stands for (UTF-8 ranges make `.`, classes and `\p{..}` more than one). */
const ANY_CHAR = 4;
const UNICODE_CLASS = 200;

/**
 * An upper estimate of the RE2 program size of `pattern`: atoms count as above, a group as its
 * alternatives added up, `*` `+` `?` add one, `{n,m}` multiplies by max(n, m) (`{n,}` by n + 1),
 * as RE2 unrolls counted repetition. Syntax errors are left for RE2 to report (they cost nothing).
 */
export function re2ProgramSizeEstimate(pattern: string): number {
  let i = 0;
  const n = pattern.length;
  const atomEscape = (): number => {
    const c = pattern[i + 1];
    i += 2;
    if (c === 'p' || c === 'P') {
      if (pattern[i] === '{') {
        const end = pattern.indexOf('}', i);
        i = end === -1 ? n : end + 1;
      } else i += 1;
      return UNICODE_CLASS;
    }
    return c === 'd' || c === 'D' || c === 'w' || c === 'W' || c === 's' || c === 'S' ? 2 : 1;
  };
  const atomClass = (): number => {
    // From '[' to its closing ']': a leading '^' and a leading ']' are part of the class.
    let size = 1;
    i += 1;
    if (pattern[i] === '^') i += 1;
    if (pattern[i] === ']') i += 1;
    while (i < n && pattern[i] !== ']') {
      if (pattern[i] === '\\') size += atomEscape();
      else if (pattern.startsWith('[:', i)) {
        const end = pattern.indexOf(':]', i + 2);
        i = end === -1 ? n : end + 2;
        size += 2;
      } else {
        i += 1;
        size += 1;
      }
    }
    i += 1;
    return size;
  };
  const repeatCount = (): number | undefined => {
    const m = /^\{(\d{1,9})(,(\d{0,9}))?\}/.exec(pattern.slice(i, i + 24));
    if (!m) return undefined;
    i += m[0].length;
    const min = Number(m[1]);
    if (m[2] === undefined) return Math.max(1, min);
    return m[3] === '' || m[3] === undefined ? min + 1 : Math.max(1, min, Number(m[3]));
  };
  const alternation = (): number => {
    let total = concatenation();
    while (pattern[i] === '|') {
      i += 1;
      total += 1 + concatenation();
    }
    return total;
  };
  const concatenation = (): number => {
    let total = 0;
    while (i < n && pattern[i] !== '|' && pattern[i] !== ')') {
      let size: number;
      const c = pattern[i];
      if (c === '(') {
        i += 1;
        if (pattern[i] === '?') {
          // (?:...), (?P<name>...), (?<name>...), (?i) and (?i:...)
          const close = /^\?(P?<[^>]*>|[A-Za-z-]*:?|[A-Za-z-]*\))/.exec(pattern.slice(i, i + 64));
          i += close ? close[0].length : 1;
          if (close && close[0].endsWith(')')) continue; // flags only
        }
        size = alternation();
        i += 1; // ')'
      } else if (c === '[') size = atomClass();
      else if (c === '\\') size = atomEscape();
      else {
        i += 1;
        size = c === '.' ? ANY_CHAR : 1;
      }
      // Quantifiers on the atom (several in a row nest).
      for (;;) {
        const q = pattern[i];
        if (q === '*' || q === '+' || q === '?') {
          i += 1;
          if (pattern[i] === '?') i += 1;
          size += 1;
        } else if (q === '{') {
          const times = repeatCount();
          if (times === undefined) break;
          if (pattern[i] === '?') i += 1;
          size *= times;
        } else break;
      }
      total += size;
      // Past any bound already: stop counting (the number only needs to say "too big").
      if (total > Number.MAX_SAFE_INTEGER / 1e6) return total;
    }
    return total;
  };
  let total = 0;
  while (i < n) {
    total += alternation();
    if (pattern[i] === ')') i += 1; // an unbalanced ')': RE2 reports it
    if (pattern[i] === '|') i += 1;
  }
  return total;
}

/** Why a pattern is refused before compiling, or undefined. */
export function re2SizeProblem(pattern: string): string | undefined {
  const size = re2ProgramSizeEstimate(pattern);
  return size > MAX_PROGRAM_SIZE
    ? `pattern too large once compiled (about ${size} instructions; at most ${MAX_PROGRAM_SIZE}: counted repetition like {1000} multiplies)`
    : undefined;
}

/**
 * A cache of compiled patterns bounded by their estimated program sizes (emptied when past the
 * budget). `compile` answers the compiled pattern, or why it is refused (too large, or not RE2).
 */
export class BoundedRe2Cache {
  private readonly entries = new Map<string, RE2JS | string>();
  private held = 0;

  constructor(
    /** The text RE2 compiles for a pattern (e.g. anchored). */
    private readonly wrap: (pattern: string) => string = (p) => p,
  ) {}

  compile(pattern: string): RE2JS | string {
    const hit = this.entries.get(pattern);
    if (hit !== undefined) return hit;
    const size = re2ProgramSizeEstimate(pattern);
    let c: RE2JS | string;
    if (size > MAX_PROGRAM_SIZE) c = re2SizeProblem(pattern)!;
    else {
      try {
        c = RE2JS.compile(this.wrap(pattern));
      } catch (e) {
        c = e instanceof Error ? e.message : String(e);
      }
    }
    const cost = typeof c === 'string' ? 1 : size;
    if (this.held + cost > CACHE_PROGRAM_BUDGET || this.entries.size >= 1_000) {
      this.entries.clear();
      this.held = 0;
    }
    this.entries.set(pattern, c);
    this.held += cost;
    return c;
  }
}

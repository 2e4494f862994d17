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
export const CACHE_PROGRAM_BUDGET = 400_000;
/** Patterns one cache keeps at most. */
const MAX_CACHED = 1_000;

/** Deeper nesting than RE2 takes (its own limit is 1,000): refused without reading further. */
const MAX_NESTING = 1_000;

/**
 * An estimate of the RE2 program size of `pattern`: a character, a class (`[...]`, `\\d`,
 * `\\p{L}`, `.`) one instruction each (RE2 compiles a class to one instruction), a group its
 * alternatives added up, `*` `+` `?` add one, `{n,m}` multiplies by max(n, m) (`{n,}` by n + 1),
 * as RE2 unrolls counted repetition; `\\Q...\\E` is literal text. Nesting past MAX_NESTING
 * counts as too large. Other syntax errors are left for RE2 to report (they cost nothing).
 */
export function re2ProgramSizeEstimate(pattern: string): number {
  let i = 0;
  let depth = 0;
  const n = pattern.length;
  const atomEscape = (): number => {
    const c = pattern[i + 1];
    i += 2;
    if (c === 'Q') {
      // Literal up to \E (or the end): each character one instruction, nothing in it is syntax.
      const end = pattern.indexOf('\\E', i);
      const stop = end === -1 ? n : end;
      const size = stop - i;
      i = end === -1 ? n : end + 2;
      return size;
    }
    if ((c === 'p' || c === 'P') && pattern[i] === '{') {
      const end = pattern.indexOf('}', i);
      i = end === -1 ? n : end + 1;
    } else if (c === 'p' || c === 'P') i += 1;
    return 1;
  };
  const atomClass = (): number => {
    // From '[' to its closing ']': a leading '^' and a leading ']' are part of the class.
    i += 1;
    if (pattern[i] === '^') i += 1;
    if (pattern[i] === ']') i += 1;
    while (i < n && pattern[i] !== ']') {
      if (pattern[i] === '\\') atomEscape();
      else if (pattern.startsWith('[:', i)) {
        const end = pattern.indexOf(':]', i + 2);
        i = end === -1 ? n : end + 2;
      } else i += 1;
    }
    i += 1;
    return 1;
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
        if (++depth > MAX_NESTING) return Number.POSITIVE_INFINITY;
        i += 1;
        if (pattern[i] === '?') {
          // (?:...), (?P<name>...), (?<name>...), (?i) and (?i:...)
          const close = /^\?(P?<[^>]*>|[A-Za-z-]*:?|[A-Za-z-]*\))/.exec(pattern.slice(i, i + 64));
          i += close ? close[0].length : 1;
          if (close && close[0].endsWith(')')) continue; // flags only
        }
        size = alternation();
        if (!Number.isFinite(size)) return size;
        i += 1; // ')'
        depth -= 1;
      } else if (c === '[') size = atomClass();
      else if (c === '\\') size = atomEscape();
      else {
        i += 1;
        size = 1;
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
  while (i < n && Number.isFinite(total)) {
    total += alternation();
    if (pattern[i] === ')') i += 1; // an unbalanced ')': RE2 reports it
    if (pattern[i] === '|') i += 1;
  }
  return total;
}

/** Whether a cache's answer is a refusal for size (its own words), not RE2's syntax error. */
export const isSizeRefusal = (message: string): boolean =>
  message.startsWith('pattern too large') || message.startsWith('pattern nested');

/** Why a pattern is refused before compiling, or undefined. */
export const re2SizeProblem = (pattern: string): string | undefined => sizeProblem(re2ProgramSizeEstimate(pattern));

function sizeProblem(size: number): string | undefined {
  if (!Number.isFinite(size)) return `pattern nested deeper than ${MAX_NESTING} groups`;
  return size > MAX_PROGRAM_SIZE
    ? `pattern too large once compiled (about ${size} instructions; at most ${MAX_PROGRAM_SIZE}: counted repetition like {1000} multiplies)`
    : undefined;
}

/**
 * A budget of estimated RE2 instructions shared by the patterns of one request, checked before any
 * of them is compiled: each may be under the bound of one pattern while hundreds together hold a
 * core for seconds.
 */
export class Re2Budget {
  constructor(
    private left: number,
    /** Why a pattern past the budget is refused. */
    private readonly overBudget: string,
  ) {}

  /** Why the pattern (the text RE2 compiles) is refused alone or with those before it, or undefined; counts it unless refused alone. */
  charge(text: string): string | undefined {
    const size = re2ProgramSizeEstimate(text);
    const alone = sizeProblem(size);
    if (alone) return alone;
    this.left -= size;
    return this.left < 0 ? this.overBudget : undefined;
  }
}

/**
 * A cache of compiled patterns bounded by their estimated program sizes, least recently used
 * evicted first. `compile` answers the compiled pattern, or why it is refused (too large, or not
 * RE2). Emptying the whole cache when past the budget made a working set a little over it
 * recompile on every pass (each pass evicting what the next needs first): seconds of one core per
 * alert evaluation with many silences. A working set under the budget now stays compiled whatever
 * passes through beside it.
 */
export class BoundedRe2Cache {
  private readonly entries = new Map<string, { readonly c: RE2JS | string; readonly cost: number }>();
  private held = 0;

  constructor(
    /** The text RE2 compiles for a pattern (e.g. anchored). */
    private readonly wrap: (pattern: string) => string = (p) => p,
  ) {}

  compile(pattern: string): RE2JS | string {
    const hit = this.entries.get(pattern);
    if (hit !== undefined) {
      // Most recently used: to the end of the insertion order.
      this.entries.delete(pattern);
      this.entries.set(pattern, hit);
      return hit.c;
    }
    // The text RE2 compiles is what is measured: a ')' in a wrapped pattern closes the wrapper.
    const text = this.wrap(pattern);
    const size = re2ProgramSizeEstimate(text);
    let c: RE2JS | string;
    const refused = sizeProblem(size);
    if (refused) c = refused;
    else {
      try {
        c = RE2JS.compile(text);
      } catch (e) {
        c = e instanceof Error ? e.message : String(e);
      }
    }
    const cost = typeof c === 'string' || !Number.isFinite(size) ? 1 : size;
    for (const [k, e] of this.entries) {
      if (this.held + cost <= CACHE_PROGRAM_BUDGET && this.entries.size < MAX_CACHED) break;
      this.entries.delete(k);
      this.held -= e.cost;
    }
    this.entries.set(pattern, { c, cost });
    this.held += cost;
    return c;
  }
}

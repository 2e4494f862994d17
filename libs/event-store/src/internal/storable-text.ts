/**
 * PostgreSQL's jsonb cannot hold U+0000 nor a lone UTF-16 surrogate (a high one not followed by a
 * low one, a low one not preceded by a high one), and refuses the whole statement that carries one.
 * Event data holds tool, agent and peer results nobody cleaned (a file read with a 0x00 byte, a
 * result cut in the middle of an emoji), so every adapter stores such text with U+FFFD in place of
 * each of those characters, in keys as in values; valid pairs are kept. The contract suite checks it.
 */

/**
 * JSON.stringify writes U+0000 as `\u0000`, a lone surrogate as `\udXXX` (lowercase) and a valid
 * pair as the characters themselves, so in its output those escapes are exactly what needs
 * replacing. An escaped backslash (`\\`) is matched too, so that the `\\u0000` of a text that held
 * a backslash followed by `u0000` is left alone.
 */
const UNSTORABLE_ESCAPE = /\\(?:\\|u0000|ud[89a-f][0-9a-f]{2})/g;
/** The quick test: nothing to replace unless one of these occurs (a false hit only costs the full pass). */
const MAYBE_UNSTORABLE_ESCAPE = /\\u(?:0000|d[89a-f])/;

/** `json` (JSON.stringify's output) with U+FFFD for each U+0000 and lone surrogate; the same string when there is none. */
export function storableJson(json: string): string {
  // Most JSON has no `\u` escape at all, and a plain search says so several times faster than the pattern.
  if (json.indexOf('\\u') === -1 || !MAYBE_UNSTORABLE_ESCAPE.test(json)) return json;
  return json.replace(UNSTORABLE_ESCAPE, (m) => (m === '\\\\' ? m : '\\ufffd'));
}

/** Without the u flag a pattern sees UTF-16 code units, so a surrogate can be matched on its own. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** `s` holds no U+0000 nor lone surrogate. */
export const isStorableText = (s: string): boolean => !s.includes('\u0000') && !LONE_SURROGATE.test(s);

/** `s` with U+FFFD for each U+0000 and lone surrogate; the same string when there is none. */
export function storableString(s: string): string {
  return isStorableText(s) ? s : s.replaceAll('\u0000', '\ufffd').replace(LONE_SURROGATES, '\ufffd');
}

/**
 * `value` with every string and plain-object key passed through storableString, for the adapters
 * that do not write JSON text themselves. Returns the same object wherever nothing changed (no
 * copy in the common case); values other than strings, arrays and plain objects, and cycles, are
 * left as they are.
 */
export function storableValue<T>(value: T, ancestors: Set<object> = new Set()): T {
  if (typeof value === 'string') return storableString(value) as T;
  if (value === null || typeof value !== 'object' || ancestors.has(value)) return value;
  const proto = Object.getPrototypeOf(value) as unknown;
  const array = Array.isArray(value);
  if (!array && proto !== Object.prototype && proto !== null) return value;
  ancestors.add(value);
  try {
    if (array) {
      let out: unknown[] | undefined;
      value.forEach((item: unknown, i) => {
        const fixed = storableValue(item, ancestors);
        if (fixed !== item) (out ??= [...(value as unknown[])])[i] = fixed;
      });
      return (out ?? value) as T;
    }
    let changed = false;
    const entries = Object.entries(value).map(([k, v]) => {
      const key = storableString(k);
      const fixed = storableValue(v, ancestors);
      if (key !== k || fixed !== v) changed = true;
      return [key, fixed] as const;
    });
    return changed ? (Object.fromEntries(entries) as T) : value;
  } finally {
    ancestors.delete(value);
  }
}

/**
 * Shrinking and scrubbing of tool arguments and results before they go into events
 * or logs. Pure functions: no I/O, no clock.
 */

/** Keys whose values are never kept (matched case-insensitively, anywhere in the key). */
export const SECRET_KEY_PATTERN =
  /token|password|passwd|secret|authorization|api[_-]?key|apikey|cookie|credential|private[_-]?key/i;
export const REDACTED = '[redacted]';

// A JSON key naming a secret (the keywords of SECRET_KEY_PATTERN), up to its value's opening
// quote: `"x-api-key": "` in JSON text (an echoed request, a config file read), and
// `\"x-api-key\":\"` in JSON that was itself put in a JSON string (a tool's text block). The
// key's text around the keyword is bounded (a key name is short): unbounded, a quote with no
// closing one followed by many keywords made each keyword scan to the end and back, so 256 KB of
// `"tokentoken…` took 14 s of one thread.
const PLAIN_KEY = `("[^"\\\\]{0,64}(?:${SECRET_KEY_PATTERN.source})[^"\\\\]{0,64}"\\s*:\\s*)"`;
const NESTED_KEY = `(\\\\"[^"\\\\]{0,64}(?:${SECRET_KEY_PATTERN.source})[^"\\\\]{0,64}\\\\"\\s*:\\s*)\\\\"`;
// The nested value is read as the outer text's escapes: a plain character, `\\` with the
// character it escapes (an escaped backslash, then what it escapes, itself one outer escape), or
// `\` with any other character but a quote. The three never start alike, so a run of backslashes
// has one reading: with alternatives that overlapped, 80 of them took over 30 s.
const NESTED_VALUE = `(?:[^"\\\\]|\\\\\\\\(?:[^"\\\\]|\\\\[\\s\\S])|\\\\[^"\\\\])*`;

/**
 * Secrets recognisable by their value wherever they appear (a tool echoing a request's
 * headers, a page quoting a key): bearer/basic credentials, Switchyard API keys, and the values
 * of secret-named JSON keys.
 */
const SECRET_VALUE_PATTERNS: readonly [RegExp, string][] = [
  [/\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  [/\bsy_[0-9a-f]{16}_[A-Za-z0-9_-]{32,128}/g, REDACTED],
  // A URL's query parameter named like a credential (`?api_key=`, `&access_token=`, `&sig=`): many
  // services take their key in the URL. The name is bounded (linear over any text).
  [
    /([?&][A-Za-z0-9_.-]{0,32}(?:token|password|passwd|secret|api[_-]?key|apikey|key|sig|signature|credential|auth)[A-Za-z0-9_.-]{0,32}=)[^&#\s"'<>]+/gi,
    `$1${REDACTED}`,
  ],
  [new RegExp(`${PLAIN_KEY}(?:[^"\\\\]|\\\\.)*"`, 'gi'), `$1"${REDACTED}"`],
  [new RegExp(`${NESTED_KEY}${NESTED_VALUE}\\\\"`, 'gi'), `$1\\"${REDACTED}\\"`],
];

/**
 * A secret value still open where a text was cut (its closing quote beyond the cut): the key
 * patterns above, up to the end. A private key in a cut error message would otherwise be kept.
 */
const OPEN_SECRET_VALUE_AT_END: readonly [RegExp, string][] = [
  [new RegExp(`${PLAIN_KEY}(?:[^"\\\\]|\\\\[\\s\\S])*$`, 'i'), `$1"${REDACTED}`],
  [new RegExp(`${NESTED_KEY}${NESTED_VALUE}$`, 'i'), `$1\\"${REDACTED}`],
];

/**
 * Where a URL points (scheme, host and port) and nothing of its user info, path or query, for a
 * log line or an error message: a Slack or Discord webhook URL is its own credential, and many
 * receivers take a token in the query. `marker` stands for what was cut (and for a value that is no URL).
 */
export function urlOrigin(url: string, marker = REDACTED): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/${marker}`;
  } catch {
    return marker;
  }
}

/** A string with every secret-looking credential in it replaced by `[redacted]`. */
export function redactSecretValues(text: string): string {
  let out = text;
  for (const [re, by] of SECRET_VALUE_PATTERNS) out = out.replace(re, by);
  return out;
}

/**
 * A deep copy of `value` with every secret-looking key's value replaced by `[redacted]`,
 * and credentials inside string values (see redactSecretValues) cut out.
 */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 32) return '[too deep]';
  if (typeof value === 'string') return redactSecretValues(value);
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [
        k,
        SECRET_KEY_PATTERN.test(k) ? REDACTED : redactSecrets(v, depth + 1),
      ]),
    );
  }
  return value;
}

/** A payload as it is kept in an event: redacted, and cut to `maxChars` of JSON when larger. */
export interface SizedPayload {
  /** The redacted value itself when it fits, else a truncated JSON string preview. */
  readonly value: unknown;
  /** Length of the full redacted JSON rendering, in characters. */
  readonly size: number;
  readonly truncated: boolean;
}

export function sizePayload(value: unknown, maxChars: number): SizedPayload {
  const redacted = redactSecrets(value);
  let json: string;
  try {
    json = JSON.stringify(redacted) ?? 'null';
  } catch {
    json = '"[unserializable]"';
  }
  if (json.length <= maxChars) return { value: redacted ?? null, size: json.length, truncated: false };
  return { value: `${cutAtCodePoint(json, maxChars)}…`, size: json.length, truncated: true };
}

/**
 * `text` cut to at most `maxChars` UTF-16 units without splitting a surrogate pair: half of an
 * emoji is a lone surrogate, which PostgreSQL's jsonb refuses to store.
 */
export function cutAtCodePoint(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const last = text.charCodeAt(maxChars - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? maxChars - 1 : maxChars);
}

/**
 * A possibly huge text (an upstream's error page, a tool's error output) redacted and cut to
 * `maxChars`: only a bounded head is scanned, long enough that a credential starting before the
 * cut is still whole when the patterns look at it.
 */
export function redactedHead(text: string, maxChars: number): string {
  let head = redactSecretValues(cutAtCodePoint(text, maxChars + 512));
  if (text.length > maxChars + 512) for (const [re, by] of OPEN_SECRET_VALUE_AT_END) head = head.replace(re, by);
  return cutAtCodePoint(head, maxChars);
}

import { AppError } from './errors.js';

/**
 * Whether JSON text nests arrays and objects deeper than `maxDepth`, found by one scan of its
 * characters (strings skipped) before anything parses it. Why: JSON.parse takes any depth, but
 * what is parsed is then stringified, copied and walked (the event store, redaction, the NATS
 * reply), and JSON.stringify throws past about 5,000 levels; a 20 KB answer of 10,000 nested
 * arrays could not be recorded, and 10 MB of them took seconds of one thread to parse.
 */
export function jsonNestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * Whether a value nests arrays and objects deeper than `maxDepth` (the value itself is level 1),
 * walked without recursion and never past the limit: the parsed counterpart of
 * jsonNestsDeeperThan, for a value that came whole (an SDK's parsed listing, a schema).
 */
export function valueNestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const stack: { readonly v: unknown; readonly depth: number }[] = [{ v: value, depth: 1 }];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const { v, depth } = top;
    if (v === null || typeof v !== 'object') continue;
    if (depth > maxDepth) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>))
      if (child !== null && typeof child === 'object') stack.push({ v: child, depth: depth + 1 });
  }
  return false;
}

/** Most levels of nesting an answer from a peer (an agent, a server) may have. */
export const PEER_JSON_MAX_DEPTH = 64;

/** Refuse (`validation`) JSON text from a peer that nests deeper than `maxDepth`, for a parser of someone else's. */
export function checkPeerJsonDepth(text: string, what: string, maxDepth = PEER_JSON_MAX_DEPTH): void {
  if (jsonNestsDeeperThan(text, maxDepth))
    throw new AppError('validation', `${what} nests deeper than ${maxDepth} levels`, { max_depth: maxDepth }, false);
}

/**
 * JSON text from a peer parsed, refused `validation` when it nests deeper than `maxDepth`;
 * `undefined` when it is not JSON at all (the caller says what it expected).
 */
export function parsePeerJson(text: string, what: string, maxDepth = PEER_JSON_MAX_DEPTH): unknown {
  checkPeerJsonDepth(text, what, maxDepth);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * A response's body as text, read up to `maxBytes` (then `payload_too_large`, and the rest is not
 * read): for the answers of a peer no guard bounds already (a model's endpoint).
 */
export async function readTextCapped(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new AppError('payload_too_large', `the answer is over ${maxBytes} bytes`, { max_bytes: maxBytes }, false);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

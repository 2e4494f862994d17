import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API key format: `sy_<id>_<secret>`. The id (16 hex) names the key in logs, events and
 * the admin API; the secret (43 base64url chars = 256 random bits) is shown once and
 * stored only as its SHA-256.
 *
 * Why a plain SHA-256 and not scrypt/argon2: slow hashes protect low-entropy human
 * passwords from guessing. A 256-bit random secret cannot be guessed from its hash at
 * any speed, and a fast hash keeps the per-request check cheap (no 50 ms KDF on the hot path).
 */
export const KEY_PATTERN = /^sy_([0-9a-f]{16})_([A-Za-z0-9_-]{32,128})$/;

export interface ParsedKey {
  readonly id: string;
  readonly secret: string;
}

/** Split a presented key, or undefined when it does not have our shape. */
export function parseKey(key: string): ParsedKey | undefined {
  const m = KEY_PATTERN.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** SHA-256 hex of the secret part. */
export const hashSecret = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface GeneratedKey {
  readonly id: string;
  /** The full key, to show once. */
  readonly key: string;
  readonly hash: string;
  /** Safe to display and store: `sy_<id>_<first 4 secret chars>`. */
  readonly prefix: string;
}

export const displayPrefix = (p: ParsedKey): string => `sy_${p.id}_${p.secret.slice(0, 4)}`;

/** A new random key. */
export function generateKey(): GeneratedKey {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return describeKey({ id, secret });
}

/** Id, hash and prefix of a known key (e.g. SWITCHYARD_ADMIN_KEY). */
export function describeKey(p: ParsedKey): GeneratedKey {
  return { id: p.id, key: `sy_${p.id}_${p.secret}`, hash: hashSecret(p.secret), prefix: displayPrefix(p) };
}

/** The bearer token of an Authorization header (or of `x-api-key`), or undefined. */
export function presentedKey(headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  const auth = headers['authorization'];
  const value = Array.isArray(auth) ? auth[0] : auth;
  if (value) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
    return m ? m[1] : value; // a non-Bearer scheme is still "a credential", and a bad one
  }
  const x = headers['x-api-key'];
  const xv = Array.isArray(x) ? x[0] : x;
  return xv || undefined;
}

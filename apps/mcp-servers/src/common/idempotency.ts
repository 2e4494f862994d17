/**
 * Idempotency keys in the namespace of the caller they belong to. A key decides whether a send
 * happens at all (a key used before answers with the first result, a key used for something else
 * is refused), so a key one caller could claim first would let them cancel another's send: the
 * built-in templates key theirs by execution id, which every viewer can read. The person a call is
 * for (`_meta.actor`: the API key, or a workflow's starter for the engine's steps) is the key's
 * namespace; a call for nobody (the server's own token, the scheduler's occurrence keys) keeps the
 * key as given. ACTOR_PATTERN has no `/`, so the first `/` of a stored key ends its scope.
 */
import type pg from 'pg';

/** `key` in `actor`'s namespace (as given when there is no actor). */
export function scopedKey(actor: string | undefined, key: string): string {
  return actor === undefined ? key : `${actor}/${key}`;
}

/** What `key_scope` records for a row of `actor`'s: '' for a call for nobody, NULL only for rows from before scoping. */
export const keyScopeOf = (actor: string | undefined): string => actor ?? '';

/**
 * The key `actor`'s `key` is stored under in `table`.`column` (both constants of ours): the scoped
 * key, unless a row from before keys were scoped (`key_scope` NULL) holds the key as given. That
 * row keeps answering for it, so a send made before an upgrade is not made again after it.
 */
export async function storedKey(
  db: Pick<pg.Pool, 'query'>,
  table: string,
  column: string,
  actor: string | undefined,
  key: string,
): Promise<string> {
  if (actor === undefined) return key;
  const legacy = await db.query(`SELECT 1 FROM ${table} WHERE ${column} = $1 AND key_scope IS NULL`, [key]);
  return legacy.rowCount ? key : scopedKey(actor, key);
}

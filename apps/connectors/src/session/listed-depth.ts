/**
 * Most levels of JSON nesting one listed item (a tool with its schemas, a prompt, a resource) may
 * have, the item itself being the first. A deeper one is left out of the listing: JSON.stringify
 * throws past about 5,000 levels, and every listing is stringified (its size bound, the registry
 * reply, `/mcp`), so one tool whose input schema nested 5,000 levels kept its whole server down
 * with "Maximum call stack size exceeded".
 */
export const MAX_LISTED_ITEM_DEPTH = 64;

/** What names a listed item in a log line: its name (or uri), short and without control characters. */
export function listedItemName(item: unknown): string {
  const o = (item ?? {}) as { name?: unknown; uri?: unknown };
  const raw = typeof o.name === 'string' ? o.name : typeof o.uri === 'string' ? o.uri : '(unnamed)';
  const clean = raw.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}...` : clean;
}

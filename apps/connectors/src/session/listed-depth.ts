/**
 * Most levels of JSON nesting one listed item (a tool with its schemas, a prompt, a resource) may
 * have, the item itself being the first. A deeper one is left out of the listing: JSON.stringify
 * throws past about 5,000 levels, and every listing is stringified (its size bound, the registry
 * reply, `/mcp`), so one tool whose input schema nested 5,000 levels kept its whole server down
 * with "Maximum call stack size exceeded".
 */
export const MAX_LISTED_ITEM_DEPTH = 64;

/** Whether `value` nests arrays and objects deeper than `maxDepth`; walked without recursion, never past the limit. */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
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

/** What names a listed item in a log line: its name (or uri), short and without control characters. */
export function listedItemName(item: unknown): string {
  const o = (item ?? {}) as { name?: unknown; uri?: unknown };
  const raw = typeof o.name === 'string' ? o.name : typeof o.uri === 'string' ? o.uri : '(unnamed)';
  const clean = raw.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}...` : clean;
}

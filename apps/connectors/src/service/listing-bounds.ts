import type { Logger } from '@switchyard/platform';
import type { ServerHealth } from '@switchyard/contracts';
import type { McpServerConfig } from '../registry/schema.js';

/** A kind of listing and the server setting that bounds how many of its items are kept. */
export type ListedKind = 'tools' | 'prompts' | 'resources';
const SETTING: Readonly<Record<ListedKind, 'max_tools' | 'max_prompts' | 'max_resources'>> = {
  tools: 'max_tools',
  prompts: 'max_prompts',
  resources: 'max_resources',
};

/** Longest `last_error` a health entry carries: the text may come from the server itself. */
export const MAX_LAST_ERROR_CHARS = 1_000;

/** Bytes of `value` as JSON in UTF-8 (what goes over NATS). */
export const jsonBytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');

/**
 * The first items of a listing up to the server's setting for their kind. The rest are left out
 * of everything the connectors serve; each new count of them is logged once per server and kind
 * (a steady oversized listing does not log on every read), and remembered for the health view.
 */
export class ListingBounds {
  private readonly leftOut = new Map<string, Partial<Record<ListedKind, number>>>();
  private readonly warned = new Map<string, number>();

  constructor(private readonly logger: Logger) {}

  keep<T>(config: McpServerConfig, kind: ListedKind, items: readonly T[]): T[] {
    const max = config[SETTING[kind]];
    const over = Math.max(0, items.length - max);
    const counts = this.leftOut.get(config.name) ?? {};
    if (over > 0) counts[kind] = over;
    else delete counts[kind];
    this.leftOut.set(config.name, counts);
    const key = `${config.name}\u0000${kind}`;
    if (over > 0 && this.warned.get(key) !== items.length) {
      this.warned.set(key, items.length);
      this.logger.warn(
        { server: config.name, kind, listed: items.length, kept: max, left_out: over, setting: SETTING[kind] },
        `MCP server ${config.name} lists ${items.length} ${kind}, more than its ${SETTING[kind]} (${max}): the rest are left out`,
      );
    } else if (over === 0) this.warned.delete(key);
    return over > 0 ? items.slice(0, max) : [...items];
  }

  /** What was left out of the server's listings, as its health shows it; undefined when nothing. */
  leftOutOf(server: string): ServerHealth['left_out'] {
    const counts = this.leftOut.get(server);
    return counts && Object.keys(counts).length > 0 ? { ...counts } : undefined;
  }
}

/**
 * The first items whose JSON takes at most `budget` bytes together (as array elements, with
 * their commas); `leftOut` counts the rest. One item larger than the budget ends the list there.
 */
export function withinBytes<T>(items: readonly T[], budget: number): { items: T[]; leftOut: number } {
  // No budget (a server's own health, its listing without a reply to fit): nothing to measure.
  if (budget === Infinity) return { items: [...items], leftOut: 0 };
  let used = 2;
  let i = 0;
  for (; i < items.length; i++) {
    const size = jsonBytes(items[i]) + (i > 0 ? 1 : 0);
    if (used + size > budget) break;
    used += size;
  }
  return { items: items.slice(0, i), leftOut: items.length - i };
}

/**
 * Split `budget` bytes between wants: each gets all it asks for when that is no more than an
 * equal share of what is left, and the largest share the rest (the small ones first), so one
 * server's long list of names cannot crowd out the others.
 */
export function shareBytes(wants: readonly number[], budget: number): number[] {
  const order = wants.map((w, i) => ({ w, i })).sort((a, b) => a.w - b.w);
  const out = new Array<number>(wants.length).fill(0);
  let left = Math.max(0, budget);
  order.forEach(({ w, i }, k) => {
    const share = Math.min(w, Math.floor(left / (order.length - k)));
    out[i] = share;
    left -= share;
  });
  return out;
}

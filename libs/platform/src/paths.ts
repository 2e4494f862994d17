import { realpathSync } from 'node:fs';
import path from 'node:path';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The roots as given and as resolved (a root under a symlinked directory is reported by its
 * real path), longest first so the most specific root wins.
 */
export function pathRoots(roots: readonly string[]): string[] {
  const all = new Set<string>();
  for (const r of roots) {
    if (!r || !path.isAbsolute(r)) continue;
    const clean = r.length > 1 ? r.replace(/[/\\]+$/, '') : r;
    all.add(clean);
    try {
      all.add(realpathSync(clean));
    } catch {
      // A root that does not exist yet: keep the given form only.
    }
  }
  return [...all].filter((r) => r !== '/').sort((a, b) => b.length - a.length);
}

/**
 * Report paths relative to the configured roots: `<root>/docs/a.txt` becomes `docs/a.txt` and
 * the root itself `.`, so error texts and results never show where the server keeps its files.
 */
export function relativizePaths(text: string, roots: readonly string[]): string {
  let out = text;
  for (const r of roots) {
    if (!out.includes(r)) continue;
    out = out
      .replace(new RegExp(`${escape(r)}[/\\\\]`, 'g'), '')
      .replace(new RegExp(`${escape(r)}(?![\\w.-])`, 'g'), '.');
  }
  return out;
}

/** `relativizePaths` over every string of a JSON-like value (a tool result, its structured content). */
export function relativizeDeep<T>(value: T, roots: readonly string[]): T {
  if (roots.length === 0) return value;
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return relativizePaths(v, roots);
    if (depth > 50 || v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, walk(x, depth + 1)]));
  };
  return walk(value, 0) as T;
}

/** What an absolute path outside every root becomes in an error text. */
export const OUTSIDE_ROOTS = '<outside the sandbox>';

/**
 * An error text with its roots made relative (relativizePaths) and every other absolute path
 * replaced by OUTSIDE_ROOTS: a refusal quoting the resolved path of `../nats/token` showed where
 * the system keeps its secrets. For error texts only: a file's own content keeps its paths.
 */
export function hideHostPaths(text: string, roots: readonly string[]): string {
  return relativizePaths(text, roots).replace(/(^|[\s'"(=`[])\/[^\s'"`()<>[\],;]+/g, `$1${OUTSIDE_ROOTS}`);
}

import type { RE2JS } from 're2js';
import { z } from 'zod';
import type { InputSchemaNode } from './schema.js';
import { BoundedRe2Cache, isSizeRefusal, Re2Budget } from '../../bounded-re2.js';

/** One reason an input does not match a definition's input schema. */
export interface InputProblem {
  readonly path: string;
  readonly message: string;
}

export type InputValidation =
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | { readonly ok: false; readonly problems: readonly InputProblem[] };

/** `['customer', 'email']` -> `customer.email`; `['rows', 0]` -> `rows[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

/**
 * Check a workflow input against the definition's JSON-Schema input description and apply its
 * defaults (zod's own JSON-Schema reader, not a hand-written validator).
 */
export function validateInput(schema: InputSchemaNode, input: unknown): InputValidation {
  const validator = inputValidator(schema);
  if (typeof validator === 'string')
    return { ok: false, problems: [{ path: '', message: `input schema unusable: ${validator}` }] };
  const r = validator.safeParse(input ?? {});
  if (!r.success) {
    return { ok: false, problems: r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
  }
  if (r.data === null || typeof r.data !== 'object' || Array.isArray(r.data)) {
    return { ok: false, problems: [{ path: '', message: 'input must be an object' }] };
  }
  const problems: InputProblem[] = [];
  checkPatterns(schema, r.data, [], problems);
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: r.data as Record<string, unknown> };
}

const validators = new Map<string, z.ZodType | string>();
/**
 * The zod schema of an input schema (cached by its JSON: building one costs far more than a
 * parse, and every start of an execution validates its input, twice), or why it cannot be built.
 */
function inputValidator(schema: InputSchemaNode): z.ZodType | string {
  const key = JSON.stringify(schema);
  let v = validators.get(key);
  if (v === undefined) {
    try {
      // Without its `pattern`s: zod compiles them to backtracking RegExps (`^(a+)+$` against 26 a's
      // and a "!" blocks for seconds). They are checked afterwards with RE2, in linear time.
      v = z.fromJSONSchema(withoutPatterns(schema) as Parameters<typeof z.fromJSONSchema>[0]);
    } catch (e) {
      v = (e as Error).message;
    }
    if (validators.size > 1_000) validators.clear();
    validators.set(key, v);
  }
  return v;
}

/** A copy of the schema with every `pattern` left out. */
function withoutPatterns(node: InputSchemaNode): InputSchemaNode {
  const { pattern: _pattern, properties, items, ...rest } = node;
  const out: InputSchemaNode = { ...rest };
  if (properties)
    out.properties = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, withoutPatterns(v)]));
  if (items) out.items = withoutPatterns(items);
  return out;
}

const patterns = new BoundedRe2Cache();
/** A JSON-Schema `pattern` compiled with RE2 (cached), or why it does not compile (or is too large to). */
export function compileInputPattern(pattern: string): RE2JS | string {
  const c = patterns.compile(pattern);
  if (typeof c !== 'string') return c;
  return isSizeRefusal(c) ? c : `not a valid RE2 regular expression: ${c}`;
}

/** Strings under a `pattern` must contain a match (JSON Schema patterns are not anchored). */
function checkPatterns(node: InputSchemaNode, value: unknown, path: PropertyKey[], out: InputProblem[]): void {
  if (node.pattern !== undefined && typeof value === 'string') {
    const re = compileInputPattern(node.pattern);
    if (typeof re === 'string') out.push({ path: formatPath(path), message: `input schema unusable: pattern ${re}` });
    else if (!re.matcher(value).find())
      out.push({ path: formatPath(path), message: `Invalid string: must match pattern ${node.pattern}` });
  }
  if (node.properties && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, sub] of Object.entries(node.properties)) {
      if (Object.hasOwn(value, k)) checkPatterns(sub, (value as Record<string, unknown>)[k], [...path, k], out);
    }
  }
  if (node.items && Array.isArray(value)) value.forEach((v, i) => checkPatterns(node.items!, v, [...path, i], out));
}

/** Estimated RE2 instructions all the patterns of one input schema may add up to (about 0.2 s of compiling). */
export const MAX_INPUT_PATTERNS_PROGRAM_SIZE = 50_000;

/**
 * Every `pattern` of an input schema that RE2 cannot compile, with its path in the schema. Past
 * MAX_INPUT_PATTERNS_PROGRAM_SIZE in all, the rest are refused without compiling: each may be
 * under the bound of one pattern while hundreds of them together hold a core for seconds.
 */
export function inputPatternProblems(node: InputSchemaNode, path = 'input'): InputProblem[] {
  const out: InputProblem[] = [];
  const budget = new Re2Budget(
    MAX_INPUT_PATTERNS_PROGRAM_SIZE,
    `the schema's patterns are too large together once compiled (at most ${MAX_INPUT_PATTERNS_PROGRAM_SIZE} instructions in all)`,
  );
  const walk = (n: InputSchemaNode, at: string) => {
    if (n.pattern !== undefined) {
      const re = budget.charge(n.pattern) ?? compileInputPattern(n.pattern);
      if (typeof re === 'string') out.push({ path: `${at}.pattern`, message: re });
    }
    for (const [k, sub] of Object.entries(n.properties ?? {})) walk(sub, `${at}.properties.${k}`);
    if (n.items) walk(n.items, `${at}.items`);
  };
  walk(node, path);
  return out;
}

import { z } from 'zod';
import type { InputSchemaNode } from './schema.js';

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
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/**
 * Check a workflow input against the definition's JSON-Schema input description and apply its
 * defaults (zod's own JSON-Schema reader, not a hand-written validator).
 */
export function validateInput(schema: InputSchemaNode, input: unknown): InputValidation {
  let validator: z.ZodType;
  try {
    validator = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch (e) {
    return { ok: false, problems: [{ path: '', message: `input schema unusable: ${(e as Error).message}` }] };
  }
  const r = validator.safeParse(input ?? {});
  if (!r.success) {
    return { ok: false, problems: r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
  }
  if (r.data === null || typeof r.data !== 'object' || Array.isArray(r.data)) {
    return { ok: false, problems: [{ path: '', message: 'input must be an object' }] };
  }
  return { ok: true, value: r.data as Record<string, unknown> };
}

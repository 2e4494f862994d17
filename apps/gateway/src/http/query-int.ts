import { z } from 'zod';

/** The bounds of each textInt schema, for the OpenAPI document (see documentTextInts). */
const textIntBounds = new WeakMap<object, { min: number; max: number }>();

/**
 * A whole number given as text (a query parameter, a path segment, a header): decimal digits with
 * an optional minus sign, nothing else. `z.coerce.number()` alone reads an empty or blank value
 * as 0 and `0x10`, `0b11`, `0o7` as 16, 3, 7: a typo would silently become another page, revision
 * or limit instead of a 400.
 */
export function textInt(bounds: { min: number; max: number }) {
  const schema = z
    .union([z.number(), z.string().regex(/^-?\d+$/, 'a decimal integer')])
    .pipe(z.coerce.number<string | number>().int().min(bounds.min).max(bounds.max));
  textIntBounds.set(schema, bounds);
  return schema;
}

/**
 * For z.toJSONSchema's `override`: a textInt is documented as what it takes, an integer within its
 * bounds (its parts, a number or digits as text, say less: a client generating from the document
 * would send fractions or out-of-range text).
 */
export function documentTextInts(ctx: { zodSchema: object; jsonSchema: Record<string, unknown> }): void {
  const bounds = textIntBounds.get(ctx.zodSchema);
  if (!bounds) return;
  for (const k of Object.keys(ctx.jsonSchema)) if (k !== 'description' && k !== 'default') delete ctx.jsonSchema[k];
  Object.assign(ctx.jsonSchema, { type: 'integer', minimum: bounds.min, maximum: bounds.max });
}

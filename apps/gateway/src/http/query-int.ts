import { z } from 'zod';

/**
 * A whole number given as text (a query parameter, a path segment, a header): decimal digits with
 * an optional minus sign, nothing else. `z.coerce.number()` alone reads an empty or blank value
 * as 0 and `0x10`, `0b11`, `0o7` as 16, 3, 7: a typo would silently become another page, revision
 * or limit instead of a 400.
 */
export function textInt(bounds: { min: number; max: number }) {
  return z
    .union([z.number(), z.string().regex(/^-?\d+$/, 'a decimal integer')])
    .pipe(z.coerce.number<string | number>().int().min(bounds.min).max(bounds.max));
}

import { z } from 'zod';

/**
 * Text whose surrounding white space is trimmed, `min`-`max` characters after the trim. The
 * pattern says the same in the published JSON Schema (a blank " " is refused, so clients and
 * the API fuzzer know it up front): some span of at least `min` characters begins and ends
 * with a non-space.
 */
export function trimmedText(min: number, max: number) {
  const span = min <= 1 ? '\\S' : `\\S[\\s\\S]{${min - 2},}\\S`;
  return z
    .string()
    .trim()
    .min(min)
    .max(max)
    .regex(
      new RegExp(span),
      min <= 1 ? 'must not be blank' : `must hold at least ${min} characters besides surrounding spaces`,
    );
}

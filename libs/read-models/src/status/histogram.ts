/**
 * Log-scaled latency histogram, kept per server and minute as a Postgres `int[]` (1-based,
 * sparse: untouched buckets are NULL). Summing the minute rows of the last hour and reading
 * the 95th percentile off the merged counts is cheap, at the price of a bounded error: a
 * bucket spans a factor of {@link RATIO}, and the reported value is its geometric middle, so
 * the answer is within ~5 % of the exact percentile.
 */

/** Upper bound of bucket 1 (everything at or below it lands there). */
export const MIN_MS = 0.1;
/** Each bucket's upper bound is RATIO times the previous one. */
export const RATIO = 1.1;
/** Last bucket (about 10 minutes); longer durations are clamped into it. */
export const MAX_BUCKET = 166;

const LN_RATIO = Math.log(RATIO);

/** 1-based bucket of a duration: bucket i covers (MIN_MS·RATIO^(i-2), MIN_MS·RATIO^(i-1)]. */
export function latencyBucket(ms: number): number {
  if (!(ms > MIN_MS)) return 1;
  // The epsilon keeps exact bucket bounds in their own bucket despite floating-point noise.
  const i = 1 + Math.ceil(Math.log(ms / MIN_MS) / LN_RATIO - 1e-9);
  return Math.min(i, MAX_BUCKET);
}

/** The value reported for a bucket: the geometric middle of its bounds (bucket 1: MIN_MS / 2). */
export function bucketValueMs(i: number): number {
  if (i <= 1) return MIN_MS / 2;
  const upper = MIN_MS * RATIO ** (i - 1);
  return upper / Math.sqrt(RATIO);
}

/**
 * The q-quantile (0 < q <= 1) of merged bucket counts, `[bucket, count]` pairs in any order;
 * null when there is nothing. Nearest-rank: the first bucket whose cumulative count reaches
 * ceil(q · total).
 */
export function quantileOfBuckets(counts: readonly (readonly [number, number])[], q: number): number | null {
  const sorted = counts.filter(([, n]) => n > 0).sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((s, [, n]) => s + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [i, n] of sorted) {
    seen += n;
    if (seen >= rank) return round3(bucketValueMs(i));
  }
  return round3(bucketValueMs(sorted[sorted.length - 1]![0]));
}

/** Nearest-rank q-quantile of raw values (what the histogram approximates); null when empty. */
export function exactQuantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

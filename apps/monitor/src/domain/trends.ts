/**
 * Performance trends (pure): buckets of a metric with avg / p95 / max, a least-squares slope
 * over the bucket averages, a direction, and a projection of when the series reaches a limit
 * (e.g. a disk at 100 %) at the current rate.
 */
export interface BucketInput {
  readonly start: number; // epoch ms
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  readonly p95: number | null;
}
export interface TrendBucket extends BucketInput {
  readonly avg: number;
}
export type TrendDirection = 'rising' | 'falling' | 'flat' | 'unknown';
export interface Projection {
  readonly limit: number;
  /** Milliseconds from the last bucket until the limit is reached; 0 when already there, null when never at this rate. */
  readonly etaMs: number | null;
  readonly at: number | null;
}
export interface Trend {
  readonly buckets: readonly TrendBucket[];
  /** Units of the metric per hour (least squares over bucket averages); null below two buckets. */
  readonly slopePerHour: number | null;
  readonly direction: TrendDirection;
  readonly projection: Projection | null;
}
export interface TrendOptions {
  /** Value to project towards (e.g. 100 for a percentage). */
  readonly limit?: number;
  /**
   * A change over the whole span smaller than this fraction of the mean |value| counts as flat
   * (default 0.05), so noise on a steady series is not reported as a trend.
   */
  readonly flatTolerance?: number;
}

/** Least-squares slope of y over x, or null when x has no spread. */
export function leastSquaresSlope(points: readonly { x: number; y: number }[]): number | null {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? null : num / den;
}

/** Nearest-rank p95 of raw values (null on an empty list). */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function computeTrend(input: readonly BucketInput[], opts: TrendOptions = {}): Trend {
  const buckets = input
    .filter((b) => b.count > 0)
    .sort((a, b) => a.start - b.start)
    .map((b) => ({ ...b, avg: b.sum / b.count }));
  const hour = 3_600_000;
  const slope = leastSquaresSlope(buckets.map((b) => ({ x: b.start / hour, y: b.avg })));
  let direction: TrendDirection = 'unknown';
  if (slope !== null) {
    const spanHours = (buckets[buckets.length - 1]!.start - buckets[0]!.start) / hour;
    const meanAbs = buckets.reduce((s, b) => s + Math.abs(b.avg), 0) / buckets.length;
    const change = Math.abs(slope * spanHours);
    const tolerance = (opts.flatTolerance ?? 0.05) * meanAbs;
    direction = change <= tolerance ? 'flat' : slope > 0 ? 'rising' : 'falling';
  }
  let projection: Projection | null = null;
  if (opts.limit !== undefined && buckets.length > 0) {
    const last = buckets[buckets.length - 1]!;
    const limit = opts.limit;
    if (last.avg >= limit) projection = { limit, etaMs: 0, at: last.start };
    else if (slope === null || slope <= 0 || direction === 'flat') projection = { limit, etaMs: null, at: null };
    else {
      const etaMs = ((limit - last.avg) / slope) * hour;
      projection = { limit, etaMs, at: last.start + etaMs };
    }
  }
  return { buckets, slopePerHour: slope, direction, projection };
}

/**
 * Buckets merged into buckets `widthMs` wide (a multiple of their own width), aligned to the
 * epoch: counts, sums, minima and maxima combine exactly; the p95 of a merged bucket is the
 * largest of its parts' (an upper bound: a percentile of percentiles is not one).
 */
export function widenBuckets(buckets: readonly TrendBucket[], widthMs: number): TrendBucket[] {
  const out = new Map<
    number,
    { start: number; count: number; sum: number; min: number; max: number; p95: number | null }
  >();
  for (const b of buckets) {
    const start = Math.floor(b.start / widthMs) * widthMs;
    const w = out.get(start);
    if (!w) out.set(start, { start, count: b.count, sum: b.sum, min: b.min, max: b.max, p95: b.p95 });
    else {
      w.count += b.count;
      w.sum += b.sum;
      w.min = Math.min(w.min, b.min);
      w.max = Math.max(w.max, b.max);
      w.p95 = w.p95 === null ? b.p95 : b.p95 === null ? w.p95 : Math.max(w.p95, b.p95);
    }
  }
  return [...out.values()].sort((a, b) => a.start - b.start).map((b) => ({ ...b, avg: b.sum / b.count }));
}

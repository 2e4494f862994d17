import { median, medianAbsoluteDeviation } from 'simple-statistics';

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/**
 * Percentile (0..1) of an unsorted sample by linear interpolation between order statistics
 * (Hyndman-Fan type 7: the same as PostgreSQL percentile_cont and numpy's default); NaN when empty.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * Math.min(1, Math.max(0, p));
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Anomaly {
  readonly index: number;
  readonly value: number;
  readonly expected: number;
  readonly robustZ: number;
  readonly direction: 'spike' | 'dip';
}

/**
 * Robust anomaly rule (Iglewicz & Hoaglin's modified z-score, applied sequentially like
 * Rosner's generalized ESD):
 *  1. expected value of each point = median of its neighbours (centred window, the point
 *     itself left out so it cannot vouch for itself; at the ends a Theil-Sen line through the
 *     nearest points, so a trend does not look like an outlier there);
 *  2. residual r = value - expected, z = 0.6745 * (r - median(r)) / MAD(r);
 *  3. the single largest |z| above the threshold (3.5 by default) is an anomaly if it also
 *     differs by at least `minRelativeDeviation` (5 %) from expected; it is then replaced by
 *     its expected value and the pass repeats, so one outlier cannot hide or fake another
 *     through the neighbour medians.
 * Positive series are compared on a log scale so a 10 % jump counts the same early and late in
 * a growing business.
 */
export function madAnomalies(
  series: readonly number[],
  opts: {
    window?: number;
    threshold?: number;
    scale?: 'auto' | 'log' | 'linear';
    minRelativeDeviation?: number;
    maxAnomalies?: number;
  } = {},
): Anomaly[] {
  const window = opts.window ?? 5;
  const threshold = opts.threshold ?? 3.5;
  const minRel = opts.minRelativeDeviation ?? 0.05;
  if (series.length < 5) return [];
  const useLog = opts.scale === 'log' || ((opts.scale ?? 'auto') === 'auto' && series.every((v) => v > 0));
  const work = useLog ? series.map(Math.log) : [...series];
  const half = Math.floor(window / 2);
  const maxAnomalies = opts.maxAnomalies ?? Math.floor(series.length / 4);
  const out: Anomaly[] = [];
  while (out.length < maxAnomalies) {
    const expected = expectedValues(work, half);
    const residuals = work.map((v, i) => v - expected[i]!);
    const med = median(residuals);
    let mad = medianAbsoluteDeviation(residuals);
    // A perfectly regular series has MAD 0; fall back to the mean absolute deviation so a
    // single outlier in otherwise flat data is still found rather than dividing by zero.
    if (mad === 0) mad = residuals.reduce((a, r) => a + Math.abs(r - med), 0) / residuals.length / 1.2533;
    if (mad === 0) break;
    let best = -1;
    let bestZ = 0;
    residuals.forEach((r, i) => {
      if (out.some((a) => a.index === i)) return;
      const z = (0.6745 * (r - med)) / mad;
      const exp = useLog ? Math.exp(expected[i]!) : expected[i]!;
      const rel = Math.abs(series[i]! - exp) / Math.max(Math.abs(exp), Number.EPSILON);
      if (Math.abs(z) > threshold && rel >= minRel && Math.abs(z) > Math.abs(bestZ)) {
        best = i;
        bestZ = z;
      }
    });
    if (best < 0) break;
    const exp = useLog ? Math.exp(expected[best]!) : expected[best]!;
    out.push({
      index: best,
      value: series[best]!,
      expected: exp,
      robustZ: round(bestZ, 2),
      direction: bestZ > 0 ? 'spike' : 'dip',
    });
    work[best] = expected[best]!;
  }
  return out.sort((a, b) => a.index - b.index);
}

function expectedValues(xs: readonly number[], half: number): number[] {
  return xs.map((_, i) => {
    if (i - half >= 0 && i + half < xs.length) {
      // Symmetric neighbourhood: its median equals the point itself on a straight line.
      const neighbours: number[] = [];
      for (let j = i - half; j <= i + half; j++) if (j !== i) neighbours.push(xs[j]!);
      return median(neighbours);
    }
    // At the ends a one-sided median would lag the trend; extrapolate a Theil-Sen line fitted
    // on the nearest points instead (robust to one outlier among them).
    const idx: number[] = [];
    for (let d = 1; idx.length < 2 * half && d < xs.length; d++) {
      if (i - d >= 0 && idx.length < 2 * half) idx.push(i - d);
      if (i + d < xs.length && idx.length < 2 * half) idx.push(i + d);
    }
    return theilSenAt(
      idx,
      idx.map((j) => xs[j]!),
      i,
    );
  });
}

/** Theil-Sen line (median of pairwise slopes, median intercept) through (x, y), evaluated at x0. */
export function theilSenAt(x: readonly number[], y: readonly number[], x0: number): number {
  const slopes: number[] = [];
  for (let a = 0; a < x.length; a++) {
    for (let b = a + 1; b < x.length; b++) if (x[b] !== x[a]) slopes.push((y[b]! - y[a]!) / (x[b]! - x[a]!));
  }
  const m = slopes.length ? median(slopes) : 0;
  const c = median(y.map((v, k) => v - m * x[k]!));
  return c + m * x0;
}

/** Least-squares slope of y over x = 0..n-1 (units per step); 0 for fewer than 2 points. */
export function slope(values: readonly number[]): number {
  const n = values.length;
  if (n < 2) return 0;
  const mx = (n - 1) / 2;
  const my = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  values.forEach((y, x) => {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  });
  return num / den;
}

/** Relative change (b - a) / |a|, null when a is 0 (undefined growth rather than Infinity). */
export function growth(a: number | undefined, b: number): number | null {
  if (a === undefined || a === 0) return null;
  return (b - a) / Math.abs(a);
}

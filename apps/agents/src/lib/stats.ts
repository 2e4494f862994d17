import { median, medianAbsoluteDeviation, quantileSorted } from 'simple-statistics';

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** Percentile (0..1) of an unsorted sample, linear interpolation; NaN for an empty one. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return quantileSorted(sorted, p);
}

export interface Anomaly {
  readonly index: number;
  readonly value: number;
  readonly expected: number;
  readonly robustZ: number;
  readonly direction: 'spike' | 'dip';
}

/**
 * Robust anomaly rule (Iglewicz & Hoaglin): residuals from a centred rolling median, then the
 * modified z-score 0.6745 * (r - median(r)) / MAD(r); |z| > threshold (3.5 by default) is an
 * anomaly. The rolling median follows trend and level shifts, so growth alone is not flagged,
 * and the median/MAD are not pulled by the very outliers we are looking for (unlike mean/sd).
 */
export function madAnomalies(series: readonly number[], opts: { window?: number; threshold?: number } = {}): Anomaly[] {
  const window = opts.window ?? 5;
  const threshold = opts.threshold ?? 3.5;
  if (series.length < 5) return [];
  const half = Math.floor(window / 2);
  const expected = series.map((_, i) => {
    const lo = Math.max(0, i - half);
    const hi = Math.min(series.length, i + half + 1);
    return median(series.slice(lo, hi));
  });
  const residuals = series.map((v, i) => v - expected[i]!);
  const med = median(residuals);
  let mad = medianAbsoluteDeviation(residuals);
  // A perfectly regular series has MAD 0; fall back to the mean absolute deviation so a
  // single outlier in otherwise flat data is still found rather than dividing by zero.
  if (mad === 0) {
    mad = residuals.reduce((a, r) => a + Math.abs(r - med), 0) / residuals.length / 1.2533;
  }
  if (mad === 0) return [];
  const out: Anomaly[] = [];
  residuals.forEach((r, i) => {
    const z = (0.6745 * (r - med)) / mad;
    if (Math.abs(z) > threshold) {
      out.push({ index: i, value: series[i]!, expected: expected[i]!, robustZ: round(z, 2), direction: z > 0 ? 'spike' : 'dip' });
    }
  });
  return out;
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

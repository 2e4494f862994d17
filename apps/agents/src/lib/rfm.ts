import { kmeans } from 'ml-kmeans';
import { round } from './stats.js';

export interface RfmRow {
  readonly customerId: number;
  /** days since the last order as of the reference date; null when the customer never bought */
  readonly recencyDays: number | null;
  readonly frequency: number;
  readonly monetary: number;
}

export type RfmSegment =
  'champions' | 'new_customers' | 'loyal' | 'potential_loyalists' | 'at_risk' | 'hibernating' | 'lost' | 'no_purchases';

export interface RfmScored extends RfmRow {
  readonly r: number;
  readonly f: number;
  readonly m: number;
  readonly segment: RfmSegment;
}

/**
 * Quintile score 1..5 by rank: 1 + floor(5 * (#values strictly better) / n) mirrored so 5 is
 * best. Equal values get equal scores (unlike SQL ntile, which splits ties arbitrarily).
 */
export function quintileScores(values: readonly number[], higherIsBetter: boolean): number[] {
  const n = values.length;
  const sorted = [...values].sort((a, b) => a - b);
  return values.map((v) => {
    // number of values strictly below v (binary search on the sorted copy)
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    const q = Math.min(5, 1 + Math.floor((5 * lo) / n));
    return higherIsBetter ? q : 6 - q;
  });
}

/** Classic RFM segment rules; every scored customer lands in exactly one segment. */
export function segmentOf(r: number, f: number, m: number): RfmSegment {
  const fm = (f + m) / 2;
  if (r >= 4 && fm >= 4) return 'champions';
  if (r >= 4 && f <= 2) return 'new_customers';
  if (r >= 3 && fm >= 3) return 'loyal';
  if (r >= 3) return 'potential_loyalists';
  if (fm >= 3) return 'at_risk';
  if (r === 2) return 'hibernating';
  return 'lost';
}

export function scoreRfm(rows: readonly RfmRow[]): RfmScored[] {
  const buyers = rows.filter((r) => r.recencyDays !== null && r.frequency > 0);
  const rs = quintileScores(
    buyers.map((b) => b.recencyDays!),
    false,
  );
  const fs = quintileScores(
    buyers.map((b) => b.frequency),
    true,
  );
  const ms = quintileScores(
    buyers.map((b) => b.monetary),
    true,
  );
  const scored = new Map<number, RfmScored>();
  buyers.forEach((b, i) => {
    scored.set(b.customerId, { ...b, r: rs[i]!, f: fs[i]!, m: ms[i]!, segment: segmentOf(rs[i]!, fs[i]!, ms[i]!) });
  });
  return rows.map(
    (row) => scored.get(row.customerId) ?? { ...row, r: 0, f: 0, m: 0, segment: 'no_purchases' as const },
  );
}

export interface Cluster {
  readonly cluster: number;
  readonly size: number;
  readonly meanRecencyDays: number;
  readonly meanFrequency: number;
  readonly meanMonetary: number;
  readonly customerIds: number[];
}

export interface ClusteringResult {
  readonly k: number;
  readonly seed: number;
  readonly iterations: number;
  readonly converged: boolean;
  /** sum of squared distances to centroids in the standardised feature space */
  readonly inertia: number;
  readonly clusters: Cluster[];
}

/**
 * k-means (ml-kmeans, k-means++ seeding with a fixed seed) over standardised
 * [log1p(recency), log1p(frequency), log1p(monetary)]. Logs tame the heavy right tails of
 * spend and order counts, so one enterprise account does not become its own cluster.
 * Clusters are renumbered by descending mean spend so labels are stable across runs.
 */
export function clusterRfm(rows: readonly RfmRow[], k: number, seed: number): ClusteringResult {
  const buyers = rows.filter((r) => r.recencyDays !== null && r.frequency > 0);
  if (buyers.length < k) throw new Error(`need at least ${k} customers with orders, got ${buyers.length}`);
  const raw = buyers.map((b) => [Math.log1p(b.recencyDays!), Math.log1p(b.frequency), Math.log1p(b.monetary)]);
  const dims = raw[0]!.length;
  const means = Array.from({ length: dims }, (_, d) => raw.reduce((a, p) => a + p[d]!, 0) / raw.length);
  const sds = Array.from(
    { length: dims },
    (_, d) => Math.sqrt(raw.reduce((a, p) => a + (p[d]! - means[d]!) ** 2, 0) / raw.length) || 1,
  );
  const data = raw.map((p) => p.map((v, d) => (v - means[d]!) / sds[d]!));
  const res = kmeans(data, k, { seed, initialization: 'kmeans++', maxIterations: 300 });
  const groups = Array.from({ length: k }, () => [] as number[]);
  res.clusters.forEach((c, i) => groups[c]!.push(i));
  let inertia = 0;
  res.clusters.forEach((c, i) => {
    const centroid = res.centroids[c]!;
    inertia += data[i]!.reduce((a, v, d) => a + (v - centroid[d]!) ** 2, 0);
  });
  const clusters = groups
    .map((idx) => ({
      size: idx.length,
      meanRecencyDays: round(idx.reduce((a, i) => a + buyers[i]!.recencyDays!, 0) / Math.max(1, idx.length), 1),
      meanFrequency: round(idx.reduce((a, i) => a + buyers[i]!.frequency, 0) / Math.max(1, idx.length), 2),
      meanMonetary: round(idx.reduce((a, i) => a + buyers[i]!.monetary, 0) / Math.max(1, idx.length), 2),
      customerIds: idx.map((i) => buyers[i]!.customerId).sort((a, b) => a - b),
    }))
    .sort((a, b) => b.meanMonetary - a.meanMonetary)
    .map((c, i) => ({ cluster: i, ...c }));
  return { k, seed, iterations: res.iterations, converged: res.converged, inertia: round(inertia, 4), clusters };
}

/** Calendar helpers on ISO date strings (UTC), so results never depend on the host time zone. */
export const toDate = (iso: string): Date => new Date(`${iso.slice(0, 10)}T00:00:00Z`);
export const fmtDate = (d: Date): string => d.toISOString().slice(0, 10);
export const monthKey = (iso: string): string => iso.slice(0, 7);

export function addDays(iso: string, days: number): string {
  const d = toDate(iso);
  d.setUTCDate(d.getUTCDate() + days);
  return fmtDate(d);
}

/** First day of the month `months` after the month of `iso`. */
export function addMonths(iso: string, months: number): string {
  const d = toDate(iso);
  return fmtDate(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1)));
}

export function monthEnd(iso: string): string {
  return addDays(addMonths(iso, 1), -1);
}

export interface Window {
  /** first day included */
  readonly from: string;
  /** last day included */
  readonly to: string;
  readonly granularity: 'day' | 'month';
  /** bucket keys in order: YYYY-MM-DD for days, YYYY-MM for months */
  readonly buckets: readonly string[];
}

/**
 * `Nd` = the N days ending at `asOf`, bucketed by day; `Nm` = the N calendar months ending with
 * the month of `asOf` (the last month up to `asOf`), bucketed by month.
 */
export function resolveWindow(timeframe: string, asOf: string): Window {
  const m = /^(\d+)([dm])$/.exec(timeframe);
  if (!m) throw new Error(`bad timeframe ${timeframe}`);
  const n = Number(m[1]);
  if (m[2] === 'd') {
    const from = addDays(asOf, -(n - 1));
    return { from, to: asOf, granularity: 'day', buckets: Array.from({ length: n }, (_, i) => addDays(from, i)) };
  }
  const from = addMonths(asOf, -(n - 1));
  return {
    from,
    to: asOf,
    granularity: 'month',
    buckets: Array.from({ length: n }, (_, i) => monthKey(addMonths(from, i))),
  };
}

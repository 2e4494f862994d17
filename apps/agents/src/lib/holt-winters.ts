/**
 * Exponential smoothing in the error-correction (innovations) form of Hyndman et al.,
 * "Forecasting with Exponential Smoothing" (2008), ch. 2 and 6:
 *
 *   forecast  ŷ_t = l_{t-1} + b_{t-1} + s_{t-m}
 *   error     e_t = y_t - ŷ_t
 *   level     l_t = l_{t-1} + b_{t-1} + α e_t
 *   trend     b_t = b_{t-1} + β e_t            (β ≤ α; β = α·β* of the classical form)
 *   season    s_t = s_{t-m} + γ e_t            (γ ≤ 1 - α)
 *
 * `holt` drops the season, `simple` also the trend. No library on npm implements this with
 * prediction intervals and a maintained API, so it is written here and pinned by unit tests
 * (exact recovery of deterministic series, interval formula).
 *
 * h-step prediction variance for the additive models (Hyndman 2008, Table 6.1, class 1):
 *   v_h = σ² [1 + Σ_{j=1}^{h-1} c_j²],  c_j = α + β j + γ·[j mod m = 0]
 * where σ² is the one-step residual variance.
 */
export type SmoothingMethod = 'simple' | 'holt' | 'holt_winters_additive';

export interface SmoothingParams {
  readonly alpha: number;
  readonly beta: number;
  readonly gamma: number;
}

export interface FitResult {
  readonly method: SmoothingMethod;
  readonly params: SmoothingParams;
  readonly seasonLength: number;
  /** one-step-ahead fitted values, aligned with the input */
  readonly fitted: number[];
  readonly sse: number;
  /** residual standard deviation (σ̂) */
  readonly sigma: number;
  readonly level: number;
  readonly trend: number;
  /** last m seasonal states, oldest first: seasonal[(t) mod m] continues the cycle */
  readonly seasonal: number[];
  readonly n: number;
}

export interface ForecastPoint {
  readonly step: number;
  readonly value: number;
  readonly lower: number;
  readonly upper: number;
}

interface InitState {
  level: number;
  trend: number;
  seasonal: number[];
}

/**
 * Initial states from the data. Seasonal: the first two full seasons (classical
 * decomposition by season means), so a deterministic trend + season is recovered exactly.
 */
export function initialStates(y: readonly number[], method: SmoothingMethod, m: number): InitState {
  if (method === 'simple') return { level: y[0]!, trend: 0, seasonal: [] };
  if (method === 'holt') {
    const k = Math.min(y.length, 4);
    // Trend from the first few points, level one step before the first observation so the
    // first forecast l0 + b0 equals the linear extrapolation to t = 0.
    const b = (y[k - 1]! - y[0]!) / (k - 1);
    return { level: y[0]! - b, trend: b, seasonal: [] };
  }
  if (y.length < m + 2) throw new Error(`holt_winters needs at least ${m + 2} points, got ${y.length}`);
  if (y.length < 2 * m) {
    // One full season only: trend from a least-squares line over all points, seasonal indices
    // from the first season's deviations around that line (less reliable; callers say so).
    const n = y.length;
    const xm = (n - 1) / 2;
    const ym = avg(y);
    let num = 0;
    let den = 0;
    y.forEach((v, x) => {
      num += (x - xm) * (v - ym);
      den += (x - xm) ** 2;
    });
    const b = num / den;
    const a = ym - b * xm;
    const raw = Array.from({ length: m }, (_, i) => y[i]! - (a + b * i));
    const sMean = avg(raw);
    return { level: a + sMean - b, trend: b, seasonal: raw.map((v) => v - sMean) };
  }
  const mean1 = avg(y.slice(0, m));
  const mean2 = avg(y.slice(m, 2 * m));
  const b = (mean2 - mean1) / m;
  // Season means sit at the middle of their season, (m-1)/2 steps after its start.
  const seasonal = Array.from({ length: m }, (_, i) => {
    const d1 = y[i]! - (mean1 + b * (i - (m - 1) / 2));
    const d2 = y[m + i]! - (mean2 + b * (i - (m - 1) / 2));
    return (d1 + d2) / 2;
  });
  const sMean = avg(seasonal);
  const norm = seasonal.map((s) => s - sMean);
  const levelAtFirst = mean1 - b * ((m - 1) / 2) + sMean;
  return { level: levelAtFirst - b, trend: b, seasonal: norm };
}

/** Run the recursions with fixed parameters. */
export function fitWith(
  y: readonly number[],
  method: SmoothingMethod,
  params: SmoothingParams,
  m = 12,
  init: InitState = initialStates(y, method, m),
): FitResult {
  let { level, trend } = init;
  const seasonal = [...init.seasonal];
  const hasTrend = method !== 'simple';
  const hasSeason = method === 'holt_winters_additive';
  const { alpha } = params;
  const beta = hasTrend ? params.beta : 0;
  const gamma = hasSeason ? params.gamma : 0;
  const fitted: number[] = [];
  let sse = 0;
  for (let t = 0; t < y.length; t++) {
    const s = hasSeason ? seasonal[t % m]! : 0;
    const yhat = level + trend + s;
    const e = y[t]! - yhat;
    fitted.push(yhat);
    sse += e * e;
    level = level + trend + alpha * e;
    trend = trend + beta * e;
    if (hasSeason) seasonal[t % m] = s + gamma * e;
  }
  const k = 1 + (hasTrend ? 1 : 0) + (hasSeason ? 1 : 0);
  const dof = Math.max(1, y.length - k);
  // Seasonal states rotated so index 0 is the season of the next (n-th) observation.
  const rotated = hasSeason ? Array.from({ length: m }, (_, i) => seasonal[(y.length + i) % m]!) : [];
  return {
    method,
    params: { alpha, beta, gamma },
    seasonLength: hasSeason ? m : 1,
    fitted,
    sse,
    sigma: Math.sqrt(sse / dof),
    level,
    trend,
    seasonal: rotated,
    n: y.length,
  };
}

/**
 * Choose α, β, γ by grid search on the one-step SSE within the admissible region
 * (0 < α < 1, 0 ≤ β ≤ α, 0 ≤ γ ≤ 1 - α). A grid is deterministic and, for monthly series of a
 * few dozen points, cheap (a few thousand passes over ≤ 100 values).
 */
export function fit(y: readonly number[], method: SmoothingMethod, m = 12, step = 0.05): FitResult {
  if (y.length < 3) throw new Error('need at least 3 observations');
  const init = initialStates(y, method, m);
  const grid = (max: number, min = 0): number[] => {
    const out: number[] = [];
    for (let v = min; v <= max + 1e-9; v += step) out.push(Math.round(v * 1000) / 1000);
    return out;
  };
  let best: FitResult | undefined;
  for (const alpha of grid(0.95, 0.05)) {
    const betas = method === 'simple' ? [0] : grid(alpha);
    for (const beta of betas) {
      const gammas = method === 'holt_winters_additive' ? grid(1 - alpha) : [0];
      for (const gamma of gammas) {
        const r = fitWith(y, method, { alpha, beta, gamma }, m, init);
        if (!best || r.sse < best.sse - 1e-9) best = r;
      }
    }
  }
  return best!;
}

/** Point forecasts with prediction intervals at the given z (1.96 ≈ 95 %). */
export function forecast(model: FitResult, horizon: number, z = 1.96): ForecastPoint[] {
  const { alpha, beta, gamma } = model.params;
  const m = model.seasonLength;
  const out: ForecastPoint[] = [];
  let sumC2 = 0;
  for (let h = 1; h <= horizon; h++) {
    if (h > 1) {
      const j = h - 1;
      const c = alpha + beta * j + (model.method === 'holt_winters_additive' && j % m === 0 ? gamma : 0);
      sumC2 += c * c;
    }
    const s = model.method === 'holt_winters_additive' ? model.seasonal[(h - 1) % m]! : 0;
    const value = model.level + h * model.trend + s;
    const half = z * model.sigma * Math.sqrt(1 + sumC2);
    out.push({ step: h, value, lower: value - half, upper: value + half });
  }
  return out;
}

/** Mean absolute percentage error in %, skipping zero actuals (undefined there). */
export function mape(actual: readonly number[], predicted: readonly number[]): number {
  let sum = 0;
  let n = 0;
  actual.forEach((a, i) => {
    if (a !== 0) {
      sum += Math.abs((a - predicted[i]!) / a);
      n++;
    }
  });
  return n === 0 ? Number.NaN : (100 * sum) / n;
}

function avg(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

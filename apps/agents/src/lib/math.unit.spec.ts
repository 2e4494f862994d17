import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fit, fitWith, forecast, initialStates, mape } from './holt-winters.js';
import { madAnomalies, percentile, slope } from './stats.js';
import { clusterRfm, quintileScores, scoreRfm, segmentOf, type RfmRow } from './rfm.js';
import { Rng, mulberry32 } from './prng.js';
import { resolveWindow } from './dates.js';

const seasonal4 = [10, -5, 3, -8];
/** y_t = 100 + 2t + s_(t mod 4): a deterministic trend + season (seasonal terms sum to 0). */
const deterministic = Array.from({ length: 16 }, (_, t) => 100 + 2 * t + seasonal4[t % 4]!);

describe('Holt-Winters (additive, error-correction form)', () => {
  it('initial states recover level, trend and season of a deterministic series exactly', () => {
    const init = initialStates(deterministic, 'holt_winters_additive', 4);
    assert.ok(Math.abs(init.trend - 2) < 1e-9);
    // level state sits one step before the first observation: l0 + b0 = 100
    assert.ok(Math.abs(init.level + init.trend - 100) < 1e-9);
    init.seasonal.forEach((s, i) => assert.ok(Math.abs(s - seasonal4[i]!) < 1e-9, `season ${i}: ${s}`));
  });

  it('fits a deterministic series with zero error and forecasts it exactly, for any parameters', () => {
    for (const params of [
      { alpha: 0.2, beta: 0.1, gamma: 0.3 },
      { alpha: 0.9, beta: 0.5, gamma: 0.05 },
    ]) {
      const model = fitWith(deterministic, 'holt_winters_additive', params, 4);
      assert.ok(model.sse < 1e-12, `sse ${model.sse}`);
      const f = forecast(model, 8);
      f.forEach((p, i) => {
        const t = deterministic.length + i;
        assert.ok(Math.abs(p.value - (100 + 2 * t + seasonal4[t % 4]!)) < 1e-9, `step ${p.step}`);
      });
    }
  });

  it('computes one hand-checked step of the recursions', () => {
    // y = [10, 12, 14], simple exponential smoothing with α = 0.5, l0 = y0 = 10:
    // ŷ1 = 10, e = 0 → l = 10; ŷ2 = 10, e = 2 → l = 11; ŷ3 = 11, e = 3 → l = 12.5
    const m = fitWith([10, 12, 14], 'simple', { alpha: 0.5, beta: 0, gamma: 0 });
    assert.deepEqual(m.fitted, [10, 10, 11]);
    assert.equal(m.level, 12.5);
    assert.equal(m.sse, 0 + 4 + 9);
    // σ² = SSE / (n − 1 parameter) = 13/2; one-step interval = ŷ ± 1.96 σ
    const [p] = forecast(m, 1);
    assert.equal(p!.value, 12.5);
    assert.ok(Math.abs(p!.upper - (12.5 + 1.96 * Math.sqrt(13 / 2))) < 1e-9);
  });

  it('prediction intervals follow v_h = σ²(1 + Σ c_j²) with c_j = α + βj + γ[j mod m = 0]', () => {
    const rng = new Rng(7);
    const noisy = deterministic.map((v) => v + rng.normal(0, 2));
    const model = fit(noisy, 'holt_winters_additive', 4);
    const f = forecast(model, 6, 1);
    const { alpha, beta, gamma } = model.params;
    let sum = 0;
    f.forEach((p, idx) => {
      const h = idx + 1;
      if (h > 1) {
        const j = h - 1;
        sum += (alpha + beta * j + (j % 4 === 0 ? gamma : 0)) ** 2;
      }
      assert.ok(Math.abs(p.upper - p.value - model.sigma * Math.sqrt(1 + sum)) < 1e-9);
    });
    // widths never shrink with the horizon
    for (let i = 1; i < f.length; i++)
      assert.ok(f[i]!.upper - f[i]!.lower >= f[i - 1]!.upper - f[i - 1]!.lower - 1e-12);
  });

  it('grid-searched fit keeps parameters in the admissible region and forecasts noisy data closely', () => {
    const rng = new Rng(11);
    const noisy = Array.from(
      { length: 36 },
      (_, t) => 500 + 10 * t + 40 * Math.sin((2 * Math.PI * t) / 12) + rng.normal(0, 5),
    );
    const train = noisy.slice(0, 30);
    const model = fit(train, 'holt_winters_additive', 12);
    const { alpha, beta, gamma } = model.params;
    assert.ok(alpha > 0 && alpha < 1 && beta >= 0 && beta <= alpha + 1e-9 && gamma >= 0 && gamma <= 1 - alpha + 1e-9);
    const err = mape(
      noisy.slice(30),
      forecast(model, 6).map((p) => p.value),
    );
    assert.ok(err < 5, `MAPE ${err}`);
  });

  it('with one season only, initialises from a regression line and still tracks the pattern', () => {
    const short = Array.from({ length: 16 }, (_, t) => 200 + 3 * t + 20 * Math.sin((2 * Math.PI * t) / 12));
    const model = fit(short, 'holt_winters_additive', 12);
    const next = forecast(model, 4).map((p) => p.value);
    const truth = [16, 17, 18, 19].map((t) => 200 + 3 * t + 20 * Math.sin((2 * Math.PI * t) / 12));
    assert.ok(mape(truth, next) < 3, `MAPE ${mape(truth, next)}`);
    assert.throws(() => fit(short.slice(0, 13), 'holt_winters_additive', 12), /at least 14/);
  });

  it('holt recovers a straight line; mape skips zero actuals', () => {
    const line = Array.from({ length: 10 }, (_, t) => 5 + 3 * t);
    const model = fit(line, 'holt');
    assert.ok(Math.abs(forecast(model, 1)[0]!.value - 35) < 1e-9);
    assert.equal(mape([0, 100], [5, 110]), 10);
  });
});

describe('MAD anomalies', () => {
  it('flags an injected spike and dip in a growing seasonal series, nothing else', () => {
    const rng = new Rng(3);
    const base = Array.from(
      { length: 24 },
      (_, t) => 1000 * 1.04 ** t * (1 + 0.1 * Math.sin((2 * Math.PI * t) / 12)) * (1 + rng.normal(0, 0.015)),
    );
    const series = [...base];
    series[8] = base[8]! * 1.45;
    series[16] = base[16]! * 0.6;
    const found = madAnomalies(series);
    assert.deepEqual(
      found.map((a) => [a.index, a.direction]),
      [
        [8, 'spike'],
        [16, 'dip'],
      ],
    );
    assert.ok(Math.abs(found[0]!.expected - base[8]!) / base[8]! < 0.1);
  });

  it('does not flag steady growth', () => {
    assert.deepEqual(madAnomalies(Array.from({ length: 20 }, (_, t) => 100 * 1.05 ** t)), []);
  });

  it('finds a single outlier in otherwise flat data (MAD = 0 fallback)', () => {
    const flat = Array.from({ length: 12 }, () => 50);
    flat[5] = 500;
    assert.deepEqual(
      madAnomalies(flat, { scale: 'linear' }).map((a) => a.index),
      [5],
    );
  });

  it('percentile and slope', () => {
    assert.equal(percentile([1, 2, 3, 4, 5], 0.5), 3);
    // type 7: position (n - 1) p = 3.8 between 4 and 5 → 4.8 (what percentile_cont returns)
    assert.ok(Math.abs(percentile([5, 1, 4, 2, 3], 0.95) - 4.8) < 1e-12);
    assert.equal(percentile([10], 0.95), 10);
    assert.equal(slope([1, 3, 5, 7]), 2);
  });
});

describe('RFM and k-means', () => {
  const rng = new Rng(99);
  const rows: RfmRow[] = Array.from({ length: 200 }, (_, i) => ({
    customerId: i + 1,
    recencyDays: i % 17 === 0 ? null : Math.round(rng.logNormal(40, 1)),
    frequency: i % 17 === 0 ? 0 : 1 + Math.round(rng.logNormal(6, 0.8)),
    monetary: i % 17 === 0 ? 0 : Math.round(rng.logNormal(2000, 1.2)),
  }));

  it('quintile scores: 5 is best, ties share a score, recency is reversed', () => {
    assert.deepEqual(quintileScores([10, 20, 30, 40, 50], true), [1, 2, 3, 4, 5]);
    assert.deepEqual(quintileScores([10, 20, 30, 40, 50], false), [5, 4, 3, 2, 1]);
    assert.deepEqual(quintileScores([7, 7, 7, 7], true), [1, 1, 1, 1]);
  });

  it('every customer gets exactly one segment and the counts add up', () => {
    const scored = scoreRfm(rows);
    assert.equal(scored.length, rows.length);
    const noPurchase = rows.filter((r) => r.recencyDays === null).length;
    assert.equal(scored.filter((s) => s.segment === 'no_purchases').length, noPurchase);
    assert.equal(segmentOf(5, 5, 5), 'champions');
    assert.equal(segmentOf(1, 1, 1), 'lost');
    assert.equal(segmentOf(1, 5, 5), 'at_risk');
  });

  it('k-means is deterministic for a seed and partitions every buyer', () => {
    const a = clusterRfm(rows, 4, 42);
    const b = clusterRfm(rows, 4, 42);
    assert.deepEqual(a, b);
    const buyers = rows.filter((r) => r.recencyDays !== null).length;
    assert.equal(
      a.clusters.reduce((s, c) => s + c.size, 0),
      buyers,
    );
    const ids = a.clusters.flatMap((c) => c.customerIds);
    assert.equal(new Set(ids).size, buyers);
    // renumbered by descending spend
    for (let i = 1; i < a.clusters.length; i++)
      assert.ok(a.clusters[i - 1]!.meanMonetary >= a.clusters[i]!.meanMonetary);
  });
});

describe('prng and windows', () => {
  it('mulberry32 is reproducible', () => {
    const a = mulberry32(1);
    const b = mulberry32(1);
    const xs = Array.from({ length: 5 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 5 }, () => b()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
  });

  it('resolves 30d and 12m windows ending at the reference date', () => {
    const d = resolveWindow('30d', '2026-06-30');
    assert.equal(d.from, '2026-06-01');
    assert.equal(d.buckets.length, 30);
    const m = resolveWindow('12m', '2026-06-30');
    assert.equal(m.from, '2025-07-01');
    assert.deepEqual([m.buckets[0], m.buckets[11]], ['2025-07', '2026-06']);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { computeTrend, leastSquaresSlope, percentile, widenBuckets } from './trends.js';

const H = 3_600_000;
const bucket = (i: number, avg: number) => ({
  start: i * H,
  count: 2,
  sum: avg * 2,
  min: avg - 1,
  max: avg + 1,
  p95: avg + 1,
});
describe('trends', () => {
  it('least squares of a line is its slope', () => {
    assert.equal(
      leastSquaresSlope([
        { x: 0, y: 1 },
        { x: 1, y: 3 },
        { x: 2, y: 5 },
      ]),
      2,
    );
    assert.equal(leastSquaresSlope([{ x: 1, y: 1 }]), null);
  });
  it('nearest-rank p95', () => {
    assert.equal(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        0.95,
      ),
      95,
    );
    assert.equal(percentile([], 0.95), null);
  });
  it('a disk filling 2 %/h from 60 % reaches 100 % in 20 h', () => {
    const t = computeTrend(
      [0, 1, 2, 3, 4].map((i) => bucket(i, 52 + 2 * i)),
      { limit: 100 },
    );
    assert.equal(t.direction, 'rising');
    assert.ok(Math.abs(t.slopePerHour! - 2) < 1e-9);
    assert.ok(Math.abs(t.projection!.etaMs! - 20 * H) < 1);
    assert.equal(t.buckets[0]!.avg, 52);
  });
  it('noise around a level is flat and projects nothing', () => {
    const t = computeTrend(
      [50, 50.5, 49.8, 50.2, 50].map((v, i) => bucket(i, v)),
      { limit: 100 },
    );
    assert.equal(t.direction, 'flat');
    assert.equal(t.projection!.etaMs, null);
  });
  it('falling series and an already reached limit', () => {
    assert.equal(computeTrend([90, 70, 50].map((v, i) => bucket(i, v))).direction, 'falling');
    assert.equal(
      computeTrend(
        [99, 101].map((v, i) => bucket(i, v)),
        { limit: 100 },
      ).projection!.etaMs,
      0,
    );
  });
  it('one bucket: unknown direction', () => assert.equal(computeTrend([bucket(0, 1)]).direction, 'unknown'));
  it('widened buckets combine counts, sums, minima and maxima exactly; p95 is the largest part', () => {
    const H = 3_600_000;
    const b = (h: number, count: number, sum: number, min: number, max: number, p95: number | null) => ({
      start: h * H,
      count,
      sum,
      min,
      max,
      p95,
      avg: sum / count,
    });
    const wide = widenBuckets(
      [b(0, 2, 10, 4, 6, 6), b(1, 3, 30, 5, 15, 14), b(2, 1, 7, 7, 7, null), b(5, 1, 1, 1, 1, 1)],
      3 * H,
    );
    assert.deepEqual(wide, [
      { start: 0, count: 6, sum: 47, min: 4, max: 15, p95: 14, avg: 47 / 6 },
      { start: 3 * H, count: 1, sum: 1, min: 1, max: 1, p95: 1, avg: 1 },
    ]);
  });
});

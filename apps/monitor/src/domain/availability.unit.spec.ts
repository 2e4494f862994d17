import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { availabilityOver, availabilityReport, type StatusInterval } from './availability.js';

const H = 3_600_000;
const M = 60_000;
describe('availability', () => {
  const now = 10 * H;
  // up 9h, down 6 min, up, down 4 min, up till now
  const intervals: StatusInterval[] = [
    { status: 'unknown', start: 0, end: H },
    { status: 'up', start: H, end: 9 * H },
    { status: 'down', start: 9 * H, end: 9 * H + 6 * M },
    { status: 'up', start: 9 * H + 6 * M, end: 9 * H + 30 * M },
    { status: 'down', start: 9 * H + 30 * M, end: 9 * H + 34 * M },
    { status: 'degraded', start: 9 * H + 34 * M, end: null },
  ];
  it('1h window: 10 min down of 60 observed', () => {
    const a = availabilityOver(intervals, '1h', H, { now });
    assert.equal(a.observedMs, H);
    assert.equal(a.downMs, 10 * M);
    assert.ok(Math.abs(a.uptimePercent! - (50 / 60) * 100) < 1e-9);
    assert.equal(a.incidents.length, 2);
    assert.equal(a.mttrMs, 5 * M);
    assert.equal(a.slaMet, false);
  });
  it('24h window leaves unknown time out of the denominator', () => {
    const a = availabilityReport(intervals, { now, slaTargetPercent: 95 })['24h'];
    assert.equal(a.observedMs, 9 * H);
    assert.ok(Math.abs(a.uptimePercent! - (1 - (10 * M) / (9 * H)) * 100) < 1e-9);
    assert.equal(a.slaMet, true);
  });
  it('degraded can count as down', () => {
    const a = availabilityOver(intervals, '1h', H, { now, degradedCountsAsDown: true });
    assert.equal(a.downMs, 10 * M + 26 * M);
  });
  it('an ongoing incident is clipped to the window and has no MTTR', () => {
    const a = availabilityOver(
      [
        { status: 'up', start: 0, end: 50 * M },
        { status: 'down', start: 50 * M, end: null },
      ],
      '1h',
      H,
      { now: H },
    );
    assert.equal(a.incidents.length, 1);
    assert.equal(a.incidents[0]!.end, null);
    assert.equal(a.incidents[0]!.durationMs, 10 * M);
    assert.equal(a.mttrMs, null);
  });
  it('nothing observed: null uptime and null SLA', () => {
    const a = availabilityOver([], '1h', H, { now: H });
    assert.equal(a.uptimePercent, null);
    assert.equal(a.slaMet, null);
  });
  it('adjacent down intervals are one incident', () => {
    const a = availabilityOver(
      [
        { status: 'down', start: 0, end: 5 * M },
        { status: 'down', start: 5 * M, end: 7 * M },
        { status: 'up', start: 7 * M, end: null },
      ],
      '1h',
      H,
      { now: H },
    );
    assert.equal(a.incidents.length, 1);
    assert.equal(a.mttrMs, 7 * M);
  });
});

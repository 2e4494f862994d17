import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  availabilityOver,
  availabilityReport,
  MAX_LISTED_INCIDENTS,
  statusIntervals,
  unprobedGap,
  type ProbeInstant,
  type StatusInterval,
} from './availability.js';
import {
  decideHealth,
  defaultHealthPolicy,
  evolveHealth,
  initialServiceHealth,
  type HealthCommand,
  type HealthEvent,
  type ServiceHealth,
} from './health.js';

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
  it('time unconfigured (never probed, not runnable) is neither up nor down: left out like unknown', () => {
    const events = decideHealth(
      { type: 'MarkUnconfigured', data: { service: 'mcp:github', reason: 'token not set' }, metadata: { at: H } },
      initialServiceHealth,
    );
    const a = availabilityOver(statusIntervals(events), '24h', 24 * H, { now });
    assert.deepEqual([a.observedMs, a.downMs, a.unknownMs, a.uptimePercent, a.slaMet], [0, 0, 9 * H, null, null]);
  });
  it('a month of flapping lists the latest incidents and counts them all: the figures cover every one', () => {
    const D = 24 * H;
    const start = 40 * D;
    const flaps: StatusInterval[] = [];
    // Down 1 min of every 8 for 29 days: 5,220 incidents.
    for (let t = start - 29 * D; t < start; t += 8 * M) {
      flaps.push({ status: 'up', start: t, end: t + 7 * M });
      flaps.push({ status: 'down', start: t + 7 * M, end: t + 8 * M });
    }
    const a = availabilityOver(flaps, '30d', 30 * D, { now: start });
    assert.equal(a.incidentCount, 5_220);
    assert.equal(a.incidents.length, MAX_LISTED_INCIDENTS);
    assert.equal(a.incidents.at(-1)!.end, start, 'the latest is listed last');
    assert.equal(a.downMs, 5_220 * M);
    assert.equal(a.mttrMs, M);
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

describe('availability across a time the monitor was not running', () => {
  const S = 1_000;
  const at = (ms: number) => ({ at: ms });
  // Up from 0, last probe at 100 s, the monitor stops; it starts again at 300 s and the first good
  // probe comes at 305 s.
  const events = (countsAs: 'down' | 'unknown'): HealthEvent[] => [
    {
      type: 'ServiceRecovered',
      data: { service: 's', previous: 'unknown', responseMs: 1, error: null },
      metadata: at(0),
    },
    {
      type: 'ServiceUnmonitored',
      data: { service: 's', previous: 'up', from: 100 * S, to: 300 * S, countsAs },
      metadata: at(300 * S),
    },
    {
      type: 'ServiceRecovered',
      data: { service: 's', previous: 'unknown', responseMs: 1, error: null },
      metadata: at(305 * S),
    },
  ];
  const now = 400 * S;
  it("a service of the monitor's own process was down from its last probe to its first good one", () => {
    const a = availabilityOver(statusIntervals(events('down')), '1h', H, { now });
    assert.equal(a.observedMs, now);
    assert.equal(a.downMs, 205 * S);
    assert.equal(a.unknownMs, 0);
    assert.equal(a.unmonitoredMs, 205 * S);
    assert.ok(Math.abs(a.uptimePercent! - (195 / 400) * 100) < 1e-9);
    assert.deepEqual(a.incidents, [{ start: 100 * S, end: 305 * S, durationMs: 205 * S }]);
  });
  it('any other service: the gap is unknown, out of the denominator and reported', () => {
    const a = availabilityOver(statusIntervals(events('unknown')), '1h', H, { now });
    assert.equal(a.observedMs, 195 * S);
    assert.equal(a.downMs, 0);
    assert.equal(a.unknownMs, 205 * S);
    assert.equal(a.unmonitoredMs, 205 * S);
    assert.equal(a.uptimePercent, 100);
  });
  it("a retired service's history stops at its last probe (the gap opened there goes too)", () => {
    const retired: HealthEvent = {
      type: 'ServiceRetired',
      data: { service: 's', previous: 'unknown', lastProbeAt: 100 * S, reason: 'gone' },
      metadata: at(420 * S),
    };
    const ivs = statusIntervals([...events('down').slice(0, 2), retired]);
    assert.deepEqual(ivs, [{ status: 'up', start: 0, end: 100 * S }]);
    const a = availabilityOver(ivs, '1h', H, { now: 1_000 * S });
    assert.equal(a.observedMs, 100 * S);
    assert.equal(a.downMs, 0);
  });
});

describe('a gap between two probes of a running monitor', () => {
  const S = 1_000;
  const limit = 30 * S;
  const at = (wall: number, monotonic: number) => ({ wall, monotonic });
  it('probes a few intervals apart on both clocks: no gap', () => {
    assert.equal(unprobedGap(at(1_000 * S, 50 * S), at(1_005 * S, 55 * S), limit), null);
    assert.equal(unprobedGap(at(1_000 * S, 50 * S), at(1_030 * S, 80 * S), limit), null);
  });
  it('the wall clock jumped two hours (a suspend, a step forward): those two hours nobody looked', () => {
    assert.deepEqual(unprobedGap(at(1_000 * S, 50 * S), at(1_000 * S + 2 * H, 55 * S), limit), {
      from: 1_000 * S,
      to: 1_000 * S + 2 * H,
    });
  });
  it('the monitor stalled seven minutes (both clocks agree): those seven minutes', () => {
    assert.deepEqual(unprobedGap(at(1_000 * S, 50 * S), at(1_420 * S, 470 * S), limit), {
      from: 1_000 * S,
      to: 1_420 * S,
    });
  });
  it('a step back: no wall time between them to mark', () => {
    assert.equal(unprobedGap(at(1_000 * S, 50 * S), at(1_000 * S - 2 * H, 55 * S), limit), null);
    assert.equal(unprobedGap(at(1_000 * S, 50 * S), at(1_000 * S - 2 * H, 600 * S), limit), null);
  });
  it('such a gap, recorded as ServiceUnmonitored (unknown), is not up time', () => {
    const meta = (t: number) => ({ at: t });
    const base = { service: 's', responseMs: 3, error: null };
    const gap = unprobedGap(at(100 * S, 100 * S), at(100 * S + 2 * H, 105 * S), limit)!;
    const events: HealthEvent[] = [
      { type: 'ServiceRecovered', data: { ...base, previous: 'unknown' }, metadata: meta(0) },
      {
        type: 'ServiceUnmonitored',
        data: { service: 's', previous: 'up', ...gap, countsAs: 'unknown' },
        metadata: meta(gap.to),
      },
      { type: 'ServiceRecovered', data: { ...base, previous: 'unknown' }, metadata: meta(gap.to + 10) },
    ];
    const now = gap.to + 60 * S;
    const a = availabilityOver(statusIntervals(events), '1h', H, { now });
    assert.equal(a.observedMs, 60 * S - 10, 'only the time since the first probe after the gap');
    assert.equal(a.unknownMs, H - 60 * S + 10);
    assert.equal(a.unmonitoredMs, H - 60 * S + 10);
    assert.equal(a.uptimePercent, 100);
    const day = availabilityOver(statusIntervals(events), '24h', 24 * H, { now });
    assert.equal(day.observedMs, 100 * S + 60 * S - 10, 'the two hours are not observed');
  });
});

describe('after the wall clock stepped forward two hours and back', () => {
  const S = 1_000;
  const T0 = 10 * H;
  /**
   * A monitor's probes of one service as monitor.ts decides them (a gap first, then the verdict),
   * each at a real time (its monotonic clock) with the wall clock `ahead` of it.
   */
  function probing() {
    let state: ServiceHealth = initialServiceHealth;
    let last: ProbeInstant | null = null;
    const events: HealthEvent[] = [];
    const decide = (cmd: HealthCommand) => {
      const evs = decideHealth(cmd, state);
      state = evs.reduce(evolveHealth, state);
      events.push(...evs);
    };
    const probe = (real: number, ahead: number, ok: boolean) => {
      const now = { wall: real + ahead, monotonic: real };
      const gap = last ? unprobedGap(last, now, 30 * S) : null;
      if (gap)
        decide({
          type: 'MarkUnmonitored',
          data: { service: 's', ...gap, countsAs: 'unknown' },
          metadata: { at: now.wall },
        });
      decide({
        type: 'RecordProbeResult',
        data: {
          service: 's',
          result: ok ? { ok, responseMs: 3 } : { ok, responseMs: 2, error: 'refused' },
          policy: defaultHealthPolicy,
          sentAt: now.wall,
        },
        metadata: { at: now.wall },
      });
      last = now;
    };
    return {
      events,
      /** Probes every 5 s from `from` (real) up to, not including, `to`. */
      every5s(from: number, to: number, ahead: number, ok = true) {
        for (let t = from; t < to; t += 5 * S) probe(t, ahead, ok);
      },
      availabilityAt: (now: number) => availabilityOver(statusIntervals(events), '1h', H, { now }),
    };
  }
  // Up from T0; at T0 + 600 s the wall clock goes two hours ahead, at T0 + 630 s back to real time.
  const forwardAndBack = (okAhead: (t: number) => boolean, okAfter: boolean) => {
    const p = probing();
    p.every5s(T0, T0 + 600 * S, 0);
    for (let t = T0 + 600 * S; t < T0 + 630 * S; t += 5 * S) p.every5s(t, t + 1, 2 * H, okAhead(t));
    p.every5s(T0 + 630 * S, T0 + 1_530 * S, 0, okAfter);
    return p;
  };

  it('probed time after the step back is observed again, growing with the probes', () => {
    const p = forwardAndBack(() => true, true);
    const early = p.availabilityAt(T0 + 1_000 * S);
    const late = p.availabilityAt(T0 + 1_530 * S);
    // From the last probe before the step forward to the first one back: unmonitored; the rest up.
    assert.equal(late.unmonitoredMs, 35 * S);
    assert.equal(late.observedMs, 595 * S + 900 * S);
    assert.equal(late.observedMs - early.observedMs, 530 * S, 'observed time grows with the probes');
    assert.equal(late.unmonitoredMs, early.unmonitoredMs, 'unmonitored time stops at the step back');
    assert.equal(late.uptimePercent, 100);
    const restated = p.events.find((e) => e.type === 'ServiceRecovered' && e.data.previous === 'up');
    assert.equal(restated?.metadata.at, T0 + 630 * S, 'the verdict stamped ahead is restated at the first probe back');
  });

  it('a service that went down while the clock was ahead counts as down from the step back', () => {
    const p = forwardAndBack((t) => t < T0 + 605 * S, false);
    const a = p.availabilityAt(T0 + 930 * S);
    assert.equal(a.downMs, 300 * S);
    assert.equal(a.observedMs, 595 * S + 300 * S);
    assert.deepEqual(a.incidents, [{ start: T0 + 630 * S, end: null, durationMs: 300 * S }]);
  });

  it('a failing run that began while the clock was ahead goes down its downAfterMs after the step back', () => {
    const p = forwardAndBack((t) => t < T0 + 625 * S, false);
    const down = p.events.filter((e) => e.type === 'ServiceWentDown');
    assert.deepEqual(
      down.map((e) => [e.metadata.at, e.type === 'ServiceWentDown' && e.data.failingSince]),
      [[T0 + 640 * S, T0 + 630 * S]],
    );
    assert.equal(p.availabilityAt(T0 + 930 * S).downMs, 300 * S);
  });
});

/**
 * The monitor under steps of the wall clock (an NTP step, a resumed VM) and a clock that differs
 * from its callers' (real PostgreSQL event store; the monitor's clock is injected: its wall clock
 * is the system's plus an offset the spec moves, its monotonic clock and timers the system's, as
 * on a host whose wall clock is stepped).
 * - a step back of two hours: probes keep their interval, the report stays healthy, no gap;
 * - a step forward of two hours: the two hours are unmonitored (unknown), not two hours of uptime;
 *   stepped back again, the probes from then on are observed time again (the verdict stamped ahead is
 *   restated at the first probe back);
 * - loops held (a frozen monitor): the health report turns degraded, saying its data is stale;
 * - a silence given as a duration starts by the monitor's clock, not the caller's;
 * - a pending `for` alert fires after its `for` of elapsed time across a step back, and so does one
 *   on a monitor that started while the wall clock was ahead.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { createLogger } from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import { addSilenceRequest } from '@switchyard/contracts';
import { Monitor, type MonitorEvent } from './monitor.js';
import { functionProbe } from './probes.js';
import type { AlertRule } from './domain/rules.js';
import type { TimerClock } from './timers.js';
import { healthReport } from './wiring/service.js';

const logger = createLogger('monitor-clock-steps-test', process.env.LOG_LEVEL ?? 'silent');
const H = 3_600_000;
const INTERVAL = 50;
const FOR_MS = 1_500;
/** Like the seed `service_unavailable`, with a short `for`. */
const unavailable: AlertRule = {
  id: 'unavailable_briefly',
  name: 'Service unavailable',
  metric: 'probe_up',
  match: {},
  comparator: '<',
  threshold: 1,
  for_ms: FOR_MS,
  severity: 'critical',
  labels: {},
};

/** The system's clocks, with a wall offset the spec moves and timers it can hold (a frozen monitor). */
function steppedClock() {
  let offset = 0;
  let held: (() => void)[] | null = null;
  const clock: TimerClock = {
    now: () => Date.now() + offset,
    monotonicNow: () => performance.now(),
    setTimeout: (fn, ms) =>
      setTimeout(() => {
        if (held) held.push(fn);
        else fn();
      }, ms),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
  return {
    clock,
    step: (byMs: number) => {
      offset += byMs;
    },
    hold: () => {
      held = [];
    },
    release: () => {
      const due = held ?? [];
      held = null;
      for (const fn of due) fn();
    },
  };
}

describe('the monitor under steps of the wall clock', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  const running = new Set<Monitor>();
  const stop = async (m: Monitor) => {
    running.delete(m);
    await m.stop();
  };

  const makeMonitor = (
    clock: TimerClock,
    published: MonitorEvent[],
    probes: Parameters<typeof functionProbe>[],
    probeGapMs?: number,
    rules: AlertRule[] = [],
  ) => {
    const m = new Monitor({
      pool,
      eventStore: store,
      logger,
      clock,
      publish: (events) => {
        published.push(...events);
      },
      probes: probes.map((p) => functionProbe(...p)),
      settings: {
        sampleIntervalMs: 3_600_000,
        maintenanceIntervalMs: 3_600_000,
        probeIntervalMs: INTERVAL,
        probeTimeoutMs: 1_000,
        ...(probeGapMs ? { probeGapMs } : {}),
        rules,
      },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
    running.add(m);
    return m;
  };

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_clock_steps'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
  });

  after(async () => {
    for (const m of [...running]) await stop(m);
    await store?.close();
    await pool?.end();
  });

  it('a step back of two hours: probing goes on at its interval, no gap is recorded, the report stays healthy', async () => {
    const c = steppedClock();
    const published: MonitorEvent[] = [];
    let probes = 0;
    const monitor = makeMonitor(c.clock, published, [['back', 'test', async () => void probes++]]);
    await monitor.start();
    await until('probed a few times', () => probes >= 3);
    c.step(-2 * H);
    const atStep = probes;
    const stepped = performance.now();
    await until('probed again after the step', () => probes >= atStep + 5, 10_000);
    const tookMs = performance.now() - stepped;
    assert.ok(tookMs < 5_000, `5 probes after the step took ${Math.round(tookMs)} ms`);
    const row = (await monitor.store.listServices()).find((s) => s.service === 'back')!;
    assert.ok(row.lastProbeAt!.getTime() <= c.clock.now(), 'the last probe is dated by the stepped-back clock');
    assert.equal(row.status, 'up');
    assert.deepEqual(
      published.filter((e) => e.type === 'ServiceUnmonitored'),
      [],
      'a step back leaves no gap',
    );
    const report = await healthReport(monitor);
    assert.equal(report.status, 'healthy', report.reasons.join('; '));
    await stop(monitor);
  });

  it('a step forward of two hours: those hours are unmonitored and unknown, not uptime', async () => {
    const c = steppedClock();
    const published: MonitorEvent[] = [];
    let probes = 0;
    const monitor = makeMonitor(c.clock, published, [['ahead', 'test', async () => void probes++]]);
    await monitor.start();
    await until(
      'up',
      async () => (await monitor.store.listServices()).find((s) => s.service === 'ahead')?.status === 'up',
    );
    const stepAt = c.clock.now();
    c.step(2 * H);
    const gap = await until('a gap recorded', () =>
      published.find((e) => e.type === 'ServiceUnmonitored' && e.data.service === 'ahead'),
    );
    assert.equal(gap.type, 'ServiceUnmonitored');
    if (gap.type !== 'ServiceUnmonitored') return;
    assert.equal(gap.data.countsAs, 'unknown');
    assert.ok(gap.data.from <= stepAt && gap.data.to >= stepAt + 2 * H, JSON.stringify(gap.data));
    await until('up again after the gap', () =>
      published.find((e) => e.type === 'ServiceRecovered' && e.metadata.at >= gap.data.to),
    );
    const now = c.clock.now();
    const w = (await monitor.getAvailability('ahead', { now })).windows;
    assert.ok(w['1h'].observedMs < 60_000, `observed ${w['1h'].observedMs} ms of the last hour`);
    assert.ok(w['1h'].unmonitoredMs > H - 60_000, `unmonitored ${w['1h'].unmonitoredMs} ms`);
    assert.ok(w['1h'].unknownMs > H - 60_000);
    assert.equal(w['1h'].downMs, 0);
    assert.ok(w['24h'].observedMs < 120_000, `observed ${w['24h'].observedMs} ms of the last day`);
    await stop(monitor);
  });

  it('a step forward of two hours and back: probes after the step back are observed time again', async () => {
    const c = steppedClock();
    const published: MonitorEvent[] = [];
    let probes = 0;
    const monitor = makeMonitor(c.clock, published, [['there-and-back', 'test', async () => void probes++]]);
    await monitor.start();
    await until(
      'up',
      async () => (await monitor.store.listServices()).find((s) => s.service === 'there-and-back')?.status === 'up',
    );
    c.step(2 * H);
    const gap = await until('a gap recorded', () =>
      published.find((e) => e.type === 'ServiceUnmonitored' && e.data.service === 'there-and-back'),
    );
    if (gap.type !== 'ServiceUnmonitored') return;
    await until('up again, stamped ahead', () =>
      published.find((e) => e.type === 'ServiceRecovered' && e.metadata.at >= gap.data.to),
    );
    c.step(-2 * H);
    const back = probes;
    // A service's probes run one after the other: the second one started after the first one back had settled.
    await until('a probe after the step back', () => probes >= back + 2);
    const firstAt = c.clock.now();
    const first = (await monitor.getAvailability('there-and-back', { now: firstAt })).windows['1h'];
    await until('probed on for a while', () => probes >= back + 12, 10_000);
    const laterAt = c.clock.now();
    const later = (await monitor.getAvailability('there-and-back', { now: laterAt })).windows['1h'];
    assert.equal(
      later.observedMs - first.observedMs,
      laterAt - firstAt,
      `observed ${first.observedMs} -> ${later.observedMs} ms, unmonitored ${first.unmonitoredMs} -> ${later.unmonitoredMs} ms`,
    );
    assert.equal(later.unmonitoredMs, first.unmonitoredMs, 'no more unmonitored time after the step back');
    assert.ok(later.unmonitoredMs < H, `unmonitored ${later.unmonitoredMs} ms, not the step`);
    assert.equal(later.uptimePercent, 100);
    const restated = published.filter(
      (e) => e.type === 'ServiceRecovered' && e.data.service === 'there-and-back' && e.data.previous === 'up',
    );
    assert.equal(restated.length, 1, 'the verdict stamped ahead is restated once, at the first probe back');
    await stop(monitor);
  });

  it('loops held (a frozen monitor): the health report says its data is stale; released, healthy again', async () => {
    const c = steppedClock();
    const published: MonitorEvent[] = [];
    let probes = 0;
    const monitor = makeMonitor(c.clock, published, [['frozen', 'test', async () => void probes++]], 1_000);
    await monitor.start();
    await until(
      'up',
      async () => (await monitor.store.listServices()).find((s) => s.service === 'frozen')?.status === 'up',
    );
    assert.equal((await healthReport(monitor)).status, 'healthy');
    c.hold();
    const report = await until(
      'the report turns degraded',
      async () => {
        const r = await healthReport(monitor);
        return r.status === 'degraded' ? r : undefined;
      },
      10_000,
    );
    assert.ok(
      report.reasons.some((r) => /monitor data is stale: frozen not probed for \d+ s/.test(r)),
      report.reasons.join('; '),
    );
    assert.deepEqual(
      monitor.staleProbes().map((s) => s.service),
      ['frozen'],
    );
    c.release();
    await until('healthy again', async () => (await healthReport(monitor)).status === 'healthy', 10_000);
    await stop(monitor);
  });

  it("a silence given as a duration starts by the monitor's clock; given times are kept", async () => {
    const c = steppedClock();
    // The caller's clock (this process's) is an hour ahead of the monitor's.
    c.step(-H);
    const monitor = makeMonitor(c.clock, [], []);
    await monitor.start();
    const request = addSilenceRequest.parse({
      matchers: [{ name: 'alertname', value: 'clock-test' }],
      createdBy: 'ann',
      durationMs: 600_000,
    });
    const before = c.clock.now();
    const silence = await monitor.addSilence(request);
    const after = c.clock.now();
    assert.ok(silence.startsAt >= before && silence.startsAt <= after, `starts ${silence.startsAt - before} ms in`);
    assert.equal(silence.endsAt - silence.startsAt, 600_000);
    assert.ok(silence.startsAt < Date.now() - H + 60_000, "not by the caller's clock");

    const given = await monitor.addSilence(
      addSilenceRequest.parse({
        matchers: [{ name: 'alertname', value: 'clock-test' }],
        createdBy: 'ann',
        startsAt: 1_000_000,
        endsAt: 2_000_000,
      }),
    );
    assert.deepEqual([given.startsAt, given.endsAt], [1_000_000, 2_000_000]);
    const from = await monitor.addSilence(
      addSilenceRequest.parse({
        matchers: [{ name: 'a', value: 'b' }],
        createdBy: 'ann',
        startsAt: 5_000,
        durationMs: 10,
      }),
    );
    assert.deepEqual([from.startsAt, from.endsAt], [5_000, 5_010]);
    for (const bad of [{}, { endsAt: 2_000_000, durationMs: 10 }]) {
      assert.equal(
        addSilenceRequest.safeParse({ matchers: [{ name: 'a', value: 'b' }], createdBy: 'ann', ...bad }).success,
        false,
        JSON.stringify(bad),
      );
    }
    await stop(monitor);
  });

  /** Elapsed time from the alert going pending to it firing, by the monotonic clock. */
  const pendingThenFiring = async (published: MonitorEvent[], service: string, beforeFiring: () => void) => {
    const forService = (type: MonitorEvent['type']) =>
      published.find((e) => e.type === type && 'labels' in e.data && e.data.labels['service'] === service);
    await until('the alert pending', () => forService('AlertPending'));
    const pendingAt = performance.now();
    beforeFiring();
    const firing = await until('the alert firing', () => forService('AlertFiring'), 10_000);
    return { firing, afterMs: performance.now() - pendingAt };
  };

  it('a pending `for` alert across a step back of two hours fires after its `for`, not two hours later', async () => {
    const c = steppedClock();
    const published: MonitorEvent[] = [];
    const monitor = makeMonitor(
      c.clock,
      published,
      [
        [
          'falls',
          'test',
          async () => {
            throw new Error('refused');
          },
        ],
      ],
      undefined,
      [unavailable],
    );
    await monitor.start();
    const { firing, afterMs } = await pendingThenFiring(published, 'falls', () => c.step(-2 * H));
    assert.ok(afterMs < FOR_MS + 5_000, `fired ${Math.round(afterMs)} ms after going pending`);
    assert.ok(firing.metadata.at <= c.clock.now(), 'dated by the stepped-back clock');
    await stop(monitor);
  });

  it('a monitor started while the wall clock was two hours ahead, then stepped back: `for` alerts fire after their `for`', async () => {
    const c = steppedClock();
    c.step(2 * H);
    const published: MonitorEvent[] = [];
    let failing = false;
    let probes = 0;
    const monitor = makeMonitor(
      c.clock,
      published,
      [
        [
          'later',
          'test',
          async () => {
            probes++;
            if (failing) throw new Error('refused');
          },
        ],
      ],
      undefined,
      [unavailable],
    );
    await monitor.start();
    await until('probed a few times', () => probes >= 3);
    c.step(-2 * H);
    failing = true;
    const { afterMs } = await pendingThenFiring(published, 'later', () => undefined);
    assert.ok(afterMs < FOR_MS + 5_000, `fired ${Math.round(afterMs)} ms after going pending`);
    await stop(monitor);
  });
});

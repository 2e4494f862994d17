import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase } from '@switchyard/testing';
import { AppError } from '@switchyard/platform';
import { MAX_TREND_POINTS, Monitor, type MonitorEvent } from './monitor.js';
import { metricNames, type AlertRule } from './domain/rules.js';
import { shouldNotify, type AlertingEvent } from './domain/alerts.js';

const H = 3_600_000;
const rule: AlertRule = {
  id: 'queue_deep',
  name: 'Queue deep',
  metric: 'queue_depth',
  match: {},
  comparator: '>',
  threshold: 100,
  for_ms: 0,
  severity: 'warning',
  labels: { team: 'core' },
};

describe('Monitor with PostgreSQL read models', () => {
  let url: string;
  let monitor: Monitor;
  const published: MonitorEvent[] = [];
  const make = () =>
    new Monitor({
      databaseUrl: url,
      publish: (e) => {
        published.push(...e);
      },
      settings: { rules: [rule] },
      sampler: { diskIntervalMs: 3_600_000 },
    });
  before(async () => {
    url = await freshDatabase('monitor_rm');
    monitor = make();
    await monitor.init();
  });
  after(async () => monitor.stop());

  it('performance trends from rollups: a disk filling at 2 %/h projects when it is full', async () => {
    const now = Date.UTC(2026, 3, 1, 12, 30, 0);
    const samples = [];
    for (let h = 10; h >= 1; h--) {
      for (let k = 0; k < 3; k++)
        samples.push({
          metric: metricNames.diskPercent,
          labels: { mount: '/data', fs: 'vdb' },
          ts: now - h * H + k * 60_000,
          value: 80 - 2 * h + k * 0.01,
        });
    }
    await monitor.ingest(samples);
    const [t] = await monitor.getPerformanceTrends(metricNames.diskPercent, '24h', { now, labels: { mount: '/data' } });
    assert.ok(t);
    assert.equal(t.buckets.length, 10);
    assert.equal(t.direction, 'rising');
    assert.ok(Math.abs(t.slopePerHour! - 2) < 0.01, String(t.slopePerHour));
    // Last bucket average ~78.01 %: 100 % is ~11 h away at 2 %/h.
    assert.ok(Math.abs(t.projection!.etaMs! / H - (100 - 78.01) / 2) < 0.05, String(t.projection!.etaMs! / H));
    await assert.rejects(
      monitor.getPerformanceTrends('x', '2d' as never),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
  });

  it('a week of hourly buckets of many series is merged into wider buckets so the answer stays within MAX_TREND_POINTS', async () => {
    const now = Date.UTC(2026, 4, 8, 0, 30, 0);
    // 30 services probed every hour for 7 days: 30 x 168 hourly buckets, past the 4,000 of one answer.
    const samples = [];
    for (let svc = 0; svc < 30; svc++)
      for (let h = 167; h >= 0; h--)
        samples.push({
          metric: 'trend_probe_ms',
          labels: { service: `s${svc}` },
          ts: now - h * H - 60_000,
          value: 10 + h,
        });
    await monitor.ingest(samples);
    const week = await monitor.getPerformanceTrends('trend_probe_ms', '7d', { now });
    assert.equal(week.length, 30);
    const points = week.reduce((n, s) => n + s.buckets.length, 0);
    assert.ok(points <= MAX_TREND_POINTS, `${points} buckets`);
    assert.equal(week[0]!.bucketMs, 2 * H);
    // Exact sums and counts; the slope still from the hourly buckets (values fall 1 per hour towards now).
    const s0 = week.find((s) => s.labels.service === 's0')!;
    assert.equal(
      s0.buckets.reduce((n, b) => n + b.count, 0),
      168,
    );
    assert.ok(Math.abs(s0.slopePerHour! + 1) < 0.01, String(s0.slopePerHour));
    // One series asked for by its labels keeps the hourly buckets.
    const one = await monitor.getPerformanceTrends('trend_probe_ms', '7d', { now, labels: { service: 's0' } });
    assert.equal(one[0]!.bucketMs, H);
    assert.equal(one[0]!.buckets.length, 168);
  });

  it('manual resolve, silences, and state rebuilt from the read models after a restart', async () => {
    const t0 = Date.now();
    const evs = await monitor.ingest([{ metric: 'queue_depth', labels: { queue: 'a' }, ts: t0, value: 500 }]);
    assert.deepEqual(
      evs.map((e) => e.type),
      ['AlertPending', 'AlertFiring'],
    );
    const [firing] = await monitor.listAlerts({ state: 'firing' });
    assert.deepEqual(firing!.labels, {
      alertname: 'Queue deep',
      queue: 'a',
      rule_id: 'queue_deep',
      severity: 'warning',
      team: 'core',
    });

    const resolved = await monitor.resolveAlert(firing!.id, 'ann', 'drained by hand', t0 + 10);
    assert.deepEqual(
      [resolved.state, resolved.resolvedHow, resolved.resolvedBy, resolved.resolveReason],
      ['resolved', 'manual', 'ann', 'drained by hand'],
    );
    await assert.rejects(
      monitor.resolveAlert('0000000000000000', 'ann', 'x'),
      (e: unknown) => e instanceof AppError && e.code === 'not_found',
    );

    await assert.rejects(
      monitor.addSilence({ matchers: [], createdBy: 'ann', comment: '', endsAt: t0 + H }),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
    const silence = await monitor.addSilence(
      {
        matchers: [{ name: 'queue', value: 'b' }],
        createdBy: 'ann',
        comment: 'migration',
        startsAt: t0,
        endsAt: t0 + H,
      },
      t0 + 20,
    );
    const silenced = await monitor.ingest([{ metric: 'queue_depth', labels: { queue: 'b' }, ts: t0 + 30, value: 900 }]);
    assert.deepEqual(
      silenced.map((e) => e.type),
      ['AlertPending', 'AlertSilenced', 'AlertFiring'],
    );
    assert.equal(shouldNotify(silenced[2]!), false);
    const [b] = await monitor.listAlerts({ state: 'firing' });
    assert.equal(b!.suppressedBy, silence.id);

    // A second Monitor on the same database rebuilds the decider state from the tables.
    await monitor.stop();
    monitor = make();
    await monitor.init();
    assert.equal(Object.values(monitor.alertingState.alerts).filter((a) => a.status === 'firing').length, 1);
    assert.deepEqual(Object.keys(monitor.alertingState.silences), [silence.id]);
    // Still firing: no duplicate.
    assert.deepEqual(
      await monitor.ingest([{ metric: 'queue_depth', labels: { queue: 'b' }, ts: t0 + 40, value: 950 }]),
      [],
    );

    const before = published.length;
    await monitor.expireSilence(silence.id, 'ann', t0 + 50);
    const types = published.slice(before).map((e) => e.type);
    assert.deepEqual(types, ['SilenceExpired', 'AlertUnsilenced']);
    assert.ok(shouldNotify(published.at(-1) as AlertingEvent));
    assert.equal((await monitor.listSilences()).length, 0);
    assert.equal((await monitor.listAlerts({ state: 'firing' }))[0]!.suppressedBy, null);
    assert.equal((await monitor.listAlerts({ state: 'resolved' })).length, 1);
    // Maintenance expires silences whose end has passed.
    const short = await monitor.addSilence(
      {
        matchers: [{ name: 'queue', value: 'zzz' }],
        createdBy: 'bob',
        comment: 'short',
        startsAt: t0,
        endsAt: t0 + 100,
      },
      t0 + 60,
    );
    await monitor.maintain(t0 + 200);
    assert.ok(
      published.some((e) => e.type === 'SilenceExpired' && e.data.silenceId === short.id && e.data.actor === 'monitor'),
    );
    assert.equal((await monitor.listSilences()).length, 0);
    const report = await monitor.getHealthReport();
    assert.equal(report.alerts.firing, 1);
    await assert.rejects(
      monitor.getAvailability('nobody'),
      (e: unknown) => e instanceof AppError && e.code === 'not_found',
    );
  });

  it('a manual resolve answers the instance it ended, also when its rule fires it again before the answer is read', async () => {
    const t0 = Date.now();
    await monitor.ingest([{ metric: 'queue_depth', labels: { queue: 'again' }, ts: t0, value: 500 }]);
    const firing = (await monitor.listAlerts({ state: 'firing' })).find((a) => a.labels['queue'] === 'again')!;
    const store = monitor.store;
    const original = store.listAlerts.bind(store);
    let reads = 0;
    // The rule still holds: a sample comes in between the resolve and the read of its answer.
    store.listAlerts = async (filter) => {
      if (++reads === 2)
        await monitor.ingest([{ metric: 'queue_depth', labels: { queue: 'again' }, ts: t0 + 20, value: 500 }]);
      return original(filter);
    };
    try {
      const r = await monitor.resolveAlert(firing.id, 'ann', 'by hand', t0 + 10);
      assert.deepEqual(
        [r.id, r.state, r.resolvedHow, r.resolvedBy, r.resolveReason],
        [firing.id, 'resolved', 'manual', 'ann', 'by hand'],
      );
      const [now] = await original({ id: firing.id });
      assert.notEqual(now!.state, 'resolved', 'it fired again meanwhile (what the answer used to show)');
    } finally {
      store.listAlerts = original;
    }
    // The instance that fired again ends too: nothing is left firing.
    await monitor.resolveAlert(firing.id, 'ann', 'done with it', t0 + 30);
  });
});

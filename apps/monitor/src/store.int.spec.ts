import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshDatabase } from '@switchyard/testing';
import { MonitoringStore, defaultRetention } from './store.js';
import { Monitor } from './monitor.js';
import { metricNames } from './domain/rules.js';
import type { Sample } from './sampler.js';

// percentile_cont(0.95): linear interpolation between the closest ranks, like PostgreSQL.
function p95(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = 0.95 * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

describe('monitoring store (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: MonitoringStore;
  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_store'), max: 4 });
    store = new MonitoringStore(pool);
    await store.migrate();
    await store.migrate(); // idempotent
  });
  after(async () => pool.end());

  it('stores samples and keeps 1 min / 1 h rollups equal to the raw rows, batch after batch', async () => {
    const base = Date.UTC(2026, 0, 5, 10, 0, 0);
    const samples: Sample[] = [];
    for (let i = 0; i < 48; i++) {
      // 48 samples every 5 s over 4 minutes, two series, irregular values.
      const ts = base + i * 5000;
      samples.push({ metric: 'test_latency_ms', labels: { route: 'a' }, ts, value: ((i * 37) % 23) + i / 10 });
      samples.push({ metric: 'test_latency_ms', labels: { route: 'b' }, ts, value: 100 - i });
    }
    // Arrive in uneven batches, like rounds of a sampler, so the upsert path is exercised.
    for (let i = 0; i < samples.length; i += 7) await store.insertSamples(samples.slice(i, i + 7));

    const now = base + 10 * 60_000;
    const raw = await store.rawSamples('test_latency_ms', base, now);
    assert.equal(raw.length, 96);
    // Two hours later both the minute and the hour buckets are closed, so both get a p95.
    await store.finalizeRollups(base + 2 * 3_600_000, defaultRetention.rawMs + 365 * 86_400_000);
    const minute = await store.rollups('test_latency_ms', '1m', base);
    assert.equal(minute.length, 2);
    for (const series of minute) {
      assert.equal(series.buckets.length, 4);
      for (const b of series.buckets) {
        const values = raw
          .filter((r) => r.labels.route === series.labels.route && r.ts >= b.start && r.ts < b.start + 60_000)
          .map((r) => r.value);
        assert.equal(b.count, values.length);
        assert.ok(close(b.sum / b.count, values.reduce((s, v) => s + v, 0) / values.length), 'avg');
        assert.equal(b.max, Math.max(...values));
        assert.equal(b.min, Math.min(...values));
        assert.ok(b.p95 !== null && close(b.p95, p95(values)), `p95 ${b.p95} vs ${p95(values)}`);
      }
    }
    const hour = await store.rollups('test_latency_ms', '1h', base, { route: 'a' });
    assert.equal(hour.length, 1);
    const all = raw.filter((r) => r.labels.route === 'a').map((r) => r.value);
    assert.equal(hour[0]!.buckets[0]!.count, all.length);
    assert.equal(hour[0]!.buckets[0]!.max, Math.max(...all));
    assert.ok(close(hour[0]!.buckets[0]!.p95!, p95(all)));
  });

  it('an open bucket has no p95 yet, and a late sample clears a computed one', async () => {
    const base = Date.UTC(2026, 0, 6, 10, 0, 0);
    await store.insertSamples([
      { metric: 'late', labels: {}, ts: base, value: 1 },
      { metric: 'late', labels: {}, ts: base + 1000, value: 3 },
    ]);
    await store.finalizeRollups(base + 30_000, 365 * 86_400_000);
    assert.equal((await store.rollups('late', '1m', base))[0]!.buckets[0]!.p95, null);
    await store.finalizeRollups(base + 120_000, 365 * 86_400_000);
    assert.notEqual((await store.rollups('late', '1m', base))[0]!.buckets[0]!.p95, null);
    await store.insertSamples([{ metric: 'late', labels: {}, ts: base + 2000, value: 5 }]);
    const b = (await store.rollups('late', '1m', base))[0]!.buckets[0]!;
    assert.deepEqual([b.count, b.p95, b.max], [3, null, 5]);
  });

  it('retention deletes raw rows and rollups older than their resolution keeps', async () => {
    const now = Date.UTC(2026, 2, 1, 12, 0, 0);
    const H = 3_600_000;
    await store.insertSamples([
      { metric: 'ret', labels: {}, ts: now - 25 * H, value: 1 }, // raw too old
      { metric: 'ret', labels: {}, ts: now - 23 * H, value: 2 }, // raw kept
      { metric: 'ret', labels: {}, ts: now - 8 * 24 * H, value: 3 }, // 1m too old, 1h kept
      { metric: 'ret', labels: {}, ts: now - 91 * 24 * H, value: 4 }, // all too old
    ]);
    const deleted = await store.applyRetention(now, defaultRetention);
    assert.ok(deleted.raw >= 3 && deleted.minute >= 2 && deleted.hour >= 1, JSON.stringify(deleted));
    assert.deepEqual(
      (await store.rawSamples('ret', 0, now)).map((s) => s.value),
      [2],
    );
    const minute = (await store.rollups('ret', '1m', 0))[0]!.buckets.map((b) => b.sum);
    assert.deepEqual(minute.sort(), [1, 2]);
    const hour = (await store.rollups('ret', '1h', 0))[0]!.buckets.map((b) => b.sum);
    assert.deepEqual(hour.sort(), [1, 2, 3]);
  });

  it('retention deletes a backlog in bounded statements: batches of its size, at most its rows a call, the rest on the next', async () => {
    const now = Date.UTC(2026, 3, 1, 12, 0, 0);
    const old = now - 30 * 3_600_000;
    await store.insertSamples(
      Array.from({ length: 250 }, (_, i) => ({ metric: 'backlog', labels: {}, ts: old + i, value: i })),
    );
    await store.insertSamples([{ metric: 'backlog', labels: {}, ts: now - 60_000, value: -1 }]);
    const first = await store.applyRetention(now, defaultRetention, { batch: 40, maxRows: 100 });
    assert.equal(first.raw, 100, 'stops at its rows a call');
    const second = await store.applyRetention(now, defaultRetention, { batch: 40, maxRows: 1_000 });
    assert.ok(second.raw >= 150, `the rest on the next call (${second.raw})`);
    assert.deepEqual(
      (await store.rawSamples('backlog', 0, now)).map((s) => s.value),
      [-1],
    );
  });

  it('real sampler rounds are stored and rolled up', async () => {
    const monitor = new Monitor({
      pool,
      publish: () => undefined,
      settings: { rules: [] },
      sampler: { diskIntervalMs: 0, selfName: 'spec' },
    });
    await monitor.init();
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) {
      // CPU % is a rate: each round needs time (kernel ticks) since the previous one.
      await new Promise((r) => setTimeout(r, 150));
      await monitor.sampleOnce();
    }
    const raw = await store.rawSamples(metricNames.cpuPercent, t0 - 1000, Date.now() + 1000, { cpu: 'total' });
    assert.equal(raw.length, 3, 'cpu total: one per round');
    assert.ok(raw.every((s) => s.value >= 0 && s.value <= 100));
    for (const metric of [metricNames.memoryPercent, metricNames.diskPercent, metricNames.processRssBytes]) {
      assert.ok((await store.rawSamples(metric, t0 - 1000, Date.now() + 1000)).length > 0, `${metric} sampled`);
    }
    const minute = await store.rollups(metricNames.cpuPercent, '1m', t0 - 60_000, { cpu: 'total' });
    const buckets = minute.flatMap((s) => s.buckets);
    assert.equal(
      buckets.reduce((n, b) => n + b.count, 0),
      3,
    );
    assert.ok(
      close(
        buckets.reduce((n, b) => n + b.sum, 0),
        raw.reduce((n, s) => n + s.value, 0),
      ),
    );
    const text = await monitor.renderPrometheus();
    assert.match(text, /switchyard_system_cpu_usage_percent\{cpu="total"\} \d/);
    assert.match(text, /switchyard_process_rss_bytes\{pid="\d+",name="spec"\} \d/);
    const report = await monitor.getHealthReport();
    assert.ok(report.system.cpuPercent !== null && report.system.memoryPercent !== null);
    await monitor.stop();
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@switchyard/platform';
import { monitorSettingsFromEnv } from './config.js';
import { monitorSettingsSchema } from './monitor.js';

describe('monitor settings', () => {
  it('defaults: 5 s sampling, 24 h / 7 d / 90 d retention, the five default rules', () => {
    const s = monitorSettingsSchema.parse(monitorSettingsFromEnv({}));
    assert.equal(s.sampleIntervalMs, 5000);
    assert.deepEqual(s.retention, { rawMs: 86_400_000, minuteMs: 604_800_000, hourMs: 7_776_000_000 });
    assert.equal(s.rules.length, 5);
    assert.equal(s.healthPolicy.downAfterMs, 10_000);
  });
  it("the default rules carry the specification's thresholds: CPU > 80 %, memory > 85 %, disk > 90 %, response > 5 s, unavailable > 30 s", () => {
    const s = monitorSettingsSchema.parse(monitorSettingsFromEnv({}));
    const byId = new Map(s.rules.map((r) => [r.id, r]));
    const pick = (id: string) => {
      const r = byId.get(id);
      assert.ok(r, `rule ${id}`);
      return { comparator: r.comparator, threshold: r.threshold };
    };
    assert.deepEqual(pick('cpu_high'), { comparator: '>', threshold: 80 });
    assert.deepEqual(pick('memory_high'), { comparator: '>', threshold: 85 });
    assert.deepEqual(pick('disk_high'), { comparator: '>', threshold: 90 });
    assert.deepEqual(pick('response_slow'), { comparator: '>', threshold: 5_000 });
    // Unavailable: a failed probe (probe_up < 1) for 30 s.
    assert.deepEqual(pick('service_unavailable'), { comparator: '<', threshold: 1 });
    assert.equal(byId.get('service_unavailable')?.for_ms, 30_000);
    assert.equal(byId.get('response_slow')?.for_ms, 0);
  });
  it('reads the environment', () => {
    const s = monitorSettingsSchema.parse(
      monitorSettingsFromEnv({
        MONITOR_RETENTION_RAW_HOURS: '48',
        MONITOR_DOWN_AFTER_MS: '0',
        MONITOR_SAMPLE_INTERVAL_MS: '1000',
      }),
    );
    assert.equal(s.retention.rawMs, 48 * 3_600_000);
    assert.equal(s.retention.minuteMs, 604_800_000);
    assert.equal(s.healthPolicy.downAfterMs, 0);
    assert.equal(s.sampleIntervalMs, 1000);
  });
  it('names a bad variable', () => {
    assert.throws(
      () => monitorSettingsFromEnv({ MONITOR_PROBE_INTERVAL_MS: 'soon' }),
      (e: unknown) => e instanceof ConfigError && /MONITOR_PROBE_INTERVAL_MS/.test(e.message),
    );
  });
});

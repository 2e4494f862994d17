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
  it('reads the environment', () => {
    const s = monitorSettingsSchema.parse(monitorSettingsFromEnv({ MONITOR_RETENTION_RAW_HOURS: '48', MONITOR_DOWN_AFTER_MS: '0', MONITOR_SAMPLE_INTERVAL_MS: '1000' }));
    assert.equal(s.retention.rawMs, 48 * 3_600_000);
    assert.equal(s.retention.minuteMs, 604_800_000);
    assert.equal(s.healthPolicy.downAfterMs, 0);
    assert.equal(s.sampleIntervalMs, 1000);
  });
  it('names a bad variable', () => {
    assert.throws(() => monitorSettingsFromEnv({ MONITOR_PROBE_INTERVAL_MS: 'soon' }), (e: unknown) => e instanceof ConfigError && /MONITOR_PROBE_INTERVAL_MS/.test(e.message));
  });
});

import { z } from 'zod';
import { parseConfig } from '@switchyard/platform';
import type { monitorSettingsSchema } from './monitor.js';

const posInt = z.coerce.number().int().positive().optional();

/** Environment variables the monitor reads (all optional; defaults live in monitorSettingsSchema). */
export const monitorEnvSchema = z.object({
  MONITOR_SAMPLE_INTERVAL_MS: posInt,
  MONITOR_PROBE_INTERVAL_MS: posInt,
  MONITOR_PROBE_TIMEOUT_MS: posInt,
  MONITOR_RETENTION_RAW_HOURS: posInt,
  MONITOR_RETENTION_1M_DAYS: posInt,
  MONITOR_RETENTION_1H_DAYS: posInt,
  MONITOR_SLA_TARGET_PERCENT: z.coerce.number().min(0).max(100).optional(),
  MONITOR_DEGRADED_RESPONSE_MS: posInt,
  MONITOR_DOWN_AFTER_MS: z.coerce.number().int().min(0).optional(),
});

const HOUR = 3_600_000;

/**
 * Monitor settings from the environment; throws ConfigError naming each bad variable.
 * Pass the result as `settings` to `new Monitor(...)` (rules stay the defaults unless given).
 */
export function monitorSettingsFromEnv(
  env: Record<string, string | undefined> = process.env,
): z.input<typeof monitorSettingsSchema> {
  const e = parseConfig(env, monitorEnvSchema);
  const pick = <T extends object>(o: T) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  return pick({
    sampleIntervalMs: e.MONITOR_SAMPLE_INTERVAL_MS,
    probeIntervalMs: e.MONITOR_PROBE_INTERVAL_MS,
    probeTimeoutMs: e.MONITOR_PROBE_TIMEOUT_MS,
    slaTargetPercent: e.MONITOR_SLA_TARGET_PERCENT,
    retention: pick({
      rawMs: e.MONITOR_RETENTION_RAW_HOURS && e.MONITOR_RETENTION_RAW_HOURS * HOUR,
      minuteMs: e.MONITOR_RETENTION_1M_DAYS && e.MONITOR_RETENTION_1M_DAYS * 24 * HOUR,
      hourMs: e.MONITOR_RETENTION_1H_DAYS && e.MONITOR_RETENTION_1H_DAYS * 24 * HOUR,
    }),
    healthPolicy: pick({ degradedResponseMs: e.MONITOR_DEGRADED_RESPONSE_MS, downAfterMs: e.MONITOR_DOWN_AFTER_MS }),
  });
}

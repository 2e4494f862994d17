import type pg from 'pg';
import { toDomainEvent, type RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';
import type { AlertingEvent } from './domain/alerts.js';
import { alertRulesEventTypes, type AlertRulesEvent } from './domain/alert-rules.js';
import { alertEventTypes, healthEventOf, healthEventTypes, monitorEventOf, silenceEventTypes } from './events.js';
import { MONITORING_DDL, applyAlertingEvent, applyHealthEvent } from './store.js';

/** The checkpoints of the monitor's projections live beside its tables (`monitoring.checkpoints`). */
export const MONITOR_PROJECTIONS_SCHEMA = 'monitoring';

export const monitorProjectionNames = {
  alerts: 'monitor-alerts',
  silences: 'monitor-silences',
  services: 'monitor-services',
  alertRules: 'monitor-alert-rules',
} as const;

/** Where the projection stands (-1 or no row: it has applied nothing yet). */
async function checkpointOf(c: pg.PoolClient, name: string): Promise<number> {
  const r = await c.query<{ position: string }>(
    `select position from ${MONITOR_PROJECTIONS_SCHEMA}.checkpoints where name = $1`,
    [name],
  );
  return r.rows[0] ? Number(r.rows[0].position) : -1;
}

// The probe columns of `services` (last probe, last answer) are written by every probe, not by
// events: a reset keeps them and clears only what the health events set.
async function resetServices(c: pg.PoolClient): Promise<void> {
  await c.query('delete from monitoring.service_intervals');
  await c.query('delete from monitoring.services where last_probe_at is null');
  await c.query(`update monitoring.services set status = 'unknown', reason = null, since = null, failing_since = null`);
}

/**
 * The monitor's read models as projections of its events, for a ProjectionRunner with schema
 * `monitoring`:
 * - `monitor-alerts`: `monitoring.alerts` from `Alert*` events (streams `alert-*`),
 * - `monitor-silences`: `monitoring.silences` from `SilenceAdded` / `SilenceExpired` (`silence-*`),
 * - `monitor-services`: the status columns of `monitoring.services` and `monitoring.service_intervals`
 *   (availability) from `ServiceWentDown` / `ServiceDegraded` / `ServiceRecovered`, the monitor's own
 *   gaps (`ServiceUnmonitored`), services no longer probed (`ServiceRetired`, row removed) and services
 *   listed but not runnable as configured (`ServiceUnconfigured`) (`service-*`),
 * - `monitor-alert-rules`: `monitoring.alert_rules` from `AlertRuleCreated` / `Updated` / `Deleted` (`alertrules-*`).
 * Each has a reset, so `rebuild()` replays it from the start of the log.
 */
export function monitorProjections(): Projection[] {
  const ddl = async (c: pg.PoolClient) => {
    await c.query(MONITORING_DDL);
  };
  return [
    {
      name: monitorProjectionNames.alerts,
      handles: alertEventTypes,
      streamPrefixes: ['alert-'],
      setup: ddl,
      apply: (c, e) => applyAlertingEvent(c, monitorEventOf<AlertingEvent>(e)),
      reset: async (c) => {
        await c.query('delete from monitoring.alerts');
      },
    },
    {
      name: monitorProjectionNames.silences,
      handles: silenceEventTypes,
      streamPrefixes: ['silence-'],
      setup: ddl,
      apply: (c, e) => applyAlertingEvent(c, monitorEventOf<AlertingEvent>(e)),
      reset: async (c) => {
        await c.query('delete from monitoring.silences');
      },
    },
    {
      name: monitorProjectionNames.services,
      handles: healthEventTypes,
      streamPrefixes: ['service-'],
      setup: async (c) => {
        await ddl(c);
        // Before these were projections the rows were written directly (from the same events,
        // which were appended too): the first run replays the log onto cleared intervals, which
        // an insert-only replay would otherwise double.
        if ((await checkpointOf(c, monitorProjectionNames.services)) < 0) await resetServices(c);
      },
      apply: (c, e) => applyHealthEvent(c, healthEventOf(e)),
      reset: resetServices,
    },
    {
      name: monitorProjectionNames.alertRules,
      handles: alertRulesEventTypes,
      streamPrefixes: ['alertrules-'],
      setup: ddl,
      apply: (c, e) => applyAlertRulesEvent(c, e),
      reset: async (c) => {
        await c.query('delete from monitoring.alert_rules');
      },
    },
  ];
}

/** One rule change on `monitoring.alert_rules` (a deleted rule is a row with a null rule: a tombstone). */
async function applyAlertRulesEvent(c: pg.PoolClient, r: RecordedEvent): Promise<void> {
  const e = toDomainEvent<AlertRulesEvent>(r);
  const id = e.type === 'AlertRuleDeleted' ? e.data.id : e.data.rule.id;
  const rule = e.type === 'AlertRuleDeleted' ? null : JSON.stringify(e.data.rule);
  await c.query(
    `insert into monitoring.alert_rules (id, rule, updated_at, updated_by) values ($1, $2, $3, $4)
     on conflict (id) do update set rule = $2, updated_at = $3, updated_by = $4`,
    [id, rule, new Date(r.metadata.timestamp), r.metadata.actor ?? 'unknown'],
  );
}

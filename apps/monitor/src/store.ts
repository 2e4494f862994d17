import pg from 'pg';
import { deleteInBatches, isSchemaManaged, withTransaction, type DeleteBounds } from '@switchyard/platform';
import type { AlertingEvent, AlertingState, AlertInstance, Silence } from './domain/alerts.js';
import type { HealthEvent, ServiceHealth, ProbeOutcome } from './domain/health.js';
import { intervalStart, openedInterval, statusOf, type StatusInterval } from './domain/availability.js';
import type { BucketInput } from './domain/trends.js';
import type { Labels, Severity } from './domain/rules.js';
import type { Sample } from './sampler.js';

/** How long each resolution is kept (ms). */
export interface Retention {
  readonly rawMs: number;
  readonly minuteMs: number;
  readonly hourMs: number;
}
export const defaultRetention: Retention = { rawMs: 86_400_000, minuteMs: 7 * 86_400_000, hourMs: 90 * 86_400_000 };

export type Resolution = '1m' | '1h';

export interface AlertRow {
  readonly id: string; // the fingerprint
  readonly ruleId: string;
  readonly name: string;
  readonly severity: Severity;
  readonly labels: Labels;
  readonly state: 'pending' | 'firing' | 'resolved';
  readonly value: number | null;
  readonly threshold: number | null;
  readonly pendingSince: Date | null;
  readonly firingSince: Date | null;
  readonly resolvedAt: Date | null;
  readonly resolvedHow: 'auto' | 'manual' | null;
  readonly resolvedBy: string | null;
  readonly resolveReason: string | null;
  readonly suppressedBy: string | null;
  readonly updatedAt: Date;
}

export interface ServiceRow {
  readonly service: string;
  readonly kind: string;
  readonly status: ServiceHealth['status'];
  readonly reason: string | null;
  readonly since: Date | null;
  readonly failingSince: Date | null;
  readonly lastProbeAt: Date | null;
  readonly lastOk: boolean | null;
  readonly lastResponseMs: number | null;
  readonly lastError: string | null;
}

const DDL = `
create schema if not exists monitoring;
create table if not exists monitoring.samples (
  metric text not null,
  labels jsonb not null default '{}',
  ts timestamptz not null,
  value double precision not null
);
create index if not exists samples_series_ts on monitoring.samples (metric, labels, ts);
create index if not exists samples_ts on monitoring.samples (ts);
create table if not exists monitoring.rollups (
  resolution text not null check (resolution in ('1m', '1h')),
  metric text not null,
  labels jsonb not null,
  bucket timestamptz not null,
  count bigint not null,
  sum double precision not null,
  min double precision not null,
  max double precision not null,
  p95 double precision,
  primary key (resolution, metric, labels, bucket)
);
create index if not exists rollups_bucket on monitoring.rollups (resolution, bucket);
-- The rollups still to finalise (p95 not computed): the minute's pass reads these, not a day of finished ones.
create index if not exists rollups_unfinalised on monitoring.rollups (resolution, bucket) where p95 is null;
create table if not exists monitoring.alerts (
  fingerprint text primary key,
  rule_id text not null,
  name text not null,
  severity text not null,
  labels jsonb not null,
  state text not null,
  value double precision,
  threshold double precision,
  pending_since timestamptz,
  firing_since timestamptz,
  resolved_at timestamptz,
  resolved_how text,
  resolved_by text,
  resolve_reason text,
  suppressed_by text,
  updated_at timestamptz not null
);
create index if not exists alerts_state on monitoring.alerts (state, severity);
create table if not exists monitoring.silences (
  id text primary key,
  matchers jsonb not null,
  created_by text not null,
  comment text not null,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  expired_at timestamptz,
  expired_by text
);
create table if not exists monitoring.services (
  service text primary key,
  kind text not null default 'unknown',
  status text not null default 'unknown',
  reason text,
  since timestamptz,
  failing_since timestamptz,
  last_probe_at timestamptz,
  last_ok boolean,
  last_response_ms double precision,
  last_error text
);
create table if not exists monitoring.service_intervals (
  id bigserial primary key,
  service text not null,
  status text not null,
  started_at timestamptz not null,
  ended_at timestamptz
);
create index if not exists service_intervals_service on monitoring.service_intervals (service, started_at);
alter table monitoring.service_intervals add column if not exists unmonitored boolean not null default false;
create table if not exists monitoring.alert_rules (
  id text primary key,
  rule jsonb,
  updated_at timestamptz not null,
  updated_by text not null
);
`;
/** The monitoring schema's tables (idempotent DDL): the store's migrate() and the projections' setup run it. */
export const MONITORING_DDL = DDL;

// Each insert batch updates both rollups in the same statement, so rollups never lag the raw
// table. count/sum/min/max merge exactly; p95 does not, so an update clears it and
// `finalizeRollups` computes it from raw rows once the bucket has closed.
const INSERT_SQL = `
with input as (
  select * from unnest($1::text[], $2::jsonb[], $3::timestamptz[], $4::float8[]) as t(metric, labels, ts, value)
), raw as (
  insert into monitoring.samples (metric, labels, ts, value) select metric, labels, ts, value from input
), minute as (
  insert into monitoring.rollups as r (resolution, metric, labels, bucket, count, sum, min, max)
  select '1m', metric, labels, date_trunc('minute', ts), count(*), sum(value), min(value), max(value)
  from input group by metric, labels, date_trunc('minute', ts)
  on conflict (resolution, metric, labels, bucket) do update set
    count = r.count + excluded.count, sum = r.sum + excluded.sum,
    min = least(r.min, excluded.min), max = greatest(r.max, excluded.max), p95 = null
)
insert into monitoring.rollups as r (resolution, metric, labels, bucket, count, sum, min, max)
select '1h', metric, labels, date_trunc('hour', ts), count(*), sum(value), min(value), max(value)
from input group by metric, labels, date_trunc('hour', ts)
on conflict (resolution, metric, labels, bucket) do update set
  count = r.count + excluded.count, sum = r.sum + excluded.sum,
  min = least(r.min, excluded.min), max = greatest(r.max, excluded.max), p95 = null`;

/**
 * The one statement that stores `samples` and folds them into the 1 min and 1 h rollups
 * (undefined for none): any number of samples, several of one series and bucket included.
 */
export function samplesStatement(samples: readonly Sample[]): { text: string; values: unknown[] } | undefined {
  if (samples.length === 0) return undefined;
  return {
    text: INSERT_SQL,
    values: [
      samples.map((s) => s.metric),
      samples.map((s) => JSON.stringify(s.labels)),
      samples.map((s) => new Date(s.ts)),
      samples.map((s) => s.value),
    ],
  };
}

const step = (res: Resolution) => (res === '1m' ? "interval '1 minute'" : "interval '1 hour'");
const d = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms));

/**
 * PostgreSQL storage of the monitor (schema `monitoring`): the time series (raw + 1 min + 1 h
 * rollups, with retention) and the read models of alerts, silences and service health.
 */
export class MonitoringStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Create the schema if missing; an advisory lock keeps two monitors from racing on it. */
  async migrate(): Promise<void> {
    // The monitor's own role may not run DDL: the owner migrated before it started.
    if (isSchemaManaged(this.pool)) return;
    const c = await this.pool.connect();
    try {
      await c.query('select pg_advisory_lock(hashtext($1))', ['switchyard.monitoring.migrate']);
      try {
        await c.query(DDL);
      } finally {
        await c.query('select pg_advisory_unlock(hashtext($1))', ['switchyard.monitoring.migrate']);
      }
    } finally {
      c.release();
    }
  }

  // ---------- time series ----------

  /** Store samples and fold them into the 1 min and 1 h rollups (one statement). */
  async insertSamples(samples: readonly Sample[]): Promise<void> {
    const statement = samplesStatement(samples);
    if (statement) await this.pool.query(statement.text, [...statement.values]);
  }

  /**
   * Compute p95 for closed buckets (ended before `now - graceMs`) whose raw rows are all still
   * kept; buckets older than the raw retention stay without p95 ("where computable").
   */
  async finalizeRollups(now: number, rawRetentionMs: number, graceMs = 5_000): Promise<number> {
    let updated = 0;
    for (const res of ['1m', '1h'] as const) {
      const r = await this.pool.query(
        `update monitoring.rollups r set p95 = q.p95 from (
           select r2.metric, r2.labels, r2.bucket,
                  percentile_cont(0.95) within group (order by s.value) as p95
           from monitoring.rollups r2
           join monitoring.samples s on s.metric = r2.metric and s.labels = r2.labels
             and s.ts >= r2.bucket and s.ts < r2.bucket + ${step(res)}
           where r2.resolution = $1 and r2.p95 is null
             and r2.bucket + ${step(res)} <= $2 and r2.bucket >= $3
           group by r2.metric, r2.labels, r2.bucket
         ) q
         where r.resolution = $1 and r.metric = q.metric and r.labels = q.labels and r.bucket = q.bucket`,
        [res, new Date(now - graceMs), new Date(now - rawRetentionMs)],
      );
      updated += r.rowCount ?? 0;
    }
    return updated;
  }

  /**
   * Delete rows older than the retention of their resolution, in statements of at most
   * `batch` rows and `maxRows` per table a call (the next call goes on): after a monitor
   * outage of a day the backlog is millions of rows, and one statement deleting them all held
   * its locks and wrote its WAL in one go. Returns rows deleted per table.
   */
  async applyRetention(
    now: number,
    retention: Retention,
    bounds: DeleteBounds = {},
  ): Promise<{ raw: number; minute: number; hour: number }> {
    const inBatches = (select: string, before: Date, table: string): Promise<number> =>
      deleteInBatches(this.pool, table, select, [before], bounds);
    const raw = await inBatches(
      'select ctid from monitoring.samples where ts < $1',
      new Date(now - retention.rawMs),
      'monitoring.samples',
    );
    const minute = await inBatches(
      `select ctid from monitoring.rollups where resolution = '1m' and bucket < $1`,
      new Date(now - retention.minuteMs),
      'monitoring.rollups',
    );
    const hour = await inBatches(
      `select ctid from monitoring.rollups where resolution = '1h' and bucket < $1`,
      new Date(now - retention.hourMs),
      'monitoring.rollups',
    );
    return { raw, minute, hour };
  }

  async rawSamples(metric: string, from: number, to: number, labels?: Labels): Promise<Sample[]> {
    const r = await this.pool.query(
      `select metric, labels, ts, value from monitoring.samples
       where metric = $1 and ts >= $2 and ts < $3 and ($4::jsonb is null or labels @> $4::jsonb) order by ts`,
      [metric, new Date(from), new Date(to), labels ? JSON.stringify(labels) : null],
    );
    return r.rows.map((x) => ({ metric: x.metric, labels: x.labels, ts: (x.ts as Date).getTime(), value: x.value }));
  }

  /** Rollup buckets of a metric from `from`, grouped by series; `labels` narrows by containment. */
  async rollups(
    metric: string,
    resolution: Resolution,
    from: number,
    labels?: Labels,
  ): Promise<{ labels: Labels; buckets: BucketInput[] }[]> {
    const r = await this.pool.query(
      `select labels, bucket, count, sum, min, max, p95 from monitoring.rollups
       where resolution = $1 and metric = $2 and bucket >= $3 and ($4::jsonb is null or labels @> $4::jsonb)
       order by labels, bucket`,
      [resolution, metric, new Date(from), labels ? JSON.stringify(labels) : null],
    );
    const series = new Map<string, { labels: Labels; buckets: BucketInput[] }>();
    for (const x of r.rows) {
      const key = JSON.stringify(x.labels);
      let s = series.get(key);
      if (!s) series.set(key, (s = { labels: x.labels, buckets: [] }));
      s.buckets.push({
        start: (x.bucket as Date).getTime(),
        count: Number(x.count),
        sum: x.sum,
        min: x.min,
        max: x.max,
        p95: x.p95,
      });
    }
    return [...series.values()];
  }

  /** Latest sample of each series of the given metrics within `maxAgeMs` of `now`. */
  async latest(metrics: readonly string[], now: number, maxAgeMs: number): Promise<Sample[]> {
    const r = await this.pool.query(
      `select distinct on (metric, labels) metric, labels, ts, value from monitoring.samples
       where metric = any($1) and ts >= $2 order by metric, labels, ts desc`,
      [metrics, new Date(now - maxAgeMs)],
    );
    return r.rows.map((x) => ({ metric: x.metric, labels: x.labels, ts: (x.ts as Date).getTime(), value: x.value }));
  }

  // ---------- alert and silence read models ----------

  /**
   * Apply alerting events to the alerts/silences tables, in order, in one transaction: the
   * projections' SQL, for a read model written by hand (tests, tools). The Monitor itself only
   * appends events; its projections (projections.ts) apply them.
   */
  async applyAlertingEvents(events: readonly AlertingEvent[]): Promise<void> {
    if (events.length === 0) return;
    await withTransaction(this.pool, async (c) => {
      for (const e of events) await applyAlertingEvent(c, e);
    });
  }

  /** Rebuild the decider state from the read model (on start). */
  async loadAlertingState(): Promise<AlertingState> {
    const alerts: Record<string, AlertInstance> = {};
    for (const r of await this.listAlerts({})) {
      const base = { fingerprint: r.id, ruleId: r.ruleId, name: r.name, severity: r.severity, labels: r.labels };
      if (r.state === 'pending')
        alerts[r.id] = {
          ...base,
          status: 'pending',
          pendingSince: r.pendingSince!.getTime(),
          suppressedBy: r.suppressedBy,
        };
      else if (r.state === 'firing')
        alerts[r.id] = {
          ...base,
          status: 'firing',
          pendingSince: r.pendingSince!.getTime(),
          firingSince: r.firingSince!.getTime(),
          suppressedBy: r.suppressedBy,
        };
      else
        alerts[r.id] = {
          ...base,
          status: 'resolved',
          resolvedAt: r.resolvedAt!.getTime(),
          manual: r.resolvedHow === 'manual',
        };
    }
    const silences: Record<string, Silence> = {};
    for (const s of await this.listSilences(true)) silences[s.id] = s;
    return { alerts, silences };
  }

  async listAlerts(filter: {
    state?: AlertRow['state'] | undefined;
    severity?: Severity | undefined;
    id?: string;
  }): Promise<AlertRow[]> {
    const r = await this.pool.query(
      `select * from monitoring.alerts where ($1::text is null or state = $1) and ($2::text is null or severity = $2)
         and ($3::text is null or fingerprint = $3)
       order by case state when 'firing' then 0 when 'pending' then 1 else 2 end, updated_at desc`,
      [filter.state ?? null, filter.severity ?? null, filter.id ?? null],
    );
    return r.rows.map((x) => ({
      id: x.fingerprint,
      ruleId: x.rule_id,
      name: x.name,
      severity: x.severity,
      labels: x.labels,
      state: x.state,
      value: x.value,
      threshold: x.threshold,
      pendingSince: x.pending_since,
      firingSince: x.firing_since,
      resolvedAt: x.resolved_at,
      resolvedHow: x.resolved_how,
      resolvedBy: x.resolved_by,
      resolveReason: x.resolve_reason,
      suppressedBy: x.suppressed_by,
      updatedAt: x.updated_at,
    }));
  }

  async listSilences(activeOnly: boolean): Promise<Silence[]> {
    const r = await this.pool.query(
      `select * from monitoring.silences where ($1::boolean = false or expired_at is null) order by starts_at`,
      [activeOnly],
    );
    return r.rows.map((x) => ({
      id: x.id,
      matchers: x.matchers,
      createdBy: x.created_by,
      comment: x.comment,
      startsAt: (x.starts_at as Date).getTime(),
      endsAt: (x.ends_at as Date).getTime(),
    }));
  }

  // ---------- service health read models ----------

  /** Record the latest probe outcome of a service (not an event: it changes every probe). */
  async recordProbe(service: string, kind: string, result: ProbeOutcome, at: number): Promise<void> {
    await this.pool.query(
      `insert into monitoring.services (service, kind, last_probe_at, last_ok, last_response_ms, last_error) values ($1,$2,$3,$4,$5,$6)
       on conflict (service) do update set kind = $2, last_probe_at = $3, last_ok = $4, last_response_ms = $5, last_error = $6`,
      [service, kind, new Date(at), result.ok, result.responseMs, result.error ?? null],
    );
  }

  /** Apply health events (the monitor-services projection's SQL; see applyAlertingEvents). */
  async applyHealthEvents(events: readonly HealthEvent[], kind: string): Promise<void> {
    if (events.length === 0) return;
    await withTransaction(this.pool, async (c) => {
      for (const e of events)
        await applyHealthEvent(c, e.data.kind === undefined ? ({ ...e, data: { ...e.data, kind } } as HealthEvent) : e);
    });
  }

  async listServices(): Promise<ServiceRow[]> {
    const r = await this.pool.query('select * from monitoring.services order by service');
    return r.rows.map((x) => ({
      service: x.service,
      kind: x.kind,
      status: x.status,
      reason: x.reason,
      since: x.since,
      failingSince: x.failing_since,
      lastProbeAt: x.last_probe_at,
      lastOk: x.last_ok,
      lastResponseMs: x.last_response_ms,
      lastError: x.last_error,
    }));
  }

  async loadHealthStates(): Promise<Map<string, ServiceHealth>> {
    const out = new Map<string, ServiceHealth>();
    for (const s of await this.listServices()) {
      const since = s.since?.getTime() ?? 0;
      if (s.status === 'up') out.set(s.service, { status: 'up', since });
      else if (s.status === 'down')
        out.set(s.service, { status: 'down', since, failingSince: s.failingSince?.getTime() ?? since });
      else if (s.status === 'degraded')
        out.set(s.service, {
          status: 'degraded',
          since,
          reason: s.reason === 'slow' ? 'slow' : 'failing',
          failingSince: s.failingSince?.getTime() ?? null,
        });
      else if (s.status === 'unconfigured')
        out.set(s.service, { status: 'unconfigured', since, reason: s.reason ?? '' });
    }
    return out;
  }

  /** Status intervals of a service that overlap [from, ∞). */
  async serviceIntervals(service: string, from: number): Promise<StatusInterval[]> {
    const r = await this.pool.query(
      `select status, started_at, ended_at, unmonitored from monitoring.service_intervals
       where service = $1 and (ended_at is null or ended_at > $2) order by started_at`,
      [service, new Date(from)],
    );
    return r.rows.map((x) => ({
      status: x.status,
      start: (x.started_at as Date).getTime(),
      end: x.ended_at ? (x.ended_at as Date).getTime() : null,
      ...(x.unmonitored ? { unmonitored: true } : {}),
    }));
  }
}

/** Anything with `query`: a pool, or the projection runner's client inside its transaction. */
export type Queryable = Pick<pg.PoolClient, 'query'>;

/** One alerting event on the alerts/silences read models (the monitor-alerts / monitor-silences projections). */
export async function applyAlertingEvent(c: Queryable, e: AlertingEvent): Promise<void> {
  const at = new Date(e.metadata.at);
  switch (e.type) {
    case 'AlertPending':
      await c.query(
        `insert into monitoring.alerts (fingerprint, rule_id, name, severity, labels, state, value, threshold, pending_since,
           firing_since, resolved_at, resolved_how, resolved_by, resolve_reason, suppressed_by, updated_at)
         values ($1,$2,$3,$4,$5,'pending',$6,$7,$8,null,null,null,null,null,null,$8)
         on conflict (fingerprint) do update set rule_id = $2, name = $3, severity = $4, labels = $5, state = 'pending',
           value = $6, threshold = $7, pending_since = $8, firing_since = null, resolved_at = null, resolved_how = null,
           resolved_by = null, resolve_reason = null, suppressed_by = null, updated_at = $8`,
        [
          e.data.fingerprint,
          e.data.ruleId,
          e.data.name,
          e.data.severity,
          JSON.stringify(e.data.labels),
          e.data.value,
          e.data.threshold,
          at,
        ],
      );
      break;
    case 'AlertFiring':
      await c.query(
        `update monitoring.alerts set state = 'firing', value = $2, firing_since = $3, suppressed_by = $4, updated_at = $3 where fingerprint = $1`,
        [e.data.fingerprint, e.data.value, at, e.data.suppressedBy],
      );
      break;
    case 'AlertPendingCleared':
      await c.query(`delete from monitoring.alerts where fingerprint = $1 and state = 'pending'`, [e.data.fingerprint]);
      break;
    case 'AlertResolved':
      await c.query(
        `update monitoring.alerts set state = 'resolved', value = coalesce($2, value), resolved_at = $3, resolved_how = $4,
           resolved_by = $5, resolve_reason = $6, updated_at = $3 where fingerprint = $1`,
        [e.data.fingerprint, e.data.value ?? null, at, e.data.how, e.data.actor, e.data.reason],
      );
      break;
    case 'AlertSilenced':
      await c.query(`update monitoring.alerts set suppressed_by = $2, updated_at = $3 where fingerprint = $1`, [
        e.data.fingerprint,
        e.data.silenceId,
        at,
      ]);
      break;
    case 'AlertUnsilenced':
      await c.query(`update monitoring.alerts set suppressed_by = null, updated_at = $2 where fingerprint = $1`, [
        e.data.fingerprint,
        at,
      ]);
      break;
    case 'SilenceAdded': {
      const s = e.data.silence;
      await c.query(
        `insert into monitoring.silences (id, matchers, created_by, comment, starts_at, ends_at) values ($1,$2,$3,$4,$5,$6)
         on conflict (id) do nothing`,
        [s.id, JSON.stringify(s.matchers), s.createdBy, s.comment, d(s.startsAt), d(s.endsAt)],
      );
      break;
    }
    case 'SilenceExpired':
      await c.query(`update monitoring.silences set expired_at = $2, expired_by = $3 where id = $1`, [
        e.data.silenceId,
        at,
        e.data.actor,
      ]);
      break;
    default: {
      const never: never = e;
      throw new Error(`unhandled event ${(never as { type: string }).type}`);
    }
  }
}

/**
 * One health event on the services read model: its status columns (the probe columns are the
 * probes' own, see recordProbe) and the status intervals availability is computed from.
 */
export async function applyHealthEvent(c: Queryable, e: HealthEvent): Promise<void> {
  const at = new Date(e.metadata.at);
  // The intervals as statusIntervals folds them: a failing run's interval starts at its first
  // failed probe, replacing what began since (its own degradation) and ending what ran past it; a
  // retirement also takes away what began at its start and opens nothing.
  const start = new Date(intervalStart(e));
  await c.query(
    `delete from monitoring.service_intervals where service = $1 and (started_at > $2 or ($3 and started_at = $2))`,
    [e.data.service, start, e.type === 'ServiceRetired'],
  );
  await c.query(
    `update monitoring.service_intervals set ended_at = $2 where service = $1 and (ended_at is null or ended_at > $2)`,
    [e.data.service, start],
  );
  if (e.type === 'ServiceRetired') {
    // No longer probed: it leaves the report, the status and the availability listing (its
    // intervals stay, so its history can still be asked for by name).
    await c.query('delete from monitoring.services where service = $1', [e.data.service]);
    return;
  }
  const status = statusOf(e);
  const reason =
    e.type === 'ServiceDegraded' || e.type === 'ServiceUnconfigured'
      ? e.data.reason
      : e.type === 'ServiceUnmonitored'
        ? 'unmonitored'
        : null;
  const failingSince = e.type === 'ServiceWentDown' || e.type === 'ServiceDegraded' ? d(e.data.failingSince) : null;
  await c.query(
    `insert into monitoring.services (service, kind, status, reason, since, failing_since) values ($1, coalesce($2, 'unknown'), $3, $4, $5, $6)
     on conflict (service) do update set kind = coalesce($2, monitoring.services.kind), status = $3, reason = $4, since = $5, failing_since = $6`,
    [e.data.service, e.data.kind ?? null, status, reason, at, failingSince],
  );
  const opened = openedInterval(e);
  if (opened)
    await c.query(
      `insert into monitoring.service_intervals (service, status, started_at, unmonitored) values ($1,$2,$3,$4)`,
      [e.data.service, opened.status, start, opened.unmonitored],
    );
}

/**
 * The monitor's read models are projections of its events: a Monitor on a real PostgreSQL event
 * store probes a real HTTP server that goes down and recovers, alerts fire and resolve (by
 * themselves and by hand), silences come and go, rules are created, changed and deleted. Then the
 * read models and their checkpoints are emptied, rebuilt from the log, and every row is the same;
 * a Monitor started on the rebuilt tables has the same decider state.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { createLogger } from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import { availabilityReport } from './domain/availability.js';
import { metricNames, type AlertRule } from './domain/rules.js';
import { Monitor, type MonitorEvent } from './monitor.js';
import { httpProbe } from './probes.js';
import { monitorProjectionNames } from './projections.js';
import { main as rebuildMain, rebuildMonitorReadModels } from './rebuild.js';
import { RuleManager } from './wiring/rule-manager.js';
import { RuleOverrideStore } from './wiring/rules.js';

const logger = createLogger('monitor-rebuild-test', process.env.LOG_LEVEL ?? 'silent');

const unavailable: AlertRule = {
  id: 'service_unavailable',
  name: 'Service unavailable',
  metric: metricNames.serviceUp,
  match: {},
  comparator: '<',
  threshold: 1,
  for_ms: 0,
  severity: 'critical',
  labels: {},
};
const queueDeep: AlertRule = {
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
const custom: AlertRule = {
  id: 'jobs_stuck',
  name: 'Jobs stuck',
  metric: 'jobs_stuck',
  match: {},
  comparator: '>',
  threshold: 0,
  for_ms: 60_000,
  severity: 'info',
  labels: {},
};

// Every column the events decide; the probe columns of `services` are telemetry written by each probe.
const SNAPSHOT = {
  alerts: 'select * from monitoring.alerts order by fingerprint',
  silences: 'select * from monitoring.silences order by id',
  services: 'select service, kind, status, reason, since, failing_since from monitoring.services order by service',
  intervals:
    'select service, status, started_at, ended_at from monitoring.service_intervals order by service, started_at, id',
  alertRules: 'select * from monitoring.alert_rules order by id',
} as const;

describe("the monitor's read models rebuilt from its events", () => {
  let url: string;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let server: http.Server;
  let mode: 'ok' | 'fail' = 'ok';
  let monitor: Monitor;
  let rules: RuleManager;
  const published: MonitorEvent[] = [];
  const layers = [{ source: 'default' as const, rules: [unavailable, queueDeep] }];

  const snapshot = async () => {
    const out: Record<string, unknown[]> = {};
    for (const [k, sql] of Object.entries(SNAPSHOT)) out[k] = (await pool.query(sql)).rows;
    return out;
  };
  const makeMonitor = async () => {
    rules = new RuleManager(new RuleOverrideStore(pool, store, 'rebuildspec'), layers, logger);
    const inForce = await rules.load();
    return new Monitor({
      pool,
      eventStore: store,
      logger,
      publish: (events) => {
        published.push(...events);
      },
      probes: [httpProbe('api', `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`)],
      settings: {
        sampleIntervalMs: 3_600_000,
        maintenanceIntervalMs: 3_600_000,
        probeIntervalMs: 100,
        probeTimeoutMs: 2_000,
        healthPolicy: { degradedResponseMs: 2_000, downAfterMs: 300 },
        rules: inForce,
      },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
  };

  before(async () => {
    url = await freshDatabase('monitor_rebuild');
    pool = new pg.Pool({ connectionString: url, max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    server = http.createServer((_req, res) =>
      res.writeHead(mode === 'ok' ? 200 : 503, { 'content-type': 'application/json' }).end('{"status":"ok"}'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    monitor = await makeMonitor();
    await monitor.start();
  });

  after(async () => {
    await monitor?.stop();
    server?.closeAllConnections();
    await new Promise<void>((r) => server?.close(() => r()));
    await store?.close();
    await pool?.end();
  });

  it('downs, recoveries, alerts, silences and rule changes: the rows after a rebuild equal the rows before', async () => {
    const alertOf = async (ruleId: string, state?: 'firing' | 'resolved') =>
      (await monitor.listAlerts(state ? { state } : {})).find((a) => a.ruleId === ruleId);
    // 1. The service is up, goes down (the unavailability alert fires), recovers (it resolves), twice.
    await until(
      'api up',
      async () => (await monitor.store.listServices()).find((s) => s.service === 'api' && s.status === 'up'),
      10_000,
    );
    for (let round = 0; round < 2; round++) {
      mode = 'fail';
      await until(
        'api down',
        async () => (await monitor.store.listServices()).find((s) => s.service === 'api' && s.status === 'down'),
        10_000,
      );
      await until('unavailable firing', () => alertOf(unavailable.id, 'firing'), 10_000);
      mode = 'ok';
      await until(
        'api up again',
        async () => (await monitor.store.listServices()).find((s) => s.service === 'api' && s.status === 'up'),
        10_000,
      );
      await until('unavailable resolved', () => alertOf(unavailable.id, 'resolved'), 10_000);
    }
    // 2. An alert resolved by hand; a silence that suppresses another, then expires.
    const t0 = Date.now();
    await monitor.ingest([{ metric: 'queue_depth', labels: { queue: 'a' }, ts: t0, value: 500 }]);
    const a = await alertOf(queueDeep.id, 'firing');
    assert.ok(a);
    const resolved = await monitor.resolveAlert(a.id, 'ann', 'drained by hand');
    assert.equal(resolved.resolvedHow, 'manual');
    const silence = await monitor.addSilence({
      matchers: [{ name: 'queue', value: 'b' }],
      createdBy: 'ann',
      comment: 'migration',
      startsAt: t0,
      endsAt: t0 + 3_600_000,
    });
    await monitor.ingest([{ metric: 'queue_depth', labels: { queue: 'b' }, ts: t0 + 10, value: 900 }]);
    assert.equal(
      (await monitor.listAlerts({ state: 'firing' })).find((x) => x.labels.queue === 'b')?.suppressedBy,
      silence.id,
    );
    await monitor.expireSilence(silence.id, 'ann');
    await monitor.addSilence({
      matchers: [{ name: 'team', value: 'core' }],
      createdBy: 'bob',
      comment: 'still active',
      endsAt: t0 + 7_200_000,
    });
    // 3. Rules: one created then changed, a default deleted (its firing alert is resolved with it).
    await rules.put(monitor, [custom], 'admin');
    await rules.put(monitor, [{ ...custom, threshold: 3 }], 'admin');
    assert.equal(await rules.delete(monitor, queueDeep.id, 'admin'), 1);
    // What a reader sees right after each change is already there: the answers waited for the projections.
    assert.deepEqual(
      (await pool.query('select id, rule is null as deleted, updated_by from monitoring.alert_rules order by id')).rows,
      [
        { id: custom.id, deleted: false, updated_by: 'admin' },
        { id: queueDeep.id, deleted: true, updated_by: 'admin' },
      ],
    );
    await monitor.stop();

    const types = new Set(published.map((e) => e.type));
    for (const t of [
      'ServiceRecovered',
      'ServiceDegraded',
      'ServiceWentDown',
      'AlertFiring',
      'AlertResolved',
      'AlertSilenced',
      'AlertUnsilenced',
      'SilenceAdded',
      'SilenceExpired',
    ]) {
      assert.ok(types.has(t as MonitorEvent['type']), `${t} happened`);
    }
    const beforeRows = await snapshot();
    const now = Date.now();
    const intervalsOf = async () => monitor.store.serviceIntervals('api', now - 3_600_000);
    const availabilityBefore = availabilityReport(await intervalsOf(), { now, slaTargetPercent: 99 });
    const stateBefore = monitor.alertingState;
    assert.ok(beforeRows.intervals!.length >= 5, `intervals ${beforeRows.intervals!.length}`);
    assert.ok(
      beforeRows.alerts!.length >= 3 && beforeRows.silences!.length === 2 && beforeRows.alertRules!.length === 2,
    );

    // 4. Empty the read models and their checkpoints, rebuild from the log.
    await pool.query(
      'truncate monitoring.alerts, monitoring.silences, monitoring.services, monitoring.service_intervals, monitoring.alert_rules',
    );
    await pool.query('delete from monitoring.checkpoints where name = any($1)', [
      Object.values(monitorProjectionNames),
    ]);
    assert.deepEqual(
      Object.values(await snapshot()).map((rows) => rows.length),
      [0, 0, 0, 0, 0],
    );
    const status = await rebuildMonitorReadModels({ store, pool, logger, timeoutMs: 30_000 });
    assert.deepEqual(
      status.map((s) => s.lag),
      [0, 0, 0, 0],
    );

    assert.deepEqual(await snapshot(), beforeRows);
    assert.deepEqual(availabilityReport(await intervalsOf(), { now, slaTargetPercent: 99 }), availabilityBefore);
    // 5. A Monitor started on the rebuilt tables holds the same decider state.
    monitor = await makeMonitor();
    await monitor.init();
    assert.deepEqual(monitor.alertingState, stateBefore);
  });

  it('the command line rebuilds the same rows (node apps/monitor/dist/rebuild.js)', async (t) => {
    const before = await snapshot();
    await pool.query('truncate monitoring.alerts, monitoring.service_intervals');
    const saved = { DATABASE_URL: process.env.DATABASE_URL, LOG_LEVEL: process.env.LOG_LEVEL };
    process.env.DATABASE_URL = url;
    process.env.LOG_LEVEL = 'silent';
    let out = '';
    try {
      assert.equal(await rebuildMain(['--only', 'monitor-alerts,monitor-services'], (s) => void (out += s)), 0);
    } finally {
      for (const [k, v] of Object.entries(saved))
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
    t.diagnostic(out.trim().replace(/\n/g, ' | '));
    assert.match(out, /rebuilt 2 monitor read models/);
    assert.deepEqual(await snapshot(), before);
    await assert.rejects(
      rebuildMonitorReadModels({ store, pool, names: ['nope'] }),
      /no monitor projection named nope/,
    );
  });
});

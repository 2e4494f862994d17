/**
 * A time the monitor did not run is no evidence of `up`, and a service nothing probes any more
 * leaves the report (real PostgreSQL event store, real HTTP servers). A first Monitor probes a
 * service of its own process (`api`), one outside it (`ext`) and two agent instances, one up and
 * one down; it stops, nothing runs for GAP ms, a second Monitor starts without the agent
 * instances. Then: `api` was down from its last probe to its first good one, `ext` unknown for
 * that time (out of the denominator), both `up since` the second run; the agent instances are
 * retired, so they leave the report and the overall verdict, and their availability stops at
 * their last probe. A rebuild from the log gives the same rows and figures.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { createLogger } from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import { Monitor, type MonitorEvent } from './monitor.js';
import { functionProbe, httpProbe, type Probe } from './probes.js';
import { rebuildMonitorReadModels } from './rebuild.js';
import { healthReport } from './wiring/service.js';

const logger = createLogger('monitor-gaps-test', process.env.LOG_LEVEL ?? 'silent');
const GAP = 3_000;
const INTERVAL = 100;

describe('a monitor restart: the gap is not up time, instances no longer probed leave', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let server: http.Server;
  let monitor: Monitor | undefined;
  const published: MonitorEvent[] = [];

  const url = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  const makeMonitor = (probes: Probe[]) =>
    new Monitor({
      pool,
      eventStore: store,
      logger,
      publish: (events) => {
        published.push(...events);
      },
      probes,
      settings: {
        sampleIntervalMs: 3_600_000,
        maintenanceIntervalMs: 3_600_000,
        probeIntervalMs: INTERVAL,
        probeTimeoutMs: 1_000,
        healthPolicy: { degradedResponseMs: 1_000, downAfterMs: 200 },
        colocatedServices: ['api'],
        retireUnprobedAfterMs: 1_500,
        rules: [],
      },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
  const row = async (service: string) => (await monitor!.store.listServices()).find((s) => s.service === service);

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_gaps'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    server = http.createServer((_req, res) => res.writeHead(200).end('{"status":"ok"}'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    await monitor?.stop();
    server?.closeAllConnections();
    await new Promise<void>((r) => server?.close(() => r()));
    await store?.close();
    await pool?.end();
  });

  it('counts the gap as down (own process) or unknown (outside), and retires what is no longer probed', async () => {
    // 1. First run: everything probed; the dead agent instance is down when the run ends.
    monitor = makeMonitor([
      httpProbe('api', url()),
      httpProbe('ext', url()),
      functionProbe('agent:a:one', 'agent', async () => undefined),
      functionProbe('agent:a:dead', 'agent', async () => {
        throw new Error('no responders');
      }),
    ]);
    await monitor.start();
    await until('first run verdicts', async () => {
      const s = await monitor!.store.listServices();
      const st = Object.fromEntries(s.map((x) => [x.service, x.status]));
      return st.api === 'up' && st.ext === 'up' && st['agent:a:one'] === 'up' && st['agent:a:dead'] === 'down';
    });
    assert.equal((await healthReport(monitor)).status, 'degraded', 'a down agent instance degrades the system');
    const firstUp = (service: string) =>
      published.find((e) => e.type === 'ServiceRecovered' && e.data.service === service)!.metadata.at;
    const apiFirstUp = firstUp('api');
    const oneFirstUp = firstUp('agent:a:one');
    await monitor.stop();
    const lastProbe = Object.fromEntries(
      (await monitor.store.listServices()).map((s) => [s.service, s.lastProbeAt!.getTime()]),
    );

    // 2. Nothing runs for GAP ms; the second run does not probe the agent instances.
    await new Promise((r) => setTimeout(r, GAP));
    const restartAt = Date.now();
    monitor = makeMonitor([httpProbe('api', url()), httpProbe('ext', url())]);
    await monitor.start();
    const recovered = (service: string) =>
      published.find((e) => e.type === 'ServiceRecovered' && e.data.service === service && e.metadata.at >= restartAt);
    await until('both up again', () => recovered('api') && recovered('ext'));

    const gaps = published.filter((e) => e.type === 'ServiceUnmonitored');
    assert.deepEqual(gaps.map((e) => [e.data.service, e.data.previous, e.data.countsAs, e.data.from]).sort(), [
      ['agent:a:dead', 'down', 'unknown', lastProbe['agent:a:dead']],
      ['agent:a:one', 'up', 'unknown', lastProbe['agent:a:one']],
      ['api', 'up', 'down', lastProbe.api],
      ['ext', 'up', 'unknown', lastProbe.ext],
    ]);
    // `up since` restarts with the first good probe of the second run.
    assert.equal((await row('api'))!.since!.getTime(), recovered('api')!.metadata.at);
    assert.ok((await row('api'))!.since!.getTime() >= restartAt);

    // 3. The figures: api down from its last probe to its first good one, ext unknown for it.
    const now = Date.now();
    const api = (await monitor.getAvailability('api', { now })).windows['1h'];
    const apiGap = recovered('api')!.metadata.at - lastProbe.api!;
    assert.ok(apiGap >= GAP, `api gap ${apiGap} ms`);
    assert.equal(api.downMs, apiGap);
    assert.equal(api.unmonitoredMs, apiGap);
    assert.equal(api.unknownMs, 0);
    assert.equal(api.observedMs, now - apiFirstUp);
    assert.ok(Math.abs(api.uptimePercent! - ((now - apiFirstUp - apiGap) / (now - apiFirstUp)) * 100) < 1e-9);
    assert.equal(api.slaMet, false);
    assert.deepEqual(api.incidents, [{ start: lastProbe.api, end: recovered('api')!.metadata.at, durationMs: apiGap }]);
    const ext = (await monitor.getAvailability('ext', { now })).windows['1h'];
    const extGap = recovered('ext')!.metadata.at - lastProbe.ext!;
    assert.equal(ext.downMs, 0);
    assert.equal(ext.unknownMs, extGap);
    assert.equal(ext.unmonitoredMs, extGap);
    assert.equal(ext.observedMs, now - firstUp('ext') - extGap);
    assert.equal(ext.uptimePercent, 100);

    // 4. The agent instances nothing probes are retired after retireUnprobedAfterMs: out of the
    //    report (the dead one no longer degrades it), their history ending at their last probe.
    await until(
      'agent instances retired',
      async () => !(await row('agent:a:one')) && !(await row('agent:a:dead')),
      10_000,
    );
    assert.deepEqual(
      published
        .filter((e) => e.type === 'ServiceRetired')
        .map((e) => e.data.service)
        .sort(),
      ['agent:a:dead', 'agent:a:one'],
    );
    const report = await healthReport(monitor);
    assert.deepEqual(report.services.map((s) => s.service).sort(), ['api', 'ext']);
    assert.equal(report.status, 'healthy', report.reasons.join('; '));
    const one = async (at: number) => (await monitor!.getAvailability('agent:a:one', { now: at })).windows['1h'];
    const oneNow = await one(Date.now());
    assert.equal(oneNow.observedMs, lastProbe['agent:a:one']! - oneFirstUp);
    assert.equal(oneNow.unmonitoredMs, 0);
    assert.equal((await one(Date.now() + 60_000)).observedMs, oneNow.observedMs, 'stops accruing');

    // 5. In-run: an instance discovery no longer finds is removed and retired at once.
    let pinged = 0;
    monitor.addProbe(
      functionProbe('agent:a:two', 'agent', async () => {
        pinged++;
      }),
    );
    await until('agent:a:two up', async () => (await row('agent:a:two'))?.status === 'up');
    // A probe added again for the same service (a restarted gateway's) replaces it: one loop, not two.
    let replaced = 0;
    monitor.addProbe(
      functionProbe('agent:a:two', 'agent', async () => {
        replaced++;
      }),
    );
    await until('the new probe to run', async () => replaced > 0);
    const oldProbesThen = pinged;
    await new Promise((r) => setTimeout(r, 5 * INTERVAL));
    assert.ok(pinged <= oldProbesThen + 1, `the replaced probe still runs (${pinged - oldProbesThen} more)`);
    await monitor.removeProbe('agent:a:two', 'not registered');
    assert.equal(await row('agent:a:two'), undefined);
    const probesThen = replaced;
    await new Promise((r) => setTimeout(r, 5 * INTERVAL));
    assert.equal(replaced, probesThen, 'no longer probed');
    assert.equal(await row('agent:a:two'), undefined, 'a late answer does not bring it back');
    // Each retired once, however many passes of the unprobed services ran since.
    assert.deepEqual(
      published
        .filter((e) => e.type === 'ServiceRetired')
        .map((e) => e.data.service)
        .sort(),
      ['agent:a:dead', 'agent:a:one', 'agent:a:two'],
    );
    await monitor.stop();

    // 6. Rebuilt from the log: the same rows and the same figures.
    const snap = async () => ({
      services: (
        await pool.query(
          'select service, kind, status, reason, since, failing_since from monitoring.services order by service',
        )
      ).rows,
      intervals: (
        await pool.query(
          'select service, status, started_at, ended_at, unmonitored from monitoring.service_intervals order by service, started_at, id',
        )
      ).rows,
    });
    const beforeRows = await snap();
    const at = Date.now();
    const figures = async () =>
      Promise.all(['api', 'ext', 'agent:a:one'].map((s) => monitor!.getAvailability(s, { now: at })));
    const figuresBefore = await figures();
    await pool.query('truncate monitoring.services, monitoring.service_intervals');
    await pool.query(`delete from monitoring.checkpoints where name = 'monitor-services'`);
    await rebuildMonitorReadModels({ store, pool, logger, names: ['monitor-services'], timeoutMs: 30_000 });
    assert.deepEqual(await snap(), beforeRows);
    assert.deepEqual(await figures(), figuresBefore);
  });
});

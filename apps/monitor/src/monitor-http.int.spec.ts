import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { freshDatabase } from '@switchyard/testing';
import { freePort } from '@switchyard/platform';
import { Monitor, type MonitorEvent } from './monitor.js';
import { httpProbe } from './probes.js';
import { metricNames } from './domain/rules.js';

async function waitFor<T>(what: string, pred: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = pred();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function startServer(port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/health' ? 200 : 404, { 'content-type': 'application/json' }).end('{"status":"ok"}');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
function stopServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('HTTP probe: a service goes down, alerts, recovers (real HTTP server, real PostgreSQL)', () => {
  let monitor: Monitor;
  let server: http.Server;
  let port: number;
  const published: MonitorEvent[] = [];
  const find = (type: MonitorEvent['type'], after = 0) =>
    published.find((e) => e.type === type && e.metadata.at >= after);

  before(async () => {
    port = await freePort();
    server = await startServer(port);
    monitor = new Monitor({
      databaseUrl: await freshDatabase('monitor_http'),
      publish: (events) => {
        published.push(...events);
      },
      probes: [httpProbe('api', `http://127.0.0.1:${port}/health`)],
      settings: {
        sampleIntervalMs: 3_600_000, // only probes matter here
        probeIntervalMs: 100,
        probeTimeoutMs: 2_000,
        healthPolicy: { degradedResponseMs: 2_000, downAfterMs: 400 },
        rules: [
          {
            id: 'service_unavailable',
            name: 'Service unavailable',
            metric: metricNames.serviceUp,
            comparator: '<',
            threshold: 1,
            for_ms: 500,
            severity: 'critical',
          },
        ],
        slaTargetPercent: 99,
      },
    });
    await monitor.start();
  });
  after(async () => {
    await monitor.stop();
    if (server.listening) await stopServer(server);
  });

  it('down after the threshold, alert fires, recovers, alert resolves, availability drops by the down time', async () => {
    const up = await waitFor('first up', () => find('ServiceRecovered'));
    await new Promise((r) => setTimeout(r, 500));
    const beforeOutage = Date.now();
    const availBefore = await monitor.getAvailability('api', { now: beforeOutage });
    assert.equal(availBefore.windows['1h'].uptimePercent, 100);

    await stopServer(server);
    const degraded = await waitFor('degraded', () => find('ServiceDegraded', beforeOutage));
    const down = await waitFor('down', () => find('ServiceWentDown', beforeOutage));
    assert.ok(
      down.type === 'ServiceWentDown' && down.metadata.at - down.data.failingSince >= 400,
      'down only after downAfterMs',
    );
    // Failing since the first failed probe went out, a moment before it was decided.
    assert.ok(degraded.type === 'ServiceDegraded' && down.type === 'ServiceWentDown');
    assert.equal(down.data.failingSince, degraded.data.failingSince);
    assert.ok(degraded.data.failingSince! <= degraded.metadata.at);
    assert.match(down.type === 'ServiceWentDown' ? String(down.data.error) : '', /ECONNREFUSED|fetch failed/);
    const firing = await waitFor('alert firing', () => find('AlertFiring', beforeOutage));
    assert.ok(firing.metadata.at - down.metadata.at >= 500, 'alert fired after its `for`');
    assert.equal((await monitor.getHealthReport()).status, 'down');
    const [alert] = await monitor.listAlerts({ state: 'firing', severity: 'critical' });
    assert.equal(alert?.labels.service, 'api');

    server = await startServer(port);
    const recovered = await waitFor('recovered', () => find('ServiceRecovered', down.metadata.at));
    const resolved = await waitFor('alert resolved', () => find('AlertResolved', down.metadata.at));
    assert.ok(resolved.metadata.at >= recovered.metadata.at);
    assert.equal((await monitor.listAlerts({ state: 'firing' })).length, 0);
    assert.equal((await monitor.getHealthReport()).status, 'up');

    // Expected availability from the recorded transition times: down lasts from the first failed
    // probe (the failingSince of ServiceWentDown) to ServiceRecovered, observed since the first up.
    const now = Date.now();
    const observed = now - up.metadata.at;
    const downMs = recovered.metadata.at - (down.type === 'ServiceWentDown' ? down.data.failingSince : NaN);
    const expected = ((observed - downMs) / observed) * 100;
    const avail = await monitor.getAvailability('api', { now });
    const h1 = avail.windows['1h'];
    assert.equal(h1.observedMs, observed);
    assert.equal(h1.downMs, downMs);
    assert.ok(Math.abs(h1.uptimePercent! - expected) < 1e-9, `${h1.uptimePercent} vs ${expected}`);
    assert.ok(Math.abs(100 - h1.uptimePercent! - (downMs / observed) * 100) < 1e-9, 'dropped by the down share');
    assert.equal(h1.incidents.length, 1);
    assert.equal(h1.mttrMs, downMs);
    assert.equal(h1.slaMet, h1.uptimePercent! >= 99);

    const text = await monitor.renderPrometheus();
    assert.match(text, /switchyard_service_status\{service="api",status="up"\} 1/);
    assert.match(text, /switchyard_probe_duration_seconds_count\{service="api",kind="http",ok="false"\} [1-9]/);
  });
});

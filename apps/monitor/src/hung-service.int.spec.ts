/**
 * A hung service: it takes the connection and never answers, so each probe ends only at its
 * timeout. Real HTTP server, real PostgreSQL; short settings (probe every 250 ms, 1.5 s timeout,
 * down after 1 s, unavailable after 2 s). The failure dates from the probe's send time: the alert
 * fires 2 s after the first unanswered probe went out (not 2 s after its timeout ended), and
 * availability counts the outage from then, not from the down-marking.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { freshDatabase, until } from '@switchyard/testing';
import { freePort } from '@switchyard/platform';
import { Monitor, type MonitorEvent } from './monitor.js';
import { httpProbe } from './probes.js';
import { defaultAlertRules } from './domain/rules.js';

const INTERVAL = 250;
const TIMEOUT = 1_500;
const FOR = 2_000;
// Timer and scheduling slack on a busy test machine.
const SLACK = 400;

describe('a hung service (accepts, never answers)', () => {
  let monitor: Monitor;
  let server: http.Server;
  let hung = false;
  const parked: http.ServerResponse[] = [];
  const published: MonitorEvent[] = [];
  const find = <T extends MonitorEvent['type']>(type: T, afterAt: number) =>
    published.find((e): e is Extract<MonitorEvent, { type: T }> => e.type === type && e.metadata.at >= afterAt);

  before(async () => {
    const port = await freePort();
    server = http.createServer((_req, res) => {
      if (hung) parked.push(res);
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
    monitor = new Monitor({
      databaseUrl: await freshDatabase('monitor_hung'),
      publish: (events) => {
        published.push(...events);
      },
      probes: [httpProbe('hung-api', `http://127.0.0.1:${port}/health`)],
      sampler: { diskIntervalMs: 3_600_000 },
      settings: {
        sampleIntervalMs: 3_600_000,
        probeIntervalMs: INTERVAL,
        probeTimeoutMs: TIMEOUT,
        healthPolicy: { downAfterMs: 1_000, degradedResponseMs: 1_000 },
        rules: [{ ...defaultAlertRules.find((r) => r.id === 'service_unavailable')!, for_ms: FOR }],
      },
    });
    await monitor.start();
  });
  after(async () => {
    await monitor.stop();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('unavailable fires FOR after the first unanswered probe went out; the outage counts from then', async () => {
    await until('first up', () => find('ServiceRecovered', 0), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    const hungAt = Date.now();
    hung = true;

    const firing = await until('unavailable firing', () => find('AlertFiring', hungAt), 15_000);
    const down = await until('down', () => find('ServiceWentDown', hungAt - INTERVAL), 5_000);
    const pendingSince = firing.data.pendingSince;
    console.log(
      `# first unanswered probe sent ${pendingSince - hungAt} ms after the hang, fired ${firing.metadata.at - pendingSince} ms later, down-marked ${down.metadata.at - pendingSince} ms after it`,
    );
    // The first probe after the hang went out within an interval; the failure dates from then.
    assert.ok(pendingSince >= hungAt - 50 && pendingSince <= hungAt + INTERVAL + SLACK, String(pendingSince - hungAt));
    assert.equal(down.data.failingSince, pendingSince, 'failing since the same probe went out');
    assert.ok(down.metadata.at - pendingSince >= TIMEOUT, 'known only when its timeout ended');
    const after = firing.metadata.at - pendingSince;
    assert.ok(after >= FOR && after <= FOR + SLACK, `fired ${after} ms after the first unanswered probe`);

    // Hung for a while longer, then answering again.
    await new Promise((r) => setTimeout(r, Math.max(0, hungAt + 4_000 - Date.now())));
    hung = false;
    for (const res of parked.splice(0)) res.destroy();
    const recovered = await until('recovered', () => find('ServiceRecovered', hungAt), 10_000);
    await until('resolved', () => find('AlertResolved', hungAt), 5_000);

    const avail = await monitor.getAvailability('hung-api', { now: Date.now() });
    const h1 = avail.windows['1h'];
    assert.deepEqual(
      h1.incidents.map((i) => [i.start, i.end]),
      [[pendingSince, recovered.metadata.at]],
      'one incident, from the first unanswered probe to the answer',
    );
    assert.equal(h1.downMs, recovered.metadata.at - pendingSince);
    assert.ok(h1.downMs >= recovered.metadata.at - hungAt - INTERVAL - SLACK, `${h1.downMs} ms counted`);
  });
});

/**
 * Agent instances come and go with their processes (a restarted agent registers a new instance
 * id): discovery on a real nats-server adds a probe per instance, and one missing from two
 * listings in a row is removed and retired by the Monitor, so it leaves the report and stops
 * accruing availability, while the live one stays.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { z } from 'zod';
import { PostgresEventStore } from '@switchyard/event-store';
import { addService, closeNats, connectNats, type NatsConnection, type Service } from '@switchyard/messaging';
import { createLogger, newId } from '@switchyard/platform';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import { Monitor } from '../monitor.js';
import { ProbeDiscovery } from './discovery.js';

const logger = createLogger('discovery-test', process.env.LOG_LEVEL ?? 'silent');

describe('agent discovery: an instance no longer registered is retired', () => {
  const prefix = `agent-d${newId()
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 8)
    .toLowerCase()}-`;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let monitor: Monitor;
  const services: Service[] = [];

  const agentInstance = (instance: string) =>
    addService(nc, {
      name: `${prefix}writer`,
      version: '1.0.0',
      description: 'a test agent',
      logger,
      metadata: { agent: 'writer', instance },
      endpoints: {
        echo: { subject: `${prefix}writer.${instance}.echo`, schema: z.object({}).loose(), handler: () => ({}) },
      },
    });

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_discovery'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'monitor-discovery-test', logger });
    monitor = new Monitor({
      pool,
      eventStore: store,
      logger,
      publish: () => undefined,
      settings: {
        sampleIntervalMs: 3_600_000,
        maintenanceIntervalMs: 3_600_000,
        probeIntervalMs: 100,
        probeTimeoutMs: 1_000,
        healthPolicy: { degradedResponseMs: 1_000, downAfterMs: 200 },
        rules: [],
      },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
    await monitor.start();
  });

  after(async () => {
    for (const s of services) await s.stop().catch(() => undefined);
    await monitor?.stop();
    if (nc) await closeNats(nc);
    await store?.close();
    await pool?.end();
  });

  it('follows the live instance and retires the one whose process ended', async () => {
    const discovery = new ProbeDiscovery({
      nats: nc,
      logger,
      addProbe: (p) => monitor.addProbe(p),
      removeProbe: (service, reason) => monitor.removeProbe(service, reason),
      probeTimeoutMs: 1_000,
      degradedResponseMs: 1_000,
      agentServicePrefix: prefix,
      mcpSubjectPrefix: `${prefix}mcp`,
      agentDiscoveryWaitMs: 300,
    });
    const old = await agentInstance('old');
    services.push(old, await agentInstance('new'));
    await discovery.refresh();
    assert.deepEqual(discovery.known.agents.sort(), ['agent:writer:new', 'agent:writer:old']);
    const status = async (service: string) =>
      (await monitor.store.listServices()).find((s) => s.service === service)?.status;
    await until(
      'both up',
      async () => (await status('agent:writer:old')) === 'up' && (await status('agent:writer:new')) === 'up',
    );

    // The old process ends: its probes fail, and after two listings without it, it is retired.
    await old.stop();
    await discovery.refresh();
    assert.ok(discovery.known.agents.includes('agent:writer:old'), 'one missed listing keeps it');
    await discovery.refresh();
    assert.deepEqual(discovery.known.agents, ['agent:writer:new']);
    assert.equal(await status('agent:writer:old'), undefined, 'it left the report');
    assert.equal(await status('agent:writer:new'), 'up');
    const events = await store.readStream('service-agent:writer:old');
    assert.equal(events.at(-1)!.type, 'ServiceRetired');
    const lastProbeAt = (events.at(-1)!.data as { lastProbeAt: number }).lastProbeAt;
    const figures = async (now: number) => (await monitor.getAvailability('agent:writer:old', { now })).windows['1h'];
    const a = await figures(Date.now());
    assert.equal((await figures(Date.now() + 60_000)).observedMs, a.observedMs, 'no longer accrues');
    const first = Date.parse(events[0]!.metadata.timestamp);
    assert.equal(a.observedMs, lastProbeAt - first, 'its history ends at its last probe');
  });
});

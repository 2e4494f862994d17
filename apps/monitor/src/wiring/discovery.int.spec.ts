/**
 * Agent instances come and go with their processes (a restarted agent registers a new instance
 * id): discovery on a real nats-server adds a probe per instance, and one missing from two
 * listings in a row is removed and retired by the Monitor, so it leaves the report and stops
 * accruing availability, while the live one stays.
 *
 * An MCP server the connectors list as unconfigured (GitHub without its token) is not probed but
 * shown `unconfigured` with the connectors' reason, in the health report and in the integration
 * status (the read models behind both endpoints), without counting as an outage.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { z } from 'zod';
import { PostgresEventStore } from '@switchyard/event-store';
import { addService, closeNats, connectNats, type NatsConnection, type Service } from '@switchyard/messaging';
import { createLogger, newId } from '@switchyard/platform';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import { healthReportReply, mcpRegistryListSubject, mcpSubject, type ServerHealth } from '@switchyard/contracts';
import { assessIntegration, readIntegrationStatus, startStatusProjections } from '@switchyard/read-models';
import { Monitor } from '../monitor.js';
import { ProbeDiscovery } from './discovery.js';
import { healthReport } from './service.js';

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

describe('MCP discovery: an unconfigured server is listed unconfigured, not absent, and is no outage', () => {
  const prefix = `mcpu${newId()
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 8)
    .toLowerCase()}`;
  const reason = 'github needs GITHUB_PERSONAL_ACCESS_TOKEN (not set)';
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let monitor: Monitor;
  let statusRunner: { stop(): Promise<void> };
  let connectors: Service;
  /** What the connectors' registry lists: GitHub without its token, fetch running. */
  let github: ServerHealth;
  const fetchServer: ServerHealth = {
    server: 'fetch',
    role: 'fetch',
    transport: 'http',
    enabled: true,
    state: 'up',
    breaker: 'closed',
    reconnect_attempt: 0,
    tools: ['fetch_url'],
  };

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_mcp_unconfigured'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'monitor-mcp-unconfigured-test', logger });
    github = {
      server: 'github',
      role: 'github',
      transport: 'stdio',
      enabled: true,
      state: 'unconfigured',
      breaker: 'closed',
      last_error: reason,
      reconnect_attempt: 0,
      tools: [],
    };
    // The connector service's registry listing and health answers, on its subjects.
    connectors = await addService(nc, {
      name: `${prefix}-connectors`,
      version: '1.0.0',
      description: 'the connectors registry, as listed',
      logger,
      endpoints: {
        list: {
          subject: mcpRegistryListSubject(prefix),
          schema: z.object({}).loose(),
          handler: () => ({ servers: [github, fetchServer] }),
        },
        fetch_health: {
          subject: mcpSubject('fetch', 'health', prefix),
          schema: z.object({}).loose(),
          handler: () => fetchServer,
        },
        github_health: {
          subject: mcpSubject('github', 'health', prefix),
          schema: z.object({}).loose(),
          handler: () => github,
        },
      },
    });
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
        rules: [
          {
            id: 'service_unavailable',
            name: 'Service unavailable',
            metric: 'probe_up',
            comparator: '<',
            threshold: 1,
            for_ms: 0,
            severity: 'critical',
          },
        ],
      },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
    await monitor.start();
    statusRunner = await startStatusProjections({ store, pool, logger });
  });

  after(async () => {
    await connectors?.stop().catch(() => undefined);
    await statusRunner?.stop();
    await monitor?.stop();
    if (nc) await closeNats(nc);
    await store?.close();
    await pool?.end();
  });

  it('shows GitHub unconfigured with the reason in the health report and the integration status; the verdicts ignore it', async () => {
    const discovery = new ProbeDiscovery({
      nats: nc,
      logger,
      addProbe: (p) => monitor.addProbe(p),
      removeProbe: (service, why) => monitor.removeProbe(service, why),
      markUnconfigured: (service, kind, why) => monitor.markUnconfigured(service, kind, why),
      probeTimeoutMs: 1_000,
      degradedResponseMs: 1_000,
      agentServicePrefix: `${prefix}-agent-`,
      mcpSubjectPrefix: prefix,
      agentDiscoveryWaitMs: 100,
    });
    await discovery.refresh();
    assert.deepEqual(discovery.known.mcp, ['mcp:fetch'], 'only the configured server is probed');
    const row = async (service: string) => (await monitor.store.listServices()).find((s) => s.service === service);
    await until('fetch up', async () => (await row('mcp:fetch'))?.status === 'up');

    // The health report (GET /api/v1/system/health-report): listed, with why, and healthy.
    const report = healthReportReply.parse(await healthReport(monitor));
    const listed = report.services.find((s) => s.service === 'mcp:github');
    assert.ok(listed, JSON.stringify(report.services));
    assert.equal(listed.status, 'unconfigured');
    assert.equal(listed.kind, 'mcp');
    assert.equal(listed.reason, reason);
    assert.equal(listed.lastProbeAt, null, 'never probed');
    assert.equal(report.status, 'healthy', JSON.stringify(report.reasons));
    assert.equal(report.alerts.firing + report.alerts.pending, 0);

    // The integration status (GET /api/v1/integration/status): listed with why; no reason about it.
    const now = new Date();
    const status = await readIntegrationStatus(pool, { now });
    const servers = status.mcp.servers.map((s) => ({ server: s.server, health: s.health, error: s.health_error }));
    assert.deepEqual(servers, [
      { server: 'fetch', health: 'up', error: null },
      { server: 'github', health: 'unconfigured', error: reason },
    ]);
    const verdict = assessIntegration(status, { checked_at: now.toISOString(), checks: {} }, { now });
    assert.ok(!verdict.reasons.some((r) => r.component.includes('github')), JSON.stringify(verdict.reasons));

    // Not counted in availability, and it stays through the unprobed services' retirement pass.
    const hour = (await monitor.getAvailability('mcp:github')).windows['1h'];
    assert.equal(hour.observedMs, 0);
    assert.equal(hour.downMs, 0);
    assert.equal(hour.uptimePercent, null);
    assert.deepEqual(await monitor.retireUnprobed(Date.now() + 3_600_000), []);
    // Nor read as down on /metrics (a rule on status="up" being 0 would).
    assert.doesNotMatch(await monitor.renderPrometheus(), /switchyard_service_status\{[^}]*mcp:github/);
    await discovery.refresh();
    const events = await store.readStream('service-mcp:github');
    assert.deepEqual(
      events.map((e) => e.type),
      ['ServiceUnconfigured'],
      'one event while the reason stays the same',
    );

    // Configured later: probed, and up like any other server.
    github = { ...github, state: 'up', last_error: undefined, tools: ['search_repositories'] };
    await discovery.refresh();
    assert.deepEqual(discovery.known.mcp.sort(), ['mcp:fetch', 'mcp:github']);
    await until('github up', async () => (await row('mcp:github'))?.status === 'up');
  });
});

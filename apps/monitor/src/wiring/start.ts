import type pg from 'pg';
import type { z } from 'zod';
import type { EventStore } from '@switchyard/event-store';
import type { NatsConnection, Service } from '@switchyard/messaging';
import { egressPolicyFromEnv, type Logger } from '@switchyard/platform';
import { monitorSettingsFromEnv } from '../config.js';
import { CallMetricsConsumer } from '../call-metrics/consumer.js';
import { callMetricsAlertRules } from '../call-metrics/rules.js';
import { defaultAlertRules, type AlertRule } from '../domain/rules.js';
import { Monitor, monitorSettingsSchema } from '../monitor.js';
import { functionProbe, httpProbe, natsProbe, postgresProbe, type Probe } from '../probes.js';
import type { SamplerOptions } from '../sampler.js';
import { ProbeDiscovery } from './discovery.js';
import { MemberDiscovery, type MemberTable } from './members.js';
import { parseRulesJson, readRulesFile, wiringSettingsFromEnv, type WiringSettings } from './env.js';
import { MonitorEventPublisher, monitorEventMetadata } from './publisher.js';
import { RuleManager } from './rule-manager.js';
import { RuleOverrideStore, type RuleSource } from './rules.js';
import { startMonitorService } from './service.js';

export interface StartMonitoringOptions {
  /** The host's pool: monitoring tables (schema `monitoring`) live in this database. */
  readonly pool: pg.Pool;
  readonly nats: NatsConnection;
  readonly eventStore: EventStore;
  readonly logger: Logger;
  /** Monitor tunables; default `monitorSettingsFromEnv()`. `rules` here replaces the built-in defaults layer. */
  readonly settings?: z.input<typeof monitorSettingsSchema>;
  /** Webhooks, rule file/env, HTTP agents, discovery interval; default `wiringSettingsFromEnv()`, fields given here win. */
  readonly wiring?: Partial<WiringSettings>;
  /** More probes (e.g. `httpProbe('gateway', url)`). */
  readonly extraProbes?: readonly Probe[];
  /**
   * Services that run in this process or die with it, besides its supervised units
   * (`component:*`, always): while the monitor was not running they count as down. E.g. the
   * gateway started by the same launcher, an embedded PostgreSQL or nats-server.
   */
  readonly colocatedServices?: readonly string[];
  /**
   * Tables the processes of a role heartbeat into (the launcher gives the workflow engines' and
   * the dispatchers'): each process is probed by the age of its heartbeat (see MemberDiscovery).
   */
  readonly memberTables?: readonly MemberTable[];
  readonly sampler?: SamplerOptions;
  /** Environment to read (default process.env). */
  readonly env?: Record<string, string | undefined>;
  /** Isolation on a shared nats-server (tests): service name, MCP subject prefix, alerts subject prefix. */
  readonly serviceName?: string;
  readonly mcpSubjectPrefix?: string;
  readonly alertsPrefix?: string;
  /** NATS service names of agents start with this (default `agent-`). */
  readonly agentServicePrefix?: string;
  /** First webhook retry delay (default 250 ms). */
  readonly webhookInitialDelayMs?: number;
  /** MCP/agent call metrics from the event store (see CallMetricsConsumer); default on, aggregates every 15 s over 5 min. */
  readonly callMetrics?: {
    readonly enabled?: boolean;
    readonly aggregateIntervalMs?: number;
    readonly windowMs?: number;
    readonly name?: string;
  };
}

export interface RunningMonitoring {
  readonly monitor: Monitor;
  readonly rules: RuleManager;
  readonly discovery: ProbeDiscovery;
  readonly publisher: MonitorEventPublisher;
  readonly service: Service;
  /** The MCP/agent call metrics consumer (undefined when `callMetrics.enabled` is false). */
  readonly callMetrics: CallMetricsConsumer | undefined;
  /** Stop discovery, the service and the Monitor; wait (bounded) for queued appends and webhooks. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Build and start the system's monitoring in this process:
 * 1. rules: defaults (or `settings.rules`), then MONITOR_RULES_FILE, then MONITOR_RULES, then the
 *    changes made through the API (events in `alertrules-<serviceName>`),
 * 2. the Monitor with probes of PostgreSQL, NATS, the event store, external HTTP agents
 *    (MONITOR_HTTP_AGENTS) and `extraProbes`; it appends its events to the event store, its
 *    projections build the read models, then the publisher sends them on (`switchyard.alerts.<type>`,
 *    MONITOR_ALERT_WEBHOOKS),
 * 3. discovery of MCP servers (connectors' registry) and agent instances (`$SRV.PING`), every
 *    `discoveryIntervalMs`, each new one added as a probe,
 * 4. the call metrics of every MCP tool call and agent task (counters and histograms in the
 *    Monitor's registry, series `mcp_call_*` / `agent_task_*` in its store),
 * 5. the NATS service `switchyard.svc.monitor.v1.*` the gateway queries.
 */
export async function startMonitoring(opts: StartMonitoringOptions): Promise<RunningMonitoring> {
  const env = opts.env ?? process.env;
  const wiring: WiringSettings = { ...wiringSettingsFromEnv(env), ...opts.wiring };
  const input = opts.settings ?? monitorSettingsFromEnv(env);
  const settings = monitorSettingsSchema.parse(input);
  const log = opts.logger.child({ component: 'monitoring', correlationId: 'monitor' });

  // 1. Rules by layer; a bad file or env value fails the start, naming it.
  const defaults = [...defaultAlertRules, ...callMetricsAlertRules].map((r) => ({ ...r }));
  const layers: { source: RuleSource; rules: AlertRule[] }[] = [
    { source: 'default', rules: input.rules ? settings.rules : defaults },
  ];
  if (wiring.rulesFile) layers.push({ source: 'file', rules: readRulesFile(wiring.rulesFile) });
  if (wiring.rulesJson) layers.push({ source: 'env', rules: parseRulesJson(wiring.rulesJson, 'MONITOR_RULES') });
  const rules = new RuleManager(
    new RuleOverrideStore(opts.pool, opts.eventStore, opts.serviceName ?? 'monitor'),
    layers,
    log,
  );
  const inForce = await rules.load();

  // 2. Probes of what this process knows, and the Monitor.
  const connectionString = (opts.pool as pg.Pool & { options?: { connectionString?: string } }).options
    ?.connectionString;
  // A dedicated one-connection pool also notices a lost connection the shared pool would hide.
  const pgProbe = postgresProbe('postgres', connectionString ?? opts.pool);
  const probes: Probe[] = [
    pgProbe,
    natsProbe('nats', opts.nats),
    // Reads answering is not enough: a log that refuses appends (out of disk) takes no work.
    functionProbe('event-store', 'event-store', async () => {
      await opts.eventStore.ping();
      const refusal = opts.eventStore.recentRefusal?.();
      if (refusal) throw new Error(refusal);
    }),
    ...wiring.httpAgents.map((a) => ({ ...httpProbe(`agent:${a.name}`, a.url), kind: 'agent' })),
    ...(opts.extraProbes ?? []),
  ];
  const publisher = new MonitorEventPublisher({
    nats: opts.nats,
    logger: opts.logger,
    webhooks: wiring.webhooks,
    webhookMaxAttempts: wiring.webhookMaxAttempts,
    webhookTimeoutMs: wiring.webhookTimeoutMs,
    egress: egressPolicyFromEnv(env),
    ...(opts.webhookInitialDelayMs !== undefined ? { webhookInitialDelayMs: opts.webhookInitialDelayMs } : {}),
    ...(opts.alertsPrefix ? { alertsPrefix: opts.alertsPrefix } : {}),
  });
  const monitor = new Monitor({
    pool: opts.pool,
    eventStore: opts.eventStore,
    eventMetadata: monitorEventMetadata,
    publish: publisher.publish,
    probes,
    settings: {
      ...input,
      rules: inForce,
      colocatedServices: [
        ...new Set(['component:*', ...(input.colocatedServices ?? []), ...(opts.colocatedServices ?? [])]),
      ],
    },
    logger: opts.logger,
    correlationId: 'monitor',
    ...(opts.sampler ? { sampler: opts.sampler } : {}),
  });
  await monitor.start();

  // 3. Discovery, first round right away (in the background: a slow NATS must not hold the start).
  const discovery = new ProbeDiscovery({
    nats: opts.nats,
    logger: opts.logger,
    addProbe: (p) => monitor.addProbe(p),
    removeProbe: (service, reason) => monitor.removeProbe(service, reason),
    markUnconfigured: (service, kind, reason) => monitor.markUnconfigured(service, kind, reason),
    probeTimeoutMs: monitor.settings.probeTimeoutMs,
    degradedResponseMs: monitor.settings.healthPolicy.degradedResponseMs,
    ...(opts.mcpSubjectPrefix ? { mcpSubjectPrefix: opts.mcpSubjectPrefix } : {}),
    ...(opts.agentServicePrefix ? { agentServicePrefix: opts.agentServicePrefix } : {}),
    agentDiscoveryWaitMs: Math.min(500, wiring.discoveryIntervalMs),
    // The connectors' queue per server as series (time series, trends, /metrics): mcp_queue_depth, mcp_in_flight, mcp_queue_wait_p50_ms/p99_ms.
    onMcpHealth: (server, h) => {
      if (!h.queue) return;
      const ts = Date.now();
      const labels = { server };
      const q = h.queue;
      void monitor
        .ingest([
          { metric: 'mcp_queue_depth', labels, ts, value: q.depth },
          { metric: 'mcp_in_flight', labels, ts, value: q.in_flight },
          { metric: 'mcp_queue_wait_p50_ms', labels, ts, value: q.wait_ms.p50 },
          { metric: 'mcp_queue_wait_p99_ms', labels, ts, value: q.wait_ms.p99 },
          { metric: 'mcp_queue_rejected_total', labels, ts, value: q.rejected_total },
        ])
        .catch((err: unknown) => log.debug({ err, server }, 'storing MCP queue samples failed'));
    },
  });
  const members = opts.memberTables?.length
    ? new MemberDiscovery({
        pool: opts.pool,
        tables: opts.memberTables,
        logger: opts.logger,
        addProbe: (p) => monitor.addProbe(p),
        removeProbe: (service, reason) => monitor.removeProbe(service, reason),
      })
    : undefined;
  let running = true;
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> = Promise.resolve();
  const discover = () => {
    round = Promise.all([discovery.refresh(), members?.refresh()])
      .then(() => undefined)
      .catch((err) => log.warn({ err }, 'discovery round failed'))
      .finally(() => {
        if (running) timer = setTimeout(discover, wiring.discoveryIntervalMs);
      });
  };
  discover();

  // 4. Call metrics; 5. the service. If either cannot start, undo the rest.
  const cm = opts.callMetrics ?? {};
  const callMetrics =
    cm.enabled === false
      ? undefined
      : new CallMetricsConsumer({
          pool: opts.pool,
          eventStore: opts.eventStore,
          monitor,
          logger: opts.logger,
          ...(cm.name ? { name: cm.name } : {}),
          ...(cm.aggregateIntervalMs !== undefined ? { aggregateIntervalMs: cm.aggregateIntervalMs } : {}),
          ...(cm.windowMs !== undefined ? { windowMs: cm.windowMs } : {}),
        });
  let service: Service;
  try {
    await callMetrics?.start();
    service = await startMonitorService({
      nats: opts.nats,
      monitor,
      rules,
      logger: opts.logger,
      ...(opts.serviceName ? { serviceName: opts.serviceName } : {}),
    });
  } catch (err) {
    running = false;
    clearTimeout(timer);
    await round;
    await callMetrics?.stop();
    await monitor.stop();
    await pgProbe.close();
    throw err;
  }
  log.info(
    {
      webhooks: wiring.webhooks.length,
      httpAgents: wiring.httpAgents.map((a) => a.name),
      rules: inForce.length,
      discoveryIntervalMs: wiring.discoveryIntervalMs,
    },
    'monitoring started',
  );

  let stopping: Promise<void> | undefined;
  return {
    monitor,
    rules,
    discovery,
    publisher,
    service,
    callMetrics,
    stop() {
      stopping ??= (async () => {
        running = false;
        clearTimeout(timer);
        await round;
        await service.stop().catch((err: unknown) => log.warn({ err }, 'monitor service stop failed'));
        await callMetrics?.stop();
        await monitor.stop();
        await pgProbe.close();
        // Webhooks may be in a long backoff: give them a moment, not the process's shutdown.
        let t: NodeJS.Timeout | undefined;
        await Promise.race([
          publisher.flush(),
          new Promise<void>((r) => {
            t = setTimeout(r, 5_000);
          }),
        ]);
        clearTimeout(t);
      })();
      return stopping;
    },
  };
}

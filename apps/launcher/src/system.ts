import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startAgents } from '@switchyard/agents';
import { AGENT_HTTP_AUDIT_EVENT, agentAuditStreamId, llmFromEnv, loadDemoData } from '@switchyard/agents';
import { DATABASE_WRITER_PORT, loadRegistry, mcpEventMetadata, mcpServerStreamId, startConnectors } from '@switchyard/connectors';
import {
  AgentsFeatureModule,
  createGateway,
  McpFeatureModule,
  securityOptionsFromEnv,
  StatusFeatureModule,
  SystemFeatureModule,
  WorkflowsFeatureModule,
  type FeatureModule,
} from '@switchyard/gateway';
import { createEventStore, type EventStore } from '@switchyard/event-store';
import { defaultPorts, MCP_CALL_AUDIT_EVENT, mcpAuditStreamId, mcpServerKinds, runMcpServer, type McpCallAudit } from '@switchyard/mcp-servers';
import { httpProbe, startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import { closeNats, connectNats } from '@switchyard/messaging';
import { runRelay, startDispatcher, startStatusProjections, startWorkflowEngine } from '@switchyard/orchestrator';
import { grantDemoAccess, provisionDatabaseRoles, type Config, type Logger } from '@switchyard/platform';
import { EventSink } from './event-sink.js';
import { startInfrastructure } from './infra.js';

/**
 * The parts of the system one process can run; `all` is every one of them, in this order.
 * Every part talks to the others over NATS and the event store only, so any subset can run
 * in its own process, on its own machine, several times over.
 */
export const ROLES = ['relay', 'mcp-servers', 'connectors', 'agents', 'dispatcher', 'workflows', 'monitor', 'gateway'] as const;
export type Role = (typeof ROLES)[number];

export interface RunningSystem {
  readonly databaseUrl: string;
  readonly natsUrl: string;
  readonly gatewayUrl?: string;
  stop(): Promise<void>;
}

/**
 * Start the asked-for roles in dependency order:
 * 1. infrastructure (embedded Postgres / nats-server when not configured),
 * 2. shared clients (pg pool, NATS connection, event store),
 * 3. the event relay (store -> JetStream),
 * 4. the workers: MCP servers, connectors, agents (with the demo data), the task dispatcher, the workflow engine,
 * 5. the gateway last, so /readyz only answers once the rest is up.
 * Stopping runs the same list backwards.
 */
export async function startSystem(config: Config, roles: readonly Role[], logger: Logger): Promise<RunningSystem> {
  const stops: { name: string; stop: () => Promise<void> }[] = [];
  const stopAll = async () => {
    for (const { name, stop } of stops.reverse()) {
      await stop().catch((err) => logger.error({ err, component: name }, 'stop failed'));
    }
  };
  const has = (role: Role) => roles.includes(role);
  try {
    const infra = await startInfrastructure(config, logger);
    stops.push({ name: 'infrastructure', stop: () => infra.stop() });

    // The roles' migration runs as the DATABASE_URL login (the embedded cluster's superuser);
    // from here on every component logs in as a least-privilege role: the application
    // components as <db>_app, the database MCP server as <db>_mcp_reader, the writer as
    // <db>_mcp_writer. Without the right to create roles it warns and keeps the given login.
    const dbRoles = await provisionDatabaseRoles(infra.databaseUrl, { logger });
    const appUrl = dbRoles?.urls.app ?? infra.databaseUrl;
    const pool = new pg.Pool({ connectionString: appUrl, max: 30 });
    // An idle client dies when Postgres restarts: log it, the pool reconnects on next use
    // (an unhandled 'error' event would take the whole process down).
    pool.on('error', (err) => logger.warn({ err }, 'idle PostgreSQL connection failed'));
    stops.push({ name: 'pg-pool', stop: () => pool.end() });
    const eventStore: EventStore = createEventStore({ pool, eventstoreUrl: config.EVENTSTORE_URL, logger });
    await eventStore.init();
    stops.push({ name: 'event-store', stop: () => eventStore.close() });
    const nats = await connectNats({ url: infra.natsUrl, name: `switchyard-${roles.length === ROLES.length ? 'all' : roles.join('+')}`, logger });
    stops.push({ name: 'nats', stop: () => closeNats(nats, { logger }) });
    const sink = new EventSink(eventStore, logger, 'system:switchyard');
    stops.push({ name: 'event-sink', stop: () => sink.flush() });

    // The MCP servers and the agents' HTTP contract answer only bearers of these tokens. Unset, one
    // is generated per start and handed to this process's connectors and dispatcher (never logged).
    // Roles split over several processes need MCP_AUTH_TOKEN / AI_AGENT_AUTH_TOKEN set in each.
    const mcpToken = config.MCP_AUTH_TOKEN ?? randomBytes(32).toString('base64url');
    const agentToken = config.AI_AGENT_AUTH_TOKEN ?? randomBytes(32).toString('base64url');
    if (!config.MCP_AUTH_TOKEN && has('mcp-servers') !== has('connectors')) {
      logger.warn('MCP_AUTH_TOKEN is unset and the MCP servers and connectors run in different processes: set it in both, or they cannot talk');
    }
    if (!config.AI_AGENT_AUTH_TOKEN && has('agents') && !has('dispatcher')) {
      logger.warn('AI_AGENT_AUTH_TOKEN is unset: the agents\' HTTP contract answers only this process\'s generated token');
    }
    // Every call an MCP server answers over HTTP (the connectors' or anyone else's) is an event with the caller as actor.
    const auditMcpCall = (c: McpCallAudit) => sink.append(mcpAuditStreamId(c.server), { type: MCP_CALL_AUDIT_EVENT, data: c }, c.correlation_id, c.actor);

    if (has('relay') && config.RELAY_ENABLED) {
      const relay = await runRelay(
        {
          DATABASE_URL: appUrl,
          NATS_URL: infra.natsUrl,
          RELAY_NAME: 'events',
          RELAY_STREAM: 'SWITCHYARD_EVENTS',
          RELAY_SUBJECT_PREFIX: 'switchyard.events',
          RELAY_CHECKPOINT_EVERY: 100,
          RELAY_CHECKPOINT_INTERVAL_MS: 1000,
          RELAY_DUPLICATE_WINDOW_MS: 600_000,
          RELAY_RESUME_FROM_STREAM: true,
        },
        logger,
        eventStore,
      );
      stops.push({ name: 'relay', stop: () => relay.stop() });
    }

    if (has('agents') || has('mcp-servers')) {
      // The demo business data set the agents and the templates work on: loaded once (idempotent, locked).
      const demo = await loadDemoData(pool);
      logger.info({ loaded: demo.loaded, counts: demo.counts }, 'demo business data ready');
      // The load may have recreated the schema: the reader's and the writer's grants again (the app role owns it).
      if (dbRoles) await grantDemoAccess(pool, dbRoles.names);
    }

    if (has('mcp-servers')) {
      // The project's own MCP servers on their seed ports (5001 filesystem bridge .. 5006 analytics).
      const env = { ...process.env, DATABASE_URL: appUrl };
      // The database server reads as the reader role (SELECT on the demo schema only), always
      // read-only: DATABASE_ALLOW_WRITES opens the writer below to admin keys, not this server.
      const databaseEnv = dbRoles ? { ...env, DATABASE_URL: dbRoles.urls.reader, DATABASE_ALLOW_WRITES: 'false' } : env;
      for (const kind of mcpServerKinds) {
        // MCP_<KIND>_PORT moves a server (pair it with MCP_<NAME>_URL for the connectors).
        const port = Number(process.env[`MCP_${kind.toUpperCase().replace(/-/g, '_')}_PORT`] ?? defaultPorts[kind]);
        const server = await runMcpServer(kind, { port, env: kind === 'database' ? databaseEnv : env, host: config.BIND_HOST, token: mcpToken, onCall: auditMcpCall, logger: logger.child({ mcp: kind }) });
        stops.push({ name: `mcp-${kind}`, stop: () => server.close() });
      }
      // 5007: the database server again, with writes allowed, but logged in as the writer role
      // that may only read, insert and delete the onboarding tables, so the database enforces
      // what it can write. The templates reach it through the connectors; at the gateway only
      // an admin key may call it, and only with DATABASE_ALLOW_WRITES=true.
      const writerUrl = dbRoles?.urls.writer;
      if (!writerUrl) logger.warn('no least-privilege roles: the database_writer MCP server is not started (customer_onboarding cannot create records)');
      else {
        const port = Number(process.env.MCP_DATABASE_WRITER_PORT ?? DATABASE_WRITER_PORT);
        const writer = await runMcpServer('database', {
          port,
          name: 'database_writer',
          host: config.BIND_HOST,
          token: mcpToken,
          onCall: auditMcpCall,
          env: { ...process.env, DATABASE_URL: writerUrl, DATABASE_ALLOW_WRITES: 'true' },
          logger: logger.child({ mcp: 'database_writer' }),
        });
        stops.push({ name: 'mcp-database-writer', stop: () => writer.close() });
      }
    }

    if (has('connectors')) {
      const connectors = await startConnectors({
        nats,
        registry: loadRegistry({ env: { ...process.env, MCP_AUTH_TOKEN: mcpToken } }),
        logger,
        // Every call, breaker change and health transition goes to the event store (audit, availability).
        // A call's events name who asked (the gateway sends `apikey:<id>`), not the system.
        onEvent: (e) => {
          const m = mcpEventMetadata(e);
          sink.append(mcpServerStreamId(e.data.server), e, m.correlationId, m.actor);
        },
      });
      stops.push({ name: 'connectors', stop: () => connectors.stop() });
    }

    if (has('agents')) {
      // LLM_BASE_URL + LLM_MODEL: an OpenAI-compatible endpoint rewords agent prose (never the figures).
      const llm = llmFromEnv(process.env, logger);
      const agents = await startAgents({
        nats,
        pool,
        logger,
        ...(llm ? { llm } : {}),
        http: {
          token: agentToken,
          host: config.BIND_HOST,
          // Every /execute run over HTTP is an event with the caller as actor, like the MCP servers' calls.
          onExecute: (c) => sink.append(agentAuditStreamId(c.agent), { type: AGENT_HTTP_AUDIT_EVENT, data: c }, c.correlation_id, c.actor),
          ...agentPortsFromEnv(),
        },
      });
      stops.push({ name: 'agents', stop: () => agents.stop() });
    }

    if (has('dispatcher')) {
      const dispatcher = await startDispatcher({ store: eventStore, nats, pool, logger, agentToken });
      stops.push({ name: 'dispatcher', stop: () => dispatcher.stop() });
    }

    if (has('workflows')) {
      const engine = await startWorkflowEngine({ store: eventStore, pool, nats, logger, databaseUrl: appUrl });
      stops.push({ name: 'workflows', stop: () => engine.stop() });
    }

    // One monitor per system: it samples the machine, probes every service and evaluates the alert rules.
    let monitoring: RunningMonitoring | undefined;
    if (has('monitor')) {
      monitoring = await startMonitoring({ pool, nats, eventStore, logger });
      const running = monitoring;
      stops.push({ name: 'monitor', stop: () => running.stop() });
    }

    let gatewayUrl: string | undefined;
    if (has('gateway')) {
      // The status read model (MCP servers from the connector events) behind /api/v1/integration/status.
      const statusRunner = await startStatusProjections({ store: eventStore, pool, logger });
      stops.push({ name: 'status-projections', stop: () => statusRunner.stop() });
      const modules: FeatureModule[] = [McpFeatureModule, AgentsFeatureModule, WorkflowsFeatureModule, SystemFeatureModule, StatusFeatureModule];
      const gateway = await createGateway({ eventStore, pgPool: pool, nats, logger, config }, { modules, ...securityOptionsFromEnv() });
      gatewayUrl = (await gateway.listen()).url;
      stops.push({ name: 'gateway', stop: () => gateway.close() });
      monitoring?.monitor.addProbe(httpProbe('gateway', `${gatewayUrl}/livez`));
    }
    logger.info({ roles, gatewayUrl, postgres: infra.started.postgres, nats: infra.started.nats }, 'switchyard is up');
    return { databaseUrl: infra.databaseUrl, natsUrl: infra.natsUrl, ...(gatewayUrl ? { gatewayUrl } : {}), stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** AGENT_<NAME>_PORT moves one built-in agent's HTTP contract off its seed port (6001-6006). */
function agentPortsFromEnv(): { ports?: Record<string, number> } {
  const ports: Record<string, number> = {};
  for (const [k, v] of Object.entries(process.env)) {
    const m = /^AGENT_([A-Z_]+)_PORT$/.exec(k);
    if (m && v) ports[m[1]!.toLowerCase()] = Number(v);
  }
  return Object.keys(ports).length ? { ports } : {};
}

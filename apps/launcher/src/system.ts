import { randomBytes } from 'node:crypto';
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
import { functionProbe, httpProbe, startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { runRelay, startDispatcher, startStatusProjections, startWorkflowEngine } from '@switchyard/orchestrator';
import { createPgPool, grantDemoAccess, provisionDatabaseRoles, type Config, type Logger } from '@switchyard/platform';
import { EventSink } from './event-sink.js';
import { startInfrastructure } from './infra.js';
import { Supervisor, type SupervisedHandle } from './supervisor.js';

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
  /** Restarts failed components; reports what is degraded. */
  readonly supervisor: Supervisor;
  stop(): Promise<void>;
}

/**
 * Start the asked-for roles in dependency order, each a unit of the supervisor (which restarts a
 * failed one with backoff, and what depends on it):
 * 1. infrastructure (embedded Postgres / nats-server when not configured),
 * 2. shared clients (pg pool, NATS connection, event store),
 * 3. the event relay (store -> JetStream),
 * 4. the workers: MCP servers, connectors, agents (with the demo data), the task dispatcher, the workflow engine,
 * 5. the gateway last, so /readyz only answers once the rest is up.
 * Stopping runs the same list backwards. A failure while starting stops what started and throws.
 */
export async function startSystem(config: Config, roles: readonly Role[], logger: Logger, supervisor = new Supervisor({ logger })): Promise<RunningSystem> {
  const has = (role: Role) => roles.includes(role);
  const unit = (name: string, start: () => Promise<SupervisedHandle>, dependsOn?: string[]) =>
    supervisor.add({ name, start, ...(dependsOn ? { dependsOn } : {}) });
  const usesNats = ['nats'];
  try {
    const infra = await startInfrastructure(config, logger, supervisor);

    // A client dies when Postgres restarts or its backend is terminated: the guarded pool logs it,
    // the query in flight fails, the pool reconnects on next use (an unhandled 'error' event
    // would take the whole process down).
    // The roles' migration runs as the DATABASE_URL login (the embedded cluster's superuser);
    // from here on every component logs in as a least-privilege role: the application
    // components as <db>_app, the database MCP server as <db>_mcp_reader, the writer as
    // <db>_mcp_writer. Without the right to create roles it warns and keeps the given login.
    const dbRoles = await provisionDatabaseRoles(infra.databaseUrl, { logger });
    const appUrl = dbRoles?.urls.app ?? infra.databaseUrl;
    const pool = createPgPool({ connectionString: appUrl, max: 30 }, { name: 'system', logger });
    await unit('pg-pool', async () => ({ stop: () => pool.end() }));
    const eventStore: EventStore = createEventStore({ pool, eventstoreUrl: config.EVENTSTORE_URL, logger });
    await eventStore.init();
    await unit('event-store', async () => ({ stop: () => eventStore.close() }));
    // The connection reconnects by itself forever; it only closes for good on a fatal error, and
    // then it is made again and every unit holding it is restarted with it.
    let nats!: NatsConnection;
    await unit('nats', async () => {
      const nc = await connectNats({ url: infra.natsUrl, name: `switchyard-${roles.length === ROLES.length ? 'all' : roles.join('+')}`, logger });
      nats = nc;
      return { stop: () => closeNats(nc, { logger }), failed: nc.closed().then((err) => err ?? new Error('NATS connection closed')) };
    });
    const sink = new EventSink(eventStore, logger, 'system:switchyard');
    await unit('event-sink', async () => ({ stop: () => sink.flush() }));

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
      await unit('relay', async () => {
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
        return { stop: () => relay.stop() };
      });
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
        await unit(`mcp-${kind}`, async () => {
          const server = await runMcpServer(kind, { port, env: kind === 'database' ? databaseEnv : env, host: config.BIND_HOST, token: mcpToken, onCall: auditMcpCall, logger: logger.child({ mcp: kind }) });
          return { stop: () => server.close() };
        });
      }
      // 5007: the database server again, with writes allowed, but logged in as the writer role
      // that may only read, insert and delete the onboarding tables, so the database enforces
      // what it can write. The templates reach it through the connectors; at the gateway only
      // an admin key may call it, and only with DATABASE_ALLOW_WRITES=true.
      const writerUrl = dbRoles?.urls.writer;
      if (!writerUrl) logger.warn('no least-privilege roles: the database_writer MCP server is not started (customer_onboarding cannot create records)');
      else {
        const port = Number(process.env.MCP_DATABASE_WRITER_PORT ?? DATABASE_WRITER_PORT);
        await unit('mcp-database-writer', async () => {
          const writer = await runMcpServer('database', {
            port,
            name: 'database_writer',
            host: config.BIND_HOST,
            token: mcpToken,
            onCall: auditMcpCall,
            env: { ...process.env, DATABASE_URL: writerUrl, DATABASE_ALLOW_WRITES: 'true' },
            logger: logger.child({ mcp: 'database_writer' }),
          });
          return { stop: () => writer.close() };
        });
      }
    }

    if (has('connectors')) {
      await unit(
        'connectors',
        async () => {
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
          return { stop: () => connectors.stop() };
        },
        usesNats,
      );
    }

    if (has('agents')) {
      // LLM_BASE_URL + LLM_MODEL: an OpenAI-compatible endpoint rewords agent prose (never the figures).
      const llm = llmFromEnv(process.env, logger);
      await unit(
        'agents',
        async () => {
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
          return { stop: () => agents.stop() };
        },
        usesNats,
      );
    }

    if (has('dispatcher')) {
      await unit(
        'dispatcher',
        async () => {
          // Only an operator-set AI_AGENT_AUTH_TOKEN goes to external agents; the generated one stays on loopback.
          const dispatcher = await startDispatcher({ store: eventStore, nats, pool, logger, agentToken, ...(config.AI_AGENT_AUTH_TOKEN ? { externalAgentToken: config.AI_AGENT_AUTH_TOKEN } : {}) });
          return { stop: () => dispatcher.stop() };
        },
        usesNats,
      );
    }

    if (has('workflows')) {
      await unit(
        'workflows',
        async () => {
          const engine = await startWorkflowEngine({ store: eventStore, pool, nats, logger, databaseUrl: appUrl });
          return { stop: () => engine.stop() };
        },
        usesNats,
      );
    }

    // One monitor per system: it samples the machine, probes every service and evaluates the alert rules.
    let monitoring: RunningMonitoring | undefined;
    if (has('monitor')) {
      await unit(
        'monitor',
        async () => {
          const running = await startMonitoring({ pool, nats, eventStore, logger });
          monitoring = running;
          // Every supervised unit of this process is a service of the health report: a failed probe
          // while it is being restarted (degraded, then down), up again once it runs.
          for (const name of supervisor.status().map((s) => s.name).concat('process')) {
            running.monitor.addProbe(functionProbe(`component:${name}`, 'component', async () => componentCheck(supervisor, name)));
          }
          return { stop: () => running.stop() };
        },
        usesNats,
      );
    }

    let gatewayUrl: string | undefined;
    if (has('gateway')) {
      await unit(
        'gateway',
        async () => {
          // The status read model (MCP servers from the connector events) behind /api/v1/integration/status.
          const statusRunner = await startStatusProjections({ store: eventStore, pool, logger });
          try {
            const modules: FeatureModule[] = [McpFeatureModule, AgentsFeatureModule, WorkflowsFeatureModule, SystemFeatureModule, StatusFeatureModule];
            const gateway = await createGateway(
              {
                eventStore,
                pgPool: pool,
                nats,
                logger,
                config,
                // Ready while a component restarts, but saying which and why.
                readiness: { components: async () => componentsReadiness(supervisor) },
              },
              { modules, ...securityOptionsFromEnv() },
            );
            gatewayUrl = (await gateway.listen()).url;
            monitoring?.monitor.addProbe(httpProbe('gateway', `${gatewayUrl}/livez`));
            return {
              stop: async () => {
                await gateway.close();
                await statusRunner.stop();
              },
            };
          } catch (err) {
            await statusRunner.stop().catch(() => undefined);
            throw err;
          }
        },
        usesNats,
      );
    }
    logger.info({ roles, gatewayUrl, postgres: infra.started.postgres, nats: infra.started.nats }, 'switchyard is up');
    return {
      databaseUrl: infra.databaseUrl,
      natsUrl: infra.natsUrl,
      ...(gatewayUrl ? { gatewayUrl } : {}),
      supervisor,
      stop: () => supervisor.stopAll(),
    };
  } catch (err) {
    await supervisor.stopAll();
    throw err;
  }
}

/** /readyz `components`: up when every unit runs, `{ degraded }` naming the others and why. */
function componentsReadiness(supervisor: Supervisor): { degraded: string } | { units: number } {
  const bad = supervisor.degraded();
  if (bad.length === 0) return { units: supervisor.status().length };
  return { degraded: bad.map((u) => `${u.name} ${u.state}${u.lastError ? ` (${u.lastError})` : ''}`).join('; ') };
}

/** The health report's probe of one unit: throws while it is not running. */
function componentCheck(supervisor: Supervisor, name: string): Record<string, unknown> {
  const s = supervisor.status().find((u) => u.name === name);
  if (!s) return { state: 'running' }; // `process` before any unexpected error
  if (s.state !== 'running') throw new Error(`${s.state}${s.lastError ? `: ${s.lastError}` : ''}`);
  return { state: s.state, restarts: s.restarts };
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

import { createHash } from 'node:crypto';
import pg from 'pg';
import { startAgents } from '@switchyard/agents';
import { llmFromEnv, loadDemoData } from '@switchyard/agents';
import { DATABASE_WRITER_PORT, loadRegistry, mcpServerStreamId, startConnectors } from '@switchyard/connectors';
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
import { defaultPorts, mcpServerKinds, runMcpServer } from '@switchyard/mcp-servers';
import { functionProbe, httpProbe, startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { runRelay, startDispatcher, startStatusProjections, startWorkflowEngine } from '@switchyard/orchestrator';
import { createPgPool, type Config, type Logger } from '@switchyard/platform';
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
    const pool = createPgPool({ connectionString: infra.databaseUrl, max: 30 }, { name: 'system', logger });
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

    if (has('relay') && config.RELAY_ENABLED) {
      await unit('relay', async () => {
        const relay = await runRelay(
          {
            DATABASE_URL: infra.databaseUrl,
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
    }

    if (has('mcp-servers')) {
      // The project's own MCP servers on their seed ports (5001 filesystem bridge .. 5006 analytics).
      const env = { ...process.env, DATABASE_URL: infra.databaseUrl };
      for (const kind of mcpServerKinds) {
        // MCP_<KIND>_PORT moves a server (pair it with MCP_<NAME>_URL for the connectors).
        const port = Number(process.env[`MCP_${kind.toUpperCase().replace(/-/g, '_')}_PORT`] ?? defaultPorts[kind]);
        await unit(`mcp-${kind}`, async () => {
          const server = await runMcpServer(kind, { port, env, logger: logger.child({ mcp: kind }) });
          return { stop: () => server.close() };
        });
      }
      // 5007: the database server again, with writes allowed, but logged in as a Postgres role
      // that may only touch the onboarding tables, so the database enforces what it can write.
      const writerUrl = await prepareOnboardingWriter(pool, infra.databaseUrl, logger);
      if (writerUrl) {
        const port = Number(process.env.MCP_DATABASE_WRITER_PORT ?? DATABASE_WRITER_PORT);
        await unit('mcp-database-writer', async () => {
          const writer = await runMcpServer('database', {
            port,
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
            registry: loadRegistry(),
            logger,
            // Every call, breaker change and health transition goes to the event store (audit, availability).
            onEvent: (e) => sink.append(mcpServerStreamId(e.data.server), e, (e.data as { correlation_id?: string }).correlation_id),
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
            http: { ...(config.AI_AGENT_AUTH_TOKEN ? { token: config.AI_AGENT_AUTH_TOKEN } : {}), ...agentPortsFromEnv() },
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
          const dispatcher = await startDispatcher({ store: eventStore, nats, pool, logger });
          return { stop: () => dispatcher.stop() };
        },
        usesNats,
      );
    }

    if (has('workflows')) {
      await unit(
        'workflows',
        async () => {
          const engine = await startWorkflowEngine({ store: eventStore, pool, nats, logger, databaseUrl: infra.databaseUrl });
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

/**
 * A login role that may read and insert (and, for the onboarding compensation, delete) only
 * business.customers and business.subscriptions. Its password is derived from the main
 * connection's, so every launcher process agrees on it without storing another secret.
 * Returns the writer's connection URL, or undefined (logged) when the main role cannot create roles.
 */
async function prepareOnboardingWriter(pool: pg.Pool, databaseUrl: string, logger: Logger): Promise<string | undefined> {
  const role = 'switchyard_onboarding';
  const password = createHash('sha256').update(`${databaseUrl}|${role}`).digest('base64url');
  try {
    await pool.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF;
    END $$`);
    // base64url: only [A-Za-z0-9_-], safe inside the literal.
    await pool.query(`ALTER ROLE ${role} WITH LOGIN PASSWORD '${password}'`);
    await pool.query(`GRANT USAGE ON SCHEMA business TO ${role}`);
    await pool.query(`GRANT SELECT, INSERT, DELETE ON business.customers, business.subscriptions TO ${role}`);
  } catch (err) {
    logger.warn({ err }, 'could not prepare the onboarding writer role: the database_writer MCP server is not started');
    return undefined;
  }
  const url = new URL(databaseUrl);
  url.username = role;
  url.password = password;
  return url.toString();
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

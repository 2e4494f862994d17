import { randomBytes } from 'node:crypto';
import { startAgents, AGENT_HTTP_AUDIT_EVENT, agentAuditStreamId, llmFromEnv, loadDemoData } from '@switchyard/agents';
import type pg from 'pg';
import { loadRegistry, startConnectors, warnOfFilesLeftBehind } from '@switchyard/connectors';
import { mcpEventMetadata, mcpServerStreamId, type NatsRoleUser } from '@switchyard/contracts';
import {
  A2aFeatureModule,
  adminKeyBanner,
  AgentsFeatureModule,
  createGateway,
  McpFeatureModule,
  McpServerFeatureModule,
  securityOptionsFromEnv,
  StatusFeatureModule,
  SystemFeatureModule,
  WorkflowsFeatureModule,
  type FeatureModule,
} from '@switchyard/gateway';
import { createEventStore, EventSink, type EventStore } from '@switchyard/event-store';
import {
  mailboxConfigSchema,
  MCP_CALL_AUDIT_EVENT,
  mcpAuditStreamId,
  mcpServerKinds,
  migrateAutomation,
  runMcpServer,
  startMailbox,
  type McpCallAudit,
} from '@switchyard/mcp-servers';
import {
  functionProbe,
  httpProbe,
  runMonitoringExclusively,
  type MonitoringRunner,
  type Probe,
} from '@switchyard/monitor';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { runRelay } from '@switchyard/relay';
import { dispatcherLeaseTtlMs, startDispatcher } from '@switchyard/dispatcher';
import { delegationProjections, startStatusProjections, workflowExecutionsProjection } from '@switchyard/read-models';
import { READ_MODELS_CATCHING_UP, ReadModelLagWatch } from './lag-watch.js';
import { startTriggerStarter, startWorkflowEngine, startReadModelThread } from '@switchyard/workflows';
import { WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';
import {
  ConfigError,
  createPgPool,
  dataDirSecrets,
  detectStdioSandbox,
  markSchemaManaged,
  parseConfig,
  givenDatabaseLoginValues,
  type Component,
  type Config,
  type DatabaseLogin,
  type Logger,
} from '@switchyard/platform';
import type { StartInfo } from './banner.js';
import { agentPortsFromEnv, mcpServerPort, refuseTakenPorts } from './ports.js';
import {
  DATABASE_WRITER,
  givenDatabaseLogins,
  natsIdentity,
  ROLES,
  runsMcpServer,
  type Role,
  type RoleSelection,
} from './roles.js';
import { warnOnClockSkew } from './clock-skew.js';
import { startInfrastructure } from './infra.js';
import { provisionAndMigrate } from './migrations.js';
import { RELAY_DUPLICATE_WINDOW_MS } from './nats-streams.js';
import { replicaLogin } from './replica.js';
import { Supervisor, type SupervisedHandle } from './supervisor.js';

export type { Role } from './roles.js';

export interface RunningSystem {
  /** The DATABASE_URL (or embedded superuser) login; undefined when given the roles' own logins. */
  readonly databaseUrl?: string;
  readonly natsUrl: string;
  readonly gatewayUrl?: string;
  /** Restarts failed components; reports what is degraded. */
  readonly supervisor: Supervisor;
  /** What the start banner says (URLs, where the data lives, where the admin key came from). */
  readonly startInfo: StartInfo;
  stop(): Promise<void>;
}

/**
 * Start the asked-for roles in dependency order, each a unit of the supervisor (which restarts a
 * failed one with backoff, and what depends on it):
 * 1. infrastructure (embedded Postgres / nats-server when not configured),
 * 2. the database roles and the migrations as the schema owner, then one pool and event store per
 *    component logged in as its own role, and the NATS connection,
 * 3. the event relay (store -> JetStream),
 * 4. the workers: MCP servers, connectors, agents (with the demo data), the task dispatcher, the workflow engine,
 * 5. the gateway last, so /readyz only answers once the rest is up.
 * Stopping runs the same list backwards. A failure while starting stops what started and throws.
 * `only` narrows `mcp-servers` and `agents` to some servers or agents (see parseRoleSelection).
 */
export async function startSystem(
  config: Config,
  roles: readonly Role[],
  logger: Logger,
  supervisor = new Supervisor({ logger }),
  only: Omit<RoleSelection, 'roles'> = {},
): Promise<RunningSystem> {
  const has = (role: Role) => roles.includes(role);
  const selection: RoleSelection = { ...only, roles };
  const unit = (name: string, start: () => Promise<SupervisedHandle>, dependsOn?: string[]) =>
    supervisor.add({ name, start, ...(dependsOn ? { dependsOn } : {}) });
  let stopLagWatch = (): void => undefined;
  try {
    // A process of a split deployment may be given its roles' own logins (DATABASE_URL_<LOGIN>)
    // instead of the administrative DATABASE_URL, once a one-shot setup (db-setup.js) provisioned
    // them and migrated: it then neither provisions nor migrates, and never holds a login that
    // may create roles or run DDL.
    const givenLogins = givenDatabaseLogins(selection, process.env);
    if (givenLogins && config.DATABASE_URL)
      throw new ConfigError([
        {
          variable: 'DATABASE_URL',
          message:
            "DATABASE_URL_<LOGIN> are given: leave DATABASE_URL unset (a process given its roles' own logins must not hold the administrative one)",
        },
      ]);
    // Another program on one of this process's HTTP ports: said now, naming the variable, not as
    // an EADDRINUSE once everything else has started.
    await refuseTakenPorts(selection, { ...process.env, GATEWAY_PORT: String(config.GATEWAY_PORT) });
    const infra = await startInfrastructure(
      config,
      logger,
      supervisor,
      givenLogins ? { databaseLogins: givenLogins } : {},
    );
    const { users: natsUsers, perRole: perRoleNats } = natsIdentity(roles, infra.natsRolePasswords);
    const natsUnitOf = (u: NatsRoleUser) => (perRoleNats ? `nats-${u}` : 'nats');
    /** What a role's unit restarts with: its NATS connection. */
    const usesNats = (u: NatsRoleUser) => [natsUnitOf(u)];

    // A client dies when Postgres restarts or its backend is terminated: the guarded pool logs it,
    // the query in flight fails, the pool reconnects on next use (an unhandled 'error' event
    // would take the whole process down).
    // 1. The roles' migration runs as the DATABASE_URL login (the embedded cluster's superuser),
    //    which closes its connection right after.
    // 2. The schema owner (<db>_app) runs every component's DDL, the demo loader and the grants,
    //    then its pool ends: no running component logs in as the owner.
    // 3. Each component logs in as its own role (<db>_gateway, <db>_engine, ...; the database MCP
    //    server as <db>_mcp_reader, the writer as <db>_mcp_writer), on a small pool of its own
    //    marked schema-managed, so its start-up migrations are skipped (it may not run DDL).
    // Without the right to create roles it warns and every pool keeps the given login, which
    // migrates at each component's start as before.
    // DATABASE_PASSWORD_<LOGIN> given: those passwords, so processes given DATABASE_URL_<LOGIN> can log in.
    const needsDemo = has('agents') || has('mcp-servers');
    const dbRoles = infra.databaseUrl
      ? await provisionAndMigrate(infra.databaseUrl, {
          logger,
          passwords: givenDatabaseLoginValues(process.env, 'PASSWORD'),
          externalEventStore: Boolean(config.EVENTSTORE_URL),
          demoData: needsDemo,
        })
      : undefined;
    const logins: Partial<Record<DatabaseLogin, string>> | undefined =
      givenLogins ??
      (dbRoles && { ...dbRoles.urls.components, mcp_reader: dbRoles.urls.reader, mcp_writer: dbRoles.urls.writer });
    // Every login is a least-privilege role whose schemas the owner (or the setup) migrated.
    const schemaManaged = Boolean(logins);
    // In the background: a host whose clock is off from PostgreSQL's is told at start.
    const clockCheckUrl = logins?.sink ?? infra.databaseUrl;
    if (clockCheckUrl) void warnOnClockSkew(clockCheckUrl, logger);
    const urlOf = (c: DatabaseLogin): string => {
      const url = logins?.[c] ?? infra.databaseUrl;
      // givenDatabaseLogins checked that the roles' logins are all there.
      if (!url) throw new Error(`no database login for ${c}`);
      return url;
    };
    // Pool sizes: the embedded cluster allows 200 connections (max_connections); these add up
    // to 32 (today's single pool had 30), plus the MCP servers' own pools (automation, analytics,
    // database, writer: 10 each, opened on demand) and a few dedicated connections (LISTEN,
    // leases, leader locks): several processes or test systems fit on one cluster.
    const poolMax: Partial<Record<Component, number>> = {
      gateway: 8,
      engine: 6,
      dispatcher: 4,
      relay: 2,
      projections: 3,
      monitor: 4,
      agents: 3,
      sink: 2,
    };
    // The gateway's queries end when its requests do (REQUEST_TIMEOUT_MS): past it the client has
    // its 503 and a query still running only holds one of the pool's few connections from others.
    const requestTimeoutMs = securityOptionsFromEnv().requestTimeoutMs;
    const statementTimeoutMs: Partial<Record<Component, number>> =
      requestTimeoutMs > 0 ? { gateway: requestTimeoutMs } : {};
    const pools = new Map<Component, pg.Pool>();
    const stores = new Map<Component, EventStore>();
    const poolFor = async (c: Component): Promise<pg.Pool> => {
      let pool = pools.get(c);
      if (!pool) {
        const p = createPgPool(
          {
            connectionString: urlOf(c),
            max: poolMax[c] ?? 2,
            application_name: `switchyard-${c}`,
            ...(statementTimeoutMs[c] ? { statement_timeout: statementTimeoutMs[c] } : {}),
          },
          { name: c, logger },
        );
        if (schemaManaged) markSchemaManaged(p);
        pools.set(c, (pool = p));
        await unit(`pg-${c}`, async () => ({ stop: () => p.end() }));
      }
      return pool;
    };
    /** The component's event store on its own pool (with EventStoreDB one shared client: no PostgreSQL role applies). */
    const storeFor = async (c: Component): Promise<EventStore> => {
      const key: Component = config.EVENTSTORE_URL ? 'sink' : c;
      let store = stores.get(key);
      if (!store) {
        const s = createEventStore({ pool: await poolFor(key), eventstoreUrl: config.EVENTSTORE_URL, logger });
        // Without the roles this migrates as the given login, as before; on a component's role it checks nothing.
        await s.init();
        stores.set(key, (store = s));
        await unit(`event-store-${key}`, async () => ({ stop: () => s.close() }));
      }
      return store;
    };
    // The launcher's own appends (audit of MCP calls, connector and agent events): append only.
    const eventStore = await storeFor('sink');
    // A connection reconnects by itself forever; it only closes for good on a fatal error, and
    // then it is made again and every unit holding it is restarted with it.
    const connections = new Map<string, NatsConnection>();
    const natsOf = (u: NatsRoleUser): NatsConnection => connections.get(natsUnitOf(u))!;
    // The relay makes its own (runRelay). Each unit with the role user it connects as (none: the token).
    const connectionUsers = natsUsers.filter((u) => u !== 'relay');
    const connectionUnits: [string, NatsRoleUser | undefined][] = perRoleNats
      ? connectionUsers.map((u) => [natsUnitOf(u), u])
      : connectionUsers.length > 0 || roles.length === ROLES.length
        ? [['nats', undefined]]
        : [];
    for (const [name, user] of connectionUnits) {
      await unit(name, async () => {
        const nc = await connectNats({
          url: infra.natsUrl,
          name: `switchyard-${user ?? (roles.length === ROLES.length ? 'all' : roles.join('+'))}`,
          logger,
          ...(user ? { user: { user, pass: infra.natsRolePasswords[user]! } } : { token: infra.natsToken }),
        });
        connections.set(name, nc);
        return {
          stop: () => closeNats(nc, { logger }),
          failed: nc.closed().then((err) => err ?? new Error('NATS connection closed')),
        };
      });
    }
    // Gathering 10 ms: a quick MCP call's three records (start, its server's audit, end) make one commit.
    const sink = new EventSink(eventStore, logger, { actor: 'system:switchyard', gatherMs: 10 });
    await unit('event-sink', async () => ({ stop: () => sink.flush() }));

    // The MCP servers and the agents' HTTP contract answer only bearers of these tokens. Unset, one
    // is generated per start and handed to this process's connectors and dispatcher (never logged).
    // Roles split over several processes need MCP_AUTH_TOKEN / AI_AGENT_AUTH_TOKEN set in each.
    const mcpToken = config.MCP_AUTH_TOKEN ?? randomBytes(32).toString('base64url');
    const agentToken = config.AI_AGENT_AUTH_TOKEN ?? randomBytes(32).toString('base64url');
    if (!config.MCP_AUTH_TOKEN && has('mcp-servers') !== has('connectors')) {
      logger.warn(
        'MCP_AUTH_TOKEN is unset and the MCP servers and connectors run in different processes: set it in both, or they cannot talk',
      );
    }
    if (!config.AI_AGENT_AUTH_TOKEN && has('agents') && !has('dispatcher')) {
      logger.warn(
        "AI_AGENT_AUTH_TOKEN is unset: the agents' HTTP contract answers only this process's generated token",
      );
    }
    // Every call an MCP server answers over HTTP (the connectors' or anyone else's) is an event with the caller as actor.
    const auditMcpCall = (c: McpCallAudit) =>
      sink.append(mcpAuditStreamId(c.server), { type: MCP_CALL_AUDIT_EVENT, data: c }, c.correlation_id, c.actor);

    if (has('relay') && config.RELAY_ENABLED) {
      const relayStore = await storeFor('relay');
      await unit('relay', async () => {
        const relay = await runRelay(
          {
            DATABASE_URL: urlOf('relay'),
            NATS_URL: infra.natsUrl,
            NATS_TOKEN: infra.natsToken,
            ...(perRoleNats ? { NATS_PASSWORD_RELAY: infra.natsRolePasswords.relay } : {}),
            RELAY_NAME: 'events',
            RELAY_STREAM: 'SWITCHYARD_EVENTS',
            RELAY_SUBJECT_PREFIX: 'switchyard.events',
            RELAY_CHECKPOINT_EVERY: 100,
            RELAY_CHECKPOINT_INTERVAL_MS: 1000,
            RELAY_DUPLICATE_WINDOW_MS,
            RELAY_RESUME_FROM_STREAM: true,
            NATS_STREAM_REPLICAS: config.NATS_STREAM_REPLICAS,
            NATS_EVENTS_MAX_BYTES: config.NATS_EVENTS_MAX_BYTES,
          },
          logger,
          relayStore,
          { schemaManaged },
        );
        // Its own connection, watched like the shared ones: closed for good, the unit restarts.
        return { stop: () => relay.stop(), failed: relay.closed };
      });
    }

    if (needsDemo && !schemaManaged) {
      // The demo business data set the agents and the templates work on: loaded once (idempotent,
      // locked). With the roles the owner loaded it in the migration phase.
      // Two connections: the loader counts the rows on a second one while it holds the first.
      const loader = createPgPool({ connectionString: urlOf('sink'), max: 2 }, { name: 'demo-data', logger });
      try {
        const demo = await loadDemoData(loader);
        logger.info({ loaded: demo.loaded, counts: demo.counts }, 'demo business data ready');
      } finally {
        await loader.end();
      }
    }

    if (has('mcp-servers')) {
      // Without SMTP_URL the automation server's send_email goes to a development mailbox run here:
      // a real SMTP server on loopback (login with a credential generated per start), keeping what
      // it receives in automation.mailbox (GET /api/v1/integration/mcp/automation/mailbox).
      let smtpUrl = process.env.SMTP_URL;
      if (!smtpUrl && runsMcpServer(selection, 'automation')) {
        const mb = parseConfig(process.env, mailboxConfigSchema);
        const password = randomBytes(24).toString('base64url');
        let port = mb.MAILBOX_SMTP_PORT;
        // It stores into the automation schema: the automation server's role.
        const mailboxPool = await poolFor('automation');
        await unit('mailbox', async () => {
          const box = await startMailbox({
            pool: mailboxPool,
            logger,
            host: mb.MAILBOX_SMTP_HOST,
            port,
            password,
            maxMessageBytes: mb.MAILBOX_MAX_MESSAGE_BYTES,
            maxMessages: mb.MAILBOX_MAX_MESSAGES,
          });
          // A restart binds the same port again: the automation server keeps the URL it was given.
          port = box.port;
          smtpUrl = box.smtpUrl;
          return { stop: () => box.close() };
        });
      }
      // The project's own MCP servers on their seed ports (5001 filesystem bridge .. 5006 analytics).
      const env = { ...process.env, DATABASE_URL: infra.databaseUrl };
      // The database server reads as the reader role (SELECT on the demo schema only), always
      // read-only: DATABASE_ALLOW_WRITES opens the writer below to admin keys, not this server.
      // The automation and analytics servers log in as their own roles (their schema only).
      const envFor = (kind: string) =>
        !schemaManaged
          ? env
          : kind === 'database'
            ? { ...env, DATABASE_URL: urlOf('mcp_reader'), DATABASE_ALLOW_WRITES: 'false' }
            : kind === 'automation' || kind === 'analytics'
              ? { ...env, DATABASE_URL: urlOf(kind) }
              : { ...env, DATABASE_URL: undefined };
      // Only the automation server gets the mailbox's credential.
      const automationEnv = { ...envFor('automation'), ...(smtpUrl ? { SMTP_URL: smtpUrl } : {}) };
      for (const kind of mcpServerKinds) {
        if (!runsMcpServer(selection, kind)) continue;
        // MCP_<KIND>_PORT moves a server; the connectors' registry reads the same variable.
        const port = mcpServerPort(kind);
        await unit(`mcp-${kind}`, async () => {
          const server = await runMcpServer(kind, {
            port,
            env: kind === 'automation' ? automationEnv : envFor(kind),
            schemaManaged,
            host: config.BIND_HOST,
            token: mcpToken,
            onCall: auditMcpCall,
            logger: logger.child({ mcp: kind }),
          });
          return { stop: () => server.close() };
        });
      }
      // 5007: the database server again, with writes allowed, but logged in as the writer role
      // that may only read, insert and delete the onboarding tables, so the database enforces
      // what it can write. The templates reach it through the connectors; at the gateway only
      // an admin key may call it, and only with DATABASE_ALLOW_WRITES=true.
      const runsWriter = runsMcpServer(selection, DATABASE_WRITER);
      const writerUrl = runsWriter && schemaManaged ? urlOf('mcp_writer') : undefined;
      if (runsWriter && !writerUrl)
        logger.warn(
          'no least-privilege roles: the database_writer MCP server is not started (customer_onboarding cannot create records)',
        );
      else if (runsWriter && writerUrl) {
        const port = mcpServerPort(DATABASE_WRITER);
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
      warnOfFilesLeftBehind(logger);
      await unit(
        'connectors',
        async () => {
          const stdioSandbox = detectStdioSandbox(config.MCP_STDIO_SANDBOX, dataDirSecrets(config.DATA_DIR), logger);
          const connectors = await startConnectors({
            nats: natsOf('connectors'),
            registry: loadRegistry({ env: { ...process.env, MCP_AUTH_TOKEN: mcpToken } }),
            logger,
            ...(stdioSandbox && { stdioSandbox }),
            // The call bucket's copies follow the events stream's; the connectors' own user may not make or change it.
            sharedCalls: { replicas: config.NATS_STREAM_REPLICAS, manage: !perRoleNats },
            // Every call, breaker change and health transition goes to the event store (audit, availability).
            // A call's events name who asked (the gateway sends `apikey:<id>`), not the system.
            onEvent: (e) => {
              const m = mcpEventMetadata(e);
              sink.append(mcpServerStreamId(e.data.server), e, m.correlationId, m.actor);
            },
          });
          return { stop: () => connectors.stop() };
        },
        usesNats('connectors'),
      );
    }

    if (has('agents')) {
      // LLM_BASE_URL + LLM_MODEL: an OpenAI-compatible endpoint rewords agent prose (never the figures).
      const llm = llmFromEnv(process.env, logger);
      const pool = await poolFor('agents');
      await unit(
        'agents',
        async () => {
          const agents = await startAgents({
            nats: natsOf('agents'),
            pool,
            logger,
            ...(only.agents ? { agents: only.agents } : {}),
            ...(llm ? { llm } : {}),
            http: {
              token: agentToken,
              host: config.BIND_HOST,
              // Every /execute run over HTTP is an event with the caller as actor, like the MCP servers' calls.
              onExecute: (c) =>
                sink.append(
                  agentAuditStreamId(c.agent),
                  { type: AGENT_HTTP_AUDIT_EVENT, data: c },
                  c.correlation_id,
                  c.actor,
                ),
              ...agentPortsFromEnv(),
            },
          });
          return { stop: () => agents.stop() };
        },
        usesNats('agents'),
      );
    }

    // How far the read models this process runs are behind the log: said by their units while a replay lasts.
    const lagRole: Component | undefined = has('dispatcher')
      ? 'dispatcher'
      : has('workflows') || has('read-models')
        ? 'engine'
        : undefined;
    const lagWatch = lagRole
      ? new ReadModelLagWatch({ pool: await poolFor(lagRole), store: await storeFor(lagRole), logger })
      : undefined;
    lagWatch?.start();
    stopLagWatch = () => lagWatch?.stop();
    const delegationReadModels = new Set(delegationProjections().map((p) => p.name));
    const workflowReadModel = (name: string) => name === workflowExecutionsProjection.name;

    if (has('dispatcher')) {
      const pool = await poolFor('dispatcher');
      const store = await storeFor('dispatcher');
      await unit(
        'dispatcher',
        async () => {
          // Only an operator-set AI_AGENT_AUTH_TOKEN goes to external agents; the generated one stays on loopback.
          const dispatcher = await startDispatcher({
            store,
            nats: natsOf('dispatcher'),
            pool,
            logger,
            agentToken,
            ...(config.AI_AGENT_AUTH_TOKEN ? { externalAgentToken: config.AI_AGENT_AUTH_TOKEN } : {}),
          });
          return {
            stop: () => dispatcher.stop(),
            trouble: () => lagWatch?.trouble((name) => delegationReadModels.has(name)),
          };
        },
        usesNats('dispatcher'),
      );
    }

    if (has('workflows')) {
      const pool = await poolFor('engine');
      const store = await storeFor('engine');
      await unit(
        'workflows',
        async () => {
          // Its partition leases log in on connections of their own, as the engine's role too.
          // With `read-models` here too, the workflow read model runs on its own thread (below), not in the engine's loop.
          const engine = await startWorkflowEngine({
            store,
            pool,
            nats: natsOf('workflows'),
            logger,
            databaseUrl: urlOf('engine'),
            readModel: !has('read-models'),
          });
          // Starts the workflows the automation server's triggers and schedules record (automation.triggers).
          // Its table exists before the first pass even when no automation server runs in this process
          // (a no-op on a schema-managed pool: the owner migrated it).
          await migrateAutomation(pool);
          const triggers = startTriggerStarter({ store, pool, logger });
          return {
            stop: async () => {
              await triggers.stop();
              await engine.stop();
            },
            // The engine runs the workflow read model itself when no read-models unit does.
            ...(has('read-models') ? {} : { trouble: () => lagWatch?.trouble(workflowReadModel) }),
          };
        },
        usesNats('workflows'),
      );
    }

    if (has('read-models')) {
      // The workflow read model is the engine's (its database role may write it): the thread logs in as that role.
      await unit('read-models', async () => {
        const thread = await startReadModelThread(
          {
            databaseUrl: urlOf('engine'),
            schemaManaged,
            logLevel: config.LOG_LEVEL,
            ...(config.EVENTSTORE_URL ? { eventstoreUrl: config.EVENTSTORE_URL } : {}),
          },
          logger,
        );
        return {
          stop: () => thread.stop(),
          failed: thread.failed,
          trouble: () => lagWatch?.trouble(workflowReadModel),
        };
      });
    }

    // One monitor per system: it samples the machine, probes every service and evaluates the alert rules.
    let monitoring: MonitoringRunner | undefined;
    /** Probes known after the monitor started (the gateway's): added to whichever monitoring is active now or later. */
    const monitorProbes: Probe[] = [];
    if (has('monitor')) {
      const pool = await poolFor('monitor');
      const store = await storeFor('monitor');
      await unit(
        'monitor',
        async () => {
          // What stops with this launcher counts as down for a time the monitor (in it) was not running.
          const embedded = (what: string) => !what.startsWith('external');
          const colocatedServices = [
            ...(has('gateway') ? ['gateway'] : []),
            ...(embedded(infra.started.postgres)
              ? ['postgres', ...(config.EVENTSTORE_URL ? [] : ['event-store'])]
              : []),
            ...(embedded(infra.started.nats) ? ['nats'] : []),
          ];
          // Once per deployment: a second monitor process waits as standby and takes over when this one dies.
          // The engines and dispatchers of every process heartbeat into these: each one is probed by its
          // heartbeat's age, so a frozen or crashed one shows (its partitions go to the others meanwhile).
          const dispatcherTtl = dispatcherLeaseTtlMs();
          const memberTables = [
            { role: 'workflows', table: `${WORKFLOW_SCHEMA}.engine_members`, silentAfterMs: 10_000 },
            {
              role: 'dispatcher',
              table: 'delegation.dispatcher_members',
              silentAfterMs: Math.max(10_000, 3 * dispatcherTtl),
            },
          ];
          const runner = await runMonitoringExclusively({
            pool,
            nats: natsOf('monitor'),
            eventStore: store,
            logger,
            colocatedServices,
            memberTables,
            onActive: (running) => {
              // Every supervised unit of this process is a service of the health report: a failed probe
              // while it is being restarted (degraded, then down), up again once it runs.
              for (const name of supervisor
                .status()
                .map((s) => s.name)
                .concat('process')) {
                running.monitor.addProbe(
                  functionProbe(`component:${name}`, 'component', async () => componentCheck(supervisor, name)),
                );
              }
              for (const probe of monitorProbes) running.monitor.addProbe(probe);
            },
          });
          monitoring = runner;
          return { stop: () => runner.stop() };
        },
        usesNats('monitor'),
      );
    }

    let gatewayUrl: string | undefined;
    let consoleServed = false;
    const security = securityOptionsFromEnv();
    let adminKey: StartInfo['adminKey'] = !security.auth.enabled
      ? 'auth-disabled'
      : security.auth.adminKey
        ? 'env'
        : 'existing';
    if (has('gateway')) {
      const pool = await poolFor('gateway');
      const store = await storeFor('gateway');
      // The status read model runs in the gateway's unit, but logs in as the projections' role.
      const projectionsPool = await poolFor('projections');
      const projectionsStore = await storeFor('projections');
      // DATABASE_READ_URL: a streaming replica; the gateway logs in there as its own role (a physical
      // replica has the primary's roles), at the replica's address and database.
      const readUrl = config.DATABASE_READ_URL
        ? replicaLogin(urlOf('gateway'), config.DATABASE_READ_URL, schemaManaged)
        : undefined;
      await unit(
        'gateway',
        async () => {
          // The status read model (MCP servers from the connector events) behind /api/v1/integration/status.
          const statusRunner = await startStatusProjections({ store: projectionsStore, pool: projectionsPool, logger });
          const readPool = readUrl
            ? createPgPool(
                {
                  connectionString: readUrl,
                  max: 4,
                  connectionTimeoutMillis: 2_000,
                  ...(statementTimeoutMs.gateway ? { statement_timeout: statementTimeoutMs.gateway } : {}),
                  application_name: 'switchyard-gateway-reads',
                },
                { name: 'gateway-reads', logger },
              )
            : undefined;
          try {
            const modules: FeatureModule[] = [
              McpFeatureModule,
              AgentsFeatureModule,
              WorkflowsFeatureModule,
              SystemFeatureModule,
              StatusFeatureModule,
              A2aFeatureModule,
              McpServerFeatureModule,
            ];
            const gateway = await createGateway(
              {
                eventStore: store,
                pgPool: pool,
                ...(readPool ? { readPool } : {}),
                nats: natsOf('gateway'),
                logger,
                config,
                // Ready while a component restarts, but saying which and why.
                readiness: { components: async () => componentsReadiness(supervisor) },
              },
              {
                modules,
                ...security,
                // Printed as before (stdout, once, never the log); remembered so the banner can point at it.
                auth: {
                  ...security.auth,
                  printAdminKey: (key: string) => {
                    adminKey = 'generated';
                    process.stdout.write(adminKeyBanner(key));
                  },
                },
              },
            );
            gatewayUrl = (await gateway.listen()).url;
            // The web console is served outside the route registry: the gateway says whether it has a build.
            consoleServed = gateway.consoleServed;
            const gatewayProbe = httpProbe('gateway', `${gatewayUrl}/livez`);
            // Replaced, not added, at each restart of the gateway: a monitor taking over later adds each once.
            const before = monitorProbes.findIndex((p) => p.service === gatewayProbe.service);
            if (before >= 0) monitorProbes.splice(before, 1);
            monitorProbes.push(gatewayProbe);
            monitoring?.current()?.monitor.addProbe(gatewayProbe);
            return {
              stop: async () => {
                await gateway.close();
                await statusRunner.stop();
                await readPool?.end().catch(() => undefined);
              },
            };
          } catch (err) {
            await statusRunner.stop().catch(() => undefined);
            await readPool?.end().catch(() => undefined);
            throw err;
          }
        },
        usesNats('gateway'),
      );
    }
    logger.info({ roles, gatewayUrl, postgres: infra.started.postgres, nats: infra.started.nats }, 'switchyard is up');
    const dashboardUrl = gatewayUrl && consoleServed ? `${gatewayUrl}/ui` : undefined;
    const startInfo: StartInfo = {
      ...(gatewayUrl ? { gatewayUrl } : {}),
      ...(dashboardUrl ? { dashboardUrl } : {}),
      postgres: infra.where.postgres,
      nats: infra.where.nats,
      adminKey,
    };
    return {
      startInfo,
      databaseUrl: infra.databaseUrl,
      natsUrl: infra.natsUrl,
      ...(gatewayUrl ? { gatewayUrl } : {}),
      supervisor,
      stop: async () => {
        stopLagWatch();
        await supervisor.stopAll();
      },
    };
  } catch (err) {
    stopLagWatch();
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

/**
 * The health report's probe of one unit: throws while it is not running. A unit degraded only
 * because its read models are replaying works (it serves, its data is older): the probe passes,
 * saying so in its details, where a failed probe made it `down` and paged "service unavailable"
 * (critical) for an expected rebuild; /readyz still names it degraded.
 */
export function componentCheck(supervisor: Pick<Supervisor, 'status'>, name: string): Record<string, unknown> {
  const s = supervisor.status().find((u) => u.name === name);
  if (!s) return { state: 'running' }; // `process` before any unexpected error
  if (s.state === 'degraded' && s.lastError?.startsWith(READ_MODELS_CATCHING_UP))
    return { state: s.state, note: s.lastError, restarts: s.restarts };
  if (s.state !== 'running') throw new Error(`${s.state}${s.lastError ? `: ${s.lastError}` : ''}`);
  return { state: s.state, restarts: s.restarts };
}

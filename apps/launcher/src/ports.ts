import { BUILTIN_AGENT_PORTS } from '@switchyard/contracts';
import { DATABASE_WRITER_PORT, ownServerPort, portSetting } from '@switchyard/connectors';
import { defaultPorts, mcpServerKinds } from '@switchyard/mcp-servers';
import { AppError, ConfigError, isListening, parseConfig, type Config } from '@switchyard/platform';

/** One problem with a variable (as ConfigError takes them). */
type ConfigIssue = { variable: string; message: string };
import { DATABASE_WRITER, runsMcpServer, selectedAgents, type McpServerName, type RoleSelection } from './roles.js';

type Env = Readonly<Record<string, string | undefined>>;

/** One HTTP listener a launcher process opens, and the path that says it is healthy. */
export interface Listener {
  readonly role: 'gateway' | 'mcp-servers' | 'agents';
  /** The MCP server kind (or `database_writer`), the agent, or `gateway`. */
  readonly name: string;
  readonly port: number;
  readonly healthPath: string;
  /** The variable that moves it. */
  readonly portVariable: string;
  /** The variable of its bind address. */
  readonly hostVariable: 'GATEWAY_HOST' | 'BIND_HOST';
}

const envName = (name: string) => name.toUpperCase().replace(/[^A-Z0-9]/g, '_');

/** Port of one of the project's MCP servers: MCP_<KIND>_PORT, else its seed port. */
export function mcpServerPort(server: McpServerName, env: Env = process.env): number {
  // The connectors read the same variable with the same function: one answer, or a start stopped naming it.
  return ownServerPort(server, server === DATABASE_WRITER ? DATABASE_WRITER_PORT : defaultPorts[server], env);
}

/**
 * AGENT_<NAME>_PORT moves one built-in agent's HTTP contract off its seed port (6001-6006). A
 * value that is no port, or a name that is no agent (a typo would leave the agent on its seed
 * port without a word), stops the start naming the variable, as MCP_<KIND>_PORT does.
 */
export function agentPortsFromEnv(env: Env = process.env): { ports?: Record<string, number> } {
  const ports: Record<string, number> = {};
  for (const [k, v] of Object.entries(env)) {
    const m = /^AGENT_([A-Z0-9_]+)_PORT$/.exec(k);
    if (!m || !v) continue;
    const agent = m[1]!.toLowerCase();
    if (!(agent in BUILTIN_AGENT_PORTS))
      throw new AppError(
        'validation',
        `${k} names no agent (known: ${Object.keys(BUILTIN_AGENT_PORTS)
          .map((a) => `AGENT_${envName(a)}_PORT`)
          .join(', ')})`,
        {
          variable: k,
        },
      );
    ports[agent] = portSetting(k, v);
  }
  return Object.keys(ports).length ? { ports } : {};
}

/**
 * Every HTTP listener a process with this selection opens, read from the same defaults and
 * variables the launcher starts them with: the deployment files are checked against this.
 * The writer is listed although it only starts when the database roles could be made.
 */
export function plannedListeners(selection: RoleSelection, env: Env = process.env): Listener[] {
  const out: Listener[] = [];
  for (const server of [...mcpServerKinds, DATABASE_WRITER] as const) {
    if (!runsMcpServer(selection, server)) continue;
    out.push({
      role: 'mcp-servers',
      name: server,
      port: mcpServerPort(server, env),
      healthPath: '/health',
      portVariable: `MCP_${envName(server)}_PORT`,
      hostVariable: 'BIND_HOST',
    });
  }
  const moved = agentPortsFromEnv(env).ports ?? {};
  for (const agent of selectedAgents(selection)) {
    const port = moved[agent] ?? BUILTIN_AGENT_PORTS[agent]!;
    out.push({
      role: 'agents',
      name: agent,
      port,
      healthPath: '/health',
      portVariable: `AGENT_${envName(agent)}_PORT`,
      hostVariable: 'BIND_HOST',
    });
  }
  if (selection.roles.includes('gateway')) {
    out.push({
      role: 'gateway',
      name: 'gateway',
      port: parseConfig({ GATEWAY_PORT: env.GATEWAY_PORT }).GATEWAY_PORT,
      healthPath: '/readyz',
      portVariable: 'GATEWAY_PORT',
      hostVariable: 'GATEWAY_HOST',
    });
  }
  return out;
}

/**
 * Which servers the launcher runs itself: PostgreSQL without DATABASE_URL (and without the roles'
 * own logins, DATABASE_URL_<LOGIN>), nats-server without NATS_URL.
 */
export function embeddedServers(
  config: Pick<Config, 'DATABASE_URL' | 'NATS_URL'>,
  env: Env = process.env,
): { postgres: boolean; nats: boolean } {
  return {
    postgres: !config.DATABASE_URL && !Object.keys(env).some((k) => k.startsWith('DATABASE_URL_')),
    nats: !config.NATS_URL,
  };
}

/**
 * Every port a process with this selection listens on, with the variable that sets it: its HTTP
 * listeners, and the embedded PostgreSQL and nats-server when it runs them (no DATABASE_URL, or
 * no NATS_URL).
 */
export function listeningPorts(
  selection: RoleSelection,
  config: Pick<Config, 'DATABASE_URL' | 'NATS_URL' | 'EMBEDDED_PG_PORT' | 'EMBEDDED_NATS_PORT'>,
  env: Env = process.env,
): { variable: string; port: number }[] {
  const embedded = embeddedServers(config, env);
  return [
    ...plannedListeners(selection, env).map((l) => ({ variable: l.portVariable, port: l.port })),
    ...(embedded.postgres ? [{ variable: 'EMBEDDED_PG_PORT', port: config.EMBEDDED_PG_PORT }] : []),
    ...(embedded.nats ? [{ variable: 'EMBEDDED_NATS_PORT', port: config.EMBEDDED_NATS_PORT }] : []),
    // The development mailbox's SMTP listener, where the automation server runs one (no SMTP_URL) on a set port.
    ...(runsMcpServer(selection, 'automation') && !env.SMTP_URL && Number(env.MAILBOX_SMTP_PORT) > 0
      ? [{ variable: 'MAILBOX_SMTP_PORT', port: Number(env.MAILBOX_SMTP_PORT) }]
      : []),
  ];
}

/** One issue per variable whose port another variable already names (0, any free port, never clashes). */
export function portClashes(ports: readonly { variable: string; port: number }[]): ConfigIssue[] {
  return ports.flatMap((b, i) => {
    const a = ports.slice(0, i).find((x) => x.port === b.port && b.port !== 0);
    return a
      ? [{ variable: b.variable, message: `${b.port} is also ${a.variable}: each listener needs a port of its own` }]
      : [];
  });
}

/**
 * Refuse (ConfigError naming each variable) when an HTTP listener's port of this selection is
 * held by another program: it failed last, after everything else had started, as a bare
 * EADDRINUSE. The embedded servers' ports are left to their start, which adopts a server a killed
 * run of this data dir left behind. Run once the configuration itself is known good.
 */
export async function refuseTakenPorts(selection: RoleSelection, env: Env = process.env): Promise<void> {
  const taken = [];
  for (const l of plannedListeners(selection, env)) {
    // The writer starts only when the database roles could be made: its port may stay unused.
    if (l.port === 0 || l.name === DATABASE_WRITER) continue;
    if (await isListening(l.port)) taken.push(l);
  }
  if (taken.length > 0)
    throw new ConfigError(
      taken.map((l) => ({
        variable: l.portVariable,
        message: `port ${l.port} (${l.name}) is taken by another program: stop it, or set ${l.portVariable} to a free port`,
      })),
    );
}

import { BUILTIN_AGENT_PORTS, natsPasswordEnv, natsRoleUsers, type NatsRoleUser } from '@switchyard/contracts';
import {
  ConfigError,
  DATABASE_LOGINS,
  databaseLoginEnv,
  givenDatabaseLoginValues,
  type DatabaseLogin,
} from '@switchyard/platform';
import { mcpServerKinds, type McpServerKind } from '@switchyard/mcp-servers';

/**
 * The parts of the system one process can run; `all` is every one of them, in this order.
 * Every part talks to the others over NATS and the event store only, so any subset can run
 * in its own process, on its own machine, several times over.
 * `read-models` is the workflow read model on a thread of its own; a process with `workflows`
 * but without `read-models` keeps it in the engine's event loop, as before the role existed.
 */
export const ROLES = [
  'relay',
  'mcp-servers',
  'connectors',
  'agents',
  'dispatcher',
  'workflows',
  'read-models',
  'monitor',
  'gateway',
] as const;
export type Role = (typeof ROLES)[number];

/** The second database server (writes allowed, as the writer role), selected as `mcp-servers:database_writer`. */
export const DATABASE_WRITER = 'database_writer';
/** What `mcp-servers:<name>` may name: a server kind, or the writer. */
export type McpServerName = McpServerKind | typeof DATABASE_WRITER;

/**
 * What one launcher process runs: the roles, and within `mcp-servers` and `agents` optionally
 * only some servers or agents (one container per MCP server or agent). Undefined means all.
 */
export interface RoleSelection {
  readonly roles: readonly Role[];
  readonly mcpServers?: readonly McpServerName[];
  readonly agents?: readonly string[];
}

/** A bad role list: the message names the bad entry and the valid ones. */
export class RoleSelectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RoleSelectionError';
  }
}

/**
 * A server named as its role (`filesystem`, as the specification and the registry call it) or as
 * its kind (`filesystem-bridge`): the kind. The writer under either spelling.
 */
function mcpServerName(name: string): McpServerName | undefined {
  const n = name.toLowerCase();
  if (n === DATABASE_WRITER || n === 'database-writer') return DATABASE_WRITER;
  return mcpServerKinds.find((k) => k === n || k === `${n}-bridge`);
}

/**
 * Parse a role list: the launcher's arguments, or else `SWITCHYARD_ROLES` (commas or spaces).
 * Each entry is `all`, a role, or `mcp-servers:<server>` / `agents:<agent>` for one server or
 * agent of that role (repeat the entry or join names with `+` for several). Nothing given: `all`.
 * @throws RoleSelectionError naming an unknown role, server or agent.
 */
export function parseRoleSelection(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): RoleSelection {
  let asked = argv.filter((a) => !a.startsWith('-'));
  if (asked.length === 0 && env.SWITCHYARD_ROLES?.trim()) asked = env.SWITCHYARD_ROLES.split(/[\s,]+/).filter(Boolean);
  if (asked.length === 0 || asked.includes('all')) return { roles: [...ROLES] };
  const roles = new Set<Role>();
  const mcp = new Set<McpServerName>();
  const agents = new Set<string>();
  // A bare role after `role:x` asks for the whole role again.
  let allMcp = false;
  let allAgents = false;
  for (const entry of asked) {
    const [role, items] = entry.split(':', 2) as [string, string | undefined];
    if (!(ROLES as readonly string[]).includes(role))
      throw new RoleSelectionError(`unknown role "${role}"; valid: all, ${ROLES.join(', ')}`);
    roles.add(role as Role);
    if (items === undefined) {
      if (role === 'mcp-servers') allMcp = true;
      if (role === 'agents') allAgents = true;
      continue;
    }
    const names = items.split('+').filter(Boolean);
    if (role === 'mcp-servers') {
      for (const n of names) {
        const server = mcpServerName(n);
        if (!server)
          throw new RoleSelectionError(
            `unknown MCP server "${n}"; valid: ${[...mcpServerKinds, DATABASE_WRITER].join(', ')}`,
          );
        mcp.add(server);
      }
    } else if (role === 'agents') {
      for (const n of names) {
        if (!(n in BUILTIN_AGENT_PORTS))
          throw new RoleSelectionError(`unknown agent "${n}"; valid: ${Object.keys(BUILTIN_AGENT_PORTS).join(', ')}`);
        agents.add(n);
      }
    } else {
      throw new RoleSelectionError(
        `role "${role}" has no parts to pick (only mcp-servers:<server> and agents:<agent> do)`,
      );
    }
  }
  return {
    roles: ROLES.filter((r) => roles.has(r)),
    ...(mcp.size && !allMcp ? { mcpServers: [...mcp] } : {}),
    ...(agents.size && !allAgents ? { agents: [...agents] } : {}),
  };
}

/** Does the selection run this MCP server (a kind, or the writer)? */
export function runsMcpServer(selection: RoleSelection, server: McpServerName): boolean {
  return selection.roles.includes('mcp-servers') && (!selection.mcpServers || selection.mcpServers.includes(server));
}

/** The agents the selection runs (none without the `agents` role). */
export function selectedAgents(selection: RoleSelection): readonly string[] {
  if (!selection.roles.includes('agents')) return [];
  return selection.agents ?? Object.keys(BUILTIN_AGENT_PORTS);
}

/**
 * How a process with these roles connects to NATS. One that runs every role is one trust domain:
 * one connection with the token (every subject). One that runs some roles connects once per role
 * as the role's own user (that role's subjects only) when it has their passwords; with none of
 * them, once with the token, as before the users existed. Some but not all is a mistake, refused.
 * `users` are the roles of the process that have a NATS user (the relay's included).
 */
export function natsIdentity(
  roles: readonly Role[],
  passwords: Partial<Record<NatsRoleUser, string>>,
): { users: NatsRoleUser[]; perRole: boolean } {
  const all = ROLES.every((r) => roles.includes(r));
  const users = all ? [] : natsRoleUsers.filter((u) => roles.includes(u));
  const withPassword = users.filter((u) => passwords[u]);
  if (withPassword.length > 0 && withPassword.length < users.length)
    throw new ConfigError(
      users
        .filter((u) => !passwords[u])
        .map((u) => ({
          variable: natsPasswordEnv(u),
          message: `this process connects to NATS as its roles' own users (${withPassword.map(natsPasswordEnv).join(', ')} given): the ${u} role needs its password too`,
        })),
    );
  return { users, perRole: withPassword.length > 0 };
}

/**
 * The database logins a process with this selection uses: the launcher's audit (`sink`) always,
 * then each role's components (the MCP servers' reader, writer, automation and analytics logins
 * only for those servers).
 */
export function databaseLoginsOf(selection: RoleSelection): DatabaseLogin[] {
  const has = (role: Role) => selection.roles.includes(role);
  const logins = new Set<DatabaseLogin>(['sink']);
  if (has('relay')) logins.add('relay');
  if (runsMcpServer(selection, 'database')) logins.add('mcp_reader');
  if (runsMcpServer(selection, DATABASE_WRITER)) logins.add('mcp_writer');
  if (runsMcpServer(selection, 'automation')) logins.add('automation');
  if (runsMcpServer(selection, 'analytics')) logins.add('analytics');
  if (has('agents')) logins.add('agents');
  if (has('dispatcher')) logins.add('dispatcher');
  if (has('workflows') || has('read-models')) logins.add('engine');
  if (has('monitor')) logins.add('monitor');
  if (has('gateway')) {
    logins.add('gateway');
    logins.add('projections');
  }
  return DATABASE_LOGINS.filter((l) => logins.has(l));
}

/**
 * The logins of a process given DATABASE_URL_<LOGIN> variables instead of DATABASE_URL (after a
 * one-shot setup provisioned the roles and migrated): every login its roles use, or a
 * ConfigError naming each one missing. Undefined when none is given.
 */
export function givenDatabaseLogins(
  selection: RoleSelection,
  env: Readonly<Record<string, string | undefined>>,
): Partial<Record<DatabaseLogin, string>> | undefined {
  const given = givenDatabaseLoginValues(env, 'URL');
  if (Object.keys(given).length === 0) return undefined;
  const missing = databaseLoginsOf(selection).filter((l) => !given[l]);
  if (missing.length > 0)
    throw new ConfigError(
      missing.map((l) => ({
        variable: databaseLoginEnv(l, 'URL'),
        message: `this process logs in to PostgreSQL with its roles' own logins (DATABASE_URL_<LOGIN> given, no DATABASE_URL): its roles (${selection.roles.join(', ')}) need the ${l} login too`,
      })),
    );
  return given;
}

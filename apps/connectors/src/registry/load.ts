import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ZodError } from 'zod';
import { AppError, type Logger } from '@switchyard/platform';
import {
  mcpServerConfigSchema,
  registryFileSchema,
  type McpServerConfig,
  type McpServerConfigInput,
} from './schema.js';
import { resolvePackageBin } from './resolve-bin.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** Ports of the project's own MCP servers (apps/mcp-servers), all Streamable HTTP on `/mcp`. */
export const OWN_SERVER_PORTS = { database: 5002, fetch: 5004, automation: 5005, analytics: 5006 } as const;
/**
 * Port of the second database server, run with writes allowed as a Postgres role that may only
 * touch the onboarding tables (business.customers, business.subscriptions): the database itself
 * enforces what it may write, so the main `database` server stays read-only.
 */
export const DATABASE_WRITER_PORT = 5007;

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);
/** `database` -> `MCP_DATABASE_`, `my-server` -> `MCP_MY_SERVER_`: prefix of a server's env overrides. */
export const envPrefix = (name: string): string => `MCP_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;

/**
 * Absolute filesystem sandbox root: FILESYSTEM_ROOT, default `files` in DATA_DIR (`.data/files`
 * under `cwd` with the default DATA_DIR): what a system writes stays with its data, not shared by
 * every system started from one directory with a DATA_DIR of its own.
 */
export const filesystemRoot = (env: Env, cwd: string): string =>
  path.resolve(cwd, nonEmpty(env.FILESYSTEM_ROOT) ?? path.join(nonEmpty(env.DATA_DIR) ?? '.data', 'files'));

/**
 * The files an older release may have left in `.data/files` under `cwd` (its default root whatever
 * DATA_DIR said) when this one, with a DATA_DIR of its own and no FILESYSTEM_ROOT, looks in
 * `DATA_DIR/files` and finds nothing there: the reports written before an upgrade would otherwise be
 * out of reach with no word said. Only for a data dir whose embedded database existed before this
 * process started (`startedAt`): a fresh one has no older release's files anywhere. Returns both
 * paths, or undefined when there is nothing to say.
 */
export function filesLeftBehind(
  env: Env,
  cwd: string,
  startedAt = Date.now() - process.uptime() * 1000,
): { old: string; root: string } | undefined {
  if (nonEmpty(env.FILESYSTEM_ROOT)) return undefined;
  const old = path.resolve(cwd, '.data', 'files');
  const root = filesystemRoot(env, cwd);
  if (root === old) return undefined;
  const dataDir = path.resolve(cwd, nonEmpty(env.DATA_DIR) ?? '.data');
  try {
    if (statSync(path.join(dataDir, 'postgres', 'PG_VERSION')).mtimeMs >= startedAt) return undefined;
  } catch {
    return undefined; // no embedded database here: nothing says an older release used this data dir
  }
  const entries = (dir: string): number => {
    try {
      return readdirSync(dir).length;
    } catch {
      return 0;
    }
  };
  return entries(old) > 0 && entries(root) === 0 ? { old, root } : undefined;
}

/** Say so at start when an upgrade left the files behind (see filesLeftBehind). */
export function warnOfFilesLeftBehind(
  logger: Logger,
  env: Env = process.env,
  cwd = process.cwd(),
  startedAt?: number,
): void {
  const left = filesLeftBehind(env, cwd, startedAt);
  if (left)
    logger.warn(
      { ...left },
      "files an older release wrote for this data dir may be in the old filesystem root (this checkout's .data/files, shared by every system started here with the default DATA_DIR), not in this one (DATA_DIR/files): move those of this system into it, or set FILESYSTEM_ROOT",
    );
}

/**
 * Where one of the project's own HTTP servers listens: `MCP_<NAME>_PORT` when set (the launcher
 * moves the server there, reading it with this same function), else its seed port. The connectors follow the move: left on the seed
 * port, they would send MCP_AUTH_TOKEN to whatever listens there (another system's server, or any
 * local process that took the free port).
 */
export function ownServerPort(name: string, seed: number, env: Env = process.env): number {
  const variable = `${envPrefix(name)}PORT`;
  const value = nonEmpty(env[variable]);
  return value === undefined ? seed : portSetting(variable, value, { server: name });
}

/** A port given in `variable` (decimal digits, 1-65535), or a validation error naming the variable and the value. */
export function portSetting(variable: string, value: string, details: Record<string, unknown> = {}): number {
  const port = Number(value);
  if (!/^[0-9]+$/.test(value) || port < 1 || port > 65_535)
    throw new AppError('validation', `${variable} must be a port number (1-65535), got "${value}"`, {
      ...details,
      variable,
    });
  return port;
}

/**
 * The six roles on a fresh machine:
 * - filesystem: official server-filesystem over stdio, sandboxed to FILESYSTEM_ROOT;
 * - database, fetch, automation, analytics: our own servers over Streamable HTTP on 127.0.0.1
 *   (their seed ports, or MCP_<NAME>_PORT);
 * - github: official server-github over stdio, `unconfigured` until GITHUB_PERSONAL_ACCESS_TOKEN is set.
 * Stdio servers run as `node <installed bin>`: no npx, nothing fetched at run time.
 */
export function defaultServerInputs(env: Env = process.env, cwd: string = process.cwd()): McpServerConfigInput[] {
  const node = process.execPath;
  const host = nonEmpty(env.MCP_HOST) ?? '127.0.0.1';
  const bin = (pkg: string): string => {
    try {
      return resolvePackageBin(pkg, undefined, cwd);
    } catch {
      // Not installed: keep a config that fails at spawn (health `down` with the spawn error) rather than at boot.
      return path.join(cwd, 'node_modules', pkg, 'dist', 'index.js');
    }
  };
  const github = nonEmpty(env.GITHUB_PERSONAL_ACCESS_TOKEN);
  const own = Object.entries(OWN_SERVER_PORTS).map(([name, port]): McpServerConfigInput => ({
    name,
    role: name as keyof typeof OWN_SERVER_PORTS,
    transport: { kind: 'http', url: `http://${host}:${ownServerPort(name, port, env)}/mcp` },
  }));
  return [
    {
      name: 'filesystem',
      role: 'filesystem',
      transport: {
        kind: 'stdio',
        command: node,
        args: [bin('@modelcontextprotocol/server-filesystem'), filesystemRoot(env, cwd)],
        writable: [filesystemRoot(env, cwd)],
      },
    },
    ...own,
    {
      name: 'database_writer',
      role: 'database',
      transport: {
        kind: 'http',
        url: `http://${host}:${ownServerPort('database_writer', DATABASE_WRITER_PORT, env)}/mcp`,
      },
    },
    {
      name: 'github',
      role: 'github',
      transport: {
        kind: 'stdio',
        command: node,
        args: [bin('@modelcontextprotocol/server-github')],
        env: github ? { GITHUB_PERSONAL_ACCESS_TOKEN: github } : {},
        required_env: ['GITHUB_PERSONAL_ACCESS_TOKEN'],
      },
    },
  ];
}

/** The project's own HTTP MCP servers: the ones MCP_AUTH_TOKEN is the default bearer of. */
const OWN_HTTP_SERVERS: ReadonlySet<string> = new Set([...Object.keys(OWN_SERVER_PORTS), 'database_writer']);

export interface LoadRegistryOptions {
  /** Environment to read (default process.env). */
  readonly env?: Env;
  /** Base for relative paths (default process.cwd()). */
  readonly cwd?: string;
  /** Create the filesystem sandbox root when missing (default true). */
  readonly createDirs?: boolean;
  /** Skip the built-in defaults: only the file's servers (tests). */
  readonly noDefaults?: boolean;
}

/**
 * Build the server registry: defaults, then MCP_SERVERS_FILE (JSON or YAML; entries
 * merge over a default of the same name, new names are added), then per-server env
 * overrides (`MCP_<NAME>_URL`, `MCP_<NAME>_ENABLED`, `MCP_<NAME>_AUTH_TOKEN`,
 * `MCP_<NAME>_CALL_MS`), then MCP_AUTH_TOKEN as the default bearer of the project's own HTTP
 * servers (a server the file adds gets only the token it names).
 * `${VAR}` in file strings is replaced from the environment. Fails fast with
 * AppError('validation') naming the server and field.
 */
export function loadRegistry(opts: LoadRegistryOptions = {}): McpServerConfig[] {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const byName = new Map<string, Record<string, unknown>>();
  if (!opts.noDefaults) for (const d of defaultServerInputs(env, cwd)) byName.set(d.name, d);

  const file = nonEmpty(env.MCP_SERVERS_FILE);
  if (file) {
    const inFile = new Set<string>();
    for (const entry of readRegistryFile(path.resolve(cwd, file), env)) {
      const name = (entry as { name?: unknown }).name;
      if (typeof name !== 'string')
        throw new AppError('validation', `MCP_SERVERS_FILE: every server needs a name`, { file });
      // A second entry of one name was merged over the first, which hid a mistake either way.
      if (inFile.has(name))
        throw new AppError('validation', `MCP_SERVERS_FILE: server ${name} is listed twice`, { file, server: name });
      inFile.add(name);
      const base = byName.get(name);
      byName.set(name, base ? mergeServer(base, entry as Record<string, unknown>) : (entry as Record<string, unknown>));
    }
  }

  const servers: McpServerConfig[] = [];
  for (const [name, raw] of byName) {
    const p = envPrefix(name);
    const input: Record<string, unknown> = structuredClone(raw);
    const url = nonEmpty(env[`${p}URL`]);
    if (url) input.transport = { kind: 'http', url };
    const enabled = nonEmpty(env[`${p}ENABLED`]);
    if (enabled) input.enabled = ['true', '1', 'yes'].includes(enabled.toLowerCase());
    // MCP_AUTH_TOKEN opens the project's own servers, whose tools include what the gateway keeps
    // for admins (the database writer, queued deliveries): a server added by the file gets the
    // token it is given, never that one.
    const token =
      nonEmpty(env[`${p}AUTH_TOKEN`]) ??
      (input.auth_token as string | undefined) ??
      (OWN_HTTP_SERVERS.has(name) ? nonEmpty(env.MCP_AUTH_TOKEN) : undefined);
    if (token) input.auth_token = token;
    // Which variable set which field: a refusal names the variable the operator wrote.
    const fromVariable = new Map<string, string>();
    const callMs = nonEmpty(env[`${p}CALL_MS`]);
    if (callMs) {
      input.timeouts = { ...(input.timeouts as object | undefined), call_ms: Number(callMs) };
      fromVariable.set('timeouts.call_ms', `${p}CALL_MS`);
    }
    const maxConcurrent = nonEmpty(env[`${p}MAX_CONCURRENT`]);
    const maxQueue = nonEmpty(env[`${p}MAX_QUEUE`]);
    if (maxConcurrent || maxQueue) {
      input.bulkhead = {
        ...(input.bulkhead as object | undefined),
        ...(maxConcurrent && { max_concurrent: Number(maxConcurrent) }),
        ...(maxQueue && { max_queue: Number(maxQueue) }),
      };
      if (maxConcurrent) fromVariable.set('bulkhead.max_concurrent', `${p}MAX_CONCURRENT`);
      if (maxQueue) fromVariable.set('bulkhead.max_queue', `${p}MAX_QUEUE`);
    }
    try {
      servers.push(mcpServerConfigSchema.parse(input));
    } catch (err) {
      if (err instanceof ZodError) {
        const issues = err.issues.map((i) => {
          const field = i.path.join('.') || '(root)';
          const variable = fromVariable.get(field);
          return variable
            ? `${variable} (${field}): ${i.message}, got ${JSON.stringify(env[variable])}`
            : `${field}: ${i.message}`;
        });
        throw new AppError('validation', `invalid MCP server config "${name}": ${issues.join('; ')}`, {
          server: name,
          issues,
        });
      }
      throw err;
    }
  }
  if (opts.createDirs !== false && !opts.noDefaults) {
    const fs = servers.find((s) => s.name === 'filesystem');
    if (fs?.enabled) mkdirSync(filesystemRoot(env, cwd), { recursive: true });
  }
  return servers;
}

/** Read and interpolate MCP_SERVERS_FILE; `.yaml`/`.yml` parse as YAML, anything else as JSON. */
export function readRegistryFile(file: string, env: Env = process.env): unknown[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AppError('validation', `MCP_SERVERS_FILE ${file} cannot be read`, { file, cause: String(err) });
  }
  let doc: unknown;
  try {
    doc = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new AppError(
      'validation',
      `MCP_SERVERS_FILE ${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}`,
      {
        file,
        cause: String(err),
      },
    );
  }
  const parsed = registryFileSchema.safeParse(interpolate(doc, env));
  if (!parsed.success)
    throw new AppError('validation', `MCP_SERVERS_FILE ${file}: expected a list of servers or { servers: [...] }`, {
      file,
    });
  return Array.isArray(parsed.data) ? parsed.data : parsed.data.servers;
}

/** Replace `${VAR}` in every string of a parsed document (unset -> empty, which `required_env` catches). */
export function interpolate(value: unknown, env: Env): unknown {
  if (typeof value === 'string')
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, k: string) => env[k] ?? '');
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  return value;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Deep merge of a file entry over a default; arrays replace, and a transport of another kind replaces the whole transport. */
export function mergeServer(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (k === 'transport' && isPlainObject(b) && isPlainObject(v) && v.kind !== undefined && v.kind !== b.kind)
      out[k] = v;
    else out[k] = isPlainObject(b) && isPlainObject(v) ? mergeServer(b, v) : v;
  }
  return out;
}

/** Why a server cannot be used as configured (missing required env), or undefined when it can. */
export function unconfiguredReason(server: McpServerConfig): string | undefined {
  if (server.transport.kind !== 'stdio') return undefined;
  const env = server.transport.env;
  const missing = server.transport.required_env.filter((k) => !nonEmpty(env[k]));
  return missing.length ? `${server.name} needs ${missing.join(', ')} (not set)` : undefined;
}

/** A server config with secrets removed, safe to log or list. */
export function describeServer(server: McpServerConfig): Record<string, unknown> {
  const t = server.transport;
  return {
    name: server.name,
    role: server.role,
    enabled: server.enabled,
    transport:
      t.kind === 'http'
        ? { kind: 'http', url: redactUrl(t.url) }
        : { kind: 'stdio', command: t.command, args: t.args, env_keys: Object.keys(t.env) },
    auth: server.auth_token ? 'bearer' : 'none',
  };
}

const redactUrl = (u: string): string => {
  const url = new URL(u);
  if (url.password) url.password = '***';
  for (const k of [...url.searchParams.keys()])
    if (/token|secret|key|password/i.test(k)) url.searchParams.set(k, '***');
  return url.toString();
};

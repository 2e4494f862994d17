import { z } from 'zod';
import { commaList, isCidr, NOT_A_CIDR } from '@switchyard/platform';
import { mailAddressSchema, smtpUrlSchema } from './automation/mail.js';

const list = z.string().transform(commaList).default([]);
/** A comma-separated list of address ranges: each one checked at start, so the variable is named. */
const cidrList = z
  .string()
  .transform(commaList)
  .refine((xs) => xs.every(isCidr), NOT_A_CIDR)
  .default([]);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes')
  .default(false);

/** Environment of the MCP servers, parsed once at start with `parseConfig(env, mcpConfigSchema)`. */
export const mcpConfigSchema = z.object({
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  /** EventStoreDB holds the events (as for the rest of the system); unset: the PostgreSQL event store in DATABASE_URL. Automation only. */
  EVENTSTORE_URL: z
    .string()
    .regex(/^(esdb|kurrentdb|kdb)(\+discover)?:\/\//, 'must be an esdb:// connection string')
    .optional(),
  MCP_AUTH_TOKEN: z.string().min(1).optional(),
  /** Serve HTTP without a bearer token: only for a sandbox; the default refuses to start without MCP_AUTH_TOKEN. */
  MCP_AUTH_DISABLED: bool,
  /** Bind address (default BIND_HOST, else 127.0.0.1). */
  MCP_HOST: z.string().min(1).optional(),
  BIND_HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_ALLOW_WRITES: bool,
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  DATABASE_MAX_ROWS: z.coerce.number().int().min(1).max(100_000).default(1000),
  DATABASE_MAX_RESULT_BYTES: z.coerce.number().int().min(1024).max(1_073_741_824).default(1_048_576),
  /**
   * search_path of the database server's connections, so unqualified names of the demo data
   * (`SELECT COUNT(*) FROM customers`) resolve. Set per connection at login: the SQL guard
   * still refuses SET, so a caller cannot change it.
   */
  DATABASE_SEARCH_PATH: z
    .string()
    .regex(
      /^\s*[a-z_][a-z0-9_$]*(\s*,\s*[a-z_][a-z0-9_$]*)*\s*$/,
      'comma-separated lower-case schema names, e.g. business,public',
    )
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .join(','),
    )
    .default('business,public'),
  FETCH_ALLOW_HOSTS: list,
  FETCH_ALLOW_CIDRS: cidrList,
  WEBHOOK_ALLOW_HOSTS: list,
  WEBHOOK_ALLOW_CIDRS: cidrList,
  /** Let webhooks reach 127.0.0.0/8 and ::1 (local sinks in development and tests). */
  WEBHOOK_ALLOW_LOOPBACK: bool,
  /** Outgoing mail of the automation server (send_email), e.g. smtp://user:pass@mail.example.com:587. */
  SMTP_URL: smtpUrlSchema.optional(),
  /** From address of every mail; a bare address or `Name <address>`. */
  MAIL_FROM: z
    .string()
    .max(400)
    .refine(
      (s) => mailAddressSchema.safeParse(/<([^>]+)>\s*$/.exec(s)?.[1] ?? s).success,
      'an address, or Name <address>',
    )
    .default('Switchyard <switchyard@localhost>'),
  SCHEDULER_INTERVAL_MS: z.coerce.number().int().min(50).max(3_600_000).default(1000),
  /** An owed webhook (scheduled, or queued with queue_webhook) not answered is sent again after this, doubling up to WEBHOOK_RETRY_MAX_MS, WEBHOOK_RETRY_ATTEMPTS rounds in all. */
  WEBHOOK_RETRY_FIRST_MS: z.coerce.number().int().min(50).max(86_400_000).default(30_000),
  WEBHOOK_RETRY_MAX_MS: z.coerce.number().int().min(50).max(86_400_000).default(3_600_000),
  WEBHOOK_RETRY_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  /** Most webhooks / schedules the automation server keeps (each multiplies what goes out). */
  AUTOMATION_MAX_WEBHOOKS: z.coerce.number().int().min(1).max(100_000).default(200),
  AUTOMATION_MAX_SCHEDULES: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
  AUTOMATION_MAX_ONE_SHOTS: z.coerce.number().int().min(1).max(10_000_000).default(100_000),
  /** Days the automation server keeps finished records (fired one-shots, taken triggers, sends and their keys); 0: for ever. */
  AUTOMATION_RECORD_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(30),
  /** The filesystem bridge's root; unset: `files` in DATA_DIR (filesRootOf). */
  FILESYSTEM_ROOT: z.string().min(1).optional(),
  /** The data dir whose secrets the filesystem server's sandbox hides (see MCP_STDIO_SANDBOX). */
  DATA_DIR: z.string().min(1).default('.data'),
  /** How the official filesystem server (a stdio child) runs: see the launcher's MCP_STDIO_SANDBOX. */
  MCP_STDIO_SANDBOX: z.enum(['auto', 'bwrap', 'off']).default('auto'),
  /** Token of the official GitHub server; unset (or empty), the github server is `unconfigured`. */
  GITHUB_PERSONAL_ACCESS_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined)),
});
export type McpConfig = z.infer<typeof mcpConfigSchema>;

export const mcpServerKinds = ['database', 'fetch', 'automation', 'analytics', 'filesystem-bridge', 'github'] as const;
export type McpServerKind = (typeof mcpServerKinds)[number];

/** Default HTTP port of each server (the specification's; 5007, the database writer, is the database kind again). */
export const defaultPorts: Record<McpServerKind, number> = {
  'filesystem-bridge': 5001,
  database: 5002,
  fetch: 5004,
  automation: 5005,
  analytics: 5006,
  github: 5003,
};

import path from 'node:path';
import pg from 'pg';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { pino } from 'pino';
import { createEventStore } from '@switchyard/event-store';
import {
  AppError,
  createLogger,
  createPgPool,
  dataDirSecrets,
  detectStdioSandbox,
  edgePolicyFromEnv,
  markSchemaManaged,
  parseConfig,
  type Logger,
} from '@switchyard/platform';
import { startMcpHttpServer, type ConnectableServer } from './common/http.js';
import type { McpCallAudit } from './common/audit.js';
import { serveStdio } from './common/stdio.js';
import { defaultPorts, mcpConfigSchema, type McpConfig, type McpServerKind } from './config.js';
import { createDatabaseServer } from './database/server.js';
import { EgressGuard } from './fetch/egress-guard.js';
import { createFetchServer } from './fetch/server.js';
import { AutomationService, Scheduler, type TriggerRecord } from './automation/automation-service.js';
import { createAutomationServer } from './automation/server.js';
import { smtpTransport } from './automation/mail.js';
import { createAnalyticsServer, migrateAnalytics } from './analytics/server.js';
import { startFilesystemBridge } from './filesystem/bridge.js';
import { GITHUB_TOKEN_MISSING, startGithubBridge } from './github/bridge.js';

export interface RunOptions {
  readonly stdio?: boolean;
  /** HTTP port; 0 picks a free one. Default: the server's well-known port. */
  readonly port?: number;
  readonly host?: string;
  readonly env?: Record<string, string | undefined>;
  readonly logger?: Logger;
  /** Bearer token of the HTTP endpoint; default MCP_AUTH_TOKEN. One of them is required unless MCP_AUTH_DISABLED=true. */
  readonly token?: string;
  /** Name of the token holder for the audit actor `token:<name>` (default `mcp`). */
  readonly tokenName?: string;
  /** Name reported in /health, logs and audit records (default the kind; e.g. `database_writer`). */
  readonly name?: string;
  /** Told about every call answered over HTTP (the launcher appends them as events). */
  readonly onCall?: (call: McpCallAudit) => void;
  /** Automation only: told about every recorded workflow trigger. */
  readonly onTrigger?: (t: TriggerRecord) => void | Promise<void>;
  /** DATABASE_URL is a component role without DDL rights: the owner role migrated the server's schema before, so the server does not. */
  readonly schemaManaged?: boolean;
}

export interface RunningMcpServer {
  readonly kind: McpServerKind;
  /** HTTP endpoint (`.../mcp`), undefined in stdio mode. */
  readonly url?: string;
  close(): Promise<void>;
}

function requireDatabase(
  config: McpConfig,
  kind: string,
  opts: { schemaManaged?: boolean; searchPath?: string } = {},
): pg.Pool {
  if (!config.DATABASE_URL) throw new AppError('validation', `DATABASE_URL is required by the ${kind} server`);
  // A client dies when Postgres restarts or a backend is terminated, also while checked out
  // (a query or cursor in flight): the guarded pool listens, the query fails, the pool replaces it.
  const pool = createPgPool(
    {
      connectionString: config.DATABASE_URL,
      max: 10,
      application_name: `switchyard-mcp-${kind}`,
      // A startup parameter of each connection: no role setting to provision, nothing a query can undo.
      ...(opts.searchPath ? { options: `-c search_path=${opts.searchPath}` } : {}),
    },
    { name: `mcp-${kind}` },
  );
  return opts.schemaManaged ? markSchemaManaged(pool) : pool;
}

/**
 * Start one of the project's MCP servers with its dependencies (pool, guard, scheduler,
 * child process) built from the environment, over HTTP or stdio. `close()` releases all of them.
 */
export async function runMcpServer(kind: McpServerKind, opts: RunOptions = {}): Promise<RunningMcpServer> {
  const config = parseConfig(opts.env ?? process.env, mcpConfigSchema);
  const token = opts.token ?? config.MCP_AUTH_TOKEN;
  // Checked before anything starts: a tool server (writes, pg_read_file) must not answer anyone by default.
  if (!opts.stdio && !token && !config.MCP_AUTH_DISABLED) {
    throw new AppError(
      'validation',
      `MCP_AUTH_TOKEN is required to serve the ${kind} MCP server over HTTP (MCP_AUTH_DISABLED=true serves it without one)`,
    );
  }
  // On stdio, stdout is the protocol channel: logs go to stderr.
  const logger =
    opts.logger ??
    (opts.stdio
      ? pino(
          { name: `mcp-${kind}`, level: config.LOG_LEVEL, base: { pid: process.pid, app: `mcp-${kind}` } },
          pino.destination(2),
        )
      : createLogger(`mcp-${kind}`, config.LOG_LEVEL));
  const cleanups: (() => Promise<void>)[] = [];
  let factory: () => ConnectableServer;
  let health: (() => Promise<Record<string, unknown>>) | undefined;
  let unavailable: (() => { message: string; data?: Record<string, unknown> } | undefined) | undefined;

  try {
    switch (kind) {
      case 'database': {
        // Only this server: the others' own tables are unqualified names in their own schemas.
        const pool = requireDatabase(config, kind, {
          schemaManaged: opts.schemaManaged,
          searchPath: config.DATABASE_SEARCH_PATH,
        });
        cleanups.push(() => pool.end());
        factory = () =>
          createDatabaseServer({
            pool,
            logger,
            allowWrites: config.DATABASE_ALLOW_WRITES,
            statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
            maxRows: config.DATABASE_MAX_ROWS,
            maxResultBytes: config.DATABASE_MAX_RESULT_BYTES,
          });
        health = async () => (
          await pool.query('SELECT 1'),
          { database: 'ok', allowWrites: config.DATABASE_ALLOW_WRITES }
        );
        break;
      }
      case 'fetch': {
        const guard = new EgressGuard({ allowHosts: config.FETCH_ALLOW_HOSTS, allowCidrs: config.FETCH_ALLOW_CIDRS });
        factory = () => createFetchServer({ guard, logger });
        break;
      }
      case 'automation': {
        const pool = requireDatabase(config, kind, { schemaManaged: opts.schemaManaged });
        cleanups.push(() => pool.end());
        const cidrs = [
          ...config.WEBHOOK_ALLOW_CIDRS,
          ...(config.WEBHOOK_ALLOW_LOOPBACK ? ['127.0.0.0/8', '::1/128'] : []),
        ];
        const guard = new EgressGuard({ allowHosts: config.WEBHOOK_ALLOW_HOSTS, allowCidrs: cidrs });
        const transport = config.SMTP_URL ? smtpTransport(config.SMTP_URL) : undefined;
        if (transport) cleanups.push(async () => transport.close());
        else logger.warn('SMTP_URL is unset: send_email and e-mail schedules answer unavailable');
        // Webhook and schedule commands append here; with the roles, the automation role may append (and read events) only.
        const store = createEventStore({ pool, eventstoreUrl: config.EVENTSTORE_URL, logger });
        cleanups.unshift(() => store.close());
        const service = new AutomationService({
          pool,
          logger,
          guard,
          store,
          caps: {
            maxWebhooks: config.AUTOMATION_MAX_WEBHOOKS,
            maxSchedules: config.AUTOMATION_MAX_SCHEDULES,
            maxOneShots: config.AUTOMATION_MAX_ONE_SHOTS,
          },
          recordRetentionDays: config.AUTOMATION_RECORD_RETENTION_DAYS,
          scheduledRetry: {
            firstRetryMs: config.WEBHOOK_RETRY_FIRST_MS,
            maxRetryMs: config.WEBHOOK_RETRY_MAX_MS,
            maxAttempts: config.WEBHOOK_RETRY_ATTEMPTS,
          },
          ...(transport ? { mail: { transport, from: config.MAIL_FROM } } : {}),
          ...(opts.onTrigger ? { onTrigger: opts.onTrigger } : {}),
        });
        await service.migrate();
        // Its liveness connection tells other processes whether a delivery's sender is still alive;
        // the projections of the webhooks and schedules read models start too.
        await service.start();
        cleanups.unshift(() => service.close());
        const scheduler = new Scheduler(service, logger, config.SCHEDULER_INTERVAL_MS);
        scheduler.start();
        cleanups.unshift(() => scheduler.stop());
        factory = () => createAutomationServer({ service, logger });
        health = async () => (
          await pool.query('SELECT 1'),
          { database: 'ok', mail: transport ? 'smtp' : 'unconfigured' }
        );
        break;
      }
      case 'analytics': {
        const pool = requireDatabase(config, kind, { schemaManaged: opts.schemaManaged });
        cleanups.push(() => pool.end());
        await migrateAnalytics(pool);
        factory = () => createAnalyticsServer({ pool, logger });
        health = async () => (await pool.query('SELECT 1'), { database: 'ok' });
        break;
      }
      case 'filesystem-bridge': {
        // The official server is someone else's code: in the sandbox, like the connectors' stdio servers.
        const sandbox = detectStdioSandbox(config.MCP_STDIO_SANDBOX, dataDirSecrets(config.DATA_DIR), logger);
        const bridge = await startFilesystemBridge({
          root: config.FILESYSTEM_ROOT ?? path.join(config.DATA_DIR, 'files'),
          logger,
          ...(sandbox && { sandbox }),
        });
        cleanups.push(() => bridge.close());
        factory = () => bridge.serverFactory();
        health = async () => {
          if (!bridge.alive()) throw new Error('filesystem server process is not running');
          // A process that exists but is hung answers no call: /health must not say ok for it.
          if (!(await bridge.answers(2_000))) throw new Error('filesystem server does not answer a ping');
          // Not the root's absolute path: /health answers without a token.
          return { filesystem: 'ok' };
        };
        break;
      }
      case 'github': {
        const token = config.GITHUB_PERSONAL_ACCESS_TOKEN;
        if (!token) {
          // Not an error: the role is simply not set up. /health says `unconfigured` (200, so no
          // probe counts it as down) and every MCP request is refused with the reason.
          if (opts.stdio) throw new AppError('validation', GITHUB_TOKEN_MISSING);
          logger.warn({ kind }, 'GITHUB_PERSONAL_ACCESS_TOKEN is unset: github MCP server is unconfigured');
          const reason = {
            message: GITHUB_TOKEN_MISSING,
            data: { state: 'unconfigured', missing: ['GITHUB_PERSONAL_ACCESS_TOKEN'] },
          };
          unavailable = () => reason;
          // Never called while unavailable; a server with no capabilities if it ever were.
          factory = () => new Server({ name: 'switchyard-github-bridge', version: '0.1.0' }, { capabilities: {} });
          health = async () => ({ status: 'unconfigured', github: 'unconfigured', reason: GITHUB_TOKEN_MISSING });
          break;
        }
        // The official server is someone else's code: in the sandbox, like the filesystem bridge's.
        const sandbox = detectStdioSandbox(config.MCP_STDIO_SANDBOX, dataDirSecrets(config.DATA_DIR), logger);
        const bridge = await startGithubBridge({ token, logger, ...(sandbox && { sandbox }) });
        cleanups.push(() => bridge.close());
        factory = () => bridge.serverFactory();
        health = async () => {
          if (!bridge.alive()) throw new Error('github server process is not running');
          if (!(await bridge.answers(2_000))) throw new Error('github server does not answer a ping');
          return { github: 'ok' };
        };
        break;
      }
      default: {
        const never: never = kind;
        throw new AppError('validation', `unknown MCP server: ${String(never)}`);
      }
    }

    const closeAll = async (): Promise<void> => {
      for (const c of cleanups) await c().catch((e: unknown) => logger.warn({ err: e }, 'cleanup failed'));
    };

    if (opts.stdio) {
      const server = factory();
      const handle = await serveStdio(server);
      logger.info({ kind }, 'mcp server on stdio');
      return { kind, close: async () => (await handle.close(), await closeAll()) };
    }
    if (!token) logger.warn({ kind }, 'MCP_AUTH_DISABLED: serving without a bearer token');
    const host = opts.host ?? config.MCP_HOST ?? config.BIND_HOST;
    const http = await startMcpHttpServer({
      name: opts.name ?? kind,
      serverFactory: factory,
      port: opts.port ?? defaultPorts[kind],
      host,
      ...(token ? { token, tokenName: opts.tokenName ?? 'mcp' } : {}),
      edge: edgePolicyFromEnv(opts.env ?? process.env, host),
      ...(opts.onCall ? { onCall: opts.onCall } : {}),
      logger,
      ...(health ? { health } : {}),
      ...(unavailable ? { unavailable } : {}),
    });
    return { kind, url: http.url, close: async () => (await http.close(), await closeAll()) };
  } catch (e) {
    for (const c of cleanups) await c().catch(() => undefined);
    throw e;
  }
}

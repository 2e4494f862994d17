#!/usr/bin/env node
/**
 * The connectors process: `node apps/connectors/dist/main.js`.
 * 1. Parse the environment (platform config + MCP_SERVERS_FILE / FILESYSTEM_ROOT / MCP_<NAME>_* via loadRegistry);
 *    a bad value stops the start naming it.
 * 2. Connect to NATS (NATS_URL, required; NATS_TOKEN when the server asks for a token).
 * 3. Connect every MCP server (missing ones keep reconnecting) and serve them on NATS.
 * Events are logged here (type and summary, never payloads); a process that owns an event
 * store passes its own `onEvent` to `startConnectors` instead.
 * Optional: CONNECTORS_QUEUE (queue group), CONNECTORS_SUBJECT_PREFIX (isolated subject space).
 */
import { closeNats, connectNats } from '@switchyard/messaging';
import { AppError, createLogger, dataDirSecrets, parseConfig, detectStdioSandbox } from '@switchyard/platform';
import { loadRegistry, describeServer, warnOfFilesLeftBehind } from './registry/load.js';
import { startConnectors } from './service/connector-service.js';
import type { McpEvent } from '@switchyard/contracts';

/** What is worth a log line of an event: identifiers and outcome, not arguments or results. */
function summary(e: McpEvent): Record<string, unknown> {
  const d = e.data as Record<string, unknown>;
  const keep = [
    'server',
    'tool',
    'call_id',
    'duration_ms',
    'outcome',
    'error_code',
    'attempts',
    'previous',
    'error',
    'down_for_ms',
    'last_error',
    'correlation_id',
  ];
  return Object.fromEntries(keep.filter((k) => d[k] !== undefined).map((k) => [k, d[k]]));
}

async function main(): Promise<void> {
  const config = parseConfig();
  const logger = createLogger('connectors', config.LOG_LEVEL);
  if (!config.NATS_URL) throw new AppError('validation', 'NATS_URL is required by the connectors process');
  const registry = loadRegistry();
  logger.info({ servers: registry.map(describeServer) }, 'MCP registry loaded');
  warnOfFilesLeftBehind(logger);
  const nats = await connectNats({ url: config.NATS_URL, name: 'switchyard-connectors', logger });
  const stdioSandbox = detectStdioSandbox(config.MCP_STDIO_SANDBOX, dataDirSecrets(config.DATA_DIR), logger);
  const running = await startConnectors({
    nats,
    registry,
    logger,
    ...(stdioSandbox && { stdioSandbox }),
    // On a cluster the shared call bucket gets the copies the events stream has (raised when fewer).
    sharedCalls: { replicas: config.NATS_STREAM_REPLICAS },
    onEvent: (e) => {
      const level = e.type === 'McpToolCalled' || e.type === 'McpToolSucceeded' ? 'debug' : 'info';
      logger[level]({ event: e.type, ...summary(e) }, 'mcp event');
    },
    ...(process.env.CONNECTORS_QUEUE && { queue: process.env.CONNECTORS_QUEUE }),
    ...(process.env.CONNECTORS_SUBJECT_PREFIX && { subjectPrefix: process.env.CONNECTORS_SUBJECT_PREFIX }),
  });
  logger.info(
    { health: running.connectors.list().map((h) => ({ server: h.server, state: h.state })) },
    'connectors serving',
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'connectors stopping');
    void running
      .stop()
      .then(() => closeNats(nats, { logger }))
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  process.stderr.write(`connectors: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

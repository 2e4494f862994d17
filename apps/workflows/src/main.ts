/**
 * Stand-alone workflow engine process: `node apps/workflows/dist/main.js` with
 * DATABASE_URL and NATS_URL (and optionally NATS_TOKEN, WORKFLOW_PARTITIONS, WORKFLOW_MEMBER_ID,
 * WORKFLOW_RECOVERY_INTERVAL_MS). Stops cleanly on SIGTERM/SIGINT; a SIGKILL loses nothing
 * (all state is events; the next owner of a partition recovers its executions).
 */
import { z } from 'zod';
import { createLogger, createPgPool, natsUrlsSchema, parseConfig } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { closeNats, connectNats } from '@switchyard/messaging';
import { startWorkflowEngine } from './engine.js';

const configSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  NATS_URL: natsUrlsSchema,
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  WORKFLOW_PARTITIONS: z.coerce.number().int().min(1).max(1024).default(16),
  WORKFLOW_MEMBER_ID: z.string().min(1).optional(),
  WORKFLOW_RECOVERY_INTERVAL_MS: z.coerce.number().int().min(100).default(15_000),
  WORKFLOW_READ_MODEL: z.enum(['true', 'false']).default('true'),
  WORKFLOW_MCP_SUBJECT_PREFIX: z.string().min(1).optional(),
  WORKFLOW_TASKS_SUBJECT: z.string().min(1).optional(),
});

const config = parseConfig(process.env, configSchema);
const logger = createLogger('workflow-engine', config.LOG_LEVEL);
try {
  const pool = createPgPool({ connectionString: config.DATABASE_URL, max: 10 }, { name: 'workflow-engine', logger });
  const store = new PostgresEventStore({ pool, logger });
  await store.init();
  const nats = await connectNats({ url: config.NATS_URL, name: 'workflow-engine', logger });
  const engine = await startWorkflowEngine({
    store,
    pool,
    nats,
    logger,
    databaseUrl: config.DATABASE_URL,
    partitions: config.WORKFLOW_PARTITIONS,
    memberId: config.WORKFLOW_MEMBER_ID,
    recoveryIntervalMs: config.WORKFLOW_RECOVERY_INTERVAL_MS,
    readModel: config.WORKFLOW_READ_MODEL === 'true',
    subjects: { mcpPrefix: config.WORKFLOW_MCP_SUBJECT_PREFIX, tasks: config.WORKFLOW_TASKS_SUBJECT },
  });
  const shutdown = async (signal: string) => {
    logger.info({ signal, ...engine.stats() }, 'workflow engine shutting down');
    await engine.stop();
    process.send?.({ type: 'stats', stats: engine.stats() });
    await closeNats(nats, { logger });
    await store.close();
    await pool.end();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  setInterval(() => process.send?.({ type: 'stats', stats: engine.stats() }), 500).unref();
  process.send?.({ type: 'engine-started', memberId: engine.memberId });
} catch (err) {
  logger.fatal({ err }, 'workflow engine failed to start');
  process.exit(1);
}

/**
 * Run ONE agent instance in its own process (tests SIGKILL it to prove that the dispatcher
 * moves its task to another instance; operators can use it to add capacity).
 *   NATS_URL=... [NATS_TOKEN=...] DATABASE_URL=... AGENT=data_analyst INSTANCE_ID=a2 [NOOP=1] [MAX_CONCURRENCY=2] node dist/service/instance-main.js
 * Prints one JSON line `{"ready":true,...}` on stdout once the service is registered.
 */
import { z } from 'zod';
import { connectNats, closeNats } from '@switchyard/messaging';
import { createLogger, createPgPool } from '@switchyard/platform';
import { startAgent } from './agent-service.js';

const env = z
  .object({
    NATS_URL: z.string().min(1),
    DATABASE_URL: z.string().startsWith('postgres'),
    AGENT: z.string().min(1),
    INSTANCE_ID: z.string().min(1).optional(),
    NOOP: z.enum(['0', '1']).default('0'),
    MAX_CONCURRENCY: z.coerce.number().int().positive().optional(),
    LOG_LEVEL: z.string().default('info'),
  })
  .parse(process.env);

const logger = createLogger('agent-instance', env.LOG_LEVEL);
const nats = await connectNats({ url: env.NATS_URL, name: `agent-${env.AGENT}`, logger });
const pool = createPgPool({ connectionString: env.DATABASE_URL, max: 4 }, { name: 'agent-instance', logger });
const handle = await startAgent({
  nats,
  pool,
  agent: env.AGENT,
  logger,
  noop: env.NOOP === '1',
  ...(env.INSTANCE_ID ? { instanceId: env.INSTANCE_ID } : {}),
  ...(env.MAX_CONCURRENCY ? { maxConcurrency: env.MAX_CONCURRENCY } : {}),
});
await nats.flush();
process.stdout.write(
  `${JSON.stringify({ ready: true, agent: handle.agent, instance: handle.instanceId, pid: process.pid })}\n`,
);

const shutdown = async () => {
  await handle.stop();
  await closeNats(nats, { logger });
  await pool.end();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());

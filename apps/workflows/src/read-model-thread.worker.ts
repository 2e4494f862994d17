/** The thread of startReadModelThread (read-model-thread.ts): runs the workflow read model until told to stop. */
import { parentPort, workerData } from 'node:worker_threads';
import { z } from 'zod';
import { createLogger, createPgPool, markSchemaManaged } from '@switchyard/platform';
import { createEventStore } from '@switchyard/event-store';
import { ProjectionRunner, workflowExecutionsProjection } from '@switchyard/read-models';
import { readModelThreadConfigSchema, readModelThreadFeedSchema } from './read-model-thread.js';

const port = parentPort;
if (!port) throw new Error('read-model-thread.worker runs only as a worker thread');
const given = z.object({ config: z.unknown(), fedBy: readModelThreadFeedSchema }).parse(workerData);
const config = readModelThreadConfigSchema.parse(given.config);
const logger = createLogger('read-models', config.logLevel);
try {
  const pool = createPgPool(
    { connectionString: config.databaseUrl, max: config.poolMax, application_name: 'switchyard-read-models' },
    { name: 'read-models', logger },
  );
  if (config.schemaManaged) markSchemaManaged(pool);
  const store = createEventStore({
    pool,
    ...(config.eventstoreUrl ? { eventstoreUrl: config.eventstoreUrl } : {}),
    ...(given.fedBy ? { fedBy: given.fedBy } : {}),
    logger,
  });
  await store.init();
  const runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowExecutionsProjection], logger });
  await runner.start();
  port.on('message', (raw: unknown) => {
    if (!z.object({ type: z.literal('stop') }).safeParse(raw).success) return;
    void (async () => {
      try {
        await runner.stop();
        await store.close();
        await pool.end();
      } catch (err) {
        logger.warn({ err }, 'read-model thread did not stop cleanly');
      }
      port.postMessage({ type: 'stopped' });
      port.close();
    })();
  });
  port.postMessage({ type: 'ready' });
} catch (err) {
  logger.error({ err }, 'read-model thread could not start');
  port.postMessage({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  port.close();
}

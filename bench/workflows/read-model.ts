/**
 * The workflow read model in a process of its own, for `BENCH_READ_MODEL=process` (as a launcher
 * running only the `read-models` role would): its own event store client, which reads filtered
 * pages when PostgreSQL's NOTIFY wakes it. Env: DATABASE_URL. Prints `ready`; stops on SIGTERM.
 */
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { ProjectionRunner, workflowExecutionsProjection } from '@switchyard/read-models';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is required');
const logger = createLogger('bench-read-model', process.env.LOG_LEVEL ?? 'warn');
const store = new PostgresEventStore({ connectionString: url, maxConnections: 2, logger });
await store.init();
const runner = new ProjectionRunner({
  store,
  db: { connectionString: url },
  projections: [workflowExecutionsProjection],
  logger,
});
await runner.start();
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void (async () => {
    await runner.stop();
    await store.close();
    process.exit(0);
  })();
});

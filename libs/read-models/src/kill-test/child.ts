/**
 * The process the kill test SIGKILLs: a projection runner over a real Postgres event store.
 * Env: DATABASE_URL (event store and read models), BATCH_SIZE.
 * Prints `ready` once started, then runs until killed.
 */
import { PostgresEventStore } from '@switchyard/event-store';
import { ProjectionRunner } from '../projection-runner.js';
import { countingProjection } from './counting-projection.js';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is required');
const store = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 500 });
await store.init();
const runner = new ProjectionRunner({
  store,
  db: { connectionString: url },
  projections: [countingProjection()],
  batchSize: Number(process.env.BATCH_SIZE ?? 50),
});
await runner.start();
process.stdout.write('ready\n');

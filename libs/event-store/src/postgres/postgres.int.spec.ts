import { before } from 'node:test';
import pg from 'pg';
import { freshDatabase } from '@switchyard/testing';
import { eventStoreContract } from '../contract/event-store.contract.js';
import { PostgresEventStore } from './postgres-event-store.js';

let url: string;
before(async () => {
  url = await freshDatabase('es_contract');
  // This throwaway database skips the WAL flush at commit: the contract checks ordering,
  // concurrency and delivery, which do not depend on durability, and the 16,000-append
  // concurrency test then stays well under 30 s on a busy 2-core box.
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`alter database "${new URL(url).pathname.slice(1)}" set synchronous_commit = off`);
  await c.end();
});

eventStoreContract('postgres', async () => new PostgresEventStore({ connectionString: url }));
// One group-commit statement at a time: every guarantee holds the same.
eventStoreContract(
  'postgres, one batch in flight',
  async () => new PostgresEventStore({ connectionString: url, maxBatchesInFlight: 1 }),
);

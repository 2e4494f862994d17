import { before } from 'node:test';
import { freshDatabase } from '@switchyard/testing';
import { eventStoreContract } from '../contract/event-store.contract.js';
import { PostgresEventStore } from './postgres-event-store.js';

let url: string;
before(async () => {
  url = await freshDatabase('es_contract');
});

eventStoreContract('postgres', async () => new PostgresEventStore({ connectionString: url }));

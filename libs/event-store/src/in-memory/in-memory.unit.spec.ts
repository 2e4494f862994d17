import { eventStoreContract } from '../contract/event-store.contract.js';
import { InMemoryEventStore } from './in-memory-event-store.js';

eventStoreContract('in-memory', async () => new InMemoryEventStore());

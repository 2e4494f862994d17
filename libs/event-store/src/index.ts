export * from './port.js';
export { InMemoryEventStore } from './in-memory/in-memory-event-store.js';
export { PostgresEventStore, type PostgresEventStoreOptions } from './postgres/postgres-event-store.js';
export * from './command-handler.js';

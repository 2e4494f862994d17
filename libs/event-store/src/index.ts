export * from './port.js';
export { InMemoryEventStore } from './in-memory/in-memory-event-store.js';
export {
  PostgresEventStore,
  forwardLiveFeed,
  type PostgresEventStoreOptions,
} from './postgres/postgres-event-store.js';
export type { FedByPort, ForwardBounds } from './postgres/live-feed.js';
export { EventStoreDbEventStore, type EventStoreDbOptions } from './eventstoredb/eventstoredb-event-store.js';
export { createEventStore, type CreateEventStoreOptions } from './factory.js';
export * from './command-handler.js';
export { EventSink, type EventSinkOptions } from './event-sink.js';

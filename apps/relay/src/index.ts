export * from './event-relay.js';
export * from './checkpoint-store.js';
export * from './run-relay.js';

export * from './infra.js';
export * from './decider-spec.js';
export * from './until.js';
export * from './event-loop.js';
export * from './replica.js';
export * from './nats-cluster.js';
export * from './launcher.js';
export * from './overriding.js';

/** Monitoring wired into the system: probes, event publishing, the NATS service and its contract. */
export * from './env.js';
export * from './rules.js';
export * from './rule-manager.js';
export * from './overall.js';
export * from './publisher.js';
export * from './discovery.js';
export * from './service.js';
export * from './start.js';
export * from './exclusive.js';

export * from './errors.js';
export * from './ids.js';
export * from './logger.js';
export * from './config.js';
export * from './infra/ports.js';
export * from './infra/postgres.js';
export * from './infra/nats.js';
export * from './infra/transaction.js';

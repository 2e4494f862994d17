/**
 * @switchyard/messaging: the NATS connection, JetStream stream setup, the
 * request helper and service registration, with one error codec so an
 * AppError thrown in a service arrives at the caller with the same code.
 */
export * from './connection.js';
export * from './streams.js';
export * from './errors.js';
export * from './request.js';
export * from './service.js';
export * from './progress.js';
export * from './stored-messages.js';

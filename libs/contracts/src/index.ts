/**
 * @switchyard/contracts: the zod schemas and NATS subjects for everything that
 * crosses a process boundary. Producers and consumers both import from here so a
 * change to a wire format is one change, checked by the compiler on both sides.
 */
export * from './subjects.js';
export * from './headers.js';
export * from './envelope.js';
export * from './errors.js';
export * from './progress.js';
export * from './task-aliases.js';
export * from './task-context.js';
export * from './automation-triggers.js';
export * from './tasks.js';
export * from './agents.js';
export * from './mcp.js';
export * from './mcp-events.js';
export * from './monitor.js';
export * from './matcher-regex.js';
export * from './agent-cards.js';
export * from './task-ids.js';
export * from './task-view.js';
export * from './text.js';
export * from './mcp-schema-validator.js';
export * from './nats-permissions.js';
export * from './filesystem-globs.js';
export * from './api-key-events.js';

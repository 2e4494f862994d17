/**
 * @switchyard/connectors: the MCP side of Switchyard. A registry of MCP servers
 * (config + defaults), one self-healing session per server, resilience policies
 * (timeout, retry, breaker, bulkhead) that emit domain events, and the NATS
 * request-reply service that exposes all of it.
 */
export * from './registry/schema.js';
export * from './registry/load.js';
export * from './registry/resolve-bin.js';
export * from './errors.js';
export * from './session/mcp-session.js';
export * from './resilience/policy.js';
export * from './resilience/mcp-connector.js';
export * from './service/connectors.js';
export * from './service/connector-service.js';
export * from './service/shared-call-cache.js';

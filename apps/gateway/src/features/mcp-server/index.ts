export { McpServerFeatureModule } from './mcp-server.module.js';
export { McpEndpoint, SERVER_NAME as MCP_SERVER_NAME } from './mcp-endpoint.js';
export { McpServerCatalog, type CatalogTool, type CatalogPrompt } from './catalog.js';
export { VirtualServers } from './virtual-servers.js';
export { mcpServerEnvSchema, mcpServerOptionsFromEnv, type McpServerOptions } from './options.js';
export * from './tool-call.decider.js';
export * from './virtual-server.decider.js';

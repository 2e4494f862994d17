export { McpFeatureModule } from './mcp.module.js';
export { McpGatewayClient, type ServerHealth, type ToolCallOutcome } from './mcp-client.js';
export { namedToPositional } from './named-params.js';
export * from './commands/index.js';
export * from './queries/index.js';

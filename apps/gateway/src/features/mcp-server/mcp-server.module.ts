import { Module, type DynamicModule } from '@nestjs/common';
import { AgentsFeatureModule } from '../agents/agents.module.js';
import { McpFeatureModule } from '../mcp/mcp.module.js';
import { SystemFeatureModule } from '../system/system.module.js';
import { WorkflowsFeatureModule } from '../workflows/workflows.module.js';
import { McpServerCatalog } from './catalog.js';
import { McpServerController, VirtualServersController } from './mcp-server.controller.js';
import { McpEndpoint } from './mcp-endpoint.js';
import { MCP_SERVER_OPTIONS, mcpServerOptionsFromEnv, type McpServerOptions } from './options.js';
import { McpToolCalls } from './tool-calls.js';
import { ExecutionWatch } from './execution-watch.js';
import { VirtualServers } from './virtual-servers.js';
import { MCP_SERVER_COMMAND_HANDLERS } from './commands/index.js';
import { MCP_SERVER_QUERY_HANDLERS } from './queries/index.js';

/**
 * The gateway as an MCP server: `/mcp` (Streamable HTTP, sessions or stateless), `/mcp/sse` +
 * `/mcp/messages` (legacy SSE), `/mcp/v/<name>` (virtual servers), their admin CRUD and the
 * RFC 9728 metadata. It uses the MCP, workflow, agent and system features' services, so those
 * modules come with it; tool calls, virtual servers and resource reads go through the CQRS buses. Options from MCP_SERVER_* (see options.ts), or `McpServerFeatureModule.withOptions(...)`.
 */
@Module({
  imports: [McpFeatureModule, WorkflowsFeatureModule, AgentsFeatureModule, SystemFeatureModule],
  controllers: [McpServerController, VirtualServersController],
  providers: [
    { provide: MCP_SERVER_OPTIONS, useFactory: () => mcpServerOptionsFromEnv() },
    McpServerCatalog,
    ExecutionWatch,
    McpToolCalls,
    VirtualServers,
    McpEndpoint,
    ...MCP_SERVER_COMMAND_HANDLERS,
    ...MCP_SERVER_QUERY_HANDLERS,
  ],
  exports: [McpEndpoint, McpServerCatalog, VirtualServers],
})
export class McpServerFeatureModule {
  static withOptions(options: Partial<McpServerOptions>): DynamicModule {
    return {
      module: McpServerFeatureModule,
      providers: [{ provide: MCP_SERVER_OPTIONS, useFactory: () => ({ ...mcpServerOptionsFromEnv(), ...options }) }],
    };
  }
}

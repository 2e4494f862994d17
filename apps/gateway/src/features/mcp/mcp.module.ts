import { Module } from '@nestjs/common';
import { McpController } from './mcp.controller.js';
import { McpGatewayClient } from './mcp-client.js';
import { MCP_COMMAND_HANDLERS } from './commands/index.js';
import { MCP_QUERY_HANDLERS } from './queries/index.js';

/** The seed's MCP endpoints (/api/v1/integration/mcp/*), served over NATS by the connectors; tool calls and reads go through the CQRS buses (commands/, queries/). */
@Module({
  controllers: [McpController],
  providers: [McpGatewayClient, ...MCP_COMMAND_HANDLERS, ...MCP_QUERY_HANDLERS],
  exports: [McpGatewayClient],
})
export class McpFeatureModule {}

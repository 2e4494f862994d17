import { Module } from '@nestjs/common';
import { McpController } from './mcp.controller.js';
import { McpGatewayClient } from './mcp-client.js';

/** The seed's MCP endpoints (/api/v1/integration/mcp/*), served over NATS by the connectors. */
@Module({ controllers: [McpController], providers: [McpGatewayClient], exports: [McpGatewayClient] })
export class McpFeatureModule {}

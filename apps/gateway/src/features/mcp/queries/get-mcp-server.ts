import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { McpGatewayClient, type ServerHealth } from '../mcp-client.js';

/** One MCP server: `probe` asks the connectors to probe it now, else the registry's last view. 404 when unknown. */
export class GetMcpServer extends Query<ServerHealth> {
  constructor(
    readonly server: string,
    readonly correlationId: string,
    readonly probe = false,
  ) {
    super();
  }
}

@QueryHandler(GetMcpServer)
export class GetMcpServerHandler implements IQueryHandler<GetMcpServer> {
  constructor(@Inject(McpGatewayClient) private readonly mcp: McpGatewayClient) {}
  execute(q: GetMcpServer) {
    return q.probe ? this.mcp.health(q.server, q.correlationId) : this.mcp.server(q.server, q.correlationId);
  }
}

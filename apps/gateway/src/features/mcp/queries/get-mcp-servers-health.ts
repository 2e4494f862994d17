import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { McpGatewayClient, type ServerHealth } from '../mcp-client.js';

/** Health of every MCP server (probed fresh), with an overall verdict over the enabled, configured ones. */
export class GetMcpServersHealth extends Query<{
  status: 'healthy' | 'unhealthy' | 'degraded';
  servers: ServerHealth[];
}> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(GetMcpServersHealth)
export class GetMcpServersHealthHandler implements IQueryHandler<GetMcpServersHealth> {
  constructor(@Inject(McpGatewayClient) private readonly mcp: McpGatewayClient) {}
  async execute(q: GetMcpServersHealth) {
    const servers = await this.mcp.servers(q.correlationId, true);
    const counted = servers.filter((s) => s.enabled && s.state !== 'unconfigured');
    const up = counted.filter((s) => s.state === 'up').length;
    const status =
      up === counted.length ? ('healthy' as const) : up === 0 ? ('unhealthy' as const) : ('degraded' as const);
    return { status, servers };
  }
}

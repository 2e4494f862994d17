import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { McpGatewayClient, type ToolCallOutcome } from '../mcp-client.js';

/**
 * A read-only tool of an MCP server (the analytics server's `query_metric`, the automation
 * server's `list_mailbox`): a query, since it changes nothing, answered like a tool call.
 */
export class ReadMcpTool extends Query<ToolCallOutcome> {
  constructor(
    readonly server: string,
    readonly tool: string,
    readonly args: Record<string, unknown>,
    readonly correlationId: string,
  ) {
    super();
  }
}

@QueryHandler(ReadMcpTool)
export class ReadMcpToolHandler implements IQueryHandler<ReadMcpTool> {
  constructor(@Inject(McpGatewayClient) private readonly mcp: McpGatewayClient) {}
  execute(q: ReadMcpTool) {
    return this.mcp.call(q.server, q.tool, q.args, q.correlationId);
  }
}

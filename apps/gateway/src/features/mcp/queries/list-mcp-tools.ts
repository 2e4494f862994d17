import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { McpGatewayClient } from '../mcp-client.js';

export interface McpToolList {
  readonly server: string;
  readonly tools: {
    name: string;
    description: string | null;
    input_schema: Record<string, unknown>;
    output_schema: Record<string, unknown> | null;
  }[];
}

/** One MCP server's tools with their descriptions and JSON Schemas. */
export class ListMcpTools extends Query<McpToolList> {
  constructor(
    readonly server: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@QueryHandler(ListMcpTools)
export class ListMcpToolsHandler implements IQueryHandler<ListMcpTools> {
  constructor(@Inject(McpGatewayClient) private readonly mcp: McpGatewayClient) {}
  async execute(q: ListMcpTools): Promise<McpToolList> {
    const tools = await this.mcp.toolInfos(q.server, q.correlationId);
    return {
      server: q.server,
      tools: tools.map((t) => ({
        name: t.name,
        description: t.description ?? null,
        input_schema: t.inputSchema,
        output_schema: t.outputSchema ?? null,
      })),
    };
  }
}

import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CatalogTool } from '../catalog.js';
import { McpToolCalls, type CallContext, type ToolResult } from '../tool-calls.js';

/**
 * A `tools/call` of the gateway's own MCP server: an upstream tool, a workflow or an agent task,
 * recorded as McpToolCalled then McpToolSucceeded/Failed (tool-calls.ts). Result: the MCP tool result.
 */
export class CallGatewayTool extends Command<ToolResult> {
  constructor(
    readonly tool: CatalogTool,
    readonly args: Record<string, unknown>,
    readonly context: CallContext,
  ) {
    super();
  }
}

@CommandHandler(CallGatewayTool)
export class CallGatewayToolHandler implements ICommandHandler<CallGatewayTool> {
  constructor(@Inject(McpToolCalls) private readonly calls: McpToolCalls) {}
  execute(c: CallGatewayTool) {
    return this.calls.call(c.tool, c.args, c.context);
  }
}

import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { AppError } from '@switchyard/platform';
import { backendKey, toolCallKey } from '../../../idempotency/keys.js';
import { McpGatewayClient, type ToolCallOutcome } from '../mcp-client.js';

/**
 * Call a tool of a registered MCP server over NATS (the connectors run it). With `checkTool`,
 * first 404 listing the server's tools when it has no such tool (from the registry's cached listing).
 */
export class CallMcpTool extends Command<ToolCallOutcome> {
  constructor(
    readonly server: string,
    readonly tool: string,
    readonly args: Record<string, unknown>,
    readonly correlationId: string,
    readonly options: {
      readonly timeoutMs?: number | undefined;
      readonly checkTool?: boolean;
      /** The request's Idempotency-Key: the call goes keyed to the connectors (see toolCallKey). */
      readonly requestKey?: string | undefined;
      /** A key scoped already (an /mcp call's), used as it is. */
      readonly scopedKey?: string | undefined;
    } = {},
  ) {
    super();
  }
}

@CommandHandler(CallMcpTool)
export class CallMcpToolHandler implements ICommandHandler<CallMcpTool> {
  constructor(@Inject(McpGatewayClient) private readonly mcp: McpGatewayClient) {}
  async execute(c: CallMcpTool): Promise<ToolCallOutcome> {
    if (c.options.checkTool) {
      const server = await this.mcp.server(c.server, c.correlationId);
      if (server.tools.length > 0 && !server.tools.includes(c.tool)) {
        throw new AppError('not_found', `MCP server "${c.server}" has no tool "${c.tool}"`, {
          server: c.server,
          tool: c.tool,
          valid: server.tools,
        });
      }
    }
    const scoped =
      c.options.scopedKey ?? (c.options.requestKey !== undefined ? backendKey(c.options.requestKey) : undefined);
    return this.mcp.call(c.server, c.tool, c.args, c.correlationId, c.options.timeoutMs, {
      ...(scoped !== undefined ? { idempotencyKey: toolCallKey(scoped, c.server, c.tool, c.args) } : {}),
    });
  }
}

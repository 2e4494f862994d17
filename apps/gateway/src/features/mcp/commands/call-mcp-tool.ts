import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { AppError } from '@switchyard/platform';
import { backendKey, toolCallKey } from '../../../idempotency/keys.js';
import { McpGatewayClient, type ToolCallOutcome } from '../mcp-client.js';

/** How many of a server's tool names a 404 lists. */
const VALID_NAMES_SHOWN = 100;

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
      // Names cut to fit the health reply (a server listing tens of thousands) do not say a tool is
      // missing: the connector, which has the whole listing, answers for those.
      if (server.tools.length > 0 && !server.tools_truncated && !server.tools.includes(c.tool)) {
        throw new AppError('not_found', `MCP server "${c.server}" has no tool "${c.tool}"`, {
          server: c.server,
          tool: c.tool,
          // At most 100 names in an error (the rest counted): 1,000 long names made a 1 MB 404.
          valid: server.tools.slice(0, VALID_NAMES_SHOWN),
          ...(server.tools.length > VALID_NAMES_SHOWN ? { more_tools: server.tools.length - VALID_NAMES_SHOWN } : {}),
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

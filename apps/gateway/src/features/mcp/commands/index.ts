/** The MCP feature's commands: one class and one handler per file. */
import { CallMcpToolHandler } from './call-mcp-tool.js';

export { CallMcpTool } from './call-mcp-tool.js';

export const MCP_COMMAND_HANDLERS = [CallMcpToolHandler];

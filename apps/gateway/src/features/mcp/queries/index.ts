/** The MCP feature's queries: one class and one handler per file. */
import { GetMcpServerHandler } from './get-mcp-server.js';
import { GetMcpServersHealthHandler } from './get-mcp-servers-health.js';
import { ListMcpToolsHandler } from './list-mcp-tools.js';
import { ReadMcpToolHandler } from './read-mcp-tool.js';

export { GetMcpServer } from './get-mcp-server.js';
export { GetMcpServersHealth } from './get-mcp-servers-health.js';
export { ListMcpTools, type McpToolList } from './list-mcp-tools.js';
export { ReadMcpTool } from './read-mcp-tool.js';

export const MCP_QUERY_HANDLERS = [
  GetMcpServersHealthHandler,
  GetMcpServerHandler,
  ListMcpToolsHandler,
  ReadMcpToolHandler,
];

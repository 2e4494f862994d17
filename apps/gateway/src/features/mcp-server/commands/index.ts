/** The MCP server feature's commands: one class and one handler per file. */
import { CallGatewayToolHandler } from './call-gateway-tool.js';
import { DefineVirtualServerHandler } from './define-virtual-server.js';
import { RemoveVirtualServerHandler } from './remove-virtual-server.js';

export { CallGatewayTool } from './call-gateway-tool.js';
export { DefineVirtualServer } from './define-virtual-server.js';
export { RemoveVirtualServer } from './remove-virtual-server.js';

export const MCP_SERVER_COMMAND_HANDLERS = [
  CallGatewayToolHandler,
  DefineVirtualServerHandler,
  RemoveVirtualServerHandler,
];

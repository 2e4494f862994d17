/** The MCP server feature's queries: one class and one handler per file. */
import { GetVirtualServerHandler } from './get-virtual-server.js';
import { ListVirtualServersHandler } from './list-virtual-servers.js';

export { GetVirtualServer } from './get-virtual-server.js';
export { ListVirtualServers } from './list-virtual-servers.js';

export const MCP_SERVER_QUERY_HANDLERS = [ListVirtualServersHandler, GetVirtualServerHandler];

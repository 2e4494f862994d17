import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { ConnectableServer } from './http.js';

/**
 * Serve one MCP server over stdin/stdout until stdin closes. stdout carries only
 * protocol messages, so the caller must log to stderr.
 */
export async function serveStdio(server: ConnectableServer): Promise<{ close(): Promise<void> }> {
  const transport = new StdioServerTransport();
  await server.connect(transport);
  return { close: () => server.close() };
}

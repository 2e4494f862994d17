/**
 * A stdio MCP server for the specs whose tool and prompt names no MCP client would take (a space,
 * terminal control characters, more than 128 characters) beside ordinary ones: the `/mcp`
 * catalog must pass the ordinary ones and leave the others out.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CallToolRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

const names = ['plain', 'dotted.name-1', 'with space', 'title\u001b]0;PWNED\u0007', 'x'.repeat(129), 'ent__query'];
const server = new Server({ name: 'odd-names', version: '1.0.0' }, { capabilities: { tools: {}, prompts: {} } });
server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: names.map((name) => ({ name, description: `tool ${name.length}`, inputSchema: { type: 'object' } })),
}));
server.setRequestHandler(CallToolRequestSchema, (r) => ({
  content: [{ type: 'text', text: `called ${r.params.name}` }],
}));
server.setRequestHandler(ListPromptsRequestSchema, () => ({ prompts: names.map((name) => ({ name })) }));
server.setRequestHandler(GetPromptRequestSchema, (r) => ({
  messages: [{ role: 'user', content: { type: 'text', text: r.params.name } }],
}));
await server.connect(new StdioServerTransport());

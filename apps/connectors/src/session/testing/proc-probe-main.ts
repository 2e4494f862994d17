/**
 * A stdio MCP server for the sandbox spec: its one tool says what this process can see of another
 * process (`/proc/<pid>`, its environment) and what it reads of a file and a directory.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const attempt = (f: () => string): string => {
  try {
    return f();
  } catch (err) {
    return `error: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
};

const server = new McpServer({ name: 'proc-probe', version: '1.0.0' });
server.registerTool(
  'probe',
  { description: 'what this process sees', inputSchema: { pid: z.number(), file: z.string(), dir: z.string() } },
  ({ pid, file, dir }) => {
    const seen = {
      sees_pid: existsSync(`/proc/${pid}`),
      environ: attempt(() => String(readFileSync(`/proc/${pid}/environ`).length)),
      file: attempt(() => readFileSync(file, 'utf8')),
      dir: attempt(() => readdirSync(dir).join(',')),
    };
    return { content: [{ type: 'text', text: JSON.stringify(seen) }] };
  },
);
await server.connect(new StdioServerTransport());

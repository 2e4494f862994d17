/**
 * A stdio MCP server for the sandbox spec: its one tool says what this process can see of another
 * process (`/proc/<pid>`, its environment) and what it reads of a file and a directory.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  {
    description: 'what this process sees, and where it may write',
    inputSchema: { pid: z.number(), file: z.string(), dir: z.string(), writes: z.array(z.string()).default([]) },
  },
  ({ pid, file, dir, writes }) => {
    const seen = {
      sees_pid: existsSync(`/proc/${pid}`),
      environ: attempt(() => String(readFileSync(`/proc/${pid}/environ`).length)),
      file: attempt(() => readFileSync(file, 'utf8')),
      dir: attempt(() => readdirSync(dir).join(',')),
      // Effective capabilities (hex): none in the sandbox, or it could unmount what hides the secrets.
      cap_eff: attempt(() => /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '?'),
      umount: attempt(() => {
        execFileSync('umount', [dir], { stdio: 'pipe' });
        return 'unmounted';
      }),
      wrote: writes.map((p) =>
        attempt(() => {
          writeFileSync(p, 'x', { flag: 'a' });
          return 'written';
        }),
      ),
    };
    return { content: [{ type: 'text', text: JSON.stringify(seen) }] };
  },
);
await server.connect(new StdioServerTransport());

#!/usr/bin/env node
/**
 * CLI: node apps/mcp-servers/dist/main.js <database|fetch|automation|analytics|filesystem-bridge|github> [--stdio] [--port N] [--host H]
 * Configuration comes from the environment (see config.ts); a bad value stops the start naming the variable.
 */
import { parseArgs } from 'node:util';
import { mcpServerKinds, type McpServerKind } from './config.js';
import { runMcpServer } from './runtime.js';

const usage = `usage: main.js <${mcpServerKinds.join('|')}> [--stdio] [--port N] [--host H]`;

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      stdio: { type: 'boolean', default: false },
      port: { type: 'string' },
      host: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const kind = positionals[0] as McpServerKind | undefined;
  if (values.help || !kind || !mcpServerKinds.includes(kind)) {
    process.stderr.write(`${usage}\n`);
    process.exit(values.help ? 0 : 2);
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    process.stderr.write(`--port must be an integer 0..65535\n${usage}\n`);
    process.exit(2);
  }
  const running = await runMcpServer(kind, {
    stdio: values.stdio,
    ...(port !== undefined ? { port } : {}),
    ...(values.host ? { host: values.host } : {}),
  });
  if (running.url) process.stderr.write(`${kind} MCP server at ${running.url}\n`);
  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    void running.close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // On stdio the client ends the session by closing our stdin.
  if (values.stdio) process.stdin.on('close', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

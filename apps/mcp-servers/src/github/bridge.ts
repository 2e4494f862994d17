import { createRequire } from 'node:module';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Logger, StdioSandbox } from '@switchyard/platform';
import { startStdioChild } from '../common/stdio-bridge.js';
import { createForwardingServer } from '../filesystem/bridge.js';

/** Why the GitHub server does not serve calls without a token (health `unconfigured`, /mcp 503). */
export const GITHUB_TOKEN_MISSING = 'GITHUB_PERSONAL_ACCESS_TOKEN is not set: the github MCP server is unconfigured';

export interface GithubBridgeOptions {
  /** The personal access token handed to the official server (its only secret, in its environment only). */
  readonly token: string;
  readonly logger: Logger;
  /** Path of the stdio server script; default: the installed @modelcontextprotocol/server-github. */
  readonly serverScript?: string;
  /** Where it runs: the stdio sandbox, like the connectors' stdio servers (none: a plain child). */
  readonly sandbox?: StdioSandbox;
}

export interface GithubBridge {
  readonly client: Client;
  readonly pid: number | null;
  /** Builds the HTTP-side server for one request (use with startMcpHttpServer). */
  serverFactory(): Server;
  alive(): boolean;
  /** Whether the child answers an MCP ping within `timeoutMs`. */
  answers(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export function githubServerScript(): string {
  return createRequire(import.meta.url).resolve('@modelcontextprotocol/server-github/dist/index.js');
}

/**
 * The official `@modelcontextprotocol/server-github` as a stdio child, forwarded over HTTP like
 * the filesystem bridge. The token reaches the child through its environment only (with the
 * SDK's short safe list: not our other secrets); a dead child is restarted with backoff.
 */
export async function startGithubBridge(opts: GithubBridgeOptions): Promise<GithubBridge> {
  const child = await startStdioChild({
    name: 'github',
    script: opts.serverScript ?? githubServerScript(),
    env: { GITHUB_PERSONAL_ACCESS_TOKEN: opts.token },
    logger: opts.logger,
    ...(opts.sandbox && { sandbox: opts.sandbox }),
  });
  return {
    get client(): Client {
      return child.client;
    },
    get pid(): number | null {
      return child.pid;
    },
    serverFactory: () => createForwardingServer(child.client, { name: 'switchyard-github-bridge', version: '0.1.0' }),
    alive: () => child.alive(),
    answers: (timeoutMs) => child.answers(timeoutMs),
    close: () => child.close(),
  };
}

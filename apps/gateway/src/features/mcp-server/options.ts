import { z } from 'zod';
import { parseConfig } from '@switchyard/platform';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** The MCP endpoint's environment, parsed once at start (a bad value stops the start, naming the variable). */
export const mcpServerEnvSchema = z.object({
  /** Serve `/mcp` without sessions: every POST is a fresh server, no Mcp-Session-Id, no server-sent notifications. */
  MCP_SERVER_STATELESS: bool.default(false),
  /** Sessions (Streamable HTTP and SSE together) one gateway holds; past it a new session is refused 503. */
  MCP_SERVER_MAX_SESSIONS: z.coerce.number().int().min(1).max(100_000).default(1_000),
  /** Sessions one API key holds at once; past it a new one for that key is refused 429 (one key cannot take them all). */
  MCP_SERVER_MAX_SESSIONS_PER_KEY: z.coerce.number().int().min(1).max(100_000).default(50),
  /** A session without a request for this long is closed. */
  MCP_SERVER_SESSION_IDLE_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(1_800_000),
  /** How often the tool catalog (upstream servers, definitions, task types) is re-read to notice changes. */
  MCP_SERVER_CATALOG_REFRESH_MS: z.coerce.number().int().min(200).max(600_000).default(3_000),
  /** Tools one `tools/list` page holds; past it the answer carries `nextCursor` (MCP pagination). */
  MCP_SERVER_TOOLS_PAGE_SIZE: z.coerce.number().int().min(1).max(10_000).default(1_000),
  /** The resource URL clients use (`https://switchyard.example.com/mcp`); default: the request's own origin. */
  MCP_SERVER_PUBLIC_URL: z.string().url().optional(),
});
export type McpServerOptions = {
  readonly stateless: boolean;
  readonly maxSessions: number;
  readonly maxSessionsPerKey: number;
  readonly sessionIdleMs: number;
  readonly catalogRefreshMs: number;
  readonly toolsPageSize: number;
  readonly publicUrl?: string;
};

export const MCP_SERVER_OPTIONS = Symbol.for('switchyard.gateway.mcpServerOptions');

export function mcpServerOptionsFromEnv(env: Record<string, string | undefined> = process.env): McpServerOptions {
  const e = parseConfig(env, mcpServerEnvSchema);
  return {
    stateless: e.MCP_SERVER_STATELESS,
    maxSessions: e.MCP_SERVER_MAX_SESSIONS,
    maxSessionsPerKey: e.MCP_SERVER_MAX_SESSIONS_PER_KEY,
    sessionIdleMs: e.MCP_SERVER_SESSION_IDLE_MS,
    catalogRefreshMs: e.MCP_SERVER_CATALOG_REFRESH_MS,
    toolsPageSize: e.MCP_SERVER_TOOLS_PAGE_SIZE,
    ...(e.MCP_SERVER_PUBLIC_URL ? { publicUrl: e.MCP_SERVER_PUBLIC_URL.replace(/\/+$/, '') } : {}),
  };
}

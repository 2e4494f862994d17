import { AppError } from '@switchyard/platform';
import type { GatewayRequest } from '../../http/context.js';

/**
 * MCP servers that write to the database (`database_writer`, port 5007, logged in as the
 * writer role). The built-in customer_onboarding template calls it from the workflow engine
 * through the connectors, which the gateway does not stand between. At the gateway, a caller
 * naming it directly (`POST /mcp/call`, or a step of an ad-hoc workflow) needs an admin key,
 * and writes must be enabled with DATABASE_ALLOW_WRITES=true; otherwise 403.
 */
export const WRITER_SERVERS: ReadonlySet<string> = new Set(['database_writer']);

export interface WriterAccess {
  /** Whether the gateway checks API keys at all (with auth off every caller is trusted). */
  readonly authEnabled: boolean;
  /** DATABASE_ALLOW_WRITES. */
  readonly writesAllowed: boolean;
}

/**
 * Upstream tools that need the admin role wherever the gateway hands them on (`POST /mcp/call`,
 * `/mcp`, a step of an ad-hoc workflow), because the REST route that serves the same data does:
 * the development mailbox holds every mail the system sent (customers' messages and replies).
 */
export const ADMIN_TOOLS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['automation', new Set(['list_mailbox'])],
]);

/** Throws 403 when the request may not call `server` (a no-op for any server but the writers). */
export function assertWriterAllowed(server: string, req: Pick<GatewayRequest, 'apiKey'>, access: WriterAccess): void {
  if (!WRITER_SERVERS.has(server)) return;
  const role = req.apiKey?.role;
  if (access.authEnabled && role !== 'admin') {
    throw new AppError(
      'forbidden',
      `calling the ${server} MCP server needs the admin role; the key has ${role ?? 'none'}`,
      { server, requiredRole: 'admin', keyRole: role ?? null },
    );
  }
  if (!access.writesAllowed) {
    throw new AppError(
      'forbidden',
      `the ${server} MCP server is closed to API calls: writes are disabled (set DATABASE_ALLOW_WRITES=true); the built-in templates use it internally either way`,
      { server, setting: 'DATABASE_ALLOW_WRITES' },
    );
  }
}

/**
 * Throws 403 when the request may not call `tool` of `server`: the writer servers' rule, and the
 * admin role for the tools of ADMIN_TOOLS.
 */
export function assertToolAllowed(
  server: string,
  tool: string,
  req: Pick<GatewayRequest, 'apiKey'>,
  access: WriterAccess,
): void {
  assertWriterAllowed(server, req, access);
  if (!ADMIN_TOOLS.get(server)?.has(tool)) return;
  const role = req.apiKey?.role;
  if (access.authEnabled && role !== 'admin') {
    throw new AppError('forbidden', `calling ${server}/${tool} needs the admin role; the key has ${role ?? 'none'}`, {
      server,
      tool,
      requiredRole: 'admin',
      keyRole: role ?? null,
    });
  }
}

/** The tools of a workflow definition's steps (`mcp:<server>/<tool>`) that assertToolAllowed guards. */
export function guardedToolsUsed(
  steps: readonly { readonly uses?: unknown }[] | undefined,
): { server: string; tool: string }[] {
  const out = new Map<string, { server: string; tool: string }>();
  for (const s of steps ?? []) {
    const m = typeof s.uses === 'string' ? /^mcp:([^/]+)\/(.+)$/.exec(s.uses) : null;
    if (!m) continue;
    const [, server, tool] = m as unknown as [string, string, string];
    if (WRITER_SERVERS.has(server) || ADMIN_TOOLS.get(server)?.has(tool))
      out.set(`${server}/${tool}`, { server, tool });
  }
  return [...out.values()];
}

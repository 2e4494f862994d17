/**
 * Which MCP tools a caller may reach through the API, wherever the gateway hands them on
 * (`POST /mcp/call`, `/mcp`, a step of an ad-hoc workflow, a re-run of one): the rule the
 * gateway checks at once, and the batch worker checks when a bulk retry re-runs a recorded
 * definition. Pure: no I/O but the registered definition it is given to compare.
 */
import { ADMIN_TOOLS } from '@switchyard/contracts';
import type { DefinitionStore } from './definitions.js';

/**
 * MCP servers that write to the database (`database_writer`, logged in as the writer role). The
 * built-in customer_onboarding template calls it from the engine through the connectors; at the
 * gateway a caller naming it needs an admin key, and writes enabled (DATABASE_ALLOW_WRITES=true).
 */
export const WRITER_SERVERS: ReadonlySet<string> = new Set(['database_writer']);

/**
 * Upstream tools that need the admin role (kept with the MCP events, whose payloads for them only
 * admins read): the development mailbox holds every mail the system
 * sent (customers' messages and replies; its REST route is admin-only too); the queued deliveries
 * (`queue_webhook`, `list_queued_deliveries`) carry the A2A push notifications of every caller's
 * tasks, under keys that say whose: an operator who could queue under another's task keys could
 * suppress that caller's notifications (a key already used for another URL is refused for good)
 * or hold their ordering queue, and make the system POST anywhere ten times over.
 */
export { ADMIN_TOOLS };

/** Who asks: the key's role (null: no key), whether keys are checked at all, DATABASE_ALLOW_WRITES. */
export interface ToolCaller {
  readonly role: string | null;
  readonly authEnabled: boolean;
  readonly writesAllowed: boolean;
}

/** Why `caller` may not call `tool` of `server` (a message and its details), or undefined when it may. */
export function toolRefusal(
  server: string,
  tool: string | undefined,
  caller: ToolCaller,
): { readonly message: string; readonly details: Record<string, unknown> } | undefined {
  const { role } = caller;
  if (WRITER_SERVERS.has(server)) {
    if (caller.authEnabled && role !== 'admin')
      return {
        message: `calling the ${server} MCP server needs the admin role; the key has ${role ?? 'none'}`,
        details: { server, requiredRole: 'admin', keyRole: role },
      };
    if (!caller.writesAllowed)
      return {
        message: `the ${server} MCP server is closed to API calls: writes are disabled (set DATABASE_ALLOW_WRITES=true); the built-in templates use it internally either way`,
        details: { server, setting: 'DATABASE_ALLOW_WRITES' },
      };
  }
  if (tool !== undefined && ADMIN_TOOLS.get(server)?.has(tool) && caller.authEnabled && role !== 'admin')
    return {
      message: `calling ${server}/${tool} needs the admin role; the key has ${role ?? 'none'}`,
      details: { server, tool, requiredRole: 'admin', keyRole: role },
    };
  return undefined;
}

/** The tools of a workflow definition's steps (`mcp:<server>/<tool>`) that toolRefusal guards. */
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

/**
 * Running a recorded definition again (a retry, a fork without another version) is starting it:
 * one that names a guarded tool and is not a registered one (an ad-hoc run; a registered
 * definition was vetted by the admin who registered it) needs what an ad-hoc start of it needs.
 * The first refusal, or undefined.
 */
export async function rerunRefusal(
  definitions: Pick<DefinitionStore, 'get'>,
  definition: { readonly id: string; readonly version: number; readonly steps: readonly { readonly uses?: unknown }[] },
  caller: ToolCaller,
): Promise<{ readonly message: string; readonly details: Record<string, unknown> } | undefined> {
  const guarded = guardedToolsUsed(definition.steps);
  if (guarded.length === 0) return undefined;
  const registered = await definitions.get(definition.id, definition.version).catch(() => undefined);
  if (registered && JSON.stringify(registered.definition.steps) === JSON.stringify(definition.steps)) return undefined;
  for (const { server, tool } of guarded) {
    const refused = toolRefusal(server, tool, caller);
    if (refused) return refused;
  }
  return undefined;
}

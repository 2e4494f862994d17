import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { isAppError, type Logger } from '@switchyard/platform';

/** The SDK answers `{ code, message }` of what a handler throws; an McpError would prefix `MCP error <code>:` to the message. */
const rpcError = (code: number, message: string): Error => Object.assign(new Error(message), { code });

type Handler = (request: unknown, extra: unknown) => Promise<unknown>;

interface ZodLikeIssue {
  readonly path?: readonly PropertyKey[];
  readonly message?: string;
}

function zodIssues(e: unknown): ZodLikeIssue[] | undefined {
  if (!e || typeof e !== 'object' || !('issues' in e)) return undefined;
  const issues = e.issues;
  return Array.isArray(issues) ? (issues as ZodLikeIssue[]) : undefined;
}

/** `params.arguments: expected record` style, at most three issues, each cut short. */
function shortIssues(issues: ZodLikeIssue[]): string {
  const parts = issues.slice(0, 3).map((i) => {
    const where = (i.path ?? []).map(String).join('.') || '(root)';
    return `${where}: ${String(i.message ?? 'invalid').slice(0, 80)}`;
  });
  return parts.join('; ') + (issues.length > 3 ? `; and ${issues.length - 3} more` : '');
}

/**
 * Map what a request handler throws to a JSON-RPC error a client can act on, instead of the
 * SDK's default (-32603 with the raw message: a zod dump of the request, or our AppError's text
 * echoing the input):
 * - a request that fails the method's schema -> -32602 `invalid params: <path>: <problem>`;
 * - an AppError `validation` / `not_found` (e.g. reading the resource of a table that does not exist) -> -32602 with its message;
 * - an McpError stays as it is (the SDK's own -32602 for an unknown tool, etc.);
 * - anything else -> -32603 `internal error` (logged here with the detail, not sent).
 *
 * The SDK keeps its handlers in a private map; wrapping them there is the only hook that also
 * sees the schema parse, which runs before any handler we register.
 */
export function normaliseProtocolErrors(server: Server, logger: Logger): void {
  const handlers = (server as unknown as { _requestHandlers?: Map<string, Handler> })._requestHandlers;
  if (!(handlers instanceof Map)) return;
  for (const [method, handler] of handlers) {
    handlers.set(method, async (request, extra) => {
      try {
        return await handler(request, extra);
      } catch (e) {
        if (e instanceof McpError) throw e;
        const issues = zodIssues(e);
        if (issues) throw rpcError(ErrorCode.InvalidParams, `invalid params: ${shortIssues(issues)}`);
        // Not echoed: the message names what the caller asked for (raw input).
        if (isAppError(e) && e.code === 'not_found')
          throw rpcError(
            ErrorCode.InvalidParams,
            `invalid params: ${method === 'resources/read' ? 'no such resource' : 'not found'}`,
          );
        if (isAppError(e) && e.code === 'validation')
          throw rpcError(ErrorCode.InvalidParams, `invalid params: ${e.message.slice(0, 200)}`);
        logger.error({ err: e, method }, 'mcp request handler failed');
        throw rpcError(ErrorCode.InternalError, 'internal error');
      }
    });
  }
}

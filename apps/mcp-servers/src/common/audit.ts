import type { ServerResponse } from 'node:http';
import { z } from 'zod';

/**
 * One call answered by an MCP server over HTTP, as the server saw it: whoever called it
 * (the connectors on behalf of the gateway, or anyone else holding the token). The launcher
 * appends it as an `McpServerCallHandled` event to the stream `mcpaudit-<server>` with the
 * actor `token:<name>` in the metadata, so `GET /api/v1/audit?actor=token:mcp` lists them.
 * Arguments are not recorded (they may hold secrets), only their names.
 */
export const mcpCallAuditSchema = z.object({
  server: z.string().min(1),
  method: z.enum(['tools/call', 'resources/read', 'prompts/get']),
  /** Tool or prompt name, or the resource URI (cut to 200 characters). */
  target: z.string(),
  argument_names: z.array(z.string()),
  /** success, tool_error (result with isError), error (JSON-RPC error), unknown (no readable answer). */
  outcome: z.enum(['success', 'tool_error', 'error', 'unknown']),
  error_code: z.number().int().optional(),
  actor: z.string().min(1),
  remote: z.string(),
  user_agent: z.string().optional(),
  correlation_id: z.string(),
  duration_ms: z.number().min(0),
  at: z.iso.datetime({ offset: true }),
});
export type McpCallAudit = z.infer<typeof mcpCallAuditSchema>;
export const MCP_CALL_AUDIT_EVENT = 'McpServerCallHandled';
export const mcpAuditStreamId = (server: string): string => `mcpaudit-${server}`;

const audited = new Set(['tools/call', 'resources/read', 'prompts/get']);
const CAPTURE_LIMIT = 1024 * 1024;

interface Pending {
  method: McpCallAudit['method'];
  target: string;
  argument_names: string[];
  /** `_meta.correlationId` of the call (the connectors put the gateway request's id there). */
  correlation?: string;
}

function pendingOf(msg: unknown): [string | number, Pending] | undefined {
  if (!msg || typeof msg !== 'object') return undefined;
  const m = msg as {
    id?: unknown;
    method?: unknown;
    params?: { name?: unknown; uri?: unknown; arguments?: unknown; _meta?: { correlationId?: unknown } };
  };
  if (typeof m.method !== 'string' || !audited.has(m.method)) return undefined;
  if (typeof m.id !== 'string' && typeof m.id !== 'number') return undefined;
  const target = String(m.method === 'resources/read' ? (m.params?.uri ?? '') : (m.params?.name ?? '')).slice(0, 200);
  const args = m.params?.arguments;
  const argument_names = args && typeof args === 'object' && !Array.isArray(args) ? Object.keys(args).slice(0, 50) : [];
  const cid = m.params?._meta?.correlationId;
  return [
    m.id,
    {
      method: m.method as McpCallAudit['method'],
      target,
      argument_names,
      ...(typeof cid === 'string' && cid ? { correlation: cid.slice(0, 200) } : {}),
    },
  ];
}

/**
 * Watch one HTTP exchange: the calls in the request body are matched with the JSON-RPC
 * answers written to `res` (JSON response mode), and each is reported once the answer is sent.
 */
export function auditCalls(
  body: unknown,
  res: ServerResponse,
  who: { server: string; actor: string; correlationId: string; remote: string; userAgent?: string | undefined },
  report: (c: McpCallAudit) => void,
): void {
  const pending = new Map<string | number, Pending>();
  for (const msg of Array.isArray(body) ? body : [body]) {
    const p = pendingOf(msg);
    if (p) pending.set(p[0], p[1]);
  }
  if (pending.size === 0) return;
  const started = Date.now();
  const chunks: Buffer[] = [];
  let size = 0;
  const keep = (chunk: unknown): void => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function' || size > CAPTURE_LIMIT) return;
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string | Uint8Array);
    size += b.length;
    if (size <= CAPTURE_LIMIT) chunks.push(b);
  };
  const write = res.write.bind(res) as (...a: unknown[]) => boolean;
  const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
  (res as { write: unknown }).write = (...a: unknown[]) => (keep(a[0]), write(...a));
  (res as { end: unknown }).end = (...a: unknown[]) => (keep(a[0]), end(...a));
  res.once('close', () => {
    let answers: unknown[] = [];
    if (size <= CAPTURE_LIMIT) {
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        answers = Array.isArray(parsed) ? parsed : [parsed];
      } catch {
        answers = [];
      }
    }
    const byId = new Map<unknown, { result?: { isError?: unknown }; error?: { code?: unknown } }>();
    for (const a of answers) if (a && typeof a === 'object' && 'id' in a) byId.set(a.id, a as never);
    const at = new Date().toISOString();
    for (const [id, p] of pending) {
      const a = byId.get(id);
      const outcome: McpCallAudit['outcome'] = !a
        ? 'unknown'
        : a.error
          ? 'error'
          : a.result?.isError === true
            ? 'tool_error'
            : 'success';
      const code = a?.error && typeof a.error.code === 'number' ? a.error.code : undefined;
      report({
        server: who.server,
        method: p.method,
        target: p.target,
        argument_names: p.argument_names,
        outcome,
        ...(code !== undefined ? { error_code: code } : {}),
        actor: who.actor,
        remote: who.remote,
        ...(who.userAgent ? { user_agent: who.userAgent.slice(0, 200) } : {}),
        correlation_id: p.correlation ?? who.correlationId,
        duration_ms: Date.now() - started,
        at,
      });
    }
  });
}

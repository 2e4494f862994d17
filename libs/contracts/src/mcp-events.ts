import { z } from 'zod';

/**
 * Domain events the connectors report through `onEvent`. The wiring appends them to
 * the event store (suggested stream: {@link mcpServerStreamId}); the schemas here are
 * the contract for their `data`. Arguments and results are already redacted and sized.
 */

const server = z.string().min(1);
const at = z.iso.datetime({ offset: true });
const payload = z.object({ value: z.unknown(), size: z.number().int().min(0), truncated: z.boolean() });

export const mcpHealthSchema = z.enum(['up', 'degraded', 'down', 'unconfigured']);
export type McpHealth = z.infer<typeof mcpHealthSchema>;

export const mcpBreakerStateSchema = z.enum(['closed', 'open', 'half_open', 'isolated']);
export type McpBreakerState = z.infer<typeof mcpBreakerStateSchema>;

/** How a call ended: `tool_error` is a result with isError (the server worked; the tool said no). */
export const mcpCallOutcomeSchema = z.enum(['success', 'tool_error', 'error', 'rejected']);

export const mcpToolCalledSchema = z.object({
  server,
  tool: z.string().min(1),
  call_id: z.string().min(1),
  arguments: payload,
  idempotency_key: z.string().optional(),
  /** The request's correlation id, so the wiring can put it in the event metadata. */
  correlation_id: z.string().optional(),
  /** Who asked (`apikey:<id>` through the gateway), so the wiring can put it in the event metadata. */
  actor: z.string().optional(),
  /** Whom a call the system makes is for (a workflow step's starter): the audit finds it under that key. */
  on_behalf_of: z.string().optional(),
  at,
});
export const mcpToolSucceededSchema = z.object({
  server,
  tool: z.string().min(1),
  call_id: z.string().min(1),
  duration_ms: z.number().min(0),
  outcome: z.literal('success'),
  attempts: z.number().int().min(1),
  result: payload,
  correlation_id: z.string().optional(),
  actor: z.string().optional(),
  on_behalf_of: z.string().optional(),
  at,
});
export const mcpToolFailedSchema = z.object({
  server,
  tool: z.string().min(1),
  call_id: z.string().min(1),
  duration_ms: z.number().min(0),
  outcome: mcpCallOutcomeSchema.exclude(['success']),
  /** AppError code, or `tool_error` for an isError result. */
  error_code: z.string().min(1),
  error_message: z.string(),
  attempts: z.number().int().min(0),
  result: payload.optional(),
  correlation_id: z.string().optional(),
  actor: z.string().optional(),
  on_behalf_of: z.string().optional(),
  at,
});
export const mcpCircuitOpenedSchema = z.object({
  server,
  last_error: z.string(),
  half_open_after_ms: z.number().int().min(0),
  at,
});
export const mcpCircuitHalfOpenedSchema = z.object({ server, at });
export const mcpCircuitClosedSchema = z.object({ server, at });
export const mcpServerWentDownSchema = z.object({
  server,
  previous: mcpHealthSchema,
  error: z.string(),
  at,
});
export const mcpServerRecoveredSchema = z.object({
  server,
  down_for_ms: z.number().min(0),
  response_ms: z.number().min(0).optional(),
  at,
});

export const mcpEventSchemas = {
  McpToolCalled: mcpToolCalledSchema,
  McpToolSucceeded: mcpToolSucceededSchema,
  McpToolFailed: mcpToolFailedSchema,
  McpCircuitOpened: mcpCircuitOpenedSchema,
  McpCircuitHalfOpened: mcpCircuitHalfOpenedSchema,
  McpCircuitClosed: mcpCircuitClosedSchema,
  McpServerWentDown: mcpServerWentDownSchema,
  McpServerRecovered: mcpServerRecoveredSchema,
} as const;

export type McpEventType = keyof typeof mcpEventSchemas;

/** One connector event: `{ type, data }`, data valid under `mcpEventSchemas[type]`. */
export type McpEvent = {
  [K in McpEventType]: { readonly type: K; readonly data: z.infer<(typeof mcpEventSchemas)[K]> };
}[McpEventType];

export const mcpEventSchema = z.discriminatedUnion(
  'type',
  (Object.entries(mcpEventSchemas) as [McpEventType, z.ZodObject][]).map(([type, data]) =>
    z.object({ type: z.literal(type), data }),
  ) as unknown as [z.ZodObject, z.ZodObject, ...z.ZodObject[]],
);

/** Where the wiring should append a server's events: one stream per server, category `mcpserver`. */
export const mcpServerStreamId = (serverName: string): string => `mcpserver-${serverName}`;

/** Actor of connector events nobody asked for (breaker, health) or whose caller sent none. */
export const MCP_SYSTEM_ACTOR = 'system:switchyard';

/**
 * The metadata a connector event is stored with: the caller's correlation id and actor
 * when the call carried them (a call through the gateway names `apikey:<id>`).
 */
export function mcpEventMetadata(e: McpEvent): { correlationId?: string; actor: string } {
  const d = e.data as { correlation_id?: string; actor?: string };
  return { ...(d.correlation_id ? { correlationId: d.correlation_id } : {}), actor: d.actor ?? MCP_SYSTEM_ACTOR };
}

/** The injected sink. It must not throw; errors in it are logged and swallowed by the caller. */
export type McpEventSink = (event: McpEvent) => void;

/** Build a typed event (checked by the compiler; `mcpEventSchema` checks at run time). */
export const mcpEvent = <K extends McpEventType>(type: K, data: z.infer<(typeof mcpEventSchemas)[K]>): McpEvent =>
  ({ type, data }) as McpEvent;

/**
 * Upstream tools only admins may call (the gateway's tool policy) and whose recorded arguments
 * and results only admins may read: the development mailbox holds every mail the system sent;
 * the queued deliveries carry every caller's A2A push notifications.
 */
export const ADMIN_TOOLS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['automation', new Set(['list_mailbox', 'queue_webhook', 'list_queued_deliveries'])],
]);

/**
 * Admin tools that only read: a call's recorded result is a summary (listingSummary), not the
 * listing. The caller got the listing; the log keeps who read how much, and a listing kept whole
 * in every read would copy the mailbox into the event log once per look.
 */
const ADMIN_LISTING_TOOLS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['automation', new Set(['list_mailbox', 'list_queued_deliveries'])],
]);

/** Whether `tool` of `server` is one of ADMIN_TOOLS. */
export const isAdminTool = (server: unknown, tool: unknown): boolean =>
  typeof server === 'string' && typeof tool === 'string' && ADMIN_TOOLS.get(server)?.has(tool) === true;

/** Whether `tool` of `server` is an admin tool that only reads (its results are recorded as a summary). */
export const isAdminListingTool = (server: unknown, tool: unknown): boolean =>
  typeof server === 'string' && typeof tool === 'string' && ADMIN_LISTING_TOOLS.get(server)?.has(tool) === true;

/** Whether a reference to a tool (`mcp:<server>/<tool>` as a step uses it, or `<server>/<tool>`) names an admin tool. */
export function namesAdminTool(ref: unknown): boolean {
  const m = typeof ref === 'string' ? /^(?:mcp:)?([^/]+)\/(.+)$/.exec(ref) : null;
  return m !== null && isAdminTool(m[1], m[2]);
}

/** How many ids of a listing's items a summary keeps, per list. */
const SUMMARY_IDS = 100;

/**
 * What is recorded of an admin listing's result: for each list in it (`messages`, `deliveries`),
 * how many items and the first SUMMARY_IDS of their ids; no content. `result` is a tool's result
 * (its `structuredContent` is summarised) or that structured content itself.
 */
export function listingSummary(result: unknown): {
  readonly summary: 'admin listing: counts and ids only';
  readonly lists: Record<string, { count: number; ids: (string | number)[] }>;
} {
  const rec = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  const body = rec(result) && rec(result['structuredContent']) ? result['structuredContent'] : result;
  const lists: Record<string, { count: number; ids: (string | number)[] }> = {};
  if (rec(body))
    for (const [k, v] of Object.entries(body))
      if (Array.isArray(v))
        lists[k] = {
          count: v.length,
          ids: v
            .map((x) => (rec(x) ? x['id'] : undefined))
            .filter((id): id is string | number => typeof id === 'string' || typeof id === 'number')
            .slice(0, SUMMARY_IDS),
        };
  return { summary: 'admin listing: counts and ids only', lists };
}

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

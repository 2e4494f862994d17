import { z } from 'zod';
import { progressSubjectSchema } from './progress.js';
import { SERVICE_SUBJECT_PREFIX, subjectToken } from './subjects.js';
import { mcpBreakerStateSchema, mcpHealthSchema } from './mcp-events.js';

/** What a server is for; the workflow engine and the gateway pick servers by role, not by name. */
export const mcpRoleSchema = z.enum(['filesystem', 'database', 'github', 'fetch', 'automation', 'analytics', 'other']);
export type McpRole = z.infer<typeof mcpRoleSchema>;

/**
 * Wire contract of the MCP connector service. Subjects follow the contracts layout
 * `switchyard.svc.<service>.v<major>.<endpoint>` with service `mcp` and the server
 * name as the first endpoint token, so `serviceWildcard('mcp')` covers all of them:
 *
 *   switchyard.svc.mcp.v1.<server>.call_tool | list_tools | list_resources | read_resource
 *                                   | list_prompts | get_prompt | health
 *   switchyard.svc.mcp.v1.registry.list
 */
export const MCP_SERVICE_NAME = 'mcp-connectors';
export const MCP_SERVICE_VERSION = '1.0.0';
export const MCP_SUBJECT_PREFIX = `${SERVICE_SUBJECT_PREFIX}.mcp.v1`;

export const mcpEndpoints = [
  'call_tool',
  'list_tools',
  'list_resources',
  'read_resource',
  'list_prompts',
  'get_prompt',
  'health',
] as const;
export type McpEndpoint = (typeof mcpEndpoints)[number];

/** Subject of one server's endpoint (`prefix` only to run an isolated set, e.g. in tests). */
export const mcpSubject = (server: string, endpoint: McpEndpoint, prefix = MCP_SUBJECT_PREFIX): string =>
  `${prefix}.${subjectToken(server)}.${endpoint}`;
/**
 * Where a cancel of a keyed tool call is published: every connector instance listens (no queue
 * group), and the one running the call under that key stops it.
 */
/** `switchyard.svc.mcp.v1.<server>.call_tool`: what a workflow step's MCP call is sent to. */
export const mcpCallToolSubject = (server: string, prefix = MCP_SUBJECT_PREFIX): string =>
  mcpSubject(server, 'call_tool', prefix);
export const mcpCancelCallSubject = (server: string, prefix = MCP_SUBJECT_PREFIX): string =>
  `${prefix}.${subjectToken(server)}.cancel_call`;
export const cancelCallRequestSchema = z.object({
  idempotency_key: z.string().min(1).max(200),
  reason: z.string().max(500).default('canceled'),
});
/** Subject of the registry listing (all servers with health, breaker, tools). */
export const mcpRegistryListSubject = (prefix = MCP_SUBJECT_PREFIX): string => `${prefix}.registry.list`;
export const MCP_REGISTRY_LIST_SUBJECT = mcpRegistryListSubject();

// ---- requests --------------------------------------------------------------------------

/** What an actor (`apikey:<id>`, `system:<part>`) named in a call request may look like. */
export const ACTOR_PATTERN = /^[A-Za-z0-9_.:@-]{1,200}$/;

export const callToolRequestSchema = z.object({
  tool: z.string().min(1),
  arguments: z.record(z.string(), z.unknown()).default({}),
  /** Same key for the same tool within 10 min (per connector instance) -> the first result; the tool runs once. */
  idempotency_key: z.string().min(1).max(200).optional(),
  /** Per-attempt bound, capped by the server's configured call timeout. */
  timeout_ms: z.number().int().positive().optional(),
  /** How long the call may wait for a slot before it is refused `rate_limited`; default `timeout_ms`. */
  queue_wait_ms: z.number().int().positive().max(600_000).optional(),
  /** Where to publish `queued` / `started` notices (callProgressSchema) when the call has to wait for a slot. */
  progress_subject: progressSubjectSchema.optional(),
  /** Who asked (`apikey:<id>`, `system:<part>`): the call's events carry it as their actor. */
  actor: z.string().regex(ACTOR_PATTERN).optional(),
  /**
   * For whom a system actor asks (the engine: whoever started the workflow): whose turn the call
   * takes while it waits for a slot at a busy server.
   */
  on_behalf_of: z.string().regex(ACTOR_PATTERN).optional(),
  /**
   * Arguments the call's events record as `[redacted]` (the server still gets them): values the
   * caller keeps from other operators, such as an A2A push URL, which can be its own credential.
   */
  private_arguments: z.array(z.string().min(1).max(200)).max(16).optional(),
});
export type CallToolRequestBody = z.infer<typeof callToolRequestSchema>;

export const listRequestSchema = z.object({ refresh: z.boolean().optional() }).optional();
export const readResourceRequestSchema = z.object({ uri: z.string().min(1) });
export const getPromptRequestSchema = z.object({
  name: z.string().min(1),
  arguments: z.record(z.string(), z.string()).default({}),
});
export const healthRequestSchema = z.object({ probe: z.boolean().optional() }).optional();

// ---- replies (loose: MCP results may carry fields newer than this contract) ------------

export const callToolReplySchema = z.looseObject({
  content: z.array(z.looseObject({ type: z.string() })).default([]),
  isError: z.boolean().optional(),
  structuredContent: z.record(z.string(), z.unknown()).optional(),
});
export const toolInfoSchema = z.looseObject({
  name: z.string(),
  title: z.string().optional(),
  description: z.string().optional(),
  inputSchema: z.looseObject({}),
  outputSchema: z.looseObject({}).optional(),
  annotations: z.looseObject({}).optional(),
});
/**
 * How many items of a listing reply are left out: past the server's max_tools / max_prompts /
 * max_resources, or past what fits in one NATS reply (absent from older connectors and when none).
 */
const listLeftOutSchema = z.number().int().min(0).optional();
export const listToolsReplySchema = z.object({
  server: z.string(),
  tools: z.array(toolInfoSchema),
  left_out: listLeftOutSchema,
});
export const listResourcesReplySchema = z.object({
  server: z.string(),
  resources: z.array(z.looseObject({ uri: z.string(), name: z.string() })),
  left_out: listLeftOutSchema,
});
export const readResourceReplySchema = z.looseObject({ contents: z.array(z.looseObject({ uri: z.string() })) });
export const listPromptsReplySchema = z.object({
  server: z.string(),
  prompts: z.array(z.looseObject({ name: z.string() })),
  left_out: listLeftOutSchema,
});
export const getPromptReplySchema = z.looseObject({ messages: z.array(z.looseObject({ role: z.string() })) });

export const serverHealthSchema = z.object({
  server: z.string(),
  role: mcpRoleSchema,
  transport: z.enum(['stdio', 'http']),
  enabled: z.boolean(),
  state: mcpHealthSchema,
  breaker: mcpBreakerStateSchema,
  last_error: z.string().optional(),
  response_ms: z.number().optional(),
  connected_since: z.string().optional(),
  pid: z.number().optional(),
  reconnect_attempt: z.number().int(),
  tools: z.array(z.string()),
  /** How many tools the server serves (at most its max_tools); `tools` may name fewer (`tools_truncated`). */
  tools_count: z.number().int().min(0).optional(),
  /** `tools` names only the first tools, so that the reply fits in a NATS message: list_tools has them all. */
  tools_truncated: z.boolean().optional(),
  /**
   * Items the server lists past its max_tools / max_prompts / max_resources, left out of every
   * listing (prompts and resources as of their last listing); absent when nothing is left out.
   */
  left_out: z
    .object({
      tools: z.number().int().min(0).optional(),
      prompts: z.number().int().min(0).optional(),
      resources: z.number().int().min(0).optional(),
    })
    .optional(),
  /** The bulkhead's queue: calls running and waiting, recent waits for a slot (absent from older connectors). */
  queue: z
    .object({
      max_concurrent: z.number().int(),
      max_queue: z.number().int(),
      in_flight: z.number().int(),
      depth: z.number().int(),
      wait_ms: z.object({ count: z.number().int(), p50: z.number(), p99: z.number(), max: z.number() }),
      queued_total: z.number().int(),
      rejected_total: z.number().int(),
    })
    .optional(),
});
export type ServerHealth = z.infer<typeof serverHealthSchema>;

export const registryListReplySchema = z.object({ servers: z.array(serverHealthSchema) });
export type RegistryListReply = z.infer<typeof registryListReplySchema>;

import { z } from 'zod';
import { mcpRoleSchema } from '@switchyard/contracts';

const ms = z.number().int().positive();
/** Items of one kind a server's listing keeps (see max_tools). */
const listedItems = z.number().int().min(1).max(100_000).default(1_000);

// Every object here is strict: a key the schema does not know (a misspelt `enabeld`) is refused,
// naming it, rather than dropped with the operator's intent.

/** A server we spawn and speak to over its stdin/stdout. */
export const stdioTransportSchema = z.strictObject({
  kind: z.literal('stdio'),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  /** Extra environment for the child (added to a minimal safe default env, see the SDK's getDefaultEnvironment). */
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().min(1).optional(),
  /** Paths the server may write in the stdio sandbox (everything else it sees read-only). */
  writable: z.array(z.string().min(1)).default([]),
  /**
   * Environment variables that must be non-empty in `env` for the server to be usable.
   * A missing one makes the server `unconfigured`: never started, calls answer `unavailable`.
   */
  required_env: z.array(z.string().min(1)).default([]),
});

/** A server reached over MCP Streamable HTTP. */
export const httpTransportSchema = z.strictObject({
  kind: z.literal('http'),
  url: z.string().url(),
});

export const transportSchema = z.discriminatedUnion('kind', [stdioTransportSchema, httpTransportSchema]);
export type McpTransportConfig = z.infer<typeof transportSchema>;

export const timeoutsSchema = z.strictObject({
  /** Bound on spawn/HTTP connect plus the MCP initialize handshake. */
  connect_ms: ms.default(10_000),
  /** Bound on one attempt of one call (tool call, list, read, ping). */
  call_ms: ms.default(30_000),
});

export const retrySchema = z.strictObject({
  /** Total attempts including the first; 1 disables retries. */
  max_attempts: z.number().int().min(1).max(10).default(3),
  initial_delay_ms: ms.default(100),
  max_delay_ms: ms.default(2_000),
});

export const breakerSchema = z.strictObject({
  /** Consecutive transient failures that open the circuit. */
  consecutive_failures: z.number().int().min(1).default(5),
  /** How long the circuit stays open before one probe is let through (half-open). */
  half_open_after_ms: ms.default(5_000),
});

export const bulkheadSchema = z.strictObject({
  max_concurrent: z.number().int().min(1).default(8),
  /**
   * Calls that wait for a slot (taking turns by caller, see FairGate) once max_concurrent run; only past this many is a call
   * refused (rate_limited, with retry_after_ms). Large enough that a burst waits instead of failing.
   */
  max_queue: z.number().int().min(0).default(2_048),
});

export const reconnectSchema = z.strictObject({
  initial_delay_ms: ms.default(250),
  max_delay_ms: ms.default(10_000),
});

export const healthSchema = z.strictObject({
  /** Period of the protocol `ping` while connected; 0 turns the probe off. */
  ping_interval_ms: z.number().int().min(0).default(15_000),
  /** A ping slower than this makes the server `degraded`. */
  degraded_after_ms: ms.default(2_000),
});

export const payloadLogSchema = z.strictObject({
  /** Longest JSON rendering of arguments / results kept in events; longer ones are truncated. */
  max_chars: z.number().int().min(0).default(2_048),
});

export const mcpServerConfigSchema = z.strictObject({
  /** Subject token and stable id of the server. `registry` is reserved for the registry endpoint. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]*$/, 'lowercase letters, digits, _ and - only')
    .refine((n) => n !== 'registry', 'the name "registry" is reserved')
    // `/mcp` names a server's tools `<server>__<tool>`: a server name with `__` in it or a `_` at
    // its end would let one server's tool take the name of another server's (`gh` + `ent__query`
    // against `gh__ent` + `query`).
    .refine((n) => !n.includes('__') && !n.endsWith('_'), 'no "__" in the name and no "_" at its end'),
  role: mcpRoleSchema,
  transport: transportSchema,
  /** Bearer token for HTTP servers (default MCP_AUTH_TOKEN). Never logged nor listed. */
  auth_token: z.string().min(1).optional(),
  // Each block may be partial or absent: the defaults fill the rest.
  timeouts: timeoutsSchema.prefault({}),
  retry: retrySchema.prefault({}),
  breaker: breakerSchema.prefault({}),
  bulkhead: bulkheadSchema.prefault({}),
  reconnect: reconnectSchema.prefault({}),
  health: healthSchema.prefault({}),
  payload_log: payloadLogSchema.prefault({}),
  /**
   * Most bytes of one answer the server may send (a POST's whole answer, a line of its event
   * stream, a stdio message): past it the call fails `result_too_large` instead of the process
   * buffering whatever a server sends. Results over NATS's payload limit are refused anyway.
   */
  max_response_bytes: z
    .number()
    .int()
    .min(64 * 1024)
    .default(16 * 1024 * 1024),
  /**
   * Most tools, prompts and resources of the server that are served (its listings, its health,
   * /mcp): the first ones in the server's order; the rest are left out, logged once with their
   * count, and counted in the server's health (`left_out`). A listing of 100,000 tools (5 MB, under
   * max_response_bytes) made every server's registry reply too large for NATS.
   */
  max_tools: listedItems,
  max_prompts: listedItems,
  max_resources: listedItems,
  enabled: z.boolean().default(true),
});

/** One server's configuration, defaults applied. */
export type McpServerConfig = z.infer<typeof mcpServerConfigSchema>;
/** What a config file or a caller may give: every block optional. */
export type McpServerConfigInput = z.input<typeof mcpServerConfigSchema>;

/** The file format of MCP_SERVERS_FILE: a list of servers, or `{ servers: [...] }`. */
export const registryFileSchema = z.union([z.array(z.unknown()), z.strictObject({ servers: z.array(z.unknown()) })]);

/** Validate one server config (throws a ZodError). */
export const parseServerConfig = (input: unknown): McpServerConfig => mcpServerConfigSchema.parse(input);

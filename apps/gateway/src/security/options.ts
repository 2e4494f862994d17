import { z } from 'zod';
import { DEFAULT_CONNECTION_CAPS, parseConfig, type ConnectionCaps } from '@switchyard/platform';

/** A rate limit: at most `points` requests per `durationSec` seconds. */
export interface Limit {
  readonly points: number;
  readonly durationSec: number;
}

/** `createGateway(deps, { auth })`. */
export interface AuthOptions {
  /**
   * Enforce API keys and roles. Default false in the library, so embedding tests and
   * tools keep working without keys; the launcher turns it on (AUTH_ENABLED, default true).
   */
  readonly enabled: boolean;
  /** SWITCHYARD_ADMIN_KEY: an admin key (format `sy_<16 hex>_<secret>`) to make sure exists at start. */
  readonly adminKey?: string | undefined;
  /** How long a checked key is remembered per process (revocations elsewhere apply within it). Default 5 000 ms. */
  readonly keyCacheTtlMs?: number;
  /**
   * Where a generated first admin key goes (once). Default: a banner on stdout, never the log.
   * Tests pass their own to capture it.
   */
  readonly printAdminKey?: (key: string) => void;
}

/** `createGateway(deps, { rateLimit })`; `false` turns it off. */
export interface RateLimitOptions {
  /** Every request from one client address. Default 3 000 per 60 s. */
  readonly perIp?: Limit;
  /** Every request made with one API key. Default 1 200 per 60 s. */
  readonly perKey?: Limit;
  /** Requests with a wrong or revoked key from one address and key id (guessing). Default 30 per 60 s. */
  readonly authFailuresPerIp?: Limit;
  /**
   * Where the counters live. `postgres` (default): `gateway.rate_limits`, shared by every gateway
   * on the database, with the in-memory limiter answering while the table does not; `memory`: this process only.
   */
  readonly store?: 'postgres' | 'memory';
  /** How long a consume may wait for the store before the in-memory limiter answers. Default 500 ms. */
  readonly storeTimeoutMs?: number;
}

export interface ResolvedSecurityOptions {
  readonly auth: {
    readonly enabled: boolean;
    readonly adminKey?: string;
    readonly keyCacheTtlMs: number;
    readonly printAdminKey?: (key: string) => void;
  };
  readonly rateLimit: {
    readonly enabled: boolean;
    readonly perIp: Limit;
    readonly perKey: Limit;
    readonly authFailuresPerIp: Limit;
    readonly store: 'postgres' | 'memory';
    readonly storeTimeoutMs: number;
  };
  /** 0: no timeout. */
  readonly requestTimeoutMs: number;
  /** Live event streams (`/api/v1/events/stream`) open at once: per caller and in all. */
  readonly eventStreams: { readonly perCaller: number; readonly total: number };
  /** Calls over `/mcp` and `/a2a` answered on the request that made them (see heldCallsQuota): per caller and in all. */
  readonly heldCalls: { readonly perCaller: number; readonly total: number };
  /** Request bodies of LARGE_BODY_BYTES or more being received and handled at once: per caller and in all. */
  readonly largeBodies: { readonly perCaller: number; readonly total: number };
  /** How long a client may take to send a request, and to take an answer's bytes (see ConnectionTimeouts). */
  readonly connections: ConnectionTimeouts;
  /** Reads of whole stored payloads (see PayloadReads): at once, and waiting. */
  readonly payloadReads: { readonly concurrency: number; readonly queue: number };
}

/**
 * What a client's connection may hold: a request not received whole within `receiveTimeoutMs`
 * is answered 408 and closed (a body sent a byte a minute held its connection for good); an
 * answer of which no byte leaves the process for `sendStallMs` is cut (a client that never
 * reads held the answer in the gateway's memory for good).
 */
export interface ConnectionTimeouts extends ConnectionCaps {
  readonly receiveTimeoutMs: number;
  readonly sendStallMs: number;
}

export const DEFAULT_CONNECTION_TIMEOUTS: ConnectionTimeouts = {
  receiveTimeoutMs: 60_000,
  sendStallMs: 30_000,
  ...DEFAULT_CONNECTION_CAPS,
};

export interface SecurityOptionsInput {
  readonly auth?: AuthOptions;
  readonly rateLimit?: false | RateLimitOptions;
  readonly requestTimeoutMs?: number;
  /** Largest accepted JSON body (bytes, or a string such as '1mb'); larger: 413. Default '1mb'. */
  readonly bodyLimit?: string | number;
  /**
   * Live event streams open at once, per caller (an API key; without auth, a client address) and
   * in all; one more is 429 (the caller's share) or 503 (all). Default 20 and 500.
   */
  readonly eventStreams?: { readonly perCaller?: number; readonly total?: number };
  /** Calls answered on their own request over `/mcp` or `/a2a` in flight at once, per caller and in all. Default 32 and 512 each. */
  readonly heldCalls?: { readonly perCaller?: number; readonly total?: number };
  /** Large request bodies in flight at once, per caller and in all (see DEFAULT_LARGE_BODIES). */
  readonly largeBodies?: { readonly perCaller?: number; readonly total?: number };
  readonly connections?: Partial<ConnectionTimeouts>;
  /** Reads of whole stored payloads at once and waiting (see PayloadReads). Default 2 and 32. */
  readonly payloadReads?: { readonly concurrency?: number; readonly queue?: number };
}

export const DEFAULT_LIMITS = {
  perIp: { points: 3_000, durationSec: 60 },
  perKey: { points: 1_200, durationSec: 60 },
  authFailuresPerIp: { points: 30, durationSec: 60 },
} as const;

export function resolveSecurityOptions(o: SecurityOptionsInput): ResolvedSecurityOptions {
  const rl = o.rateLimit;
  return {
    auth: {
      enabled: o.auth?.enabled ?? false,
      ...(o.auth?.adminKey ? { adminKey: o.auth.adminKey } : {}),
      keyCacheTtlMs: o.auth?.keyCacheTtlMs ?? 5_000,
      ...(o.auth?.printAdminKey ? { printAdminKey: o.auth.printAdminKey } : {}),
    },
    rateLimit: {
      // Off unless asked for, like auth: a library default must not throttle embedding tests.
      enabled: rl !== undefined && rl !== false,
      perIp: (rl && rl.perIp) || DEFAULT_LIMITS.perIp,
      perKey: (rl && rl.perKey) || DEFAULT_LIMITS.perKey,
      authFailuresPerIp: (rl && rl.authFailuresPerIp) || DEFAULT_LIMITS.authFailuresPerIp,
      store: (rl && rl.store) || 'postgres',
      storeTimeoutMs: (rl && rl.storeTimeoutMs) || 500,
    },
    requestTimeoutMs: o.requestTimeoutMs ?? 30_000,
    eventStreams: {
      perCaller: o.eventStreams?.perCaller ?? DEFAULT_EVENT_STREAMS.perCaller,
      total: o.eventStreams?.total ?? DEFAULT_EVENT_STREAMS.total,
    },
    heldCalls: {
      perCaller: o.heldCalls?.perCaller ?? DEFAULT_HELD_CALLS.perCaller,
      total: o.heldCalls?.total ?? DEFAULT_HELD_CALLS.total,
    },
    largeBodies: {
      perCaller: o.largeBodies?.perCaller ?? DEFAULT_LARGE_BODIES.perCaller,
      total: o.largeBodies?.total ?? DEFAULT_LARGE_BODIES.total,
    },
    connections: { ...DEFAULT_CONNECTION_TIMEOUTS, ...o.connections },
    payloadReads: {
      concurrency: o.payloadReads?.concurrency ?? DEFAULT_PAYLOAD_READS.concurrency,
      queue: o.payloadReads?.queue ?? DEFAULT_PAYLOAD_READS.queue,
    },
  };
}

export const DEFAULT_PAYLOAD_READS = { concurrency: 2, queue: 32 } as const;

export const DEFAULT_EVENT_STREAMS = { perCaller: 20, total: 500 } as const;

/**
 * A tool call over `/mcp` or a blocking A2A `message/send` keeps its HTTP request open until the
 * work ends (a workflow tool may wait 30 minutes): 2,047 of them from one key held every
 * connection the gateway takes, `/livez` included. A share per key, and a total well under the
 * connection cap (GATEWAY_MAX_CONNECTIONS, 2,048) for each of the two endpoints.
 */
export const DEFAULT_HELD_CALLS = { perCaller: 32, total: 512 } as const;
/**
 * Bodies of 64 KiB or more (up to the 1 MiB limit) received and handled at once: each costs the
 * heap 15-20 times its size while it is parsed, checked and stored, and 24 callers' 1 MB
 * delegations at once ran a launcher with a 256 MB heap out of memory, nothing refused first.
 */
export const DEFAULT_LARGE_BODIES = { perCaller: 8, total: 48 } as const;

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const positive = z.coerce.number().int().positive();

/** The environment variables of the gateway's security settings (parsed by `securityOptionsFromEnv`). */
export const securityEnvSchema = z.object({
  AUTH_ENABLED: bool.default(true),
  SWITCHYARD_ADMIN_KEY: z.string().min(1).optional(),
  API_KEY_CACHE_TTL_MS: z.coerce.number().int().min(0).default(5_000),
  RATE_LIMIT_ENABLED: bool.default(true),
  RATE_LIMIT_PER_IP: positive.default(DEFAULT_LIMITS.perIp.points),
  RATE_LIMIT_PER_KEY: positive.default(DEFAULT_LIMITS.perKey.points),
  RATE_LIMIT_AUTH_FAILURES_PER_IP: positive.default(DEFAULT_LIMITS.authFailuresPerIp.points),
  RATE_LIMIT_WINDOW_SEC: positive.default(60),
  /** `postgres`: counters shared by every gateway on the database; `memory`: per process. */
  RATE_LIMIT_STORE: z.enum(['postgres', 'memory']).default('postgres'),
  RATE_LIMIT_STORE_TIMEOUT_MS: z.coerce.number().int().min(10).max(10_000).default(500),
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
  /** Largest JSON body in bytes (413 above it). */
  GATEWAY_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1_024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  /** Live event streams one caller may hold open at once (429 above it). */
  GATEWAY_EVENT_STREAMS_PER_CALLER: z.coerce.number().int().min(1).max(10_000).default(DEFAULT_EVENT_STREAMS.perCaller),
  /** Live event streams open at once in this gateway (503 above it). */
  GATEWAY_EVENT_STREAMS_MAX: z.coerce.number().int().min(1).max(100_000).default(DEFAULT_EVENT_STREAMS.total),
  /** Calls over `/mcp` (or A2A requests) one caller may have waiting on their answer at once (429 above it). */
  GATEWAY_HELD_CALLS_PER_CALLER: z.coerce.number().int().min(1).max(10_000).default(DEFAULT_HELD_CALLS.perCaller),
  /** Such calls at once in this gateway, each endpoint (503 above it). */
  GATEWAY_HELD_CALLS_MAX: z.coerce.number().int().min(1).max(100_000).default(DEFAULT_HELD_CALLS.total),
  GATEWAY_LARGE_BODIES_PER_CALLER: z.coerce.number().int().min(1).max(10_000).default(DEFAULT_LARGE_BODIES.perCaller),
  GATEWAY_LARGE_BODIES_MAX: z.coerce.number().int().min(1).max(100_000).default(DEFAULT_LARGE_BODIES.total),
  /** A request not received whole within this long: 408, connection closed. */
  GATEWAY_RECEIVE_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(3_600_000)
    .default(DEFAULT_CONNECTION_TIMEOUTS.receiveTimeoutMs),
  /** An answer of which no byte leaves for this long is cut. */
  GATEWAY_SEND_STALL_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(3_600_000)
    .default(DEFAULT_CONNECTION_TIMEOUTS.sendStallMs),
  /** Connections the gateway keeps open at once (a new one past it is closed). */
  GATEWAY_MAX_CONNECTIONS: z.coerce.number().int().min(16).max(1_000_000).default(DEFAULT_CONNECTION_CAPS.max),
  GATEWAY_PAYLOAD_READS: z.coerce.number().int().min(1).max(64).default(DEFAULT_PAYLOAD_READS.concurrency),
  GATEWAY_PAYLOAD_READS_QUEUE: z.coerce.number().int().min(0).max(10_000).default(DEFAULT_PAYLOAD_READS.queue),
  /** ... from one client address (behind a reverse proxy, every client has the proxy's). */
  GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(DEFAULT_CONNECTION_CAPS.perAddress),
});

/**
 * Gateway options for a launcher, from the environment, with production defaults:
 * auth ON (AUTH_ENABLED=true), rate limits ON, 30 s request timeout.
 * `createGateway(deps, { ...securityOptionsFromEnv(), modules })`. Throws ConfigError naming a bad variable.
 */
export function securityOptionsFromEnv(
  env: Record<string, string | undefined> = process.env,
): Required<SecurityOptionsInput> {
  const c = parseConfig(env, securityEnvSchema);
  const w = c.RATE_LIMIT_WINDOW_SEC;
  return {
    auth: { enabled: c.AUTH_ENABLED, adminKey: c.SWITCHYARD_ADMIN_KEY, keyCacheTtlMs: c.API_KEY_CACHE_TTL_MS },
    rateLimit: c.RATE_LIMIT_ENABLED
      ? {
          perIp: { points: c.RATE_LIMIT_PER_IP, durationSec: w },
          perKey: { points: c.RATE_LIMIT_PER_KEY, durationSec: w },
          authFailuresPerIp: { points: c.RATE_LIMIT_AUTH_FAILURES_PER_IP, durationSec: w },
          store: c.RATE_LIMIT_STORE,
          storeTimeoutMs: c.RATE_LIMIT_STORE_TIMEOUT_MS,
        }
      : false,
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    bodyLimit: c.GATEWAY_BODY_LIMIT_BYTES,
    eventStreams: { perCaller: c.GATEWAY_EVENT_STREAMS_PER_CALLER, total: c.GATEWAY_EVENT_STREAMS_MAX },
    heldCalls: { perCaller: c.GATEWAY_HELD_CALLS_PER_CALLER, total: c.GATEWAY_HELD_CALLS_MAX },
    largeBodies: { perCaller: c.GATEWAY_LARGE_BODIES_PER_CALLER, total: c.GATEWAY_LARGE_BODIES_MAX },
    connections: {
      receiveTimeoutMs: c.GATEWAY_RECEIVE_TIMEOUT_MS,
      sendStallMs: c.GATEWAY_SEND_STALL_MS,
      max: c.GATEWAY_MAX_CONNECTIONS,
      perAddress: c.GATEWAY_MAX_CONNECTIONS_PER_ADDRESS,
    },
    payloadReads: { concurrency: c.GATEWAY_PAYLOAD_READS, queue: c.GATEWAY_PAYLOAD_READS_QUEUE },
  };
}

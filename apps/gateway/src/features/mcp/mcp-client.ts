import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  callToolReplySchema,
  isSubjectToken,
  listToolsReplySchema,
  MCP_REGISTRY_LIST_SUBJECT,
  mcpSubject,
  registryListReplySchema,
  serverHealthSchema,
  type RegistryListReply,
} from '@switchyard/contracts';
import { request } from '@switchyard/messaging';
import { AppError, errorCodes, type ErrorCode } from '@switchyard/platform';
import { currentActor } from '../../http/context.js';
import { NATS_CONNECTION } from '../../tokens.js';

export type ServerHealth = RegistryListReply['servers'][number];

export interface ToolCallOutcome {
  readonly server: string;
  readonly tool: string;
  readonly duration_ms: number;
  readonly result: unknown;
  readonly content: { type: string; [k: string]: unknown }[];
}

/** How long a registry listing or a server's entry is trusted: it only guards names, health comes fresh from /health. */
const REGISTRY_TTL_MS = 2_000;
/** Servers' entries kept for REGISTRY_TTL_MS (a name not in the registry is never cached). */
const MAX_CACHED_SERVERS = 256;

/** Names the specification gives servers where ours differ ("Postgres Server" is our database server). */
const SERVER_ALIASES: Readonly<Record<string, string>> = { postgres: 'database' };

/**
 * The gateway's side of the MCP connector service: every call goes over NATS
 * request-reply to whichever connector instance answers (queue group), never in-process.
 */
@Injectable()
export class McpGatewayClient {
  private registry?: { at: number; reply: RegistryListReply };
  private readonly entries = new Map<string, { at: number; entry: ServerHealth }>();

  constructor(@Inject(NATS_CONNECTION) private readonly nats: NatsConnection) {}

  async servers(correlationId: string, fresh = false): Promise<ServerHealth[]> {
    if (!fresh && this.registry && Date.now() - this.registry.at < REGISTRY_TTL_MS) return this.registry.reply.servers;
    const reply = await request(
      this.nats,
      MCP_REGISTRY_LIST_SUBJECT,
      {},
      { schema: registryListReplySchema, timeoutMs: 5_000, correlationId },
    );
    this.registry = { at: Date.now(), reply };
    return reply.servers;
  }

  /**
   * The server by name (or the specification's name for it), or 404 listing the valid names.
   * Read from that server's own health endpoint (no probe), not from the registry listing, so a
   * call to one server never depends on what the others list; only an unknown name reads the
   * listing, for the valid names.
   */
  async server(name: string, correlationId: string): Promise<ServerHealth> {
    const wanted = SERVER_ALIASES[name] ?? name;
    const cached = this.entries.get(wanted);
    if (cached && Date.now() - cached.at < REGISTRY_TTL_MS) return cached.entry;
    let entry: ServerHealth | undefined;
    if (isSubjectToken(wanted)) {
      try {
        entry = await request(
          this.nats,
          mcpSubject(wanted, 'health'),
          {},
          { schema: serverHealthSchema, timeoutMs: 5_000, correlationId },
        );
      } catch (err) {
        // No connector serves that subject: an unknown name, or no connectors at all (the listing tells which).
        if (!(err instanceof AppError && err.code === 'unavailable')) throw err;
        const servers = await this.servers(correlationId).catch(() => {
          throw err;
        });
        if (servers.some((s) => s.server === wanted)) throw err;
      }
    }
    if (entry?.server !== wanted) {
      const servers = await this.servers(correlationId);
      throw new AppError('not_found', `no MCP server named "${name}"`, {
        server: name,
        valid: servers.map((s) => s.server),
      });
    }
    if (this.entries.size >= MAX_CACHED_SERVERS) this.entries.clear();
    this.entries.set(wanted, { at: Date.now(), entry });
    return entry;
  }

  async health(name: string, correlationId: string): Promise<ServerHealth> {
    const { server } = await this.server(name, correlationId);
    return request(
      this.nats,
      mcpSubject(server, 'health'),
      { probe: true },
      { schema: serverHealthSchema, timeoutMs: 10_000, correlationId },
    );
  }

  /** Every tool of a server with its description and JSON schemas, as the server lists them. */
  async toolInfos(name: string, correlationId: string) {
    await this.server(name, correlationId);
    const reply = await request(
      this.nats,
      mcpSubject(name, 'list_tools'),
      {},
      { schema: listToolsReplySchema, timeoutMs: 10_000, correlationId },
    );
    return reply.tools;
  }

  async tools(name: string, correlationId: string): Promise<string[]> {
    await this.server(name, correlationId);
    const reply = await request(
      this.nats,
      mcpSubject(name, 'list_tools'),
      {},
      { schema: listToolsReplySchema, timeoutMs: 10_000, correlationId },
    );
    return reply.tools.map((t) => t.name);
  }

  /**
   * Call a tool. A tool that ran and failed (MCP `isError`) becomes an AppError: with the
   * code the server put in `structuredContent.error.code` when it is one of ours (so a
   * refused SQL write is 403, a bad argument 400), else `tool_error` (422) with its text.
   */
  async call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    correlationId: string,
    timeoutMs?: number,
    /**
     * `actor`: who the call is for when not the request's caller (work the gateway does later for
     * a key); `privateArguments`: recorded as `[redacted]` in the call's events.
     */
    opts: { actor?: string; privateArguments?: readonly string[]; idempotencyKey?: string } = {},
  ): Promise<ToolCallOutcome> {
    await this.server(server, correlationId);
    const started = performance.now();
    const reply = await request(
      this.nats,
      mcpSubject(server, 'call_tool'),
      // The caller's key goes with the call, so the connector's McpTool* events name it.
      {
        tool,
        arguments: args,
        actor: opts.actor ?? currentActor() ?? 'anonymous',
        ...(opts.privateArguments?.length ? { private_arguments: [...opts.privateArguments] } : {}),
        ...(timeoutMs ? { timeout_ms: timeoutMs } : {}),
        ...(opts.idempotencyKey !== undefined ? { idempotency_key: opts.idempotencyKey } : {}),
      },
      // The connector's own timeout governs; this one only catches a lost reply.
      { schema: callToolReplySchema, timeoutMs: (timeoutMs ?? 60_000) + 5_000, correlationId },
    );
    const duration_ms = Math.round((performance.now() - started) * 100) / 100;
    if (reply.isError) throw toolFailure(server, tool, reply);
    return { server, tool, duration_ms, result: reply.structuredContent ?? reply.content, content: reply.content };
  }
}

/**
 * How the MCP SDK's servers answer arguments their tool's input schema refuses (JSON-RPC
 * -32602, invalid params, put in an error result): the caller's input, so 400, not 422 (a
 * `max_rows` past the server's configured ceiling, a window of `0h`).
 */
const INVALID_PARAMS = /^MCP error -32602:/;

function toolFailure(
  server: string,
  tool: string,
  reply: { content: { type: string; text?: unknown }[]; structuredContent?: Record<string, unknown> },
): AppError {
  const text = reply.content
    .map((c) => (c.type === 'text' && typeof c.text === 'string' ? c.text : ''))
    .filter(Boolean)
    .join('\n')
    .slice(0, 2_000);
  const structured = reply.structuredContent?.['error'] as
    { code?: unknown; message?: unknown; details?: unknown } | undefined;
  const code =
    typeof structured?.code === 'string' && structured.code in errorCodes
      ? (structured.code as ErrorCode)
      : INVALID_PARAMS.test(text)
        ? 'validation'
        : 'tool_error';
  const message = typeof structured?.message === 'string' ? structured.message : text || `${server}/${tool} failed`;
  const details =
    typeof structured?.details === 'object' && structured.details
      ? (structured.details as Record<string, unknown>)
      : {};
  return new AppError(
    code,
    message,
    { server, tool, ...details, ...(code === 'tool_error' ? { content: reply.content } : {}) },
    false,
  );
}

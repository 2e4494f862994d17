import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { AppError, isAppError, newId, type Logger } from '@switchyard/platform';
import { ACTOR_PATTERN } from '@switchyard/contracts';
import { z } from 'zod';

/** What a tool handler receives from the SDK besides its arguments. */
export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** The context every tool body runs with: a logger carrying the correlation id, and the abort signal. */
export interface ToolContext {
  readonly correlationId: string;
  /** The person the call is for (`_meta.actor`, set by the connectors), when given and well formed. */
  readonly actor?: string;
  /**
   * The call's own idempotency key (`_meta["io.switchyard/idempotency_key"]`, set by the
   * connectors: a workflow step's key, a keyed request's), the same on every repeat of the call.
   */
  readonly callKey?: string;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

/**
 * A successful tool result: the data as JSON text (what LLM clients read) and as
 * `structuredContent` (what programs read without parsing text).
 */
export function toolOk(data: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(data) }], structuredContent: data };
}

/**
 * A failed tool call as an MCP tool error (`isError: true`), never a protocol error:
 * the model sees the message and can correct itself. The machine-readable code is in
 * the text prefix `[code]` and in `structuredContent.error.code`.
 */
export function toolError(err: AppError): CallToolResult {
  const error = { code: err.code, message: err.message, retryable: err.retryable, details: err.details };
  return {
    isError: true,
    content: [{ type: 'text', text: `[${err.code}] ${err.message}` }],
    structuredContent: { error },
  };
}

/** Correlation id of a call: `_meta.correlationId`, else the `x-correlation-id` HTTP header, else a new one. */
export function correlationIdOf(extra: ToolExtra | undefined): string {
  const fromMeta = extra?._meta?.['correlationId'];
  if (typeof fromMeta === 'string' && fromMeta.length > 0) return fromMeta;
  const header = extra?.requestInfo?.headers?.['x-correlation-id'];
  const value = Array.isArray(header) ? header[0] : header;
  return value && value.length > 0 ? value : newId();
}

/**
 * The person a call is for: `_meta.actor`, which the connectors set from the API key (or the
 * workflow starter) the call came in with. Only the holders of the server's token reach it, and
 * they are the system's own processes, so it is taken as given; one that is not a plain actor id
 * is ignored.
 */
export function actorOf(extra: ToolExtra | undefined): string | undefined {
  const actor = extra?._meta?.['actor'];
  return typeof actor === 'string' && ACTOR_PATTERN.test(actor) ? actor : undefined;
}

/** Where the connectors put a call's idempotency key in `_meta` (namespaced, as MCP asks of `_meta` keys). */
export const IDEMPOTENCY_KEY_META = 'io.switchyard/idempotency_key';

/**
 * What a call key may be: what the connectors take (at most 200 characters) and what may travel
 * in an HTTP header (a delivery's `Idempotency-Key`): printable ASCII.
 */
const callKeySchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x20-\x7e]+$/);

/**
 * The call's idempotency key, `_meta["io.switchyard/idempotency_key"]`: like `_meta.actor`, only
 * the system's own processes reach the server and it is taken as given; one that is not a plain
 * key is ignored (the call is then unkeyed, as before there was one).
 */
export function callKeyOf(extra: ToolExtra | undefined): string | undefined {
  const parsed = callKeySchema.safeParse(extra?._meta?.[IDEMPOTENCY_KEY_META]);
  return parsed.success ? parsed.data : undefined;
}

/**
 * Wrap a tool body: it gets a correlated logger, its errors become tool errors with a code,
 * and nothing it throws reaches the transport (the server must never crash on a tool).
 * `mapError` turns library errors (pg, network) into AppErrors with the right code.
 */
export function tool<A>(
  name: string,
  logger: Logger,
  body: (args: A, ctx: ToolContext) => Promise<Record<string, unknown>>,
  mapError: (e: unknown) => AppError | undefined = () => undefined,
): (args: A, extra: ToolExtra) => Promise<CallToolResult> {
  return async (args, extra) => {
    const correlationId = correlationIdOf(extra);
    const actor = actorOf(extra);
    const callKey = callKeyOf(extra);
    const log = logger.child({ correlationId, tool: name });
    const started = Date.now();
    try {
      const data = await body(args, {
        correlationId,
        ...(actor ? { actor } : {}),
        ...(callKey ? { callKey } : {}),
        logger: log,
        signal: extra?.signal ?? new AbortController().signal,
      });
      log.debug({ ms: Date.now() - started }, 'tool call succeeded');
      return toolOk(data);
    } catch (e) {
      const err = asAppError(e, mapError);
      const level = err.code === 'internal' ? 'error' : 'info';
      log[level]({ code: err.code, err: e, ms: Date.now() - started }, 'tool call failed');
      return toolError(err);
    }
  };
}

/** Normalise anything thrown into an AppError, keeping AppErrors as they are. */
export function asAppError(e: unknown, mapError: (e: unknown) => AppError | undefined = () => undefined): AppError {
  if (isAppError(e)) return e;
  const mapped = mapError(e);
  if (mapped) return mapped;
  const message = e instanceof Error ? e.message : String(e);
  return new AppError('internal', message);
}

import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { AppError, isAppError, jsonNestsDeeperThan, newId, type Logger } from '@switchyard/platform';
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
 * Most levels of nesting a tool result may have (a database row's jsonb, a fetched document):
 * past it the call fails `result_too_large` (details `reason: result_too_deep`). Why: each side
 * that handles a result (this server's answer, the connectors, the event store, redaction, the
 * expressions that read it) copies and walks it, and JSON.stringify itself throws past about
 * 5,000 levels, which failed the call as `internal` with V8's "Maximum call stack size exceeded".
 * Above what real data nests (a 1,000-deep jsonb value in a query answer is a result of 1,003
 * levels, and is known to pass through the whole system), and well below where JSON.stringify breaks.
 */
export const RESULT_MAX_DEPTH = 1_024;

const tooDeep = () =>
  new AppError(
    'result_too_large',
    `the result nests deeper than ${RESULT_MAX_DEPTH} levels of arrays and objects: return less deeply nested data (e.g. select the part of a jsonb value you need)`,
    { reason: 'result_too_deep', max_depth: RESULT_MAX_DEPTH },
    false,
  );

/**
 * A successful tool result: the data as JSON text (what LLM clients read) and as
 * `structuredContent` (what programs read without parsing text). Throws AppError
 * `result_too_large` (`reason: result_too_deep`) for data nested past RESULT_MAX_DEPTH.
 */
export function toolOk(data: Record<string, unknown>): CallToolResult {
  let text: string;
  try {
    text = JSON.stringify(data);
  } catch (e) {
    // The serialiser's own recursion ran out of stack: nested far past the limit.
    if (e instanceof RangeError && /call stack/i.test(e.message)) throw tooDeep();
    throw e;
  }
  if (jsonNestsDeeperThan(text, RESULT_MAX_DEPTH)) throw tooDeep();
  return { content: [{ type: 'text', text }], structuredContent: data };
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

import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { CallToolResultSchema, ErrorCode, McpError, type Result } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

/** What the SDK hands a request handler beside the request (its signal, auth info, notification sender). */
export type RequestExtra = Parameters<Parameters<Server['setRequestHandler']>[1]>[1];

/** A request schema of the SDK's: an object whose `method` is a literal. */
type RequestSchema = z.ZodObject<{ method: z.ZodLiteral<string> } & z.ZodRawShape>;

/** Most issues one -32602 message names (the rest are the same mistake, further down). */
const ISSUES_NAMED = 3;

/** The first issues of a failed parse, one line: `params.name: Invalid input: expected string, received undefined`. */
export function issuesLine(error: z.ZodError): string {
  const named = error.issues.slice(0, ISSUES_NAMED).map((issue) => {
    const where = issue.path.map(String).join('.') || '(root)';
    return issue.code === 'unrecognized_keys'
      ? `${where}: unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.join(', ')}`
      : `${where}: ${issue.message}`;
  });
  const more = error.issues.length - named.length;
  return named.join('; ') + (more > 0 ? ` (and ${more} more)` : '');
}

/**
 * Registers `handler` for the request `schema` names, with the params checked here first: a
 * request the schema refuses is answered JSON-RPC -32602 Invalid params naming the field. Why:
 * the SDK parses a request before its handler and a failure there throws zod's error as it is,
 * which the protocol answers -32603 Internal error (tools/call: -32602) with the whole issue list,
 * pretty-printed JSON, as the message; a client's mistake is not the server's.
 *
 * Registered on the protocol layer, past the SDK server's own tools/call wrapper (which would
 * parse first and answer with that dump): its check of the result is done here instead.
 */
export function onRequest<S extends RequestSchema>(
  server: Server,
  schema: S,
  handler: (request: z.output<S>, extra: RequestExtra) => Promise<Result>,
): void {
  const method = schema.shape.method.value;
  const anyParams = z.looseObject({ method: z.literal(method) });
  (Protocol.prototype.setRequestHandler as Server['setRequestHandler']).call(
    server,
    anyParams,
    async (request: unknown, extra: RequestExtra) => {
      const parsed = schema.safeParse(request);
      if (!parsed.success)
        throw new McpError(ErrorCode.InvalidParams, `invalid ${method} params: ${issuesLine(parsed.error)}`);
      const result = await handler(parsed.data, extra);
      if (method !== 'tools/call') return result;
      // What the SDK checks of a tools/call answer: a malformed one is the gateway's own fault.
      const checked = CallToolResultSchema.safeParse(result);
      if (!checked.success)
        throw new McpError(ErrorCode.InternalError, `invalid tools/call result: ${issuesLine(checked.error)}`);
      return checked.data;
    },
  );
}

/** The `_meta` names a tools/call's idempotency key may come under (the second in the SDK's namespaced style). */
const KEY_FIELDS = ['idempotency_key', 'switchyard/idempotency-key'] as const;

/**
 * A tools/call's idempotency key from its `_meta`, held to the REST `Idempotency-Key` header's
 * rules (IDEMPOTENCY_KEY_PATTERN, at most IDEMPOTENCY_KEY_MAX characters); undefined when none
 * is given. A key that breaks them is refused -32602, never dropped: a call run unkeyed would run
 * again on the retry the caller meant it to protect.
 */
export function idempotencyKeyOf(
  meta: Record<string, unknown> | undefined,
  rules: { readonly pattern: RegExp; readonly max: number },
): string | undefined {
  let key: string | undefined;
  for (const field of KEY_FIELDS) {
    if (!meta || !Object.hasOwn(meta, field)) continue;
    const value = meta[field];
    const refuse = (why: string) =>
      new McpError(ErrorCode.InvalidParams, `invalid tools/call params: params._meta.${field} ${why}`, { field });
    if (typeof value !== 'string') throw refuse(`must be a string, not ${value === null ? 'null' : typeof value}`);
    if (value.length > rules.max) throw refuse(`is longer than ${rules.max} characters`);
    if (!rules.pattern.test(value)) throw refuse(`must match ${rules.pattern.source}`);
    if (key !== undefined && key !== value) throw refuse(`differs from the other idempotency key given`);
    key = value;
  }
  return key;
}

import { createHash } from 'node:crypto';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { canonicalJson } from '@switchyard/platform';
import { currentRequestContext } from '../http/context.js';

/** The request header that makes a command idempotent (as Stripe's). */
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Set on a replayed answer. */
export const REPLAYED_HEADER = 'idempotent-replayed';

/** Methods whose routes honour the header: every command. */
export const COMMAND_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export const IDEMPOTENCY_KEY_MAX = 255;
/**
 * The key goes into logs, the database and (for delegations) the dispatcher's key: printable
 * ASCII without spaces, quotes or backslashes, 1-255 characters (a UUID, a ULID, `order-42:retry`).
 */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:~+/=@-]{1,255}$/;

/** The header as OpenAPI documents it on every command route. */
export const idempotencyKeyHeader = z
  .string()
  .min(1)
  .max(IDEMPOTENCY_KEY_MAX)
  .regex(IDEMPOTENCY_KEY_PATTERN)
  .optional()
  .describe(
    'Makes the command safe to retry: a repeat with the same key, route and body returns the first answer ' +
      '(`Idempotent-Replayed: true`) and changes nothing; another body or route with that key: 422; while the first is still running: 409. Kept 24 h. ' +
      "Each API key has its own keys: another API key's request with the same key is a request of its own.",
  );

/** What a request's key is: none, a usable one, or one to refuse (400). */
export type ParsedKey =
  | { readonly kind: 'none' }
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'bad'; readonly reason: string };

export function parseIdempotencyKey(headers: IncomingHttpHeaders): ParsedKey {
  const raw = headers[IDEMPOTENCY_HEADER];
  if (raw === undefined) return { kind: 'none' };
  if (Array.isArray(raw)) return { kind: 'bad', reason: 'give one Idempotency-Key header, not several' };
  if (raw.length > IDEMPOTENCY_KEY_MAX)
    return { kind: 'bad', reason: `Idempotency-Key is longer than ${IDEMPOTENCY_KEY_MAX} characters` };
  if (!IDEMPOTENCY_KEY_PATTERN.test(raw))
    return { kind: 'bad', reason: `Idempotency-Key must match ${IDEMPOTENCY_KEY_PATTERN.source}` };
  return { kind: 'key', key: raw };
}

// The same body written in another key order is the same request.
export { canonicalJson };

export function canonicalUrl(url: string): string {
  const i = url.indexOf('?');
  if (i === -1) return url;
  const params = new URLSearchParams(url.slice(i + 1));
  params.sort();
  const query = params.toString();
  return query ? `${url.slice(0, i)}?${query}` : url.slice(0, i);
}

/** What a key is bound to: method, path with query, and body. */
export function requestFingerprint(method: string, url: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method.toUpperCase()} ${canonicalUrl(url)}\n${canonicalJson(body)}`)
    .digest('hex');
}

/** Longest idempotency key the back ends take (the task contracts). */
const BACKEND_KEY_MAX = 200;

/** The API key of the request being handled (none without auth). */
const requestKeyId = (): string | undefined => currentRequestContext()?.apiKey?.id;

/**
 * The key as the back ends see it (the dispatcher derives the task id from it, the workflow
 * start the execution id): prefixed, so an HTTP caller cannot pick a key the workflow engine
 * uses for its own steps, and scoped to the API key that sent it (`apiKeyId`, by default the
 * request's), so that once the key's record has expired (24 h) or a 5xx freed it, another API
 * key's request with the same value starts its own work instead of being answered with the
 * first caller's task or execution, its own body ignored. One past the back ends' length (a
 * header key may be 255 characters) goes as a hash under its own prefix (`http#`), so it neither
 * fails their schema nor meets a shorter key.
 */
export const backendKey = (key: string, apiKeyId: string | undefined = requestKeyId()): string => {
  const prefixed = apiKeyId === undefined ? `http:${key}` : `http:${apiKeyId}:${key}`;
  return prefixed.length <= BACKEND_KEY_MAX ? prefixed : `http#${createHash('sha256').update(prefixed).digest('hex')}`;
};

/**
 * An `/mcp` call's `_meta.idempotency_key` as the gateway passes it on: scoped to the API key that
 * sent it, with a separator no Idempotency-Key header may hold (`|`), so that neither another
 * key's `/mcp` calls nor a REST caller (whose keys are bound to their API key by the key table,
 * which `/mcp` does not use) can name the same task or execution.
 */
export const mcpScopedKey = (apiKeyId: string | null, key: string): string => `mcp|${apiKeyId ?? 'anonymous'}|${key}`;

/**
 * The key a tool call goes to the connectors with (at most 200 characters): the caller's scoped
 * key bound to the call (server, tool, arguments), so a repeat of the call is answered from the
 * connectors' record of it (and the automation server keys its sends by it), and the same key
 * with another call is another call, never answered with the first one's result.
 */
export function toolCallKey(scopedKey: string, server: string, tool: string, args: unknown): string {
  return `call#${createHash('sha256')
    .update(`${scopedKey}\n${server}\n${tool}\n${canonicalJson(args)}`)
    .digest('hex')}`;
}

/** The execution id a workflow start with this key gets (a UUID-shaped hash): a repeat names the same execution. */
export function executionIdForKey(key: string, apiKeyId: string | undefined = requestKeyId()): string {
  const h = createHash('sha256')
    .update(`workflow-start:${backendKey(key, apiKeyId)}`)
    .digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A stable id for what a keyed command creates (a signal, a batch): a repeat names the same one. */
export function commandIdForKey(kind: string, key: string, apiKeyId: string | undefined = requestKeyId()): string {
  return `${kind}-${createHash('sha256')
    .update(`${kind}:${backendKey(key, apiKeyId)}`)
    .digest('hex')
    .slice(0, 32)}`;
}

/** Handler parameter: the request's valid Idempotency-Key, or undefined (the interceptor refused a bad one already). */
export const IdempotencyKey = createParamDecorator((_data: unknown, ctx: ExecutionContext): string | undefined => {
  const parsed = parseIdempotencyKey(ctx.switchToHttp().getRequest<{ headers: IncomingHttpHeaders }>().headers);
  return parsed.kind === 'key' ? parsed.key : undefined;
});

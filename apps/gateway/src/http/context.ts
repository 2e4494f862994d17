import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { AnyRequest, EdgeRequest } from './edge.js';

export const CORRELATION_HEADER = 'x-correlation-id';

/** What every request carries from the first middleware to the last log line. */
export interface RequestContext {
  readonly correlationId: string;
  /** The API key the request presented, once authentication resolved it. */
  readonly apiKey?: RequestKey;
  /** The Node response (see `answered`). */
  readonly response?: ClosingResponse;
}

/** The caller's API key as the request context carries it (never the secret). */
export interface RequestKey {
  readonly id: string;
  readonly role: string;
  readonly name: string;
}

/** A request after the gateway's first hook ran. */
export type GatewayRequest = EdgeRequest & { correlationId: string; apiKey?: RequestKey };

const storage = new AsyncLocalStorage<RequestContext>();

/** The correlation id of the request being handled, or undefined outside a request. */
export const currentCorrelationId = (): string | undefined => storage.getStore()?.correlationId;

/** The request context of the request being handled, or undefined outside a request. */
export const currentRequestContext = (): RequestContext | undefined => storage.getStore();

/** The actor of a request: `apikey:<id>`, or `anonymous` when it presented no valid key. */
export function actorOf(req: AnyRequest): string {
  const key = (req as Partial<GatewayRequest>).apiKey;
  return key ? `apikey:${key.id}` : 'anonymous';
}

/** Who holds a long-lived connection, for the shares per caller: its key, or without one its address. */
export function connectionHolderOf(req: AnyRequest, ip: string | undefined): string {
  const actor = actorOf(req);
  return actor === 'anonymous' ? `address:${ip}` : actor;
}

/**
 * Who is asking, for the `actor` of command and event metadata: `apikey:<id>` or
 * `anonymous` (no key, or auth disabled); undefined outside a request.
 */
export function currentActor(): string | undefined {
  const ctx = storage.getStore();
  if (!ctx) return undefined;
  return ctx.apiKey ? `apikey:${ctx.apiKey.id}` : 'anonymous';
}

const contextOf = (req: AnyRequest, response?: ClosingResponse): RequestContext => {
  const apiKey = (req as Partial<GatewayRequest>).apiKey;
  const ctx: { correlationId: string; apiKey?: RequestKey; response?: ClosingResponse } = {
    correlationId: correlationIdOf(req),
  };
  if (apiKey) ctx.apiKey = apiKey;
  if (response) ctx.response = response;
  return ctx;
};

/** The Node response of a request, as far as `answered` needs it. */
export interface ClosingResponse {
  readonly writableFinished?: boolean;
  readonly destroyed?: boolean;
  once(event: 'close', listener: () => void): unknown;
  removeListener?(event: 'close', listener: () => void): unknown;
}

/** A watch on the client of the request being handled: `stop()` ends it. */
export interface ClientGone {
  stop(): void;
}

/**
 * Whether the client of the request being handled hung up before its answer: `now()`, or
 * `watch(onGone)` until stopped (nothing outside a request).
 */
export const clientGone = {
  now(): boolean {
    const res = storage.getStore()?.response;
    return !!res && !res.writableFinished && !!res.destroyed;
  },
  watch(onGone: () => void): ClientGone | undefined {
    const res = storage.getStore()?.response;
    if (!res) return undefined;
    const listener = () => {
      if (!res.writableFinished) onGone();
    };
    res.once('close', listener);
    return { stop: () => res.removeListener?.('close', listener) };
  },
};

/**
 * Resolves once the answer of the request being handled went out whole or its connection went
 * away ('close', whichever first); at once outside a request.
 */
export function answered(): Promise<void> {
  const res = storage.getStore()?.response;
  if (!res || res.writableFinished || res.destroyed) return Promise.resolve();
  return new Promise((r) => res.once('close', () => r()));
}

// Ids from clients end up in logs and event metadata: accept only a short, plain token.
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The correlation id of a request (set by the first hook, see correlate). */
export function correlationIdOf(req: AnyRequest): string {
  return (req as Partial<GatewayRequest>).correlationId ?? 'unknown';
}

// Correlation ids a request did not bring: a random UUID's first 31 characters, shared by a
// block of 2^20 ids, then a 5-hex-digit count. Unique (a fresh random prefix per block) and
// UUID-shaped like newId(), without a call into the system's random source per request.
const ID_BLOCK = 0x100000;
let idPrefix = '';
let idNext = ID_BLOCK;

/** A new correlation id (see above). */
export function newCorrelationId(): string {
  if (idNext >= ID_BLOCK) {
    idPrefix = randomUUID().slice(0, 31);
    idNext = 0;
  }
  return idPrefix + (idNext++).toString(16).padStart(5, '0');
}

/**
 * First step of every request: take `x-correlation-id` from the client (or make one), echo it
 * in the response header, keep it on the request. Returns it.
 */
export function correlate(req: EdgeRequest, res: { setHeader(name: string, value: string): unknown }): string {
  const given = req.headers[CORRELATION_HEADER];
  const candidate = Array.isArray(given) ? given[0] : given;
  const correlationId = candidate && ACCEPTABLE_ID.test(candidate) ? candidate : newCorrelationId();
  (req as GatewayRequest).correlationId = correlationId;
  res.setHeader(CORRELATION_HEADER, correlationId);
  return correlationId;
}

/**
 * Continue inside the request's context (correlation id, API key). Entered again before the
 * handler: the body is read in socket callbacks, outside the scope opened before them.
 */
export function runInRequestContext(req: AnyRequest, next: () => void, res?: ClosingResponse): void {
  storage.run(contextOf(req, res), next);
}

/**
 * Attach the resolved API key to the request and continue. The context that carries it is
 * entered once, just before the handler (the edge's preHandler hook): nothing between needs it.
 */
export function bindRequestKey(req: AnyRequest, key: RequestKey | undefined, next: () => void): void {
  if (key) (req as GatewayRequest).apiKey = key;
  next();
}

/** Handler parameter: `@CorrelationId() correlationId: string`. */
export const CorrelationId = createParamDecorator((_data: unknown, ctx: ExecutionContext): string =>
  correlationIdOf(ctx.switchToHttp().getRequest<EdgeRequest>()),
);

/** Handler parameter: `@Actor() actor: string` (`apikey:<id>` or `anonymous`). */
export const Actor = createParamDecorator((_data: unknown, ctx: ExecutionContext): string =>
  actorOf(ctx.switchToHttp().getRequest<EdgeRequest>()),
);

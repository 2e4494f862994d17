import { AsyncLocalStorage } from 'node:async_hooks';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { newId } from '@switchyard/platform';

export const CORRELATION_HEADER = 'x-correlation-id';

/** What every request carries from the first middleware to the last log line. */
export interface RequestContext {
  readonly correlationId: string;
  /** The API key the request presented, once authentication resolved it. */
  readonly apiKey?: RequestKey;
}

/** The caller's API key as the request context carries it (never the secret). */
export interface RequestKey {
  readonly id: string;
  readonly role: string;
  readonly name: string;
}

/** An express request after the gateway's first middleware ran. */
export type GatewayRequest = Request & { correlationId: string; apiKey?: RequestKey };

const storage = new AsyncLocalStorage<RequestContext>();

/** The correlation id of the request being handled, or undefined outside a request. */
export const currentCorrelationId = (): string | undefined => storage.getStore()?.correlationId;

/** The request context of the request being handled, or undefined outside a request. */
export const currentRequestContext = (): RequestContext | undefined => storage.getStore();

/** The actor of an express request: `apikey:<id>`, or `anonymous` when it presented no valid key. */
export function actorOf(req: Request): string {
  const key = (req as Partial<GatewayRequest>).apiKey;
  return key ? `apikey:${key.id}` : 'anonymous';
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

const contextOf = (req: Request): RequestContext => {
  const apiKey = (req as Partial<GatewayRequest>).apiKey;
  return { correlationId: correlationIdOf(req), ...(apiKey ? { apiKey } : {}) };
};

// Ids from clients end up in logs and event metadata: accept only a short, plain token.
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The correlation id of an express request (set by correlationMiddleware). */
export function correlationIdOf(req: Request): string {
  return (req as Partial<GatewayRequest>).correlationId ?? 'unknown';
}

/**
 * First middleware: take `x-correlation-id` from the client (or make one), echo it in
 * the response header, keep it on the request and in AsyncLocalStorage.
 */
export function correlationMiddleware(req: Request, res: Response, next: NextFunction): void {
  const given = req.headers[CORRELATION_HEADER];
  const candidate = Array.isArray(given) ? given[0] : given;
  const correlationId = candidate && ACCEPTABLE_ID.test(candidate) ? candidate : newId();
  (req as GatewayRequest).correlationId = correlationId;
  res.setHeader(CORRELATION_HEADER, correlationId);
  storage.run({ correlationId }, next);
}

/**
 * Re-enter the request's context. The body parser resumes `next` from a socket
 * callback, which runs outside the AsyncLocalStorage scope opened before it.
 */
export function rebindContextMiddleware(req: Request, _res: Response, next: NextFunction): void {
  storage.run(contextOf(req), next);
}

/** Attach the resolved API key to the request and continue inside a context that carries it. */
export function bindRequestKey(req: Request, key: RequestKey | undefined, next: () => void): void {
  if (key) (req as GatewayRequest).apiKey = key;
  storage.run(contextOf(req), next);
}

/** Handler parameter: `@CorrelationId() correlationId: string`. */
export const CorrelationId = createParamDecorator((_data: unknown, ctx: ExecutionContext): string =>
  correlationIdOf(ctx.switchToHttp().getRequest<Request>()),
);

/** Handler parameter: `@Actor() actor: string` (`apikey:<id>` or `anonymous`). */
export const Actor = createParamDecorator((_data: unknown, ctx: ExecutionContext): string =>
  actorOf(ctx.switchToHttp().getRequest<Request>()),
);

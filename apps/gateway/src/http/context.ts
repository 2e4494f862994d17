import { AsyncLocalStorage } from 'node:async_hooks';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { newId } from '@switchyard/platform';

export const CORRELATION_HEADER = 'x-correlation-id';

/** What every request carries from the first middleware to the last log line. */
export interface RequestContext {
  readonly correlationId: string;
}

/** An express request after the gateway's first middleware ran. */
export type GatewayRequest = Request & { correlationId: string };

const storage = new AsyncLocalStorage<RequestContext>();

/** The correlation id of the request being handled, or undefined outside a request. */
export const currentCorrelationId = (): string | undefined => storage.getStore()?.correlationId;

/** The request context of the request being handled, or undefined outside a request. */
export const currentRequestContext = (): RequestContext | undefined => storage.getStore();

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
  storage.run({ correlationId: correlationIdOf(req) }, next);
}

/** Handler parameter: `@CorrelationId() correlationId: string`. */
export const CorrelationId = createParamDecorator((_data: unknown, ctx: ExecutionContext): string =>
  correlationIdOf(ctx.switchToHttp().getRequest<Request>()),
);

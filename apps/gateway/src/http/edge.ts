import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * The gateway's HTTP edge runs on Fastify. Handlers see a Fastify request and reply with the
 * few Express-style members the gateway's code uses (decorated once by `decorateEdge`), so a
 * controller only names these types instead of Express's:
 * - request: `path` (no query string), `get(header)`, plus Fastify's `originalUrl`, `ip`,
 *   `protocol`, `query`, `body`, `headers`, `method`, `socket`;
 * - reply: `setHeader(name, value)` (on the Node response, so it also reaches answers that
 *   bypass Fastify: SSE, the MCP transport), `headersSent`, plus Fastify's `status()`,
 *   `type()`, `header()`, `getHeader()`, `send()`, `statusCode`.
 * A handler that must write the Node response itself (a stream, an SDK transport) takes it
 * with `hijack(reply)`.
 */
export type EdgeRequest = FastifyRequest & {
  /** The path without the query string, as Express's `req.path`. */
  readonly path: string;
  /** A request header, case-insensitively (Express's `req.get`). */
  get(name: string): string | undefined;
};

export type EdgeReply = FastifyReply & {
  /** Set a header on the Node response (kept when the reply is hijacked). */
  setHeader(name: string, value: string | number | readonly string[]): EdgeReply;
  /** Whether the status line and headers went out. */
  readonly headersSent: boolean;
  /** An unexpected error behind a 5xx answer, for the request log line. */
  err?: Error;
};

/** A Node request as the gateway's islands (Express routers, SDK transports) receive it. */
export type RawEdgeRequest = IncomingMessage & { body?: unknown; originalUrl?: string };

/** Any response the gateway writes to: a Fastify reply or a Node response (after hijack). */
export type AnyResponse = EdgeReply | ServerResponse;
/** Any request: a Fastify request or the Node request under it. */
export type AnyRequest = EdgeRequest | RawEdgeRequest;

export const isReply = (res: AnyResponse): res is EdgeReply => typeof (res as EdgeReply).hijack === 'function';

const pathOfUrl = (url: string): string => {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
};

/** The path (no query) of any request, as the client sent it. */
export const pathOf = (req: AnyRequest): string =>
  pathOfUrl((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/');

/** Fields the edge's hooks put on the request that islands (raw Node handlers) also need. */
const CARRIED = ['correlationId', 'apiKey', 'body'] as const;
const CARRIED_SYMBOLS = [Symbol.for('switchyard.gateway.authFailed'), Symbol.for('switchyard.gateway.inputError')];

/**
 * Take over the Node response: Fastify sends nothing more for this request, and the caller
 * writes `raw` itself. The Node request gets what the edge learned (correlation id, API key,
 * parsed body, auth and input verdicts) so raw handlers see the same request.
 */
export function hijack(req: EdgeRequest, reply: EdgeReply): { req: RawEdgeRequest; res: ServerResponse } {
  reply.hijack();
  return { req: rawRequest(req), res: reply.raw };
}

/** The Node request under a Fastify request, carrying what the edge learned (see hijack). */
export function rawRequest(req: EdgeRequest): RawEdgeRequest {
  const raw = req.raw as RawEdgeRequest & Record<string | symbol, unknown>;
  const from = req as unknown as Record<string | symbol, unknown>;
  for (const k of CARRIED) if (from[k] !== undefined) raw[k] = from[k];
  for (const s of CARRIED_SYMBOLS) if (from[s] !== undefined) raw[s] = from[s];
  raw.originalUrl ??= req.originalUrl;
  return raw;
}

/** Add the members of EdgeRequest / EdgeReply to a Fastify instance (once, before routes). */
export function decorateEdge(app: FastifyInstance): void {
  app.decorateRequest('path', {
    getter(this: FastifyRequest) {
      return pathOfUrl(this.url);
    },
  });
  app.decorateRequest('get', function (this: FastifyRequest, name: string) {
    const v = this.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  });
  app.decorateRequest('correlationId', 'unknown');
  app.decorateRequest('apiKey', undefined);
  app.decorateReply(
    'setHeader',
    function (this: FastifyReply, name: string, value: string | number | readonly string[]) {
      this.raw.setHeader(name, value);
      return this;
    },
  );
  app.decorateReply('headersSent', {
    getter(this: FastifyReply) {
      return this.raw.headersSent;
    },
  });
  app.decorateReply('err', undefined);
}

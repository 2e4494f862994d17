import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { AppError } from '@switchyard/platform';
import { runInRequestContext } from './context.js';
import { hijack, type EdgeReply, type EdgeRequest } from './edge.js';
import { sendProblem } from './problem-filter.js';

/** A Node-style handler with a fallthrough (an Express app or router, serve-static). */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * Serve paths with a Node-style handler (the console's and the docs' static files, the A2A
 * SDK's Express handlers) on the Fastify edge. The request has passed every edge hook (Host,
 * key, limits, body) like any other; the handler gets the Node request, carrying the
 * correlation id, API key, parsed body and deferred verdicts, and the Node response. What it
 * passes on (an error, or nothing: no match) is answered as problem+json (404).
 * `urls` are Fastify route patterns (`/ui`, `/ui/*`).
 */
export function mountNodeHandler(app: FastifyInstance, urls: readonly string[], handler: NodeHandler): void {
  const serve = (req: EdgeRequest, reply: EdgeReply) => {
    const { req: raw, res } = hijack(req, reply);
    runInRequestContext(req, () =>
      handler(raw, res, (err?: unknown) => {
        if (res.headersSent) return void (res.writableEnded || res.end());
        sendProblem(err ?? new AppError('not_found', `no route for ${req.method} ${req.path}`), raw, res);
      }),
    );
  };
  for (const url of urls)
    app.route({
      method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      url,
      exposeHeadRoute: false,
      handler: serve as never,
    });
}

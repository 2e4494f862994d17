import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { AppError, isAppError, newId, type Logger } from '@switchyard/platform';
import type { AgentRuntime } from './runtime.js';
import { httpExecuteBody } from './contract.js';

export interface StartAgentHttpOptions {
  /** The runtime of an instance started with startAgent, so HTTP and NATS share one concurrency limit. */
  readonly runtime: AgentRuntime;
  readonly port: number;
  readonly host?: string;
  /** Bearer token required on POST /execute when set (AI_AGENT_AUTH_TOKEN). */
  readonly token?: string;
  readonly logger: Logger;
  /** Largest accepted body in bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
}

export interface AgentHttpHandle {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const sendError = (res: http.ServerResponse, err: AppError) =>
  send(res, err.status, { error: { code: err.code, message: err.message, details: err.details } });

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!.trim());
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AppError('payload_too_large', `body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new AppError('validation', 'body is not JSON');
  }
}

/**
 * The seed's HTTP agent contract over the same handlers as the NATS service:
 * - `GET /health` -> 200 `{ status, agent, instance, in_flight, max_concurrency, task_types }`
 * - `POST /execute` `{ task_type, context, task_id?, deadline? }` -> 200 `{ task_id, agent, status: 'completed', result, duration_ms }`;
 *   401 without the bearer token when one is configured; errors as `{ error: { code, message, details } }`
 *   with the code's status (400 bad context naming the field, 503 busy, 504 deadline).
 */
export async function startAgentHttp(opts: StartAgentHttpOptions): Promise<AgentHttpHandle> {
  const { runtime } = opts;
  const log = opts.logger.child({ component: 'agent-http', agent: runtime.agent, instance: runtime.instanceId });
  const limit = opts.maxBodyBytes ?? 1_048_576;
  const server = http.createServer((req, res) => {
    void (async () => {
      const correlationId = (req.headers['x-correlation-id'] as string | undefined) ?? newId();
      res.setHeader('x-correlation-id', correlationId);
      try {
        const url = new URL(req.url ?? '/', 'http://agent');
        if (req.method === 'GET' && url.pathname === '/health') {
          const load = runtime.load();
          return send(res, 200, {
            status: load.in_flight >= load.max_concurrency ? 'busy' : 'healthy',
            agent: runtime.agent,
            instance: runtime.instanceId,
            in_flight: load.in_flight,
            max_concurrency: load.max_concurrency,
            task_types: runtime.taskTypes,
          });
        }
        if (req.method === 'POST' && url.pathname === '/execute') {
          if (opts.token && !tokenMatches(req.headers.authorization, opts.token)) {
            res.setHeader('www-authenticate', 'Bearer');
            return sendError(res, new AppError('unauthorized', 'missing or wrong bearer token'));
          }
          const parsed = httpExecuteBody.safeParse(await readJson(req, limit));
          if (!parsed.success) {
            const fields = parsed.error.issues.map((i) => i.path.join('.') || '(root)');
            throw new AppError('validation', `invalid request: ${fields.join(', ')}`, { issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
          }
          const body = parsed.data;
          const out = await runtime.run({
            task_id: body.task_id ?? newId(),
            task_type: body.task_type,
            context: body.context,
            attempt: 1,
            ...(body.deadline ? { deadline: body.deadline } : {}),
            correlationId,
          });
          return send(res, 200, { task_id: out.task_id, agent: out.agent, status: 'completed', result: out.result, duration_ms: out.duration_ms });
        }
        throw new AppError('not_found', `no route ${req.method} ${url.pathname}`);
      } catch (err) {
        const e = isAppError(err) ? err : new AppError('internal', 'internal error');
        if (e.code === 'internal') log.error({ err, correlationId }, 'agent http request failed');
        sendError(res, e);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  // A listening server's later errors (accept failing on EMFILE, ...) must not end the process.
  server.on('error', (err) => log.error({ err }, 'agent http server error'));
  const port = (server.address() as AddressInfo).port;
  const url = `http://${opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1'}:${port}`;
  log.info({ url }, 'agent HTTP contract listening');
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

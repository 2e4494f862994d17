import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import {
  AppError,
  checkHostAndOrigin,
  edgePolicyFromEnv,
  isAppError,
  mergeEdgePolicies,
  boundInternalListener,
  receiveTimeoutOptions,
  newId,
  type EdgePolicy,
  type Logger,
} from '@switchyard/platform';
import type { AgentRuntime } from './runtime.js';
import { z } from 'zod';
import { httpExecuteBody } from '@switchyard/contracts';

export interface StartAgentHttpOptions {
  /** The runtime of an instance started with startAgent, so HTTP and NATS share one concurrency limit. */
  readonly runtime: AgentRuntime;
  readonly port: number;
  /** Default 127.0.0.1 (BIND_HOST widens it). */
  readonly host?: string;
  /** Bearer token required on POST /execute when set (AI_AGENT_AUTH_TOKEN). */
  readonly token?: string;
  /** Name of the token holder in the audit log line (`token:<name>`). Default `agents`. */
  readonly tokenName?: string;
  /** Extra accepted Host / Origin values besides loopback with the listening port; default ALLOWED_HOSTS / ALLOWED_ORIGINS. */
  readonly edge?: Partial<EdgePolicy>;
  readonly logger: Logger;
  /** Largest accepted body in bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** Told about every accepted /execute once it ended (the launcher appends it as an `AgentHttpExecuteHandled` event). */
  readonly onExecute?: (call: AgentHttpCallAudit) => void;
}

/**
 * One /execute the HTTP contract ran, whoever asked (the dispatcher's own work goes over NATS).
 * Stream `agentaudit-<agent>`, actor `token:agents` in the metadata. The context is not recorded.
 */
export const agentHttpCallAuditSchema = z.object({
  agent: z.string(),
  instance: z.string(),
  task_id: z.string(),
  task_type: z.string(),
  outcome: z.enum(['completed', 'failed']),
  error_code: z.string().optional(),
  actor: z.string(),
  remote: z.string(),
  user_agent: z.string().optional(),
  correlation_id: z.string(),
  duration_ms: z.number().min(0),
  at: z.iso.datetime({ offset: true }),
});
export type AgentHttpCallAudit = z.infer<typeof agentHttpCallAuditSchema>;
export const AGENT_HTTP_AUDIT_EVENT = 'AgentHttpExecuteHandled';
export const agentAuditStreamId = (agent: string): string => `agentaudit-${agent}`;

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
 * - `POST /execute` `{ task_type, context, task_id?, deadline?, remaining_ms? }` -> 200 `{ task_id, agent, status: 'completed', result, duration_ms }`;
 *   401 without the bearer token when one is configured; errors as `{ error: { code, message, details } }`
 *   with the code's status (400 bad context naming the field, 503 busy, 504 deadline).
 */
export async function startAgentHttp(opts: StartAgentHttpOptions): Promise<AgentHttpHandle> {
  const { runtime } = opts;
  const log = opts.logger.child({ component: 'agent-http', agent: runtime.agent, instance: runtime.instanceId });
  const limit = opts.maxBodyBytes ?? 1_048_576;
  const host = opts.host ?? '127.0.0.1';
  const policy = mergeEdgePolicies(edgePolicyFromEnv(process.env, host), opts.edge);
  const actor = opts.token ? `token:${opts.tokenName ?? 'agents'}` : 'anonymous';
  const server = http.createServer(receiveTimeoutOptions(), (req, res) => {
    void (async () => {
      const correlationId = (req.headers['x-correlation-id'] as string | undefined) ?? newId();
      res.setHeader('x-correlation-id', correlationId);
      try {
        // A browser page must not reach the agent by DNS rebinding or from another local origin.
        const verdict = checkHostAndOrigin(req.headers, req.socket.localPort, policy);
        if (!verdict.ok) {
          log.warn(
            { correlationId, remote: req.socket.remoteAddress, reason: verdict.reason },
            'agent request refused: foreign Host or Origin',
          );
          throw new AppError('forbidden', `forbidden: ${verdict.reason}`);
        }
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
            throw new AppError('validation', `invalid request: ${fields.join(', ')}`, {
              issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
            });
          }
          const body = parsed.data;
          // The audit trail of direct calls (the dispatcher's go over NATS and are events already).
          const taskId = body.task_id ?? newId();
          log.info(
            { correlationId, actor, remote: req.socket.remoteAddress, taskType: body.task_type, taskId },
            'agent http execute',
          );
          const started = Date.now();
          const report = (outcome: AgentHttpCallAudit['outcome'], errorCode?: string) =>
            opts.onExecute?.({
              agent: runtime.agent,
              instance: runtime.instanceId,
              task_id: taskId,
              task_type: body.task_type,
              outcome,
              ...(errorCode ? { error_code: errorCode } : {}),
              actor,
              remote: req.socket.remoteAddress ?? 'unknown',
              ...(req.headers['user-agent'] ? { user_agent: String(req.headers['user-agent']).slice(0, 200) } : {}),
              correlation_id: correlationId,
              duration_ms: Date.now() - started,
              at: new Date().toISOString(),
            });
          let out;
          try {
            out = await runtime.run({
              task_id: taskId,
              task_type: body.task_type,
              context: body.context,
              attempt: 1,
              ...(body.deadline ? { deadline: body.deadline } : {}),
              ...(body.remaining_ms !== undefined ? { remaining_ms: body.remaining_ms } : {}),
              correlationId,
            });
          } catch (err) {
            report('failed', isAppError(err) ? err.code : 'internal');
            throw err;
          }
          report('completed');
          return send(res, 200, {
            task_id: out.task_id,
            agent: out.agent,
            status: 'completed',
            result: out.result,
            duration_ms: out.duration_ms,
          });
        }
        throw new AppError('not_found', `no route ${req.method} ${url.pathname}`);
      } catch (err) {
        const e = isAppError(err) ? err : new AppError('internal', 'internal error');
        if (e.code === 'internal') log.error({ err, correlationId }, 'agent http request failed');
        sendError(res, e);
      }
    })();
  });
  boundInternalListener(
    server,
    (why) => log.warn(why, 'agent connection refused: too many open'),
    (lowered) =>
      log.warn(lowered, "internal listeners' connection caps lowered to fit the open-files limit (ulimit -n)"),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => resolve());
  });
  // A listening server's later errors (accept failing on EMFILE, ...) must not end the process.
  server.on('error', (err) => log.error({ err }, 'agent http server error'));
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${port}`;
  log.debug({ url }, 'agent HTTP contract listening');
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

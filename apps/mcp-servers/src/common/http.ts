import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual, createHash } from 'node:crypto';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  checkHostAndOrigin,
  edgePolicyFromEnv,
  mergeEdgePolicies,
  boundInternalListener,
  logAtMostEvery,
  receiveTimeoutOptions,
  newId,
  type EdgePolicy,
  type Logger,
} from '@switchyard/platform';
import { auditCalls, type McpCallAudit } from './audit.js';
import { normaliseProtocolErrors } from './errors.js';

/** Anything that can be connected to a transport: `McpServer` or the low-level `Server`. */
export interface ConnectableServer {
  connect(transport: Transport): Promise<void>;
  close(): Promise<void>;
}

export interface McpHttpServerOptions {
  /** Name reported by /health and in logs. */
  readonly name: string;
  /** Builds a fresh MCP server for one HTTP request (stateless mode, see below). */
  readonly serverFactory: () => ConnectableServer;
  readonly port: number;
  /** Default 127.0.0.1: exposing a tool server on all interfaces must be a decision. */
  readonly host?: string;
  /** When set, POST /mcp requires `Authorization: Bearer <token>` (401 otherwise). runMcpServer always sets one unless MCP_AUTH_DISABLED. */
  readonly token?: string;
  /** Who holds the token, for the audit actor `token:<name>`. Default `mcp` (the shared MCP_AUTH_TOKEN). */
  readonly tokenName?: string;
  /**
   * Extra accepted Host / Origin values besides loopback with the listening port (DNS-rebinding
   * protection; foreign ones get 403). Default: ALLOWED_HOSTS / ALLOWED_ORIGINS of the environment.
   */
  readonly edge?: Partial<EdgePolicy>;
  /** Told about every tools/call and resources/read answered (the audit trail of direct calls). Default: an info log line. */
  readonly onCall?: (call: McpCallAudit) => void;
  readonly logger: Logger;
  /** Extra health information (e.g. a database ping); throwing makes /health answer 503. */
  readonly health?: () => Promise<Record<string, unknown>>;
  /** Largest accepted JSON-RPC body; bigger requests get 413. Default 4 MiB. */
  readonly maxBodyBytes?: number;
  /**
   * While this returns a reason the server cannot serve calls (e.g. a missing credential):
   * POST /mcp answers 503 with a JSON-RPC error carrying it, after the token check.
   */
  readonly unavailable?: () => { readonly message: string; readonly data?: Record<string, unknown> } | undefined;
}

export interface McpHttpServerHandle {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

/** Constant-time bearer check (hash both sides so lengths do not leak either). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!.trim()).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** JSON-RPC shaped HTTP error, so MCP clients show a readable message. */
function rpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
  data?: Record<string, unknown>,
): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message, ...(data ? { data } : {}) }, id: null }, headers);
}

class BodyTooLarge extends Error {}

async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLarge(`body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function lowLevel(s: ConnectableServer): Server | undefined {
  return s instanceof McpServer ? s.server : s instanceof Server ? s : undefined;
}

/**
 * Stateless HTTP has no session and no standalone SSE stream, so a `list_changed` or
 * `resources/updated` notification could never reach a client: do not advertise them.
 * (Our servers never change their lists at run time anyway.)
 */
function advertiseDeliverableOnly(low: Server): void {
  // getCapabilities is private in the SDK's types but a plain method at run time.
  const caps = (low as unknown as { getCapabilities(): Record<string, unknown> }).getCapabilities();
  const fix: Record<string, Record<string, unknown>> = {};
  for (const k of ['tools', 'resources', 'prompts'] as const) {
    const c = caps[k] as Record<string, unknown> | undefined;
    if (c && (c.listChanged || c.subscribe))
      fix[k] = { ...c, listChanged: false, ...(k === 'resources' ? { subscribe: false } : {}) };
  }
  if (Object.keys(fix).length) low.registerCapabilities(fix);
}

/** How often at most a server logs the requests it refused for a missing or wrong token (`refused`: how many since the last line). */
const REFUSED_LOG_INTERVAL_MS = 10_000;

/**
 * Serve an MCP server over Streamable HTTP: `POST /mcp` and `GET /health`.
 *
 * Stateless mode: every POST gets its own server and transport (no `Mcp-Session-Id`).
 * Why: our tools keep no per-session state (state lives in Postgres), so any instance
 * can answer any request, a restart loses nothing, and no session table has to be
 * bounded or expired. The cost is one cheap server construction per request and no
 * server-initiated messages outside a request, which these tools do not need.
 */
export async function startMcpHttpServer(opts: McpHttpServerOptions): Promise<McpHttpServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const limit = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const log = opts.logger.child({ mcpServer: opts.name });
  const policy = mergeEdgePolicies(edgePolicyFromEnv(process.env, host), opts.edge);
  const actor = opts.token ? `token:${opts.tokenName ?? 'mcp'}` : 'anonymous';
  const refusedLog = logAtMostEvery(REFUSED_LOG_INTERVAL_MS);
  const onCall = opts.onCall ?? ((c: McpCallAudit) => log.info({ correlationId: c.correlation_id, ...c }, 'mcp call'));

  const handleMcp = async (req: IncomingMessage, res: ServerResponse, correlationId: string): Promise<void> => {
    if (opts.token && !bearerMatches(req.headers.authorization, opts.token)) {
      // Anyone who reaches the port can send these as fast as they like: one line per interval
      // says it happens and how often, not one line per attempt.
      refusedLog((held) =>
        log.warn(
          { correlationId, remote: req.socket.remoteAddress, refused: held + 1 },
          'mcp request refused: missing or wrong bearer token',
        ),
      );
      rpcError(res, 401, -32001, 'unauthorized: a valid bearer token is required', { 'www-authenticate': 'Bearer' });
      return;
    }
    if (req.method !== 'POST') {
      // Stateless: no standalone SSE stream (GET) and no session to delete (DELETE).
      rpcError(res, 405, -32000, 'method not allowed: this server is stateless, use POST /mcp', { allow: 'POST' });
      return;
    }
    const down = opts.unavailable?.();
    if (down) {
      // Drain the body so the connection can be reused, then say why, in words an MCP client shows.
      req.resume();
      rpcError(res, 503, -32000, `unavailable: ${down.message}`, {}, down.data);
      return;
    }
    let body: unknown;
    try {
      body = await readJsonBody(req, limit);
    } catch (e) {
      if (e instanceof BodyTooLarge) rpcError(res, 413, -32600, e.message);
      else rpcError(res, 400, -32700, 'parse error: body is not valid JSON');
      return;
    }
    const server = opts.serverFactory();
    const low = lowLevel(server);
    if (low) {
      advertiseDeliverableOnly(low);
      normaliseProtocolErrors(low, log);
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    auditCalls(
      body,
      res,
      {
        server: opts.name,
        actor,
        correlationId,
        remote: req.socket.remoteAddress ?? 'unknown',
        userAgent: req.headers['user-agent'],
      },
      onCall,
    );
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const handleHealth = async (res: ServerResponse): Promise<void> => {
    try {
      const extra = opts.health ? await opts.health() : {};
      sendJson(res, 200, { status: 'ok', server: opts.name, ...extra });
    } catch (e) {
      sendJson(res, 503, {
        status: 'unavailable',
        server: opts.name,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  };

  const http: HttpServer = createServer(receiveTimeoutOptions(), (req, res) => {
    const correlationId = (req.headers['x-correlation-id'] as string | undefined) ?? newId();
    // Before anything else, /health included: a browser page must not reach this server by DNS rebinding.
    const verdict = checkHostAndOrigin(req.headers, req.socket.localPort, policy);
    if (!verdict.ok) {
      log.warn(
        { correlationId, remote: req.socket.remoteAddress, reason: verdict.reason },
        'mcp request refused: foreign Host or Origin',
      );
      rpcError(res, 403, -32000, `forbidden: ${verdict.reason}`);
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const work =
      path === '/mcp'
        ? handleMcp(req, res, correlationId)
        : path === '/health' && req.method === 'GET'
          ? handleHealth(res)
          : Promise.resolve(sendJson(res, 404, { error: 'not found' }));
    work.catch((e: unknown) => {
      log.error({ correlationId, err: e }, 'mcp http request failed');
      rpcError(res, 500, -32603, 'internal server error');
    });
  });

  boundInternalListener(
    http,
    (why) => log.warn(why, 'mcp connection refused: too many open'),
    (lowered) =>
      log.warn(lowered, "internal listeners' connection caps lowered to fit the open-files limit (ulimit -n)"),
  );
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  // A listening server's later errors (accept failing on EMFILE, ...) must not end the process.
  http.on('error', (err) => log.error({ err }, 'mcp http server error'));
  const port = (http.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `http://${urlHost}:${port}/mcp`;
  log.info({ url, auth: Boolean(opts.token) }, 'mcp server listening');
  return {
    url,
    port,
    host,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

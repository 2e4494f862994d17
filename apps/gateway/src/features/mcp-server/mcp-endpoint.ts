import { randomUUID } from 'node:crypto';
import { workflowExecutionStream } from '@switchyard/domain';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { NatsConnection } from '@nats-io/transport-node';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { getPromptReplySchema, mcpSubject } from '@switchyard/contracts';
import { request } from '@switchyard/messaging';
import { AppError, errorCodes, isAppError, newId, type Logger } from '@switchyard/platform';
import {
  GATEWAY_CONFIG,
  GATEWAY_OPTIONS,
  LOGGER,
  NATS_CONNECTION,
  type GatewayConfig,
  type ResolvedGatewayOptions,
} from '../../tokens.js';
import { toolRefusal } from '../mcp/writer-policy.js';
import { currentCorrelationId } from '../../http/context.js';
import {
  executionDetailForCaller,
  executionStreamCallsAdminTool,
  maskErrorTexts,
  redactEventPayloads,
  inputSchemaRedacted,
  redactsPayloadsFor,
  seesAdminToolPayloadsFor,
} from '../../events/redaction.js';
import { roleSatisfies, type Role } from '../../security/roles.js';
import { ApiKeyService } from '../../security/api-keys.js';
import { ReadMcpTool } from '../mcp/queries/index.js';
import { GetIntegrationStatus } from '../status/queries/index.js';
import { GetHealthReport } from '../system/queries/index.js';
import { SystemMonitorClient } from '../system/system-client.js';
import { GetExecution, ListExecutions, ReadExecutionStream } from '../workflows/queries/index.js';
import { nextPageAfter } from '../workflows/queries/page-link.js';
import { McpServerCatalog, WAIT_PROPERTY, type CatalogTool } from './catalog.js';
import { MCP_SERVER_OPTIONS, type McpServerOptions } from './options.js';
import type { Caller } from './tool-calls.js';
import { CallGatewayTool } from './commands/index.js';
import { toolAllowed } from './virtual-server.decider.js';
import { ExecutionWatch } from './execution-watch.js';
import { ExecutionFolds, WHOLE_FOLD_BYTES } from '../workflows/execution-folds.js';
import { connectionRefusal, heldCallsQuota, type ConnectionQuota } from '../../http/connection-quota.js';
import { boundUnreadStream } from '../../http/unread-stream-bound.js';
import { IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_KEY_PATTERN, mcpScopedKey } from '../../idempotency/keys.js';
import { VirtualServers } from './virtual-servers.js';
import { idempotencyKeyOf, onRequest } from './request-params.js';

export const SERVER_NAME = 'switchyard';
export const SERVER_VERSION = '0.1.0';
const STATUS_URI = 'switchyard://system/status';
const HEALTH_URI = 'switchyard://system/health-report';
/** An execution, or a page of its history (`?after=<revision>`: the events after that one). */
const EXECUTION_URI = /^switchyard:\/\/executions\/([A-Za-z0-9_.:-]{1,128})(\/history(?:\?after=(\d{1,10}))?)?$/;
/** Most events one page of an execution's history resource holds. */
const HISTORY_PAGE_EVENTS = 1_000;
/** A report a workflow wrote: a file directly in the filesystem sandbox's `reports/` folder (no path, no dot-files). */
const REPORT_URI = /^switchyard:\/\/reports\/([A-Za-z0-9_-][A-Za-z0-9_.-]{0,199})$/;
/** Where the templates write their reports (revenue_analysis: `reports/revenue-analysis-<start>-<execution id>.md`). */
const REPORTS_DIR = 'reports';
const REPORTS_LISTED = 50;
const MAX_SUBSCRIPTIONS_PER_SESSION = 100;
/**
 * The legacy SSE transport writes every answer to the session's one event stream, the Streamable
 * HTTP GET stream every notification. Past this many bytes waiting for the client, a legacy
 * session's messages are refused (429), and a stream whose client takes nothing for SSE_STALL_MS
 * (or that grows by another bound's worth unread) is cut: a client that posts and never reads would
 * otherwise grow the gateway's memory until the process dies (54 MB a minute for one viewer key).
 */
const SSE_MAX_PENDING_BYTES = 2 * 1024 * 1024;
const SSE_STALL_MS = 10_000;
const STREAM_LIMITS = { maxPendingBytes: SSE_MAX_PENDING_BYTES, stallMs: SSE_STALL_MS };

/** The caller as the transport hands it to the handlers (`authInfo`, set from the request's API key). */
export interface McpCaller extends Caller {
  readonly role: Role;
}

/** What the auth middleware puts on the request for the SDK transports (`req.auth` -> `extra.authInfo`). */
export function authInfoOf(caller: McpCaller): AuthInfo {
  return { token: 'api-key', clientId: caller.keyId ?? 'anonymous', scopes: [caller.role], extra: { caller } };
}

const callerOf = (authInfo: AuthInfo | undefined): McpCaller => {
  const c = (authInfo?.extra as { caller?: McpCaller } | undefined)?.caller;
  return c ?? { keyId: null, keyName: null, actor: 'anonymous', role: 'admin' };
};

interface Session {
  readonly id: string;
  readonly kind: 'streamable-http' | 'sse';
  readonly transport: StreamableHTTPServerTransport | SSEServerTransport;
  readonly server: Server;
  readonly virtual: string | null;
  /** The key that opened the session: only it may use the session. */
  readonly keyId: string | null;
  lastSeen: number;
  /**
   * The JSON-RPC ids of the requests whose POST is still open: a request reusing one would take
   * over the SDK's route of the first one's answer (lost, its POST held until the session ends).
   */
  readonly requestsInFlight: Set<string | number>;
  readonly subscriptions: Map<string, () => void>;
  readonly stopCatalog: () => void;
  /** Stops watching the key for a revocation. */
  stopWatch?: () => void;
  /** The legacy transport's event stream (where its answers go). */
  stream?: ServerResponse;
}

/** A request the controller hands over: the raw Node objects, the parsed body, the caller. */
export interface EndpointRequest {
  readonly req: IncomingMessage & { auth?: AuthInfo; body?: unknown; correlationId?: string };
  readonly res: ServerResponse;
  readonly caller: McpCaller;
  readonly virtual: string | null;
}

/**
 * The gateway as an MCP server (`@modelcontextprotocol/sdk`, low-level `Server`):
 * - Streamable HTTP at `/mcp` with sessions (`Mcp-Session-Id`, one SDK server per session,
 *   bound to the API key that opened it, closed after MCP_SERVER_SESSION_IDLE_MS) or, with
 *   MCP_SERVER_STATELESS, one fresh server per request;
 * - the legacy SSE transport (`GET /mcp/sse`, `POST /mcp/messages?sessionId=`);
 * - virtual servers at `/mcp/v/<name>` (the same, with the tool list filtered).
 * Tools come from McpServerCatalog, calls run through McpToolCalls; resources are executions,
 * their history and the system status; prompts are the upstream servers' (namespaced).
 */
@Injectable()
export class McpEndpoint implements OnModuleInit, OnModuleDestroy {
  private readonly sessions = new Map<string, Session>();
  /** POSTs of Streamable HTTP in flight: each holds its connection until its answer (see DEFAULT_HELD_CALLS). */
  private readonly heldCalls: ConnectionQuota;
  private readonly log: Logger;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    @Inject(MCP_SERVER_OPTIONS) readonly options: McpServerOptions,
    @Inject(GATEWAY_OPTIONS) private readonly gatewayOptions: ResolvedGatewayOptions,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) logger: Logger,
    @Inject(NATS_CONNECTION) private readonly nats: NatsConnection,
    @Inject(McpServerCatalog) private readonly catalog: McpServerCatalog,
    @Inject(VirtualServers) private readonly virtuals: VirtualServers,
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Inject(ExecutionWatch) private readonly watch: ExecutionWatch,
    @Inject(ExecutionFolds) private readonly folds: ExecutionFolds,
    @Inject(ApiKeyService) private readonly keys: ApiKeyService,
    @Optional() @Inject(SystemMonitorClient) private readonly monitor?: SystemMonitorClient,
  ) {
    this.log = logger.child({ component: 'mcp-server' });
    this.heldCalls = heldCallsQuota('MCP requests in flight', gatewayOptions.heldCalls);
  }

  get authEnabled(): boolean {
    return this.gatewayOptions.auth.enabled;
  }

  /** The caller, when it may do what needs the operator role (`doing`, for the refusal); else JSON-RPC -32003. */
  private operatorOnly(authInfo: AuthInfo | undefined, doing: string): McpCaller {
    const caller = callerOf(authInfo);
    if (this.authEnabled && !roleSatisfies(caller.role, 'operator'))
      throw new McpError(-32003, `forbidden: ${doing} needs the operator role; the key has ${caller.role}`, {
        requiredRole: 'operator',
        keyRole: caller.role,
      });
    return caller;
  }

  /**
   * The REST routes' tool policy (database_writer: admin and DATABASE_ALLOW_WRITES; the mailbox
   * tool: admin), as an AppError (403) or nothing; workflow and agent tools pass (the same as
   * their REST starts).
   */
  private writerRefusal(tool: CatalogTool, caller: McpCaller): AppError | undefined {
    if (tool.kind !== 'upstream') return undefined;
    const refused = toolRefusal(tool.server!, tool.upstreamName, {
      role: caller.keyId ? caller.role : null,
      authEnabled: this.authEnabled,
      writesAllowed: this.config.DATABASE_ALLOW_WRITES === true,
    });
    return refused && new AppError('forbidden', refused.message, refused.details);
  }

  onModuleInit(): void {
    this.sweeper = setInterval(
      () => this.sweep(),
      Math.min(60_000, Math.max(1_000, Math.floor(this.options.sessionIdleMs / 4))),
    );
    this.sweeper.unref();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.all([...this.sessions.values()].map((s) => this.closeSession(s, 'gateway stopping')));
  }

  /** Open sessions (for status and tests). */
  sessionCount(): number {
    return this.sessions.size;
  }

  // ---- transports ------------------------------------------------------------------------

  /** `/mcp` and `/mcp/v/<name>`: POST, GET (the notification stream) and DELETE of Streamable HTTP. */
  async streamable(r: EndpointRequest): Promise<void> {
    const { req, res, caller, virtual } = r;
    r.req.auth = authInfoOf(caller);
    const body = req.method === 'POST' ? req.body : undefined;
    if (req.method === 'POST') {
      // A call's answer comes on its own request, which stays open while the work runs.
      let release: () => void;
      try {
        release = this.heldCalls.take(heldCallHolder(caller, req.socket.remoteAddress));
      } catch (err) {
        const refused = err as AppError;
        res.setHeader('Retry-After', '1');
        return jsonRpcError(res, errorCodes[refused.code], ErrorCode.InternalError, refused.message);
      }
      res.on('close', release);
      if (res.destroyed) release();
    }
    if (this.options.stateless) {
      // No session, so no stream for server-initiated messages and nothing to delete.
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        return jsonRpcError(
          res,
          405,
          ErrorCode.InvalidRequest,
          'Method not allowed: this endpoint is stateless (POST only)',
        );
      }
      const server = this.buildServer({ virtual, transport: 'streamable-http', sessionId: () => null });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
      return;
    }
    const sid = req.headers['mcp-session-id'];
    const sessionId = Array.isArray(sid) ? sid[0] : sid;
    if (sessionId) {
      const s = this.sessions.get(sessionId);
      if (!s || s.kind !== 'streamable-http' || s.virtual !== virtual)
        return jsonRpcError(res, 404, ErrorCode.ConnectionClosed, 'Session not found');
      if (s.keyId !== caller.keyId)
        return jsonRpcError(res, 403, ErrorCode.InvalidRequest, 'this session belongs to another API key');
      s.lastSeen = Date.now();
      // The standalone GET stream carries the session's notifications (tools changed, resources
      // updated): bounded like the legacy stream; a cut ends that stream, the client may open another.
      if (req.method === 'GET')
        boundUnreadStream(res, STREAM_LIMITS, (cut) =>
          this.log.info(
            { sessionId, pendingBytes: cut.pendingBytes, reason: cut.reason },
            'MCP notification stream not read; closed',
          ),
        );
      if (req.method === 'POST') {
        const ids = requestIds(body);
        const taken = ids.find((id) => s.requestsInFlight.has(id));
        if (taken !== undefined)
          return jsonRpcError(
            res,
            400,
            ErrorCode.InvalidRequest,
            `request id ${JSON.stringify(taken)} is already in flight in this session: an id names one request until it is answered`,
            taken,
          );
        for (const id of ids) s.requestsInFlight.add(id);
        res.once('close', () => {
          for (const id of ids) s.requestsInFlight.delete(id);
        });
      }
      await (s.transport as StreamableHTTPServerTransport).handleRequest(req, res, body);
      return;
    }
    if (req.method !== 'POST' || !isInitialize(body)) {
      return jsonRpcError(
        res,
        400,
        ErrorCode.InvalidRequest,
        'Bad Request: no valid session id (Mcp-Session-Id); start with an initialize request',
      );
    }
    if (oversizedInitialize(body)) return jsonRpcError(res, 400, ErrorCode.InvalidRequest, INITIALIZE_TOO_LARGE);
    const refused = this.sessionRefusal(caller);
    if (refused) return jsonRpcError(res, errorCodes[refused.code], ErrorCode.InternalError, refused.message);
    let session: Session | undefined;
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        session = this.register(id, 'streamable-http', transport, server, virtual, caller);
      },
    });
    const server = this.buildServer({
      virtual,
      transport: 'streamable-http',
      sessionId: () => transport.sessionId ?? null,
    });
    transport.onclose = () => {
      if (session) void this.closeSession(session, 'transport closed');
    };
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  /** `GET /mcp/sse`: the legacy transport's event stream; its first event names the POST endpoint. */
  async sseOpen(r: EndpointRequest, messagesPath: string): Promise<void> {
    const refused = this.sessionRefusal(r.caller);
    if (refused) return jsonRpcError(r.res, errorCodes[refused.code], ErrorCode.InternalError, refused.message);
    const transport = new SSEServerTransport(messagesPath, r.res);
    const server = this.buildServer({ virtual: r.virtual, transport: 'sse', sessionId: () => transport.sessionId });
    const session = this.register(transport.sessionId, 'sse', transport, server, r.virtual, r.caller);
    session.stream = r.res;
    r.res.on('close', () => void this.closeSession(session, 'client went away'));
    boundUnreadStream(r.res, STREAM_LIMITS, (cut) => {
      void this.closeSession(
        session,
        `its event stream was not read (${cut.reason}): ${cut.pendingBytes} bytes waited`,
      );
    });
    await server.connect(transport);
  }

  /** `POST /mcp/messages?sessionId=`: one JSON-RPC message for an SSE session. */
  async sseMessage(r: EndpointRequest, sessionId: string): Promise<void> {
    const s = this.sessions.get(sessionId);
    if (!s || s.kind !== 'sse' || s.virtual !== r.virtual)
      return jsonRpcError(r.res, 404, ErrorCode.ConnectionClosed, 'Session not found');
    if (s.keyId !== r.caller.keyId)
      return jsonRpcError(r.res, 403, ErrorCode.InvalidRequest, 'this session belongs to another API key');
    const waiting = s.stream?.writableLength ?? 0;
    if (waiting > SSE_MAX_PENDING_BYTES)
      return jsonRpcError(
        r.res,
        429,
        ErrorCode.InternalError,
        `this session's event stream is not being read (${waiting} bytes wait for the client): read it before sending more`,
      );
    if (oversizedInitialize(r.req.body))
      return jsonRpcError(r.res, 400, ErrorCode.InvalidRequest, INITIALIZE_TOO_LARGE);
    s.lastSeen = Date.now();
    r.req.auth = authInfoOf(r.caller);
    await (s.transport as SSEServerTransport).handlePostMessage(r.req, r.res, r.req.body);
  }

  /**
   * Why a new session is refused, if it is: the key holds its share (429), or the gateway holds
   * MCP_SERVER_MAX_SESSIONS (503). Without the share one key could open them all and shut every
   * other client out until they idle out. (Without auth there is no key to share by.)
   */
  private sessionRefusal(caller: McpCaller): AppError | undefined {
    let mine = 0;
    if (caller.keyId !== null) for (const s of this.sessions.values()) if (s.keyId === caller.keyId) mine++;
    return connectionRefusal(
      'MCP sessions',
      {
        perCaller: this.options.maxSessionsPerKey,
        total: this.options.maxSessions,
        perCallerSetting: 'MCP_SERVER_MAX_SESSIONS_PER_KEY',
        totalSetting: 'MCP_SERVER_MAX_SESSIONS',
        howToFree: 'end one (DELETE /mcp with its Mcp-Session-Id) or let it idle out',
      },
      mine,
      this.sessions.size,
    );
  }

  private register(
    id: string,
    kind: Session['kind'],
    transport: Session['transport'],
    server: Server,
    virtual: string | null,
    caller: McpCaller,
  ): Session {
    const stopCatalog = this.catalog.onChange((what) => {
      const send = what === 'tools' ? server.sendToolListChanged() : server.sendPromptListChanged();
      void send.catch(() => undefined);
    });
    const session: Session = {
      id,
      kind,
      transport,
      server,
      virtual,
      keyId: caller.keyId,
      lastSeen: Date.now(),
      requestsInFlight: new Set(),
      subscriptions: new Map(),
      stopCatalog,
    };
    // The key was checked when the session opened and on each request; its notification stream
    // and subscriptions would outlive a revocation: the session ends with the key.
    if (caller.keyId !== null)
      session.stopWatch = this.keys.whileActive(
        caller.keyId,
        () => void this.closeSession(session, 'its API key was revoked'),
      );
    this.sessions.set(id, session);
    this.log.info({ sessionId: id, kind, virtual, keyId: caller.keyId }, 'MCP session opened');
    return session;
  }

  private async closeSession(s: Session, why: string): Promise<void> {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    s.stopCatalog();
    s.stopWatch?.();
    for (const stop of s.subscriptions.values()) stop();
    s.subscriptions.clear();
    this.log.info({ sessionId: s.id, kind: s.kind, why }, 'MCP session closed');
    await s.server.close().catch(() => undefined);
  }

  private sweep(): void {
    const limit = Date.now() - this.options.sessionIdleMs;
    for (const s of this.sessions.values()) if (s.lastSeen < limit) void this.closeSession(s, 'idle');
  }

  // ---- the SDK server ---------------------------------------------------------------------

  private buildServer(ctx: {
    virtual: string | null;
    transport: 'streamable-http' | 'sse';
    sessionId: () => string | null;
  }): Server {
    const notifies = !this.options.stateless;
    const server = new Server(
      { name: ctx.virtual ? `${SERVER_NAME}/${ctx.virtual}` : SERVER_NAME, version: SERVER_VERSION },
      {
        capabilities: {
          tools: { listChanged: notifies },
          resources: { subscribe: notifies, listChanged: false },
          prompts: { listChanged: notifies },
        },
        instructions:
          'Switchyard: upstream MCP tools as <server>__<tool>, workflows as workflow__<id> (progress per step; wait=false answers the execution id), ' +
          'agent tasks as agent__<task_type>; executions and system status as switchyard:// resources.',
      },
    );
    const allowed = (tool: string): boolean => {
      if (!ctx.virtual) return true;
      const v = this.virtuals.get(ctx.virtual);
      return !!v && toolAllowed(v.tools, tool);
    };

    onRequest(server, ListToolsRequestSchema, async (req, extra) => {
      const caller = callerOf(extra.authInfo);
      // A tool the caller may never call is not shown (the writer server below admin).
      const all = (await this.catalog.listTools()).filter((t) => allowed(t.name) && !this.writerRefusal(t, caller));
      // Pages in name order, the cursor the name the last page ended at: a tool added or removed
      // between pages moves no other across a page's edge (the client is told the list changed).
      all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const after = pageCursorName(req.params?.cursor);
      const from = after === undefined ? 0 : all.findIndex((t) => t.name > after);
      const page = from < 0 ? [] : all.slice(from, from + this.options.toolsPageSize);
      const more = from >= 0 && from + this.options.toolsPageSize < all.length;
      // A workflow's input schema is a registered definition's: a viewer reads it without its
      // defaults and allowed values, as on the REST definitions route.
      const redact = this.authEnabled && redactsPayloadsFor(caller.role);
      return {
        tools: page.map((t) =>
          toolDescriptor(
            redact && t.kind === 'workflow' && !t.builtin ? { ...t, inputSchema: viewerInputSchema(t.inputSchema) } : t,
          ),
        ),
        ...(more ? { nextCursor: pageCursor(page[page.length - 1]!.name) } : {}),
      };
    });

    onRequest(server, CallToolRequestSchema, async (req, extra) => {
      // Listing needs viewer; running work needs operator, as on the REST routes.
      const caller = this.operatorOnly(extra.authInfo, 'calling a tool');
      const name = req.params.name;
      const tool = allowed(name) ? await this.catalog.tool(name) : undefined;
      if (!tool)
        throw new McpError(
          ErrorCode.InvalidParams,
          `unknown tool "${name}"${ctx.virtual ? ` on virtual server ${ctx.virtual}` : ''}`,
        );
      const refused = this.writerRefusal(tool, caller);
      if (refused) throw new McpError(-32003, `forbidden: ${refused.message}`, refused.details);
      const meta = (req.params._meta ?? {}) as Record<string, unknown>;
      const key = idempotencyKeyOf(meta, { pattern: IDEMPOTENCY_KEY_PATTERN, max: IDEMPOTENCY_KEY_MAX });
      // The HTTP request's correlation id (x-correlation-id) when the call runs in its context.
      const correlationId = currentCorrelationId() ?? `mcp-${newId()}`;
      // The legacy transport answers its POST at once and the result later on the stream: its
      // calls hold no request, so they take their slot of the caller's share here, while they run.
      let release: (() => void) | undefined;
      if (ctx.transport === 'sse') {
        try {
          release = this.heldCalls.take(heldCallHolder(caller));
        } catch (err) {
          throw new McpError(-32000, (err as AppError).message, (err as AppError).details);
        }
      }
      try {
        return await this.commands.execute(
          new CallGatewayTool(tool, req.params.arguments ?? {}, {
            caller,
            sessionId: ctx.sessionId(),
            transport: ctx.transport,
            virtualServer: ctx.virtual,
            correlationId,
            signal: extra.signal,
            sendNotification: extra.sendNotification,
            ...(meta.progressToken !== undefined ? { progressToken: meta.progressToken as string | number } : {}),
            ...(key !== undefined ? { idempotencyKey: mcpScopedKey(caller.keyId, key) } : {}),
          }),
        );
      } finally {
        release?.();
      }
    });

    onRequest(server, ListResourcesRequestSchema, async () => ({
      resources: [
        {
          uri: STATUS_URI,
          name: 'system-status',
          title: 'Integration status',
          description: 'MCP servers, agents, workflows, alerts and infrastructure, with a verdict',
          mimeType: 'application/json',
        },
        {
          uri: HEALTH_URI,
          name: 'health-report',
          title: 'Health report',
          description: 'healthy / degraded / unhealthy with reasons, metrics and every service',
          mimeType: 'application/json',
        },
        ...(await this.recentExecutions()),
        ...(await this.reports()),
      ],
    }));

    onRequest(server, ListResourceTemplatesRequestSchema, async () => ({
      resourceTemplates: [
        {
          uriTemplate: 'switchyard://executions/{id}',
          name: 'execution',
          title: 'Workflow execution',
          description: 'Status, every step with attempts, inputs, outputs and errors',
          mimeType: 'application/json',
        },
        {
          uriTemplate: 'switchyard://executions/{id}/history',
          name: 'execution-history',
          title: 'Execution history',
          description:
            'The execution’s event history, up to 1,000 events a page: `next` is the URI of the next page (`?after=<revision>`), null after the last',
          mimeType: 'application/json',
        },
        {
          uriTemplate: 'switchyard://reports/{name}',
          name: 'report',
          title: 'Workflow report',
          description: `A report a workflow wrote (the filesystem sandbox's ${REPORTS_DIR}/ folder), e.g. revenue-analysis-20261204T101112.345Z-<execution id>.md`,
          mimeType: 'text/markdown',
        },
      ],
    }));

    onRequest(server, ReadResourceRequestSchema, async (req, extra) => {
      const uri = req.params.uri;
      const json = (value: unknown) => ({
        contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(value, null, 2) }],
      });
      // A viewer reads which error a server had, not the values it quotes (as every REST answer).
      const forCaller = <T>(value: T): T =>
        this.authEnabled && redactsPayloadsFor(callerOf(extra.authInfo).role) ? maskErrorTexts(value) : value;
      try {
        if (uri === STATUS_URI) return json(forCaller(await this.queries.execute(new GetIntegrationStatus())));
        if (uri === HEALTH_URI) {
          if (!this.monitor) throw new AppError('unavailable', 'the monitoring feature is not part of this gateway');
          return json(forCaller(await this.queries.execute(new GetHealthReport(`mcp-${newId()}`))));
        }
        const report = REPORT_URI.exec(uri);
        if (report) {
          // A report is workflow output: like a filesystem read at the REST API, it needs the operator role.
          this.operatorOnly(extra.authInfo, 'reading a report');
          const out = await this.queries.execute(
            new ReadMcpTool('filesystem', 'read_text_file', { path: `${REPORTS_DIR}/${report[1]}` }, `mcp-${newId()}`),
          );
          const text = out.content.map((c) => (typeof c.text === 'string' ? c.text : '')).join('');
          return { contents: [{ uri, mimeType: report[1]!.endsWith('.md') ? 'text/markdown' : 'text/plain', text }] };
        }
        const m = EXECUTION_URI.exec(uri);
        if (m) {
          // A viewer reads what happened, not the data: inputs, outputs and results are
          // redacted for it, as on the REST routes; so is an execution that calls an admin-only
          // tool for anyone but an admin.
          const role = callerOf(extra.authInfo).role;
          let redact = this.authEnabled && redactsPayloadsFor(role);
          const adminTools = !this.authEnabled || seesAdminToolPayloadsFor(role);
          if (m[2]) {
            const executionId = m[1]!;
            redact ||=
              !adminTools &&
              (await executionStreamCallsAdminTool(this.folds.store, workflowExecutionStream(executionId)));
            const after = m[3] === undefined ? -1 : Number(m[3]);
            const page = await this.queries.execute(new ReadExecutionStream(executionId, after, HISTORY_PAGE_EVENTS));
            const nextAfter = nextPageAfter(page.events, page.lastRevision);
            return json({
              execution_id: executionId,
              last_revision: page.lastRevision,
              events: page.events.map((e) => {
                const shown = redact ? redactEventPayloads(e) : e;
                return {
                  position: e.position,
                  revision: e.revision,
                  type: e.type,
                  data: shown.data,
                  metadata: e.metadata,
                  recorded_at: e.recordedAt,
                };
              }),
              // The rest, a page at a time: one read never builds a long execution's whole log.
              next: nextAfter === null ? null : `switchyard://executions/${executionId}/history?after=${nextAfter}`,
            });
          }
          // A large execution's detail goes out streamed at the REST route only: here it would be
          // one JSON text (100 MB near the bounds, held in the gateway and sent as one message).
          if (!redact && (await this.folds.isLarge(m[1]!))) {
            const executionId = m[1]!;
            const { detail } = await this.queries.execute(
              new GetExecution(executionId, undefined, undefined, false, true),
            );
            // Redacted here as well: a read model behind the stream answers from a fold, with them.
            return json({
              ...executionDetailForCaller(detail, true),
              payloads_omitted:
                `the inputs and outputs of this execution are large (its events take more than ${WHOLE_FOLD_BYTES} bytes before compression): ` +
                `read them at GET /api/v1/workflows/executions/${executionId} (streamed), or page them at ` +
                `switchyard://executions/${executionId}/history`,
            });
          }
          const { detail } = await this.queries.execute(new GetExecution(m[1]!));
          const hide =
            redact ||
            (!adminTools && (await executionStreamCallsAdminTool(this.folds.store, workflowExecutionStream(m[1]!))));
          return json(executionDetailForCaller(detail, hide));
        }
      } catch (err) {
        if (err instanceof McpError) throw err;
        if (isAppError(err) && err.code === 'not_found')
          throw new McpError(ErrorCode.InvalidParams, err.message, { uri });
        // A report that is not there: the filesystem server's ENOENT comes back as a tool error.
        if (isAppError(err) && err.code === 'tool_error' && REPORT_URI.test(uri))
          throw new McpError(ErrorCode.InvalidParams, `no such report: ${err.message}`, { uri });
        if (isAppError(err)) throw new McpError(ErrorCode.InternalError, `${err.code}: ${err.message}`, { uri });
        throw err;
      }
      throw new McpError(ErrorCode.InvalidParams, `unknown resource ${uri}`, { uri });
    });

    onRequest(server, SubscribeRequestSchema, async (req) => {
      const s = this.sessionOf(ctx.sessionId());
      const m = EXECUTION_URI.exec(req.params.uri);
      if (!s) throw new McpError(ErrorCode.InvalidRequest, 'subscriptions need a session (not in stateless mode)');
      if (!m)
        throw new McpError(
          ErrorCode.InvalidParams,
          `only execution resources can be subscribed to (switchyard://executions/{id}), not ${req.params.uri}`,
        );
      const uri = req.params.uri;
      if (!s.subscriptions.has(uri)) {
        if (s.subscriptions.size >= MAX_SUBSCRIPTIONS_PER_SESSION)
          throw new McpError(
            ErrorCode.InvalidRequest,
            `at most ${MAX_SUBSCRIPTIONS_PER_SESSION} subscriptions per session`,
          );
        // Held while the watch starts, so a second subscribe to the same URI does not watch twice.
        let stop: (() => void) | undefined;
        let unsubscribed = false;
        s.subscriptions.set(uri, () => {
          unsubscribed = true;
          stop?.();
        });
        try {
          stop = await this.watch.watch(m[1]!, () => {
            server.sendResourceUpdated({ uri }).catch(() => undefined);
          });
          if (unsubscribed) stop();
        } catch (err) {
          s.subscriptions.delete(uri);
          if (isAppError(err) && err.code === 'not_found')
            throw new McpError(ErrorCode.InvalidParams, err.message, { uri });
          throw err;
        }
      }
      return {};
    });

    onRequest(server, UnsubscribeRequestSchema, async (req) => {
      const s = this.sessionOf(ctx.sessionId());
      s?.subscriptions.get(req.params.uri)?.();
      s?.subscriptions.delete(req.params.uri);
      return {};
    });

    onRequest(server, ListPromptsRequestSchema, async () => ({
      prompts: (await this.catalog.listPrompts()).map((p) => ({
        name: p.name,
        ...(p.description !== undefined ? { description: p.description } : {}),
        ...(Array.isArray(p.arguments) ? { arguments: p.arguments as { name: string }[] } : {}),
      })),
    }));

    onRequest(server, GetPromptRequestSchema, async (req, extra) => {
      // A prompt is rendered by the upstream server's own code from the caller's arguments (it may
      // read files or fetch pages to do so), as a tool call runs: it needs the operator role too.
      this.operatorOnly(extra.authInfo, 'getting a prompt');
      const p = await this.catalog.prompt(req.params.name);
      if (!p) throw new McpError(ErrorCode.InvalidParams, `unknown prompt "${req.params.name}"`);
      try {
        const reply = await request(
          this.nats,
          mcpSubject(p.server, 'get_prompt'),
          { name: p.upstreamName, arguments: req.params.arguments ?? {} },
          { schema: getPromptReplySchema, timeoutMs: 15_000, correlationId: `mcp-${newId()}` },
        );
        return reply;
      } catch (err) {
        throw new McpError(ErrorCode.InternalError, isAppError(err) ? `${err.code}: ${err.message}` : String(err));
      }
    });

    server.onerror = (err) => this.log.warn({ err: String(err) }, 'MCP server error');
    return server;
  }

  private sessionOf(id: string | null): Session | undefined {
    return id ? this.sessions.get(id) : undefined;
  }

  private async recentExecutions(): Promise<{ uri: string; name: string; description: string; mimeType: string }[]> {
    try {
      const { page } = await this.queries.execute(new ListExecutions({ limit: 20 }, undefined));
      return page.items.map((x) => ({
        uri: `switchyard://executions/${x.execution_id}`,
        name: `execution-${x.execution_id}`,
        description: `${x.definition_id} ${x.status}`,
        mimeType: 'application/json',
      }));
    } catch {
      return [];
    }
  }

  /**
   * The reports in the sandbox's reports folder, as resources (none when the filesystem server is
   * down or the folder is missing), by name from last to first: revenue_analysis names each
   * execution's report by its start time, so the newest are the ones listed.
   */
  private async reports(): Promise<{ uri: string; name: string; description: string; mimeType: string }[]> {
    try {
      const out = await this.queries.execute(
        new ReadMcpTool('filesystem', 'list_directory', { path: REPORTS_DIR }, `mcp-${newId()}`),
      );
      const text = out.content.map((c) => (typeof c.text === 'string' ? c.text : '')).join('\n');
      return text
        .split('\n')
        .map((line) => /^\[FILE\] (.+)$/.exec(line.trim())?.[1])
        .filter((name): name is string => name !== undefined && REPORT_URI.test(`switchyard://reports/${name}`))
        .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0))
        .slice(0, REPORTS_LISTED)
        .map((name) => ({
          uri: `switchyard://reports/${name}`,
          name: `report-${name}`,
          description: `a report a workflow wrote (${REPORTS_DIR}/${name})`,
          mimeType: name.endsWith('.md') ? 'text/markdown' : 'text/plain',
        }));
    } catch {
      return [];
    }
  }
}

function toolDescriptor(t: CatalogTool) {
  return {
    name: t.name,
    ...(t.title !== undefined ? { title: t.title } : {}),
    ...(t.description !== undefined ? { description: t.description } : {}),
    inputSchema: t.inputSchema as { type: 'object'; [k: string]: unknown },
    ...(t.outputSchema ? { outputSchema: t.outputSchema as { type: 'object'; [k: string]: unknown } } : {}),
    ...(t.annotations ? { annotations: t.annotations } : {}),
  };
}

const isInitialize = (body: unknown): boolean =>
  Array.isArray(body)
    ? body.some(isInitialize)
    : !!body && typeof body === 'object' && (body as { method?: unknown }).method === 'initialize';

/**
 * Most characters of JSON an `initialize` may take: the session keeps what the client said of
 * itself (its info, its capabilities) for as long as it lives: fifty sessions of one key with a
 * 1 MB description each took about 100 MB.
 */
const INITIALIZE_MAX_CHARS = 64 * 1024;
const INITIALIZE_TOO_LARGE = `an initialize request takes at most ${INITIALIZE_MAX_CHARS} characters of JSON`;
const oversizedInitialize = (body: unknown): boolean =>
  isInitialize(body) && JSON.stringify(body).length > INITIALIZE_MAX_CHARS;

/** A registered workflow's input schema as a viewer reads it: its values redacted, the gateway's own `wait` as it is. */
function viewerInputSchema(schema: Record<string, unknown>): Record<string, unknown> {
  const redacted = inputSchemaRedacted(schema) as Record<string, unknown>;
  const wait = (schema['properties'] as Record<string, unknown> | undefined)?.['wait'];
  if (wait !== WAIT_PROPERTY) return redacted;
  return { ...redacted, properties: { ...(redacted['properties'] as Record<string, unknown>), wait: WAIT_PROPERTY } };
}

/** Whose share of calls in flight a call takes: its key's; without auth its address's, else its actor's. */
const heldCallHolder = (caller: McpCaller, address?: string): string =>
  caller.keyId ? `apikey:${caller.keyId}` : address !== undefined ? `address:${address}` : `actor:${caller.actor}`;

/** A JSON-RPC error answered over plain HTTP (no session to carry it). */
function jsonRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  id: string | number | null = null,
): void {
  if (res.headersSent) return;
  res
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id }));
}

/** The ids of the requests (not notifications or responses) in a POST's JSON-RPC message or batch. */
function requestIds(body: unknown): (string | number)[] {
  const ids: (string | number)[] = [];
  for (const m of Array.isArray(body) ? body : [body]) {
    if (m === null || typeof m !== 'object') continue;
    const { id, method } = m as { id?: unknown; method?: unknown };
    if (typeof method === 'string' && (typeof id === 'string' || typeof id === 'number')) ids.push(id);
  }
  return ids;
}

/** A tools/list cursor: the name the page ended at, opaque to the client. */
function pageCursor(lastName: string): string {
  return Buffer.from(`t:${lastName}`, 'utf8').toString('base64url');
}

/** The name a cursor of ours ended at; a cursor that is not one is refused -32602. */
function pageCursorName(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const text = cursor.length <= 1_024 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (!text.startsWith('t:') || text.length < 3 || pageCursor(text.slice(2)) !== cursor)
    throw new McpError(
      ErrorCode.InvalidParams,
      'invalid tools/list params: params.cursor is not a cursor this server gave',
    );
  return text.slice(2);
}

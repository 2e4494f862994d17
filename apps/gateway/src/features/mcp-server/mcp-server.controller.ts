import { All, Controller, Delete, Get, HttpCode, Inject, Post, Put, Req, Res } from '@nestjs/common';
import { hijack, type EdgeReply as Response, type EdgeRequest as Request } from '../../http/edge.js';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { z } from 'zod';
import { AppError, type Logger } from '@switchyard/platform';
import { CorrelationId, type GatewayRequest } from '../../http/context.js';
import { sendProblem } from '../../http/problem-filter.js';
import { ZodBody, ZodParams, ZodQuery } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import { AUTH_FAILED, type AuthRequest } from '../../security/middleware.js';
import { PUBLIC, roleSatisfies, roleSchema } from '../../security/roles.js';
import { LOGGER } from '../../tokens.js';
import { McpEndpoint, type EndpointRequest, type McpCaller } from './mcp-endpoint.js';
import {
  protectedResourceMetadata,
  sessionQuery,
  VIRTUAL_SERVERS_PATH,
  virtualServerExample,
  virtualServerList,
  virtualServerParams,
  virtualServerPostBody,
  virtualServerPutBody,
  virtualServerRemoved,
  virtualServerView,
} from './schemas.js';
import type { VirtualServerView } from './virtual-server.decider.js';
import { VirtualServers } from './virtual-servers.js';
import { DefineVirtualServer, RemoveVirtualServer } from './commands/index.js';
import { GetVirtualServer, ListVirtualServers } from './queries/index.js';
import { chargeKeyMore } from '../../security/middleware.js';

const WELL_KNOWN = '.well-known/oauth-protected-resource';
/** A key's role, an unknown one read as viewer (built once: a zod schema per request costs more than the parse). */
const keyRole = roleSchema.catch('viewer');

/** The resource's base URL: MCP_SERVER_PUBLIC_URL, else the request's own origin (Host was checked by the edge middleware). */
const baseUrl = (req: Request, configured?: string): string =>
  configured ?? `${req.protocol}://${req.get('host') ?? '127.0.0.1'}`;

/** JSON-RPC methods that run upstream code with the caller's arguments: a tool call, and a prompt's rendering. */
const RUNS_CODE = new Set(['tools/call', 'prompts/get']);
/** Whether the JSON-RPC body asks to run a tool or render a prompt (one message or a batch). */
const callsTool = (body: unknown): boolean =>
  Array.isArray(body)
    ? body.some(callsTool)
    : !!body && typeof body === 'object' && RUNS_CODE.has(String((body as { method?: unknown }).method));

/**
 * The MCP transports. They are MCP, not REST, so they are left out of the OpenAPI document and
 * declared public to the role guard: the key check happens here, to answer 401 with
 * `WWW-Authenticate: Bearer resource_metadata="..."` (RFC 9728) as MCP clients expect.
 * Listing needs a viewer key; a `tools/call` or `prompts/get` with a key below operator is refused 403.
 */
@Controller()
export class McpServerController {
  constructor(
    @Inject(McpEndpoint) private readonly endpoint: McpEndpoint,
    @Inject(VirtualServers) private readonly virtuals: VirtualServers,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @All('mcp')
  @ApiRoute({ hidden: true, role: PUBLIC })
  async streamable(@Req() req: Request, @Res() res: Response): Promise<void> {
    const r = this.admit(req, res, '/mcp', null);
    if (r) await this.run(r, () => this.endpoint.streamable(r));
  }

  @Get('mcp/sse')
  @ApiRoute({ hidden: true, role: PUBLIC })
  async sse(@Req() req: Request, @Res() res: Response): Promise<void> {
    const r = this.admit(req, res, '/mcp', null);
    if (r) await this.run(r, () => this.endpoint.sseOpen(r, '/mcp/messages'));
  }

  @Post('mcp/messages')
  @ApiRoute({ hidden: true, role: PUBLIC })
  async messages(
    @ZodQuery(sessionQuery) q: z.infer<typeof sessionQuery>,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const r = this.admit(req, res, '/mcp', null);
    if (r) await this.run(r, () => this.endpoint.sseMessage(r, q.sessionId));
  }

  @All('mcp/v/:name')
  @ApiRoute({ hidden: true, role: PUBLIC })
  async virtualStreamable(
    @ZodParams(virtualServerParams) p: z.infer<typeof virtualServerParams>,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const r = this.admit(req, res, `/mcp/v/${p.name}`, p.name);
    if (r) await this.run(r, () => this.endpoint.streamable(r));
  }

  @Get('mcp/v/:name/sse')
  @ApiRoute({ hidden: true, role: PUBLIC })
  async virtualSse(
    @ZodParams(virtualServerParams) p: z.infer<typeof virtualServerParams>,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const r = this.admit(req, res, `/mcp/v/${p.name}`, p.name);
    if (r) await this.run(r, () => this.endpoint.sseOpen(r, `/mcp/v/${p.name}/messages`));
  }

  @Post('mcp/v/:name/messages')
  @ApiRoute({ hidden: true, role: PUBLIC })
  async virtualMessages(
    @ZodParams(virtualServerParams) p: z.infer<typeof virtualServerParams>,
    @ZodQuery(sessionQuery) q: z.infer<typeof sessionQuery>,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const r = this.admit(req, res, `/mcp/v/${p.name}`, p.name);
    if (r) await this.run(r, () => this.endpoint.sseMessage(r, q.sessionId));
  }

  @Get(WELL_KNOWN)
  @ApiRoute({
    summary: 'OAuth protected resource metadata (RFC 9728) of the MCP endpoint',
    description:
      'Says where the MCP endpoint is and that it takes the gateway’s API keys as bearer tokens (`Authorization: Bearer sy_...`); no authorization server issues them: an admin creates them.',
    tags: ['mcp-server'],
    role: PUBLIC,
    response: { schema: protectedResourceMetadata },
  })
  metadata(@Req() req: Request) {
    return this.describe(req, '/mcp');
  }

  @Get(`${WELL_KNOWN}/*`) // Fastify's wildcard: the rest of the path
  @ApiRoute({ hidden: true, role: PUBLIC })
  metadataFor(@Req() req: Request) {
    const rest = req.path.slice(`/${WELL_KNOWN}`.length) || '/mcp';
    if (!/^\/mcp(\/v\/[a-z0-9][a-z0-9_-]{0,62})?$/.test(rest))
      throw new AppError('not_found', `no protected resource at ${rest}`);
    return this.describe(req, rest);
  }

  private describe(req: Request, resourcePath: string) {
    const base = baseUrl(req, this.endpoint.options.publicUrl);
    return {
      resource: `${base}${resourcePath}`,
      resource_name: 'Switchyard MCP gateway',
      bearer_methods_supported: ['header'],
      scopes_supported: ['viewer', 'operator', 'admin'],
      resource_documentation: `${base}/docs`,
      switchyard_auth: {
        scheme: 'bearer' as const,
        token:
          'a Switchyard API key (sy_<id>_<secret>), created by an admin: POST /api/v1/admin/api-keys or `switchyard keys create`',
        roles: {
          viewer: 'list tools, resources and prompts; read resources',
          operator: 'also call tools and get prompts',
          admin: 'also manage virtual servers',
        },
      },
    };
  }

  /**
   * The caller, or an answer already sent: 401 (no key or a bad one) with the RFC 9728 pointer,
   * 404 for an unknown virtual server, 403 for a tool call below operator.
   */
  private admit(
    req: Request,
    res: Response,
    resourcePath: string,
    virtual: string | null,
  ): EndpointRequest | undefined {
    const auth = this.endpoint.authEnabled;
    const key = (req as GatewayRequest).apiKey;
    if (auth && !key) {
      const bad = (req as AuthRequest)[AUTH_FAILED] === true;
      const metadataUrl = `${baseUrl(req, this.endpoint.options.publicUrl)}/${WELL_KNOWN}${resourcePath}`;
      res.setHeader(
        'WWW-Authenticate',
        `Bearer realm="switchyard", resource_metadata="${metadataUrl}"${bad ? ', error="invalid_token"' : ''}`,
      );
      sendProblem(
        new AppError(
          'unauthorized',
          bad ? 'the API key is invalid or revoked' : 'an API key is required (Authorization: Bearer <key>)',
        ),
        req,
        res,
      );
      return undefined;
    }
    const role = auth ? keyRole.parse(key!.role) : 'admin';
    const caller: McpCaller = key
      ? { keyId: key.id, keyName: key.name, actor: `apikey:${key.id}`, role }
      : { keyId: null, keyName: null, actor: 'anonymous', role };
    if (virtual !== null && !this.virtuals.get(virtual)) {
      sendProblem(new AppError('not_found', `no virtual MCP server named "${virtual}"`, { name: virtual }), req, res);
      return undefined;
    }
    if (auth && req.method === 'POST' && callsTool(req.body) && !roleSatisfies(role, 'operator')) {
      sendProblem(
        new AppError('forbidden', `calling a tool or getting a prompt needs the operator role; the key has ${role}`, {
          requiredRole: 'operator',
          keyRole: role,
        }),
        req,
        res,
      );
      return undefined;
    }
    // The SDK transports write the Node response themselves.
    const raw = hijack(req, res);
    return { req: raw.req, res: raw.res, caller, virtual };
  }

  private async run(r: EndpointRequest, fn: () => Promise<void>): Promise<void> {
    try {
      // A batch is as many calls as it carries messages: the request counted one of the key's budget.
      const body = r.req.method === 'POST' ? r.req.body : undefined;
      const messages = Array.isArray(body) ? body.length : 1;
      const extra = messages > 1 ? await chargeKeyMore(r.req, messages - 1) : undefined;
      if (extra && !extra.allowed) {
        const retryAfter = Math.max(1, Math.ceil(extra.msBeforeNext / 1000));
        r.res.setHeader('Retry-After', String(retryAfter));
        r.res.writeHead(429, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            jsonrpc: '2.0',
            error: {
              code: -32000,
              message: `too many requests for this API key: this batch of ${messages} messages counts ${messages}; retry in ${retryAfter} s`,
            },
            id: null,
          }),
        );
        return;
      }
      await fn();
    } catch (err) {
      this.logger.error({ err, correlationId: r.req.correlationId }, 'MCP transport failed');
      if (!r.res.headersSent) sendProblem(new AppError('internal', 'the MCP request failed'), r.req, r.res);
      else r.res.end();
    }
  }
}

const withUrl = (v: VirtualServerView) => ({ ...v, tools: [...v.tools], url: `/mcp/v/${v.name}` });

/** Admin CRUD of virtual MCP servers (named subsets of the tools at `/mcp/v/<name>`), stored as events. */
@Controller(VIRTUAL_SERVERS_PATH)
export class VirtualServersController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
  ) {}

  @Get()
  @ApiRoute({
    summary: 'Virtual MCP servers',
    tags: ['mcp-server'],
    role: 'viewer',
    response: { schema: virtualServerList },
  })
  async list() {
    return { virtual_servers: (await this.queries.execute(new ListVirtualServers())).map(withUrl) };
  }

  @Get(':name')
  @ApiRoute({
    summary: 'One virtual MCP server',
    tags: ['mcp-server'],
    role: 'viewer',
    response: { schema: virtualServerView },
    errors: [404],
  })
  async get(@ZodParams(virtualServerParams) p: z.infer<typeof virtualServerParams>) {
    return withUrl(await this.queries.execute(new GetVirtualServer(p.name)));
  }

  @Post()
  @HttpCode(201)
  @ApiRoute({
    summary: 'Create (or replace) a virtual MCP server',
    description:
      '`tools` are names as `/mcp` lists them (`everything__echo`, `workflow__revenue_analysis`, `agent__customer_support`) or prefixes ending in `*` (`database__*`). 201 when new, 200 when it replaced one.',
    tags: ['mcp-server'],
    role: 'admin',
    requestExample: virtualServerExample,
    response: { status: 201, schema: virtualServerView },
    alsoAnswers: [{ status: 200, description: 'It existed and was replaced', schema: virtualServerView }],
  })
  async create(
    @ZodBody(virtualServerPostBody) b: z.output<typeof virtualServerPostBody>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    const { view, created } = await this.commands.execute(
      new DefineVirtualServer(b.name, { description: b.description, tools: b.tools }, cid),
    );
    if (!created) res.status(200);
    return withUrl(view);
  }

  @Put(':name')
  @ApiRoute({
    summary: 'Create or replace a virtual MCP server by name',
    tags: ['mcp-server'],
    role: 'admin',
    requestExample: { description: virtualServerExample.description, tools: virtualServerExample.tools },
    response: { status: 200, schema: virtualServerView },
    alsoAnswers: [{ status: 201, description: 'It was new', schema: virtualServerView }],
  })
  async put(
    @ZodParams(virtualServerParams) p: z.infer<typeof virtualServerParams>,
    @ZodBody(virtualServerPutBody) b: z.output<typeof virtualServerPutBody>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    const { view, created } = await this.commands.execute(
      new DefineVirtualServer(p.name, { description: b.description, tools: b.tools }, cid),
    );
    if (created) res.status(201);
    return withUrl(view);
  }

  @Delete(':name')
  @ApiRoute({
    summary: 'Remove a virtual MCP server',
    tags: ['mcp-server'],
    role: 'admin',
    response: { schema: virtualServerRemoved },
    errors: [404],
  })
  async remove(@ZodParams(virtualServerParams) p: z.infer<typeof virtualServerParams>, @CorrelationId() cid: string) {
    await this.commands.execute(new RemoveVirtualServer(p.name, cid));
    return { name: p.name, removed: true as const };
  }
}

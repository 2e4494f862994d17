import { Controller, Get, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import { CorrelationId, type GatewayRequest } from '../../http/context.js';
import { ZodBody, ZodParams, ZodQuery } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import { GATEWAY_CONFIG, GATEWAY_OPTIONS, type GatewayConfig, type ResolvedGatewayOptions } from '../../tokens.js';
import { McpGatewayClient, type ToolCallOutcome } from './mcp-client.js';
import { namedToPositional } from './named-params.js';
import { assertWriterAllowed, type WriterAccess } from './writer-policy.js';
import {
  analyticsQuery,
  automationTriggerBody,
  callBody,
  databaseQueryBody,
  fetchBody,
  healthListResponse,
  mailboxQuery,
  mailboxResponse,
  metricParams,
  operationBody,
  operationParams,
  serverHealthResponse,
  serverNameParams,
  toolResultResponse,
} from './schemas.js';

/** Server names of the six roles in the default registry (the seed's layout). */
const ROLE_SERVERS = { filesystem: 'filesystem', database: 'database', github: 'github', fetch: 'fetch', automation: 'automation', analytics: 'analytics' } as const;
const errors = [400, 404, 422, 503, 504];

const toolListResponse = z.object({
  server: z.string(),
  tools: z.array(
    z.object({
      name: z.string(),
      description: z.string().nullable(),
      input_schema: z.record(z.string(), z.unknown()),
      output_schema: z.record(z.string(), z.unknown()).nullable(),
    }),
  ),
});

@Controller('api/v1/integration/mcp')
export class McpController {
  private readonly writerAccess: WriterAccess;

  constructor(
    @Inject(McpGatewayClient) private readonly mcp: McpGatewayClient,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    @Inject(GATEWAY_OPTIONS) options: ResolvedGatewayOptions,
  ) {
    this.writerAccess = { authEnabled: options.auth.enabled, writesAllowed: config.DATABASE_ALLOW_WRITES === true };
  }

  @Get('health')
  @ApiRoute({ summary: 'Health of every MCP server (state, breaker, tools)', tags: ['mcp'], role: 'viewer', response: { status: 200, schema: healthListResponse }, errors: [503] })
  async healthAll(@CorrelationId() correlationId: string) {
    const servers = await this.mcp.servers(correlationId, true);
    const counted = servers.filter((s) => s.enabled && s.state !== 'unconfigured');
    const up = counted.filter((s) => s.state === 'up').length;
    const status = up === counted.length ? 'healthy' : up === 0 ? 'unhealthy' : 'degraded';
    return { status, servers };
  }

  @Get('health/:server_name')
  @ApiRoute({ summary: 'Health of one MCP server, probed now', tags: ['mcp'], role: 'viewer', response: { status: 200, schema: serverHealthResponse }, errors: [404, 503] })
  healthOne(@ZodParams(serverNameParams) p: z.infer<typeof serverNameParams>, @CorrelationId() correlationId: string) {
    return this.mcp.health(p.server_name, correlationId);
  }

  @Get('tools/:server_name')
  @ApiRoute({
    summary: "One MCP server's tools with their descriptions and input schemas (JSON Schema)",
    tags: ['mcp'],
    role: 'viewer',
    response: { status: 200, schema: toolListResponse },
    errors: [404, 503],
  })
  async toolList(@ZodParams(serverNameParams) p: z.infer<typeof serverNameParams>, @CorrelationId() correlationId: string) {
    const tools = await this.mcp.toolInfos(p.server_name, correlationId);
    return {
      server: p.server_name,
      tools: tools.map((t) => ({ name: t.name, description: t.description ?? null, input_schema: t.inputSchema, output_schema: t.outputSchema ?? null })),
    };
  }

  @Post('call')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Call any tool of any registered MCP server',
    description: 'The database_writer server needs an admin key and DATABASE_ALLOW_WRITES=true (403 otherwise).',
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse },
    errors: [...errors, 403],
  })
  async call(@ZodBody(callBody) b: z.infer<typeof callBody>, @CorrelationId() correlationId: string, @Req() req: GatewayRequest): Promise<ToolCallOutcome> {
    assertWriterAllowed(b.server, req, this.writerAccess);
    await this.knownTool(b.server, b.tool, correlationId);
    return this.mcp.call(b.server, b.tool, b.arguments, correlationId, b.timeout_ms);
  }

  @Post('filesystem/:operation')
  @HttpCode(200)
  @ApiRoute({ summary: 'File operations through the filesystem server (operation = tool name, e.g. read_file, write_file, list_directory)', tags: ['mcp'], role: 'operator', response: { status: 200, schema: toolResultResponse }, errors })
  async filesystem(@ZodParams(operationParams) p: z.infer<typeof operationParams>, @ZodBody(operationBody) body: Record<string, unknown>, @CorrelationId() correlationId: string) {
    await this.knownTool(ROLE_SERVERS.filesystem, p.operation, correlationId);
    return this.mcp.call(ROLE_SERVERS.filesystem, p.operation, body, correlationId);
  }

  @Post('database/query')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Parameterized SQL through the database server (read-only unless the server allows writes)',
    description: 'params is an object for `:name` placeholders (as in the seed) or an array for `$1..$n`. Values are never spliced into the SQL.',
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse, example: { server: 'database', tool: 'query', duration_ms: 3.2, result: { rows: [{ total: 42 }], row_count: 1, truncated: false }, content: [] } },
    errors: [400, 403, 404, 408, 422, 503, 504],
  })
  database(@ZodBody(databaseQueryBody) b: z.infer<typeof databaseQueryBody>, @CorrelationId() correlationId: string) {
    const { sql, params } = Array.isArray(b.params) ? { sql: b.query, params: b.params } : namedToPositional(b.query, b.params);
    return this.mcp.call(ROLE_SERVERS.database, 'query', { sql, params, ...(b.max_rows ? { max_rows: b.max_rows } : {}) }, correlationId);
  }

  @Post('github/:operation')
  @HttpCode(200)
  @ApiRoute({ summary: 'GitHub operations (repositories, commits, pull requests) through the GitHub server; 503 when no token is configured', tags: ['mcp'], role: 'operator', response: { status: 200, schema: toolResultResponse }, errors })
  async github(@ZodParams(operationParams) p: z.infer<typeof operationParams>, @ZodBody(operationBody) body: Record<string, unknown>, @CorrelationId() correlationId: string) {
    const server = await this.mcp.server(ROLE_SERVERS.github, correlationId);
    if (server.state === 'unconfigured') {
      throw new AppError('unavailable', 'the GitHub MCP server is not configured: set GITHUB_PERSONAL_ACCESS_TOKEN', { server: 'github', state: 'unconfigured' });
    }
    await this.knownTool(ROLE_SERVERS.github, p.operation, correlationId);
    return this.mcp.call(ROLE_SERVERS.github, p.operation, body, correlationId);
  }

  @Post('fetch')
  @HttpCode(200)
  @ApiRoute({ summary: 'HTTP request or page scrape through the fetch server (SSRF-guarded)', tags: ['mcp'], role: 'operator', response: { status: 200, schema: toolResultResponse }, errors: [400, 403, 404, 413, 422, 503, 504] })
  fetch(@ZodBody(fetchBody) b: z.infer<typeof fetchBody>, @CorrelationId() correlationId: string) {
    if (b.extract === 'text') {
      return this.mcp.call(ROLE_SERVERS.fetch, 'fetch_text', { url: b.url, ...(b.timeout_ms ? { timeout_ms: b.timeout_ms } : {}), ...(b.max_bytes ? { max_bytes: b.max_bytes } : {}), ...(b.headers ? { headers: b.headers } : {}) }, correlationId);
    }
    const body = typeof b.body === 'object' ? JSON.stringify(b.body) : b.body;
    const headers = typeof b.body === 'object' ? { 'content-type': 'application/json', ...b.headers } : b.headers;
    return this.mcp.call(
      ROLE_SERVERS.fetch,
      'http_request',
      { url: b.url, method: b.method, ...(headers ? { headers } : {}), ...(body !== undefined ? { body } : {}), ...(b.timeout_ms ? { timeout_ms: b.timeout_ms } : {}), ...(b.max_bytes ? { max_bytes: b.max_bytes } : {}) },
      correlationId,
    );
  }

  @Post('automation/trigger')
  @HttpCode(200)
  @ApiRoute({ summary: 'Trigger a workflow (`template_id`, `input`) or send a signed webhook (`webhook`, `event`, `payload`) through the automation server', tags: ['mcp'], role: 'operator', response: { status: 200, schema: toolResultResponse }, errors })
  automation(@ZodBody(automationTriggerBody) b: z.infer<typeof automationTriggerBody>, @CorrelationId() correlationId: string) {
    return 'template_id' in b
      ? this.mcp.call(ROLE_SERVERS.automation, 'trigger_workflow', { template_id: b.template_id, input: b.input }, correlationId)
      : this.mcp.call(ROLE_SERVERS.automation, 'send_webhook', { webhook: b.webhook, event: b.event, payload: b.payload, ...(b.idempotency_key ? { idempotency_key: b.idempotency_key } : {}) }, correlationId);
  }

  @Get('automation/mailbox')
  @ApiRoute({
    summary: 'Messages the development mailbox received (newest first, keyset paging)',
    description:
      'The embedded SMTP server the launcher runs when SMTP_URL is unset: what send_email, the onboarding welcome and follow-ups and the support escalation mails sent. ' +
      'Empty when a real SMTP server is configured.',
    tags: ['mcp'],
    role: 'admin',
    response: { status: 200, schema: mailboxResponse },
    errors,
  })
  async mailbox(@ZodQuery(mailboxQuery) q: z.infer<typeof mailboxQuery>, @CorrelationId() correlationId: string) {
    const r = await this.mcp.call(ROLE_SERVERS.automation, 'list_mailbox', { limit: q.limit, ...(q.to ? { to: q.to } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) }, correlationId);
    return r.result;
  }

  @Get('analytics/:metric')
  @ApiRoute({ summary: 'Aggregate a metric over a window through the analytics server', tags: ['mcp'], role: 'viewer', response: { status: 200, schema: toolResultResponse }, errors })
  analytics(@ZodParams(metricParams) p: z.infer<typeof metricParams>, @ZodQuery(analyticsQuery) q: z.infer<typeof analyticsQuery>, @CorrelationId() correlationId: string) {
    return this.mcp.call(ROLE_SERVERS.analytics, 'query_metric', { name: p.metric, window: q.window, aggregate: q.aggregate, ...(q.bucket ? { bucket: q.bucket } : {}) }, correlationId);
  }

  /** 404 listing the server's tools when it has no such tool (from the registry's cached listing). */
  private async knownTool(serverName: string, tool: string, correlationId: string): Promise<void> {
    const server = await this.mcp.server(serverName, correlationId);
    if (server.tools.length > 0 && !server.tools.includes(tool)) {
      throw new AppError('not_found', `MCP server "${serverName}" has no tool "${tool}"`, { server: serverName, tool, valid: server.tools });
    }
  }
}

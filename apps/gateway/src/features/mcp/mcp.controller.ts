import { Controller, Get, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import { checkedWorkflowInput } from '@switchyard/workflow-executions';
import { CorrelationId, type GatewayRequest } from '../../http/context.js';
import { ZodBody, ZodParams, ZodQuery } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import { GetWorkflowDefinition } from '../workflows/queries/get-workflow-definition.js';
import { GATEWAY_CONFIG, GATEWAY_OPTIONS, type GatewayConfig, type ResolvedGatewayOptions } from '../../tokens.js';
import type { ToolCallOutcome } from './mcp-client.js';
import { CallMcpTool } from './commands/index.js';
import { IdempotencyKey } from '../../idempotency/keys.js';
import { GetMcpServer, GetMcpServersHealth, ListMcpTools, ReadMcpTool } from './queries/index.js';
import { namedToPositional } from './named-params.js';
import { assertToolAllowed, toolAccessOf, type WriterAccess } from './writer-policy.js';
import {
  analyticsQuery,
  automationTriggerBody,
  callBody,
  databaseQueryBody,
  fetchBody,
  healthListResponse,
  mailboxQuery,
  mailboxResponse,
  triggerParams,
  triggerResponse,
  metricParams,
  operationBody,
  operationParams,
  serverHealthResponse,
  serverNameParams,
  toolResultResponse,
} from './schemas.js';

/** Server names of the six roles in the default registry (the seed's layout). */
const ROLE_SERVERS = {
  filesystem: 'filesystem',
  database: 'database',
  github: 'github',
  fetch: 'fetch',
  automation: 'automation',
  analytics: 'analytics',
} as const;
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
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    @Inject(GATEWAY_OPTIONS) options: ResolvedGatewayOptions,
  ) {
    this.writerAccess = toolAccessOf(options, config);
  }

  @Get('health')
  @ApiRoute({
    summary: 'Health of every MCP server (state, breaker, tools)',
    tags: ['mcp'],
    role: 'viewer',
    response: { status: 200, schema: healthListResponse },
    errors: [503],
  })
  healthAll(@CorrelationId() correlationId: string) {
    return this.queries.execute(new GetMcpServersHealth(correlationId));
  }

  @Get('health/:server_name')
  @ApiRoute({
    summary: 'Health of one MCP server, probed now',
    tags: ['mcp'],
    role: 'viewer',
    response: { status: 200, schema: serverHealthResponse },
    errors: [404, 503],
  })
  healthOne(@ZodParams(serverNameParams) p: z.infer<typeof serverNameParams>, @CorrelationId() correlationId: string) {
    return this.queries.execute(new GetMcpServer(p.server_name, correlationId, true));
  }

  @Get('tools/:server_name')
  @ApiRoute({
    summary: "One MCP server's tools with their descriptions and input schemas (JSON Schema)",
    tags: ['mcp'],
    role: 'viewer',
    response: { status: 200, schema: toolListResponse },
    errors: [404, 503],
  })
  toolList(@ZodParams(serverNameParams) p: z.infer<typeof serverNameParams>, @CorrelationId() correlationId: string) {
    return this.queries.execute(new ListMcpTools(p.server_name, correlationId));
  }

  @Post('call')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Call any tool of any registered MCP server',
    description:
      'The database_writer server needs an admin key and DATABASE_ALLOW_WRITES=true, and automation/list_mailbox an admin key, as its REST route does (403 otherwise).',
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse },
    errors: [...errors, 403],
  })
  async call(
    @ZodBody(callBody) b: z.infer<typeof callBody>,
    @CorrelationId() correlationId: string,
    @Req() req: GatewayRequest,
    @IdempotencyKey() requestKey: string | undefined,
  ): Promise<ToolCallOutcome> {
    assertToolAllowed(b.server, b.tool, req, this.writerAccess);
    return this.commands.execute(
      new CallMcpTool(b.server, b.tool, b.arguments, correlationId, {
        timeoutMs: b.timeout_ms,
        checkTool: true,
        requestKey,
      }),
    );
  }

  @Post('filesystem/:operation')
  @HttpCode(200)
  @ApiRoute({
    summary:
      'File operations through the filesystem server (operation = tool name, e.g. read_file, write_file, list_directory)',
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse },
    errors,
  })
  async filesystem(
    @ZodParams(operationParams) p: z.infer<typeof operationParams>,
    @ZodBody(operationBody) body: Record<string, unknown>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() requestKey: string | undefined,
  ) {
    return this.commands.execute(
      new CallMcpTool(ROLE_SERVERS.filesystem, p.operation, body, correlationId, { checkTool: true, requestKey }),
    );
  }

  @Post('database/query')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Parameterized SQL through the database server (read-only unless the server allows writes)',
    description:
      'params is an object for `:name` placeholders (as in the seed) or an array for `$1..$n`. Values are never spliced into the SQL.',
    tags: ['mcp'],
    role: 'operator',
    response: {
      status: 200,
      schema: toolResultResponse,
      example: {
        server: 'database',
        tool: 'query',
        duration_ms: 3.2,
        result: { rows: [{ total: 42 }], row_count: 1, truncated: false },
        content: [],
      },
    },
    errors: [400, 403, 404, 408, 422, 503, 504],
  })
  database(
    @ZodBody(databaseQueryBody) b: z.infer<typeof databaseQueryBody>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() requestKey: string | undefined,
  ) {
    const { sql, params } = Array.isArray(b.params)
      ? { sql: b.query, params: b.params }
      : namedToPositional(b.query, b.params);
    return this.commands.execute(
      new CallMcpTool(
        ROLE_SERVERS.database,
        'query',
        { sql, params, ...(b.max_rows ? { max_rows: b.max_rows } : {}) },
        correlationId,
        { requestKey },
      ),
    );
  }

  @Post('github/:operation')
  @HttpCode(200)
  @ApiRoute({
    summary:
      'GitHub operations (repositories, commits, pull requests) through the GitHub server; 503 when no token is configured',
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse },
    errors,
  })
  async github(
    @ZodParams(operationParams) p: z.infer<typeof operationParams>,
    @ZodBody(operationBody) body: Record<string, unknown>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() requestKey: string | undefined,
  ) {
    const server = await this.queries.execute(new GetMcpServer(ROLE_SERVERS.github, correlationId));
    if (server.state === 'unconfigured') {
      // Not retryable (and so no Retry-After): it stays so until the token is set.
      throw new AppError(
        'unavailable',
        'the GitHub MCP server is not configured: set GITHUB_PERSONAL_ACCESS_TOKEN',
        { server: 'github', state: 'unconfigured' },
        false,
      );
    }
    return this.commands.execute(
      new CallMcpTool(ROLE_SERVERS.github, p.operation, body, correlationId, { checkTool: true, requestKey }),
    );
  }

  @Post('fetch')
  @HttpCode(200)
  @ApiRoute({
    summary: 'HTTP request or page scrape through the fetch server (SSRF-guarded)',
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse },
    errors: [400, 403, 404, 413, 422, 503, 504],
  })
  fetch(
    @ZodBody(fetchBody) b: z.infer<typeof fetchBody>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() requestKey: string | undefined,
  ) {
    if (b.extract === 'text') {
      return this.commands.execute(
        new CallMcpTool(
          ROLE_SERVERS.fetch,
          'fetch_text',
          {
            url: b.url,
            ...(b.timeout_ms ? { timeout_ms: b.timeout_ms } : {}),
            ...(b.max_bytes ? { max_bytes: b.max_bytes } : {}),
            ...(b.headers ? { headers: b.headers } : {}),
          },
          correlationId,
          { requestKey },
        ),
      );
    }
    const body = typeof b.body === 'object' ? JSON.stringify(b.body) : b.body;
    const headers = typeof b.body === 'object' ? { 'content-type': 'application/json', ...b.headers } : b.headers;
    return this.commands.execute(
      new CallMcpTool(
        ROLE_SERVERS.fetch,
        'http_request',
        {
          url: b.url,
          method: b.method,
          ...(headers ? { headers } : {}),
          ...(body !== undefined ? { body } : {}),
          ...(b.timeout_ms ? { timeout_ms: b.timeout_ms } : {}),
          ...(b.max_bytes ? { max_bytes: b.max_bytes } : {}),
        },
        correlationId,
        { requestKey },
      ),
    );
  }

  @Post('automation/trigger')
  @HttpCode(200)
  @ApiRoute({
    summary:
      'Trigger a workflow (`template_id`, `input`) or send a signed webhook (`webhook`, `event`, `payload`) through the automation server',
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse },
    errors,
  })
  async automation(
    @ZodBody(automationTriggerBody) b: z.infer<typeof automationTriggerBody>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() requestKey: string | undefined,
  ) {
    // The trigger is started later by the engine, which refuses an unknown template or a bad
    // input there, where its caller no longer hears of it: check both now, as a start would.
    if ('template_id' in b) {
      const { definition } = await this.queries.execute(new GetWorkflowDefinition(b.template_id));
      checkedWorkflowInput(definition, b.input ?? {});
    }
    return 'template_id' in b
      ? this.commands.execute(
          new CallMcpTool(
            ROLE_SERVERS.automation,
            'trigger_workflow',
            { template_id: b.template_id, input: b.input },
            correlationId,
            { requestKey },
          ),
        )
      : this.commands.execute(
          new CallMcpTool(
            ROLE_SERVERS.automation,
            'send_webhook',
            {
              webhook: b.webhook,
              event: b.event,
              payload: b.payload,
              ...(b.idempotency_key ? { idempotency_key: b.idempotency_key } : {}),
            },
            correlationId,
            { requestKey },
          ),
        );
  }

  @Get('automation/triggers/:trigger_id')
  @ApiRoute({
    summary: 'How a workflow trigger stands: pending, started (with its execution) or failed (with why)',
    description:
      "The `trigger_id` that `POST /api/v1/integration/mcp/automation/trigger` answered, or that a schedule recorded (the automation server's `get_trigger` tool).",
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: triggerResponse },
    errors: [400, 404, 503, 504],
  })
  async trigger(@ZodParams(triggerParams) p: z.infer<typeof triggerParams>, @CorrelationId() correlationId: string) {
    const r = await this.queries.execute(
      new ReadMcpTool(ROLE_SERVERS.automation, 'get_trigger', { trigger_id: p.trigger_id }, correlationId),
    );
    return (r.result as { trigger: unknown }).trigger;
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
    const r = await this.queries.execute(
      new ReadMcpTool(
        ROLE_SERVERS.automation,
        'list_mailbox',
        { limit: q.limit, ...(q.to ? { to: q.to } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) },
        correlationId,
      ),
    );
    return r.result;
  }

  @Get('analytics/:metric')
  @ApiRoute({
    summary: 'Aggregate a metric over a window through the analytics server',
    description:
      "Operator: the figures are what workflows recorded from their steps' outputs (revenue totals, counts), which a viewer reads redacted everywhere else.",
    tags: ['mcp'],
    role: 'operator',
    response: { status: 200, schema: toolResultResponse },
    errors,
  })
  analytics(
    @ZodParams(metricParams) p: z.infer<typeof metricParams>,
    @ZodQuery(analyticsQuery) q: z.infer<typeof analyticsQuery>,
    @CorrelationId() correlationId: string,
  ) {
    return this.queries.execute(
      new ReadMcpTool(
        ROLE_SERVERS.analytics,
        'query_metric',
        { name: p.metric, window: q.window, aggregate: q.aggregate, ...(q.bucket ? { bucket: q.bucket } : {}) },
        correlationId,
      ),
    );
  }
}

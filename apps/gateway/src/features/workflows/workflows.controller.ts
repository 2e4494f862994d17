import { Controller, Get, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import type { Response } from 'express';
import { z } from 'zod';
import { validateDefinition } from '@switchyard/domain';
import { CorrelationId, type GatewayRequest } from '../../http/context.js';
import { waitWithin } from '../../http/wait.js';
import { GATEWAY_CONFIG, GATEWAY_OPTIONS, type GatewayConfig, type ResolvedGatewayOptions } from '../../tokens.js';
import { IdempotencyKey } from '../../idempotency/keys.js';
import { assertWriterAllowed, writerServersUsed } from '../mcp/writer-policy.js';
import { ZodBody, ZodParams, ZodQuery } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import { eventsForCaller, executionDetailForCaller } from '../../events/redaction.js';
import { toEventJson } from '../../events/schemas.js';
import { CancelWorkflowExecution } from './commands.js';
import { executionEvents, listExecutions } from './deps.js';
import {
  adHocBody,
  cancelBody,
  definitionBody,
  definitionsQuery,
  cancelResponse,
  definitionsResponse,
  registeredResponse,
  eventsResponse,
  executionDetailResponse,
  executionListResponse,
  executionParams,
  listQuery,
  startBody,
  startedResponse,
  templatesResponse,
  templateParams,
  waitQuery,
} from './schemas.js';
import { WorkflowsService } from './workflows.service.js';

const validationResponse = z.object({
  valid: z.boolean(),
  errors: z.array(z.object({ path: z.string(), message: z.string(), code: z.string().optional() })),
  definition: z.unknown().optional().describe('The definition as it would be registered (defaults filled in), when valid'),
});

const summaryOf = (d: { id: string; version: number; name: string; description: string; input: unknown; steps: { id: string; uses: string; needs: string[] }[] }) => ({
  id: d.id,
  version: d.version,
  name: d.name,
  description: d.description,
  input: d.input,
  steps: d.steps.map((s) => ({ id: s.id, uses: s.uses, needs: s.needs })),
});

@Controller('api/v1/workflows')
export class WorkflowsController {
  constructor(
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
  ) {}

  @Get('templates')
  @ApiRoute({ summary: 'The built-in workflow templates', tags: ['workflows'], role: 'viewer', response: { schema: templatesResponse } })
  async templates() {
    const rows = await this.svc.definitions.list({ source: 'builtin' });
    return { templates: rows.map((r) => summaryOf(r.definition)) };
  }

  @Post('start/:template_id')
  @HttpCode(202)
  @ApiRoute({
    summary: 'Start an execution of a template or registered definition (body = workflow input)',
    description: '202 with the execution id; `?wait=true` waits up to `wait_ms` and answers 200 with the result when it ended.',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: startedResponse },
    alsoAnswers: [{ status: 200, description: 'With `wait=true`: the execution ended within the wait; its output or error', schema: startedResponse }],
    errors: [400, 404],
  })
  async start(
    @ZodParams(templateParams) p: z.infer<typeof templateParams>,
    @ZodQuery(waitQuery) q: z.infer<typeof waitQuery>,
    @ZodBody(startBody) input: z.infer<typeof startBody>,
    @CorrelationId() correlationId: string,
    @Res({ passthrough: true }) res: Response,
    @IdempotencyKey() idempotencyKey: string | undefined,
  ) {
    const { definition } = await this.svc.definitions.get(p.template_id, q.version);
    const r = await this.svc.start(definition, input, correlationId, { wait: q.wait, waitMs: waitWithin(q.wait_ms, this.options.requestTimeoutMs), idempotencyKey });
    res.status(r.status);
    return r.body;
  }

  @Get('executions')
  @ApiRoute({ summary: 'Executions, newest first (filter by status, template, start time; keyset paged)', tags: ['workflows'], role: 'viewer', response: { schema: executionListResponse } })
  async list(@ZodQuery(listQuery) q: z.infer<typeof listQuery>) {
    const page = await listExecutions(this.svc.pool, {
      status: q.status,
      definitionId: q.template,
      startedAfter: q.started_after,
      startedBefore: q.started_before,
      limit: q.limit,
      cursor: q.cursor,
    });
    const next = page.next_cursor
      ? `/api/v1/workflows/executions?${new URLSearchParams({ ...Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)])), cursor: page.next_cursor })}`
      : null;
    return { ...page, next };
  }

  @Get('executions/:execution_id')
  @ApiRoute({ summary: 'One execution: status, every step with attempts, timings, inputs/outputs, errors', tags: ['workflows'], role: 'viewer', response: { schema: executionDetailResponse }, errors: [404] })
  async detail(@ZodParams(executionParams) p: z.infer<typeof executionParams>) {
    return executionDetailForCaller(await this.svc.detail(p.execution_id));
  }

  @Post('executions/:execution_id/cancel')
  @HttpCode(202)
  @ApiRoute({ summary: 'Cancel an execution (compensations run; it ends canceled)', tags: ['workflows'], role: 'operator', response: { status: 202, schema: cancelResponse, example: { execution_id: 'wf_3f2a', status: 'canceling' } }, errors: [404, 409] })
  async cancel(@ZodParams(executionParams) p: z.infer<typeof executionParams>, @ZodBody(cancelBody) b: z.infer<typeof cancelBody>, @CorrelationId() correlationId: string) {
    const r = await this.commands.execute(new CancelWorkflowExecution(p.execution_id, b.reason, correlationId));
    return { execution_id: p.execution_id, status: r.status };
  }

  @Get('executions/:execution_id/events')
  @ApiRoute({ summary: 'The full event history of an execution (audit, replay)', tags: ['workflows'], role: 'viewer', response: { schema: eventsResponse }, errors: [404] })
  async events(@ZodParams(executionParams) p: z.infer<typeof executionParams>) {
    const events = await executionEvents(this.svc.store, p.execution_id);
    return { execution_id: p.execution_id, events: eventsForCaller(events.map(toEventJson)) };
  }

  @Post('definitions')
  @HttpCode(201)
  @ApiRoute({
    summary: 'Register a workflow definition (validated against the MCP registry, agent task types and known definitions)',
    description: '400 lists every problem with its path (a dependency cycle is named, e.g. `a -> b -> a`); 409 when that version exists with other content.',
    tags: ['workflows'],
    role: 'admin',
    response: { status: 201, schema: registeredResponse },
    alsoAnswers: [{ status: 200, description: 'That id and version existed with the same content: nothing new (`created: false`)', schema: registeredResponse }],
    errors: [400, 409],
  })
  async register(@ZodBody(definitionBody) body: z.infer<typeof definitionBody>, @Res({ passthrough: true }) res: Response) {
    const r = await this.svc.definitions.register(body, await this.svc.catalog(body));
    if (!r.created) res.status(200);
    return { definition: r.definition, created: r.created };
  }

  @Post('definitions/validate')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Validate a workflow definition without registering it (the same checks as registering; no side effects)',
    description: 'Always 200 for a JSON object: `valid`, and every problem with its path (a dependency cycle is named). The designer of the console calls it as one types.',
    tags: ['workflows'],
    role: 'viewer',
    response: { status: 200, schema: validationResponse },
  })
  async validateOnly(@ZodBody(definitionBody) body: z.infer<typeof definitionBody>) {
    const v = validateDefinition(body, await this.svc.catalog(body));
    if (v.ok) return { valid: true, errors: [], definition: v.definition };
    return { valid: false, errors: v.problems.map((p) => ({ path: p.path, message: p.message, code: p.code })) };
  }

  @Get('definitions')
  @ApiRoute({ summary: 'Workflow definitions (latest version of each, or every version with all_versions)', tags: ['workflows'], role: 'viewer', response: { schema: definitionsResponse } })
  async definitionsList(@ZodQuery(definitionsQuery) q: z.infer<typeof definitionsQuery>) {
    const rows = await this.svc.definitions.list({ id: q.id, allVersions: q.all_versions });
    return { definitions: rows.map((r) => ({ ...r.definition, source: r.source, created_at: r.createdAt })) };
  }
}

@Controller('api/v1/integration/agents')
export class AdHocWorkflowController {
  constructor(
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
  ) {}

  @Post('workflow')
  @HttpCode(202)
  @ApiRoute({
    summary: 'Run an ad-hoc multi-agent workflow: a definition inline plus its input',
    description: 'The definition is validated like a registered one (400 lists every problem). 202 with the execution id; `?wait=true` waits for the result.',
    tags: ['workflows', 'agents'],
    role: 'operator',
    response: { status: 202, schema: startedResponse },
    alsoAnswers: [{ status: 200, description: 'With `wait=true`: the execution ended within the wait; its output or error', schema: startedResponse }],
    errors: [400, 403],
  })
  async run(
    @ZodBody(adHocBody) b: z.infer<typeof adHocBody>,
    @ZodQuery(waitQuery) q: z.infer<typeof waitQuery>,
    @CorrelationId() correlationId: string,
    @Res({ passthrough: true }) res: Response,
    @IdempotencyKey() idempotencyKey: string | undefined,
    @Req() req: GatewayRequest,
  ) {
    // An ad-hoc step naming the database writer is a direct write: the same rule as POST /mcp/call.
    for (const server of writerServersUsed(b.definition.steps as { uses?: unknown }[] | undefined)) {
      assertWriterAllowed(server, req, { authEnabled: this.options.auth.enabled, writesAllowed: this.config.DATABASE_ALLOW_WRITES === true });
    }
    const def = await this.svc.validate({ version: 1, name: String(b.definition.id ?? 'ad-hoc workflow'), ...b.definition });
    const r = await this.svc.start(def, b.input, correlationId, { wait: q.wait, waitMs: waitWithin(q.wait_ms, this.options.requestTimeoutMs), idempotencyKey });
    res.status(r.status);
    return r.body;
  }
}

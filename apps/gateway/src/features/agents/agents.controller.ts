import { Controller, Delete, Get, Headers, HttpCode, Inject, Post, Res } from '@nestjs/common';
import type { EdgeReply as Response } from '../../http/edge.js';
import { z } from 'zod';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import {
  agentHealthView,
  registerAgentReply,
  capabilitiesReply,
  performanceReply,
  taskView,
  unregisterAgentReply,
} from '@switchyard/contracts';
import { CorrelationId } from '../../http/context.js';
import { waitWithin } from '../../http/wait.js';
import { GATEWAY_OPTIONS, type ResolvedGatewayOptions } from '../../tokens.js';
import { taskViewForCaller } from '../../events/redaction.js';
import { ZodBody, ZodParams, ZodQuery } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import type { DelegateRequest } from './agents.client.js';
import { CancelTask, DelegateTask, RegisterExternalAgent, UnregisterExternalAgent } from './commands/index.js';
import {
  GetAgentCapabilities,
  GetAgentHealth,
  GetAgentPerformance,
  GetAgentsHealth,
  GetTask,
} from './queries/index.js';
import {
  agentParams,
  agentsHealthResponse,
  cancelBody,
  delegateBody,
  delegatedResponse,
  delegationErrors,
  waitedAnswer,
  externalAgentBody,
  externalAgentExample,
  externalAgentParams,
  quickActions,
  taskParams,
  waitQuery,
  type DelegateBody,
  type WaitQuery,
} from './schemas.js';

/** 202 with the task (agent or `queued`), or 200 with the result when `wait=true` saw it end. */
async function delegateAndAnswer(
  commands: CommandBus,
  req: DelegateRequest,
  q: WaitQuery,
  correlationId: string,
  idempotencyKey: string | undefined,
  res: Response,
  requestTimeoutMs: number,
) {
  const out = await commands.execute(
    new DelegateTask(
      req,
      correlationId,
      idempotencyKey || undefined,
      q.wait ? waitWithin(q.wait_ms, requestTimeoutMs) : undefined,
    ),
  );
  res.status(out.status);
  return out.body;
}

const headerKey = (h: Record<string, string | undefined>) => h['idempotency-key'];

@Controller('api/v1/integration/agents')
export class AgentsController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
  ) {}

  @Get('health')
  @ApiRoute({
    summary: 'Health of every agent and its instances',
    tags: ['agents'],
    role: 'viewer',
    response: { schema: agentsHealthResponse },
    errors: [503],
  })
  health(@CorrelationId() cid: string) {
    return this.queries.execute(new GetAgentsHealth(cid));
  }

  @Get('health/:agent_name')
  @ApiRoute({
    summary: 'Health of one agent',
    tags: ['agents'],
    role: 'viewer',
    response: { schema: agentHealthView },
    errors: [404, 503],
  })
  agentHealth(@ZodParams(agentParams) p: z.output<typeof agentParams>, @CorrelationId() cid: string) {
    return this.queries.execute(new GetAgentHealth(p.agent_name, cid));
  }

  @Post('delegate')
  @HttpCode(202)
  @ApiRoute({
    summary: 'Delegate a task to the best capable agent',
    description:
      '202 with the task id and the chosen agent (or `queued` when no instance is free or up). `?wait=true` waits (up to `wait_ms`) and answers 200 with the result. ' +
      '`task_type` is a task type or one of its aliases (e.g. `analyze_revenue` for `revenue_analysis`; see `aliases` in GET /capabilities): an alias runs its canonical type, and the task records both. ' +
      "`context` takes the fields of the task type's `input_schema` (GET /capabilities) and nothing else: an unknown field is a 400 naming it and, when one is close, the field meant (`did you mean customerId?`). " +
      "A camelCase field also takes its snake_case spelling (`customer_id` for `customerId`; `context_aliases` in GET /capabilities), recorded and run under the schema's name; both spellings at once are a 400. " +
      'Unknown task_type: 400 listing the valid ones; bad context: 400 naming the field. An `Idempotency-Key` header makes retries return the same task.',
    tags: ['agents'],
    role: 'operator',
    response: { status: 202, schema: delegatedResponse },
    alsoAnswers: [waitedAnswer],
    errors: delegationErrors,
  })
  delegate(
    @ZodBody(delegateBody) body: DelegateBody,
    @ZodQuery(waitQuery) q: WaitQuery,
    @Headers() headers: Record<string, string | undefined>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    const req: DelegateRequest = {
      task_type: body.task_type,
      context: body.context,
      priority: body.priority,
      ...(body.agent ? { agent: body.agent } : {}),
      ...(body.timeout_ms ? { timeout_ms: body.timeout_ms } : {}),
    };
    return delegateAndAnswer(this.commands, req, q, cid, headerKey(headers), res, this.options.requestTimeoutMs);
  }

  @Get('capabilities')
  @ApiRoute({
    summary: 'Capability cards: agents, their task types (with aliases) and input schemas',
    tags: ['agents'],
    role: 'viewer',
    response: { schema: capabilitiesReply },
  })
  capabilities(@CorrelationId() cid: string) {
    return this.queries.execute(new GetAgentCapabilities(cid));
  }

  @Get('tasks/:task_id')
  @ApiRoute({
    summary: 'A delegated task: status, agent, attempts, result or error',
    tags: ['agents'],
    role: 'viewer',
    response: { schema: taskView },
    errors: [404],
  })
  async task(@ZodParams(taskParams) p: z.output<typeof taskParams>, @CorrelationId() cid: string) {
    return taskViewForCaller(await this.queries.execute(new GetTask(p.task_id, cid)));
  }

  @Post('tasks/:task_id/cancel')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Cancel a queued or running task',
    tags: ['agents'],
    role: 'operator',
    response: { schema: taskView },
    errors: [404, 409],
  })
  cancel(
    @ZodParams(taskParams) p: z.output<typeof taskParams>,
    @ZodBody(cancelBody) body: z.output<typeof cancelBody>,
    @CorrelationId() cid: string,
  ) {
    return this.commands.execute(new CancelTask(p.task_id, body.reason, cid));
  }

  @Get('performance')
  @ApiRoute({
    summary: 'Per agent: tasks done, success rate, latency p50/p95',
    description:
      "A task that failed through its caller's input (the agent answered validation, not_found or illegal_state for it: a bad context, an unknown customer, no active subscription) " +
      "counts in `caller_errors`, not `failed`, and is left out of `success_rate`: another agent would have answered the same. The agent's own failures (an exception of its handler, a timeout, an agent unavailable) count against it.",
    tags: ['agents'],
    role: 'viewer',
    response: { schema: performanceReply },
  })
  performance(@CorrelationId() cid: string) {
    return this.queries.execute(new GetAgentPerformance(cid));
  }

  @Post('external')
  @HttpCode(201)
  @ApiRoute({
    summary:
      'Register (or replace) an external agent reached over the HTTP agent contract, or an A2A agent by its card',
    description:
      'The dispatcher stores it (it stays registered across dispatcher restarts and failovers), probes `GET <url>/health` and sends it tasks of its `task_types` ' +
      '(`POST <url>/execute`, with `Authorization: Bearer <token>` when a token is given). With `a2a_card_url` instead of `url` and `task_types`, it is an A2A agent: ' +
      'the card is fetched (egress guard), its JSON-RPC URL and skills become `url` and `task_types`, the card is its health probe, and tasks go to it with `message/send` (docs/a2a.md). ' +
      'Answers with its health view and `registration`: 201 `created` when new (or registered again after a removal), 200 `replaced` when it changed a registration, ' +
      '200 `unchanged` for the same registration again (nothing recorded). The token is never echoed nor put in events. ' +
      'The names of the built-in agents are refused (400).',
    tags: ['agents'],
    role: 'admin',
    requestExample: externalAgentExample,
    response: { status: 201, schema: registerAgentReply },
    alsoAnswers: [
      { status: 200, description: 'It was registered already: replaced or unchanged', schema: registerAgentReply },
    ],
    errors: [503],
  })
  async registerExternal(
    @ZodBody(externalAgentBody) body: z.output<typeof externalAgentBody>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    const r = await this.commands.execute(new RegisterExternalAgent(body, cid));
    if (r.registration === 'replaced' || r.registration === 'unchanged') res.status(200);
    return r;
  }

  @Delete('external/:agent_name')
  @ApiRoute({
    summary: 'Remove a registered external agent',
    description:
      'No new task goes to it; tasks running there go back to the queue (retried elsewhere). 404 for a name not registered; built-in agents are refused (400).',
    tags: ['agents'],
    role: 'admin',
    response: { schema: unregisterAgentReply, example: { removed: externalAgentExample.name } },
    errors: [404, 503],
  })
  removeExternal(
    @ZodParams(externalAgentParams) p: z.output<typeof externalAgentParams>,
    @CorrelationId() cid: string,
  ) {
    return this.commands.execute(new UnregisterExternalAgent(p.agent_name, cid));
  }
}

type QuickName = keyof typeof quickActions;

/** Quick actions: delegate with a fixed task type and a small body (same answers as /agents/delegate). */
@Controller('api/v1/integration/quick')
export class QuickActionsController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
  ) {}

  private run(
    name: QuickName,
    body: Record<string, unknown> & { priority: DelegateRequest['priority'] },
    q: WaitQuery,
    h: Record<string, string | undefined>,
    cid: string,
    res: Response,
  ) {
    const action = quickActions[name];
    const { priority, ...rest } = body;
    const context = (action.context as (b: Record<string, unknown>) => Record<string, unknown>)(rest);
    return delegateAndAnswer(
      this.commands,
      { task_type: action.taskType, context, priority },
      q,
      cid,
      headerKey(h),
      res,
      this.options.requestTimeoutMs,
    );
  }

  @Post('analyze-revenue')
  @HttpCode(202)
  @ApiRoute({
    summary: quickActions['analyze-revenue'].summary,
    tags: ['agents'],
    role: 'operator',
    response: { status: 202, schema: delegatedResponse },
    alsoAnswers: [waitedAnswer],
    errors: delegationErrors,
  })
  analyzeRevenue(
    @ZodBody(quickActions['analyze-revenue'].body) b: z.output<(typeof quickActions)['analyze-revenue']['body']>,
    @ZodQuery(waitQuery) q: WaitQuery,
    @Headers() h: Record<string, string | undefined>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    return this.run('analyze-revenue', b, q, h, cid, res);
  }

  @Post('generate-proposal')
  @HttpCode(202)
  @ApiRoute({
    summary: quickActions['generate-proposal'].summary,
    tags: ['agents'],
    role: 'operator',
    response: { status: 202, schema: delegatedResponse },
    alsoAnswers: [waitedAnswer],
    errors: delegationErrors,
  })
  generateProposal(
    @ZodBody(quickActions['generate-proposal'].body) b: z.output<(typeof quickActions)['generate-proposal']['body']>,
    @ZodQuery(waitQuery) q: WaitQuery,
    @Headers() h: Record<string, string | undefined>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    return this.run('generate-proposal', b, q, h, cid, res);
  }

  @Post('optimize-schedule')
  @HttpCode(202)
  @ApiRoute({
    summary: quickActions['optimize-schedule'].summary,
    tags: ['agents'],
    role: 'operator',
    response: { status: 202, schema: delegatedResponse },
    alsoAnswers: [waitedAnswer],
    errors: delegationErrors,
  })
  optimizeSchedule(
    @ZodBody(quickActions['optimize-schedule'].body) b: z.output<(typeof quickActions)['optimize-schedule']['body']>,
    @ZodQuery(waitQuery) q: WaitQuery,
    @Headers() h: Record<string, string | undefined>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    return this.run('optimize-schedule', b, q, h, cid, res);
  }

  @Post('customer-support')
  @HttpCode(202)
  @ApiRoute({
    summary: quickActions['customer-support'].summary,
    tags: ['agents'],
    role: 'operator',
    response: { status: 202, schema: delegatedResponse },
    alsoAnswers: [waitedAnswer],
    errors: delegationErrors,
  })
  customerSupport(
    @ZodBody(quickActions['customer-support'].body) b: z.output<(typeof quickActions)['customer-support']['body']>,
    @ZodQuery(waitQuery) q: WaitQuery,
    @Headers() h: Record<string, string | undefined>,
    @CorrelationId() cid: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    return this.run('customer-support', b, q, h, cid, res);
  }
}

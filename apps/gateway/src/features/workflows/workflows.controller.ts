import { Readable } from 'node:stream';
import { workflowExecutionStream } from '@switchyard/domain';
import { Controller, Delete, Get, Headers, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { EdgeReply as Response } from '../../http/edge.js';
import { z } from 'zod';
import { CorrelationId, currentActor, type GatewayRequest } from '../../http/context.js';
import { waitWithin } from '../../http/wait.js';
import { PayloadReads } from '../../http/payload-reads.js';
import { watchStreamedAnswer } from '../../http/unread-stream-bound.js';
import { GATEWAY_CONFIG, GATEWAY_OPTIONS, type GatewayConfig, type ResolvedGatewayOptions } from '../../tokens.js';
import { commandIdForKey, IdempotencyKey } from '../../idempotency/keys.js';
import { WithoutIdempotency } from '../../idempotency/interceptor.js';
import { AppError, jsonStream } from '@switchyard/platform';
import { assertToolAllowed, guardedToolsUsed, toolAccessOf, toolCallerOf } from '../mcp/writer-policy.js';
import { ZodBody, ZodParams, ZodQuery } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import {
  callerSeesAdminToolPayloads,
  callerSeesRedactedPayloads,
  definitionArgumentsRedacted,
  executionDetailForCaller,
  executionStreamCallsAdminTool,
  executionSummaryForCaller,
} from '../../events/redaction.js';
import {
  CancelWorkflowExecution,
  DeleteWorkflowDefinition,
  ForkWorkflowExecution,
  RegisterWorkflowDefinition,
  RetryWorkflowExecution,
  SignalWorkflowExecution,
} from './commands/index.js';
import {
  CheckDefinitionVersion,
  GetExecution,
  GetExecutionEvents,
  GetExecutionHistory,
  GetWorkflowDefinition,
  ListExecutions,
  ListWorkflowDefinitions,
  ListWorkflowTemplates,
  ValidateWorkflowDefinition,
} from './queries/index.js';
import { EXECUTION_DETAIL_COMPONENT, executionDetailResponse } from './execution-detail.js';
import { executionIdForKey } from '../../idempotency/keys.js';
import {
  adHocBody,
  cancelBody,
  definitionBody,
  definitionsQuery,
  definitionParams,
  deleteDefinitionQuery,
  definitionDeletedResponse,
  detailQuery,
  cancelResponse,
  definitionsResponse,
  registeredResponse,
  eventsResponse,
  executionListResponse,
  executionParams,
  listQuery,
  startBody,
  SIGNAL_PAYLOAD_MAX_BYTES,
  signalBody,
  signalParams,
  signalResponse,
  startedResponse,
  templatesResponse,
  templateParams,
  waitQuery,
  checkBody,
  checkParams,
  checkResponse,
  forkBody,
  forkResponse,
  eventsQuery,
  historyQuery,
  historyResponse,
  retryBody,
  retryResponse,
} from './schemas.js';
import { executionLinks, WorkflowsService } from './workflows.service.js';
import {
  MIN_POSITION_HEADER,
  minPositionOf,
  READ_CHECKPOINT_HEADER,
  READ_SOURCE_HEADER,
  READ_STALE_HEADER,
} from '../../http/read-routing.js';

const READ_YOUR_WRITES =
  "Read your writes: give the `position` a start answered with in `X-Switchyard-Min-Position` (or `min_position`) to read once the read model has applied it: the replica's (DATABASE_READ_URL) after a bounded wait, else the primary's after a bounded wait; `X-Switchyard-Read-Source` says which answered. A list whose read model had not applied it by then answers what it has with `X-Switchyard-Read-Stale: true` and `X-Switchyard-Read-Checkpoint: <the position it had applied>`; so does, at once, one given a position past the event log's head (no command answered with it).";

const validationResponse = z.object({
  valid: z.boolean(),
  errors: z.array(z.object({ path: z.string(), message: z.string(), code: z.string().optional() })),
  definition: z
    .unknown()
    .optional()
    .describe('The definition as it would be registered (defaults filled in), when valid'),
});

@Controller('api/v1/workflows')
export class WorkflowsController {
  constructor(
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(PayloadReads) private readonly payloadReads: PayloadReads,
  ) {}

  /**
   * Running an execution's recorded definition again (fork without a version, retry) is starting
   * it: a definition that names the database writer and is not a registered one (an ad-hoc run)
   * needs what an ad-hoc start of it needs (admin key, DATABASE_ALLOW_WRITES). The command checks
   * it on the state it folds anyway.
   */
  private rerunAs(req: GatewayRequest) {
    return toolCallerOf(req, toolAccessOf(this.options, this.config));
  }

  @Get('templates')
  @ApiRoute({
    summary: 'The built-in workflow templates',
    tags: ['workflows'],
    role: 'viewer',
    response: { schema: templatesResponse },
  })
  templates() {
    return this.queries.execute(new ListWorkflowTemplates());
  }

  @Post('start/:template_id')
  @HttpCode(202)
  @ApiRoute({
    summary: 'Start an execution of a template or registered definition (body = workflow input)',
    description:
      '202 with the execution id; `?wait=true` waits up to `wait_ms` and answers 200 with the result when it ended.',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: startedResponse },
    alsoAnswers: [
      {
        status: 200,
        description: 'With `wait=true`: the execution ended within the wait; its output or error',
        schema: startedResponse,
      },
    ],
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
    const { definition } = await this.queries.execute(new GetWorkflowDefinition(p.template_id, q.version));
    const r = await this.svc.start(definition, input, correlationId, {
      wait: q.wait,
      waitMs: waitWithin(q.wait_ms, this.options.requestTimeoutMs),
      idempotencyKey,
    });
    res.status(r.status);
    return r.body;
  }

  @Get('executions')
  @ApiRoute({
    summary: 'Executions, newest first (filter by status, template, start time; keyset paged)',
    description: READ_YOUR_WRITES,
    tags: ['workflows'],
    role: 'viewer',
    response: { schema: executionListResponse },
  })
  async list(
    @ZodQuery(listQuery) q: z.infer<typeof listQuery>,
    @Headers(MIN_POSITION_HEADER) minHeader: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ) {
    // From a read model that has applied what the caller must see (min_position): the replica's, else the primary's.
    const { page, source, stale } = await this.queries.execute(
      new ListExecutions(
        { ...q, ...(q.definition_id !== undefined && { template: q.definition_id }) },
        minPositionOf(minHeader, q.min_position),
      ),
    );
    res.setHeader(READ_SOURCE_HEADER, source);
    // Not a silent stale page: the caller asked to see its write, and this page may not have it.
    if (stale) {
      res.setHeader(READ_STALE_HEADER, 'true');
      if (stale.checkpoint !== undefined) res.setHeader(READ_CHECKPOINT_HEADER, String(stale.checkpoint));
    }
    // A viewer sees what ran and how it ended, not the data it was given or made (as in the detail).
    // An execution that calls an admin-only tool reads so to anyone but an admin (its output may be the tool's answer).
    const redact = callerSeesRedactedPayloads();
    if (!redact && callerSeesAdminToolPayloads()) return page;
    const items = await Promise.all(
      page.items.map(async (x) =>
        redact || (await executionStreamCallsAdminTool(this.svc.store, workflowExecutionStream(x.execution_id)))
          ? executionSummaryForCaller(x, true)
          : x,
      ),
    );
    return { ...page, items };
  }

  @Get('executions/:execution_id')
  @ApiRoute({
    summary: 'One execution: status, every step with attempts, timings, inputs/outputs, errors',
    description:
      '`?at=<revision>`: the execution as it was right after that event of its stream (time travel), folded from the events; 400 past the last revision. ' +
      READ_YOUR_WRITES,
    tags: ['workflows'],
    role: 'viewer',
    response: { schema: executionDetailResponse, component: EXECUTION_DETAIL_COMPONENT },
    // 503: a read of whole payloads that found no turn (GATEWAY_PAYLOAD_READS).
    errors: [400, 404, 503],
  })
  async detail(
    @ZodParams(executionParams) p: z.infer<typeof executionParams>,
    @ZodQuery(detailQuery) q: z.infer<typeof detailQuery>,
    @Headers(MIN_POSITION_HEADER) minHeader: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ) {
    const { detail, source, whole } = await this.queries.execute(
      new GetExecution(
        p.execution_id,
        q.at,
        q.at === undefined ? minPositionOf(minHeader, q.min_position) : undefined,
        true,
      ),
    );
    if (source) res.setHeader(READ_SOURCE_HEADER, source);
    // A large execution's payloads go out as they come, in chunks (its stored JSON text verbatim):
    // serialised whole, 100 MB of them held the gateway's one thread for over a second. A viewer's
    // answer is redacted, small, and masked on the way out like any other.
    // A viewer reads no payloads; nor does anyone but an admin of an execution that calls an admin-only tool.
    const hide =
      callerSeesRedactedPayloads() ||
      (!callerSeesAdminToolPayloads() &&
        (await executionStreamCallsAdminTool(this.svc.store, workflowExecutionStream(p.execution_id))));
    if (whole && !hide) {
      res.setHeader('content-type', 'application/json; charset=utf-8');
      // HEAD: the same headers, and no body made for nobody (its turn ends with the headers).
      if (res.request.method === 'HEAD') return Readable.from([]);
      watchStreamedAnswer(res.raw);
      return jsonStream(detail);
    }
    return executionDetailForCaller(detail, hide);
  }

  @Get('executions/:execution_id/history')
  @ApiRoute({
    summary: "An execution's events, paged by revision (time travel: pass a revision to `GET .../executions/{id}?at=`)",
    tags: ['workflows'],
    role: 'viewer',
    response: { schema: historyResponse },
    errors: [400, 404],
  })
  history(
    @ZodParams(executionParams) p: z.infer<typeof executionParams>,
    @ZodQuery(historyQuery) q: z.infer<typeof historyQuery>,
  ) {
    return this.queries.execute(new GetExecutionHistory(p.execution_id, q.after ?? -1, q.limit));
  }

  @Post('executions/:execution_id/fork')
  @HttpCode(202)
  @ApiRoute({
    summary:
      'Fork an execution from a step: a new execution that copies the outputs of the steps before it and runs the rest',
    description:
      'Copied = the steps that succeeded in the source and are neither `from_step` nor downstream of it (in the source or the target version); their tools are not called again. ' +
      '`definition_version` runs another registered version of the same definition; 409 names copied steps it lacks. ' +
      'Only an ended source (completed, failed or canceled) is forked: 409 while it runs or cancels, as it could still undo what would be copied.',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: forkResponse },
    errors: [400, 403, 404, 409],
  })
  async fork(
    @ZodParams(executionParams) p: z.infer<typeof executionParams>,
    @ZodBody(forkBody) b: z.infer<typeof forkBody>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() idempotencyKey: string | undefined,
    @Req() req: GatewayRequest,
  ) {
    const id = idempotencyKey !== undefined ? executionIdForKey(idempotencyKey) : undefined;
    const r = await this.commands.execute(
      new ForkWorkflowExecution(
        p.execution_id,
        b.from_step,
        b.definition_version,
        b.input,
        correlationId,
        id,
        this.rerunAs(req),
      ),
    );
    return {
      execution_id: r.executionId,
      forked_from: p.execution_id,
      from_step: b.from_step,
      definition_id: r.definition.id,
      definition_version: r.definition.version,
      copied_steps: r.copied,
      rerun_steps: r.rerun,
      status: 'running',
      links: executionLinks(r.executionId),
    };
  }

  @Post('executions/:execution_id/retry')
  @HttpCode(202)
  @ApiRoute({
    summary:
      'Retry a failed execution: its failed, timed-out and unfinished steps and what depends on them run again, in the same execution',
    description:
      'Succeeded steps keep their outputs; the retried steps get new attempts (the history keeps both). 409 unless the execution failed.',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: retryResponse },
    errors: [403, 404, 409],
  })
  async retry(
    @ZodParams(executionParams) p: z.infer<typeof executionParams>,
    @ZodBody(retryBody) b: z.infer<typeof retryBody>,
    @CorrelationId() correlationId: string,
    @Req() req: GatewayRequest,
  ) {
    const r = await this.commands.execute(
      new RetryWorkflowExecution(p.execution_id, b.reason, correlationId, this.rerunAs(req)),
    );
    return { execution_id: p.execution_id, status: r.status, retried_steps: r.steps };
  }

  @Post('executions/:execution_id/cancel')
  @HttpCode(202)
  @ApiRoute({
    summary: 'Cancel an execution (compensations run; it ends canceled)',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: cancelResponse, example: { execution_id: 'wf_3f2a', status: 'canceling' } },
    errors: [404, 409],
  })
  async cancel(
    @ZodParams(executionParams) p: z.infer<typeof executionParams>,
    @ZodBody(cancelBody) b: z.infer<typeof cancelBody>,
    @CorrelationId() correlationId: string,
  ) {
    const r = await this.commands.execute(new CancelWorkflowExecution(p.execution_id, b.reason, correlationId));
    return { execution_id: p.execution_id, status: r.status };
  }

  @Post('executions/:execution_id/signals/:name')
  @HttpCode(202)
  @ApiRoute({
    summary: "Send a named signal to an execution (body = its JSON payload, which becomes the waiting step's output)",
    description:
      'Always recorded (`SignalReceived`) while the execution runs: consumed by the wait step waiting for it, buffered for a wait step not reached yet, ' +
      'or ignored (e.g. after that step timed out; `reason` says why). 404: unknown execution or no wait step takes that signal; 409: the execution has ended; ' +
      `413: payload over ${SIGNAL_PAYLOAD_MAX_BYTES} bytes. An Idempotency-Key makes a repeat record nothing new.`,
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: signalResponse },
    requestExample: { approved: true, note: 'checked with the account manager' },
    errors: [404, 409, 413],
  })
  async signal(
    @ZodParams(signalParams) p: z.infer<typeof signalParams>,
    @ZodBody(signalBody) payload: z.infer<typeof signalBody>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() idempotencyKey: string | undefined,
  ) {
    const bytes = Buffer.byteLength(JSON.stringify(payload));
    if (bytes > SIGNAL_PAYLOAD_MAX_BYTES) {
      throw new AppError(
        'payload_too_large',
        `the signal payload is ${bytes} bytes as JSON; at most ${SIGNAL_PAYLOAD_MAX_BYTES}`,
        { max: SIGNAL_PAYLOAD_MAX_BYTES },
      );
    }
    const signalId = idempotencyKey !== undefined ? commandIdForKey('signal', idempotencyKey) : undefined;
    return this.commands.execute(new SignalWorkflowExecution(p.execution_id, p.name, payload, correlationId, signalId));
  }

  @Get('executions/:execution_id/events')
  @ApiRoute({
    summary: 'The event history of an execution (audit, replay), in pages of up to 1,000 events',
    description:
      'As recorded, redacted for viewers. `next` links the page after this one (null after the last event); ' +
      '`after` is the revision to start after, `limit` the page size (1-1000, default 1000).',
    tags: ['workflows'],
    role: 'viewer',
    response: { schema: eventsResponse },
    errors: [400, 404],
  })
  events(
    @ZodParams(executionParams) p: z.infer<typeof executionParams>,
    @ZodQuery(eventsQuery) q: z.infer<typeof eventsQuery>,
  ) {
    return this.queries.execute(new GetExecutionEvents(p.execution_id, q.after ?? -1, q.limit));
  }

  @Post('definitions')
  @HttpCode(201)
  @ApiRoute({
    summary:
      'Register a workflow definition (validated against the MCP registry, agent task types and known definitions)',
    description:
      '400 lists every problem with its path (a dependency cycle is named, e.g. `a -> b -> a`); 409 when that version exists with other content.',
    tags: ['workflows'],
    role: 'admin',
    response: { status: 201, schema: registeredResponse },
    alsoAnswers: [
      {
        status: 200,
        description: 'That id and version existed with the same content: nothing new (`created: false`)',
        schema: registeredResponse,
      },
    ],
    errors: [400, 409],
  })
  async register(
    @ZodBody(definitionBody) body: z.infer<typeof definitionBody>,
    @CorrelationId() correlationId: string,
    @Res({ passthrough: true }) res: Response,
  ) {
    const r = await this.commands.execute(
      new RegisterWorkflowDefinition(body, { actor: currentActor() ?? 'anonymous', correlationId }),
    );
    if (!r.created) res.status(200);
    return { definition: r.definition, created: r.created };
  }

  @Delete('definitions/:definition_id')
  @ApiRoute({
    summary: 'Delete a registered workflow definition (every version)',
    description:
      'Recorded as an event (`DefinitionDeleted`); running executions keep their own copy. 404 for an id not registered (or already deleted); ' +
      '409 for a built-in template. Registering the id again needs a version above the last deleted one.',
    tags: ['workflows'],
    role: 'admin',
    response: {
      schema: definitionDeletedResponse,
      example: { definition_id: 'two_agents', deleted: true, versions: [1, 2] },
    },
    errors: [404, 409],
  })
  async deleteDefinition(
    @ZodParams(definitionParams) p: z.infer<typeof definitionParams>,
    @ZodQuery(deleteDefinitionQuery) q: z.infer<typeof deleteDefinitionQuery>,
    @CorrelationId() correlationId: string,
  ) {
    const r = await this.commands.execute(
      new DeleteWorkflowDefinition(p.definition_id, {
        actor: currentActor() ?? 'anonymous',
        correlationId,
        ...(q.reason !== undefined ? { reason: q.reason } : {}),
      }),
    );
    return { definition_id: r.definitionId, deleted: true as const, versions: [...r.versions] };
  }

  @Post('definitions/:definition_id/versions/:version/check')
  @HttpCode(200)
  @ApiRoute({
    summary:
      'Replay the last finished executions of a definition against one of its versions and report where it would decide differently',
    description:
      'Steps added or removed, dependency, tool and condition changes, steps that would now run or be skipped, inputs that now resolve differently. Read-only.',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 200, schema: checkResponse },
    errors: [400, 404, 503],
  })
  check(@ZodParams(checkParams) p: z.infer<typeof checkParams>, @ZodBody(checkBody) b: z.infer<typeof checkBody>) {
    // It folds up to `limit` whole executions' streams: a read of whole payloads.
    return this.payloadReads.run(() =>
      this.queries.execute(new CheckDefinitionVersion(p.definition_id, p.version, b.limit)),
    );
  }

  @Post('definitions/validate')
  @HttpCode(200)
  // A query: nothing to protect from a repeat, and nothing worth keeping a day (its answer echoes the definition).
  @WithoutIdempotency()
  @ApiRoute({
    summary: 'Validate a workflow definition without registering it (the same checks as registering; no side effects)',
    description:
      'Always 200 for a JSON object: `valid`, and every problem with its path (a dependency cycle is named). The designer of the console calls it as one types.',
    tags: ['workflows'],
    role: 'viewer',
    query: true,
    response: { status: 200, schema: validationResponse },
  })
  validateOnly(@ZodBody(definitionBody) body: z.infer<typeof definitionBody>) {
    return this.queries.execute(new ValidateWorkflowDefinition(body));
  }

  @Get('definitions')
  @ApiRoute({
    summary: 'Workflow definitions (latest version of each, or every version with all_versions), in pages by id',
    description:
      'At most `limit` (1-200, default 100) a page, and about 2 MiB of definitions as JSON (at least one): a page of large definitions holds fewer than `limit` and has a `next_cursor`. `cursor` is the `next_cursor` of the page before.',
    tags: ['workflows'],
    role: 'viewer',
    response: { schema: definitionsResponse },
    errors: [400],
  })
  async definitionsList(@ZodQuery(definitionsQuery) q: z.infer<typeof definitionsQuery>) {
    const page = await this.queries.execute(
      new ListWorkflowDefinitions(q.id, q.all_versions, { limit: q.limit, cursor: q.cursor }),
    );
    // A viewer reads a definition as an execution's start shows it: arguments, item lists,
    // outputs and the input's defaults and allowed values are an operator's (URLs with keys, SQL).
    if (!callerSeesRedactedPayloads()) return page;
    return {
      ...page,
      definitions: page.definitions.map((d) => definitionArgumentsRedacted(d) as typeof d),
    };
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
    description:
      'The definition is validated like a registered one (400 lists every problem). 202 with the execution id; `?wait=true` waits for the result.',
    tags: ['workflows', 'agents'],
    role: 'operator',
    response: { status: 202, schema: startedResponse },
    alsoAnswers: [
      {
        status: 200,
        description: 'With `wait=true`: the execution ended within the wait; its output or error',
        schema: startedResponse,
      },
    ],
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
    // An ad-hoc step naming the database writer or an admin tool is a direct call: the same rule as POST /mcp/call.
    for (const { server, tool } of guardedToolsUsed(b.definition.steps as { uses?: unknown }[] | undefined))
      assertToolAllowed(server, tool, req, toolAccessOf(this.options, this.config));
    const def = await this.svc.validate({
      version: 1,
      name: String(b.definition.id ?? 'ad-hoc workflow'),
      ...b.definition,
    });
    const r = await this.svc.start(def, b.input, correlationId, {
      wait: q.wait,
      waitMs: waitWithin(q.wait_ms, this.options.requestTimeoutMs),
      idempotencyKey,
    });
    res.status(r.status);
    return r.body;
  }
}

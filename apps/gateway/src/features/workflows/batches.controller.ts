import { Controller, Get, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { z } from 'zod';
import type { BatchAction } from '@switchyard/domain';
import { CorrelationId, type GatewayRequest } from '../../http/context.js';
import { GATEWAY_CONFIG, GATEWAY_OPTIONS, type GatewayConfig, type ResolvedGatewayOptions } from '../../tokens.js';
import { toolAccessOf, toolCallerOf } from '../mcp/writer-policy.js';
import type { ToolCaller } from './deps.js';
import { commandIdForKey, IdempotencyKey } from '../../idempotency/keys.js';
import { ZodBody, ZodParams } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import { CancelExecutionBatch, StartExecutionBatch } from './commands/index.js';
import { GetExecutionBatch } from './queries/index.js';
import { callerSeesRedactedPayloads, REDACTED_PAYLOAD } from '../../events/redaction.js';
import { batchCancelBody, batchParams, batchResponse, batchStartedResponse, bulkBody } from './schemas.js';

const links = (id: string) => ({
  self: `/api/v1/workflows/batches/${encodeURIComponent(id)}`,
  cancel: `/api/v1/workflows/batches/${encodeURIComponent(id)}/cancel`,
});

const actionOf = (a: z.infer<typeof bulkBody>['action'], rerunAs: ToolCaller): BatchAction =>
  a === 'cancel'
    ? { kind: a }
    : a === 'retry'
      ? { kind: a, rerunAs }
      : { kind: 'fork', definitionVersion: a.fork.definition_version, fromStep: a.fork.from_step };

/**
 * Bulk operations on executions: a batch job, event-sourced (BatchStarted, BatchItemDone/Failed,
 * BatchCompleted, BatchCancelled), worked by the engine process's batch worker at a bounded rate.
 */
@Controller('api/v1/workflows')
export class BatchesController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
  ) {}

  @Post('executions/bulk')
  @HttpCode(202)
  @ApiRoute({
    summary: 'Act on every execution a filter matches (cancel, retry, fork) as a batch job',
    description:
      'The executions the filter matches now (from the executions list) are fixed and recorded in the batch; the engine works them one by one ' +
      'at WORKFLOW_BATCH_ITEMS_PER_SEC at most, each once. 400 when the filter matches more than WORKFLOW_BATCH_MAX_ITEMS. Follow it with GET /batches/{id}.',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: batchStartedResponse },
    requestExample: { filter: { definition_id: 'customer_support', status: 'running' }, action: 'cancel' },
    errors: [404],
  })
  async bulk(
    @ZodBody(bulkBody) b: z.infer<typeof bulkBody>,
    @CorrelationId() correlationId: string,
    @IdempotencyKey() idempotencyKey: string | undefined,
    @Req() req: GatewayRequest,
  ) {
    const batchId = idempotencyKey !== undefined ? commandIdForKey('batch', idempotencyKey) : undefined;
    // A retry re-runs each execution's recorded definition: the worker checks each against the
    // tool policy as this caller (a fork runs a registered version, vetted when registered).
    const rerunAs = toolCallerOf(req, toolAccessOf(this.options, this.config));
    // `template` is the executions list's name for definition_id.
    const { template, ...filter } = b.filter;
    const r = await this.commands.execute(
      new StartExecutionBatch(
        { ...filter, ...(template !== undefined && { definition_id: template }) },
        actionOf(b.action, rerunAs),
        correlationId,
        batchId,
      ),
    );
    const s = r.state;
    return {
      batch_id: r.batchId,
      state: s.status === 'not_started' ? 'running' : s.status,
      matched: s.status === 'not_started' ? 0 : s.items.length,
      links: links(r.batchId),
    };
  }

  @Get('batches/:batch_id')
  @ApiRoute({
    summary: 'A batch: progress (matched, done, failed, pending), state and failures',
    tags: ['workflows'],
    role: 'viewer',
    response: { schema: batchResponse },
    errors: [404],
  })
  async get(@ZodParams(batchParams) p: z.infer<typeof batchParams>) {
    const batch = await this.queries.execute(new GetExecutionBatch(p.batch_id));
    if (!callerSeesRedactedPayloads()) return batch;
    // A viewer sees what a batch did, not the operator's search text nor the executions' error
    // texts (masked everywhere else for viewers: they can quote inputs, SQL, paths).
    return batchForViewer(batch);
  }

  @Post('batches/:batch_id/cancel')
  @HttpCode(202)
  @ApiRoute({
    summary: 'Stop a batch: items not yet worked stay as they are',
    tags: ['workflows'],
    role: 'operator',
    response: { status: 202, schema: batchResponse },
    errors: [404, 409],
  })
  async cancel(
    @ZodParams(batchParams) p: z.infer<typeof batchParams>,
    @ZodBody(batchCancelBody) b: z.infer<typeof batchCancelBody>,
    @CorrelationId() correlationId: string,
  ) {
    await this.commands.execute(new CancelExecutionBatch(p.batch_id, b.reason, correlationId));
    return this.queries.execute(new GetExecutionBatch(p.batch_id));
  }
}

function batchForViewer<B extends { filter: object; failures: { message: string }[] }>(b: B): B {
  return {
    ...b,
    filter: 'error_contains' in b.filter ? { ...b.filter, error_contains: REDACTED_PAYLOAD } : b.filter,
    failures: b.failures.map((f) => ({ ...f, message: REDACTED_PAYLOAD })),
  };
}

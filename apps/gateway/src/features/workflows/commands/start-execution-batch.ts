import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import type { Pool } from 'pg';
import type { BatchAction, BatchFilter, BatchState } from '@switchyard/domain';
import { startBatch } from '../deps.js';
import { compensationStepIds, workflowExecutionStream } from '@switchyard/domain';
import { AppError } from '@switchyard/platform';
import { currentActor } from '../../../http/context.js';
import { WorkflowsService } from '../workflows.service.js';
import { callerSeesAdminToolPayloads, executionStreamCallsAdminTool } from '../../../events/redaction.js';
import { EVENT_STORE, PG_POOL } from '../../../tokens.js';

/** Start a bulk operation: match the executions now, record them in a new batch; the engine's batch worker works it. */
export class StartExecutionBatch extends Command<{ batchId: string; state: BatchState; created: boolean }> {
  constructor(
    readonly filter: BatchFilter,
    readonly action: BatchAction,
    readonly correlationId: string,
    readonly batchId?: string,
    readonly actor: string = currentActor() ?? 'anonymous',
    readonly seesAdminToolPayloads: boolean = callerSeesAdminToolPayloads(),
  ) {
    super();
  }
}

@CommandHandler(StartExecutionBatch)
export class StartExecutionBatchHandler implements ICommandHandler<StartExecutionBatch> {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
  ) {}
  async execute(c: StartExecutionBatch) {
    await this.checkFork(c);
    return startBatch(this.store, this.pool, {
      filter: c.filter,
      action: c.action,
      correlationId: c.correlationId,
      actor: c.actor,
      ...(c.batchId !== undefined ? { batchId: c.batchId } : {}),
      // The error of an execution that calls an admin-only tool reads to anyone but an admin as
      // "…": its text must not be searchable either.
      ...(c.seesAdminToolPayloads
        ? {}
        : { errorHidden: (id: string) => executionStreamCallsAdminTool(this.store, workflowExecutionStream(id)) }),
    });
  }

  /**
   * A fork onto a version of the one definition the filter names: that version must exist, and
   * `from_step` be a step of some version of it; else every item would fail the same way, one by
   * one, after a 202. (Without a named definition each execution forks onto that version of its
   * own, checked per item.)
   */
  private async checkFork(c: StartExecutionBatch): Promise<void> {
    if (c.action.kind !== 'fork') return;
    const id = c.filter.definition_id ?? c.filter.template_id;
    if (id === undefined) return;
    const target = (await this.svc.definitions.get(id, c.action.definitionVersion)).definition;
    const { fromStep } = c.action;
    if (compensationStepIds(target).has(fromStep))
      throw new AppError(
        'validation',
        `step "${fromStep}" is a compensation: a fork runs again from a step of the normal flow`,
        {
          errors: [{ path: 'action.fork.from_step', message: 'a compensation step', in: 'body' }],
        },
      );
    if (target.steps.some((d) => d.id === fromStep)) return;
    const versions = await this.svc.definitions.list({ id, allVersions: true });
    if (versions.some((v) => v.definition.steps.some((d) => d.id === fromStep))) return;
    throw new AppError('validation', `step "${fromStep}" is not a step of workflow "${id}" in any version`, {
      errors: [{ path: 'action.fork.from_step', message: `not a step of "${id}"`, in: 'body' }],
    });
  }
}

import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { WorkflowExecutionState } from '@switchyard/domain';
import { ExecutionWaits } from '../execution-waits.js';

/** The execution's state once it ended, or as it is after `timeoutMs` (a live subscription, no polling). */
export class WaitForExecution extends Query<WorkflowExecutionState> {
  constructor(
    readonly executionId: string,
    readonly timeoutMs: number,
  ) {
    super();
  }
}

@QueryHandler(WaitForExecution)
export class WaitForExecutionHandler implements IQueryHandler<WaitForExecution> {
  constructor(@Inject(ExecutionWaits) private readonly waits: ExecutionWaits) {}
  execute(q: WaitForExecution) {
    return this.waits.waitForEnd(q.executionId, q.timeoutMs);
  }
}

import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { workflowExecutionStream, type ReplayReport } from '@switchyard/domain';
import {
  REDACTED_PAYLOAD,
  callerSeesAdminToolPayloads,
  executionStreamCallsAdminTool,
} from '../../../events/redaction.js';
import { checkDefinitionVersion } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

/** Replay a definition's last finished executions against one of its versions (read-only). */
export class CheckDefinitionVersion extends Query<Awaited<ReturnType<typeof checkDefinitionVersion>>> {
  constructor(
    readonly definitionId: string,
    readonly version: number,
    readonly limit: number,
  ) {
    super();
  }
}

@QueryHandler(CheckDefinitionVersion)
export class CheckDefinitionVersionHandler implements IQueryHandler<CheckDefinitionVersion> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute(q: CheckDefinitionVersion) {
    const checked = await checkDefinitionVersion(
      this.svc.store,
      this.svc.pool,
      this.svc.definitions,
      q.definitionId,
      q.version,
      q.limit,
    );
    if (callerSeesAdminToolPayloads()) return checked;
    // An execution that calls an admin-only tool reads to anyone but an admin as a viewer reads it:
    // its resolved step inputs (which may carry that tool's answer) and its input are not shown here either.
    const executions = await Promise.all(
      checked.executions.map(async (report) =>
        (await executionStreamCallsAdminTool(this.svc.store, workflowExecutionStream(report.execution_id)))
          ? withoutPayloads(report)
          : report,
      ),
    );
    return { ...checked, executions };
  }
}

/** A report with the values that come from the execution's payloads redacted: the changed inputs, and a refusal of its input. */
function withoutPayloads(report: ReplayReport): ReplayReport {
  return {
    ...report,
    differences: report.differences.map((d) =>
      d.kind === 'input_changed' ? { ...d, recorded: REDACTED_PAYLOAD, replayed: REDACTED_PAYLOAD } : d,
    ),
    ...(report.input_problem !== undefined ? { input_problem: REDACTED_PAYLOAD } : {}),
  };
}

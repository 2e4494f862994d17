import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { RecordedEvent } from '@switchyard/event-store';
import { WorkflowsService } from '../workflows.service.js';

/**
 * One page of an execution's events as recorded (no redaction: for callers that apply their own
 * rules): at most `limit` after revision `after` (-1: from the first), with the stream's last
 * revision; 404 when none.
 */
export class ReadExecutionStream extends Query<{ events: RecordedEvent[]; lastRevision: number }> {
  constructor(
    readonly executionId: string,
    readonly after: number,
    readonly limit: number,
  ) {
    super();
  }
}

@QueryHandler(ReadExecutionStream)
export class ReadExecutionStreamHandler implements IQueryHandler<ReadExecutionStream> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  execute(q: ReadExecutionStream) {
    return this.svc.historyPage(q.executionId, { after: q.after, limit: q.limit }, 'read');
  }
}

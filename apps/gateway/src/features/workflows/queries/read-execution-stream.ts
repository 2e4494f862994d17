import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { RecordedEvent } from '@switchyard/event-store';
import { executionEvents } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

/** An execution's events as recorded (no redaction: for callers that apply their own rules); 404 when none. */
export class ReadExecutionStream extends Query<RecordedEvent[]> {
  constructor(readonly executionId: string) {
    super();
  }
}

@QueryHandler(ReadExecutionStream)
export class ReadExecutionStreamHandler implements IQueryHandler<ReadExecutionStream> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  execute(q: ReadExecutionStream) {
    return executionEvents(this.svc.store, q.executionId);
  }
}

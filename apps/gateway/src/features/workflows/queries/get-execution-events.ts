import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { eventsForCaller } from '../../../events/redaction.js';
import { toEventJson } from '../../../events/schemas.js';
import { executionEvents } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

/** Every event of an execution (audit, replay), as the caller may see them; 404 when none. */
export class GetExecutionEvents extends Query<{ execution_id: string; events: ReturnType<typeof toEventJson>[] }> {
  constructor(readonly executionId: string) {
    super();
  }
}

@QueryHandler(GetExecutionEvents)
export class GetExecutionEventsHandler implements IQueryHandler<GetExecutionEvents> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute(q: GetExecutionEvents) {
    const events = await executionEvents(this.svc.store, q.executionId);
    return { execution_id: q.executionId, events: eventsForCaller(events.map(toEventJson)) };
  }
}

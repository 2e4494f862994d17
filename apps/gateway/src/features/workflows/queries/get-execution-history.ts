import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import { eventsShownToCaller } from '../../../events/redaction.js';
import { EVENT_STORE } from '../../../tokens.js';
import { toEventJson } from '../../../events/schemas.js';
import { WorkflowsService } from '../workflows.service.js';
import { nextExecutionPage } from './page-link.js';

/** An execution's events after a revision, one page (as the caller may see them). */
export class GetExecutionHistory extends Query<Record<string, unknown>> {
  constructor(
    readonly executionId: string,
    readonly after: number,
    readonly limit: number,
  ) {
    super();
  }
}

@QueryHandler(GetExecutionHistory)
export class GetExecutionHistoryHandler implements IQueryHandler<GetExecutionHistory> {
  constructor(
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
    @Inject(EVENT_STORE) private readonly store: EventStore,
  ) {}
  async execute(q: GetExecutionHistory) {
    const page = await this.svc.historyPage(q.executionId, { after: q.after, limit: q.limit });
    const events = (await eventsShownToCaller(this.store, page.events.map(toEventJson))).map((e) => ({
      position: e.position,
      revision: e.revision,
      type: e.type,
      time: typeof e.metadata['timestamp'] === 'string' ? e.metadata['timestamp'] : e.recordedAt,
      recorded_at: e.recordedAt,
      actor: typeof e.metadata['actor'] === 'string' ? e.metadata['actor'] : null,
      correlation_id: typeof e.metadata['correlationId'] === 'string' ? e.metadata['correlationId'] : null,
      data: e.data,
    }));
    const next = nextExecutionPage(q.executionId, 'history', events, page.lastRevision, q.limit);
    return { execution_id: q.executionId, last_revision: page.lastRevision, events, next };
  }
}

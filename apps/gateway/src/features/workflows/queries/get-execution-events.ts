import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import { eventsShownToCaller } from '../../../events/redaction.js';
import { EVENT_STORE } from '../../../tokens.js';
import { toEventJson } from '../../../events/schemas.js';
import { WorkflowsService } from '../workflows.service.js';
import { nextExecutionPage } from './page-link.js';

/**
 * An execution's events (audit, replay) as the caller may see them, a page at a time: at most
 * `limit` after revision `after` (-1: from the first), `next` the link to the rest (null after
 * the last); 404 when none. Paged so that one request of a long execution (thousands of
 * for_each events, up to the output bound of data) never builds the whole log in one answer.
 */
export class GetExecutionEvents extends Query<{
  execution_id: string;
  last_revision: number;
  events: ReturnType<typeof toEventJson>[];
  next: string | null;
}> {
  constructor(
    readonly executionId: string,
    readonly after: number,
    readonly limit: number,
  ) {
    super();
  }
}

@QueryHandler(GetExecutionEvents)
export class GetExecutionEventsHandler implements IQueryHandler<GetExecutionEvents> {
  constructor(
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
    @Inject(EVENT_STORE) private readonly store: EventStore,
  ) {}
  async execute(q: GetExecutionEvents) {
    const page = await this.svc.historyPage(q.executionId, { after: q.after, limit: q.limit });
    return {
      execution_id: q.executionId,
      last_revision: page.lastRevision,
      events: await eventsShownToCaller(this.store, page.events.map(toEventJson)),
      next: nextExecutionPage(q.executionId, 'events', page.events, page.lastRevision, q.limit),
    };
  }
}

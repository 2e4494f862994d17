import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import { EVENT_STORE } from '../../tokens.js';
import { readEventsPage } from '../paging.js';
import { eventsForCaller } from '../redaction.js';
import type { EventsPage, EventsQuery } from '../schemas.js';

/** One page of recorded events (one stream or the global log), as the caller may see them. */
export class ReadEventsPage extends Query<EventsPage> {
  constructor(
    readonly query: EventsQuery,
    readonly basePath: string,
  ) {
    super();
  }
}

@QueryHandler(ReadEventsPage)
export class ReadEventsPageHandler implements IQueryHandler<ReadEventsPage> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  async execute(q: ReadEventsPage): Promise<EventsPage> {
    const page = await readEventsPage(this.store, q.query, q.basePath);
    return { ...page, events: eventsForCaller(page.events) };
  }
}

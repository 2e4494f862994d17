import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import { EVENT_STORE } from '../../tokens.js';
import { PayloadReads } from '../../http/payload-reads.js';
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
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(PayloadReads) private readonly reads: PayloadReads,
  ) {}
  async execute(q: ReadEventsPage): Promise<EventsPage> {
    // A page the gateway filters itself (a time range, or types on one stream) may examine
    // SCAN_CAP events in a dozen round trips: fifty at once held the gateway's connections and
    // its loop for seconds, so such reads take turns with the other whole-payload reads.
    const read = () => readEventsPage(this.store, q.query, q.basePath);
    const page = filtersInGateway(q.query) ? await this.reads.run(read) : await read();
    return { ...page, events: eventsForCaller(page.events) };
  }
}

function filtersInGateway(q: EventsQuery): boolean {
  return q.since !== undefined || q.until !== undefined || (q.stream !== undefined && (q.type?.length ?? 0) > 0);
}

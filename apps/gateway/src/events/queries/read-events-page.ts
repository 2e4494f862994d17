import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import { EVENT_STORE, GATEWAY_OPTIONS, type ResolvedGatewayOptions } from '../../tokens.js';
import { PayloadReads } from '../../http/payload-reads.js';
import { callerShareQuota } from '../../http/connection-quota.js';
import { currentActor } from '../../http/context.js';
import { readEventsPage } from '../paging.js';
import { eventsShownToCaller } from '../redaction.js';
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

/** Filtered pages one caller may have running or waiting at once (the rest of the turns are the others'). */
export const FILTERED_PAGES_PER_CALLER = 4;

@QueryHandler(ReadEventsPage)
export class ReadEventsPageHandler implements IQueryHandler<ReadEventsPage> {
  /**
   * A page the gateway filters itself (a time range, or types on one stream) may examine
   * SCAN_CAP events in a dozen round trips: fifty at once held the gateway's connections and its
   * loop for seconds. Such pages take turns of their own (apart from the reads of large
   * executions), and a caller holds at most FILTERED_PAGES_PER_CALLER of them: one viewer's fifty
   * left another's page no turn in ten tries.
   */
  private readonly scans: PayloadReads;
  private readonly perCaller = callerShareQuota('filtered event pages', FILTERED_PAGES_PER_CALLER);

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(GATEWAY_OPTIONS) options: ResolvedGatewayOptions,
  ) {
    this.scans = new PayloadReads(
      options.payloadReads.concurrency,
      options.payloadReads.queue,
      options.requestTimeoutMs,
    );
  }

  async execute(q: ReadEventsPage): Promise<EventsPage> {
    const read = () => readEventsPage(this.store, q.query, q.basePath);
    let page: Awaited<ReturnType<typeof read>>;
    if (filtersInGateway(q.query)) {
      const release = this.perCaller.take(currentActor() ?? 'anonymous');
      try {
        page = await this.scans.run(read);
      } finally {
        release();
      }
    } else page = await read();
    return { ...page, events: await eventsShownToCaller(this.store, page.events) };
  }
}

function filtersInGateway(q: EventsQuery): boolean {
  return q.since !== undefined || q.until !== undefined || (q.stream !== undefined && (q.type?.length ?? 0) > 0);
}

import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { EventStore } from '@switchyard/event-store';
import { EVENT_STORE } from '../../tokens.js';
import { readAuditPage, type AuditPage, type AuditQuery } from '../audit.js';

/** One page of the audit trail: events that name an actor, newest first. */
export class ReadAuditPage extends Query<AuditPage> {
  constructor(readonly query: AuditQuery) {
    super();
  }
}

@QueryHandler(ReadAuditPage)
export class ReadAuditPageHandler implements IQueryHandler<ReadAuditPage> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}
  execute(q: ReadAuditPage) {
    return readAuditPage(this.store, q.query);
  }
}

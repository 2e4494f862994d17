import { Controller, Get, Inject } from '@nestjs/common';
import type { EventStore } from '@switchyard/event-store';
import { ZodQuery } from '../http/validation.js';
import { ApiRoute } from '../openapi/registry.js';
import { EVENT_STORE } from '../tokens.js';
import { AUDIT_PATH, auditPageSchema, auditQuerySchema, readAuditPage, type AuditPage, type AuditQuery } from './audit.js';

/**
 * GET /api/v1/audit. Admin only: the trail names every key and what it did, which is
 * itself sensitive (who has access, when they act), more than the events a viewer reads.
 */
@Controller(AUDIT_PATH)
export class AuditController {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  @Get()
  @ApiRoute({
    summary: 'Who did what: events that name an actor, newest first',
    description: 'Filter by `actor`, `type`, `since`/`until`; follow `next.href` for the next page.',
    tags: ['audit'],
    role: 'admin',
    response: { schema: auditPageSchema },
  })
  list(@ZodQuery(auditQuerySchema) q: AuditQuery): Promise<AuditPage> {
    return readAuditPage(this.store, q);
  }
}

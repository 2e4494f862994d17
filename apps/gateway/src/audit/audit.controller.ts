import { Controller, Get, Inject } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { PayloadReads } from '../http/payload-reads.js';
import { ZodQuery } from '../http/validation.js';
import { ApiRoute } from '../openapi/registry.js';
import { AUDIT_PATH, auditPageSchema, auditQuerySchema, type AuditPage, type AuditQuery } from './audit.js';
import { ReadAuditPage } from './queries/index.js';

/**
 * GET /api/v1/audit. Admin only: the trail names every key and what it did, which is
 * itself sensitive (who has access, when they act), more than the events a viewer reads.
 */
@Controller(AUDIT_PATH)
export class AuditController {
  constructor(
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Inject(PayloadReads) private readonly reads: PayloadReads,
  ) {}

  @Get()
  @ApiRoute({
    summary: 'Who did what: events that name an actor, newest first',
    description: 'Filter by `actor`, `type`, `since`/`until`; follow `next.href` for the next page.',
    tags: ['audit'],
    role: 'admin',
    response: { schema: auditPageSchema },
    errors: [503],
  })
  list(@ZodQuery(auditQuerySchema) q: AuditQuery): Promise<AuditPage> {
    // A page scans up to thousands of whole events (their payloads included) for the ones that name an actor.
    return this.reads.run(() => this.queries.execute(new ReadAuditPage(q)));
  }
}

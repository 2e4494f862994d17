import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { listExecutions } from '../deps.js';
import { EXECUTIONS_CHECKPOINT, WorkflowsService } from '../workflows.service.js';

export interface ExecutionFilter {
  readonly status?: string | undefined;
  readonly template?: string | undefined;
  readonly started_after?: string | undefined;
  readonly started_before?: string | undefined;
  readonly limit: number;
  readonly cursor?: string | undefined;
  readonly min_position?: number | undefined;
}

type Page = Awaited<ReturnType<typeof listExecutions>>;

/**
 * Executions, newest first, keyset paged; given `minPosition`, from the read model (the replica's,
 * else the primary's) once it has applied it (ReadRouting.poolFor: a bounded wait). Result: the
 * page (with the next page's URL), which database answered, and `stale` when the read model read
 * had not applied `minPosition` within the wait (its checkpoint then).
 */
export class ListExecutions extends Query<{
  page: Page & { next: string | null };
  source: 'replica' | 'primary';
  stale?: { checkpoint: number | undefined } | undefined;
}> {
  constructor(
    readonly filter: ExecutionFilter,
    readonly minPosition: number | undefined,
  ) {
    super();
  }
}

@QueryHandler(ListExecutions)
export class ListExecutionsHandler implements IQueryHandler<ListExecutions> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute({ filter: q, minPosition }: ListExecutions) {
    const read = await this.svc.reads.poolFor(EXECUTIONS_CHECKPOINT, minPosition);
    const page = await listExecutions(read.pool, {
      status: q.status,
      definitionId: q.template,
      startedAfter: q.started_after,
      startedBefore: q.started_before,
      limit: q.limit,
      cursor: q.cursor,
    });
    const next = page.next_cursor
      ? `/api/v1/workflows/executions?${new URLSearchParams({
          ...Object.fromEntries(
            Object.entries(q)
              .filter(([, v]) => v !== undefined)
              .map(([k, v]) => [k, String(v)]),
          ),
          cursor: page.next_cursor,
        }).toString()}`
      : null;
    return { page: { ...page, next }, source: read.source, stale: read.stale };
  }
}

import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { DefinitionStore } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

type Row = Awaited<ReturnType<DefinitionStore['list']>>[number];
export type DefinitionListed = Row['definition'] & { source: Row['source']; created_at: Row['createdAt'] };

/**
 * Workflow definitions: the latest version of each, or every version. With `page`, at most
 * `limit` after the `cursor` of the page before (`<id>`, or `<id>:<version>` with every
 * version), and `next_cursor` for the rest (null after the last); without, every one (the
 * gateway's own catalog and cards).
 */
export class ListWorkflowDefinitions extends Query<{ definitions: DefinitionListed[]; next_cursor: string | null }> {
  constructor(
    readonly id: string | undefined,
    readonly allVersions: boolean | undefined,
    readonly page?: { readonly limit: number; readonly cursor?: string | undefined },
  ) {
    super();
  }
}

@QueryHandler(ListWorkflowDefinitions)
export class ListWorkflowDefinitionsHandler implements IQueryHandler<ListWorkflowDefinitions> {
  constructor(@Inject(WorkflowsService) private readonly svc: WorkflowsService) {}
  async execute(q: ListWorkflowDefinitions) {
    const [afterId, afterVersion] = q.page?.cursor?.split(':') ?? [];
    // Every latest version (the catalog's and the cards' listing): the copy read last, unless a
    // definition was registered or deleted since. One more than a page, to know whether there is a next one.
    const everyLatest = !q.page && q.id === undefined && !q.allVersions;
    const rows = everyLatest
      ? await this.svc.latestDefinitions()
      : await this.svc.definitions.list({
          id: q.id,
          allVersions: q.allVersions,
          ...(afterId ? { after: { id: afterId, version: afterVersion ? Number(afterVersion) : undefined } } : {}),
          ...(q.page ? { limit: q.page.limit + 1 } : {}),
        });
    const shown = q.page ? rows.slice(0, q.page.limit) : rows;
    const last = shown[shown.length - 1];
    const next_cursor =
      q.page && rows.length > q.page.limit && last
        ? q.allVersions
          ? `${last.definition.id}:${last.definition.version}`
          : last.definition.id
        : null;
    return {
      definitions: shown.map((r) => ({ ...r.definition, source: r.source, created_at: r.createdAt })),
      next_cursor,
    };
  }
}

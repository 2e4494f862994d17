import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { DefinitionStore } from '../deps.js';
import { WorkflowsService } from '../workflows.service.js';

/**
 * Characters of definitions (as JSON) one page holds at most, at least one whatever its size:
 * a page of 200 definitions near their size bound was 100 MB, and a viewer's read of it held the
 * gateway 6.8 s.
 */
const DEFINITIONS_PAGE_BYTES = 2 * 1024 * 1024;

type Row = Awaited<ReturnType<DefinitionStore['list']>>[number];
export type DefinitionListed = Row['definition'] & { source: Row['source']; created_at: Row['createdAt'] };

/**
 * Workflow definitions: the latest version of each, or every version. With `page`, at most
 * `limit` (and DEFINITIONS_PAGE_BYTES) after the `cursor` of the page before (`<id>`, or `<id>:<version>` with every
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
    const { definitions: rows, cut } = everyLatest
      ? { definitions: await this.svc.latestDefinitions(), cut: false }
      : await this.svc.definitions.listPage({
          id: q.id,
          allVersions: q.allVersions,
          ...(afterId ? { after: { id: afterId, version: afterVersion ? Number(afterVersion) : undefined } } : {}),
          ...(q.page ? { limit: q.page.limit + 1, maxBytes: DEFINITIONS_PAGE_BYTES } : {}),
        });
    const shown = q.page ? rows.slice(0, q.page.limit) : rows;
    const last = shown[shown.length - 1];
    const next_cursor =
      q.page && (rows.length > q.page.limit || cut) && last
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

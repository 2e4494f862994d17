import type { RecordedEvent } from '@switchyard/event-store';

/** The revision the page after `events` starts after, or null when they reach the stream's last revision. */
export function nextPageAfter(events: readonly Pick<RecordedEvent, 'revision'>[], lastRevision: number): number | null {
  const last = events[events.length - 1];
  return last && last.revision < lastRevision ? last.revision : null;
}

/**
 * The link to the page after `events` of an execution's route (`events` or `history`), or null
 * when they reach the stream's last revision.
 */
export function nextExecutionPage(
  executionId: string,
  route: 'events' | 'history',
  events: readonly Pick<RecordedEvent, 'revision'>[],
  lastRevision: number,
  limit: number,
): string | null {
  const after = nextPageAfter(events, lastRevision);
  if (after === null) return null;
  const query = new URLSearchParams({ after: String(after), limit: String(limit) });
  return `/api/v1/workflows/executions/${encodeURIComponent(executionId)}/${route}?${query.toString()}`;
}

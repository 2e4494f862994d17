import type { RecordedEvent } from '@switchyard/event-store';

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
  const last = events[events.length - 1];
  if (!last || last.revision >= lastRevision) return null;
  const query = new URLSearchParams({ after: String(last.revision), limit: String(limit) });
  return `/api/v1/workflows/executions/${encodeURIComponent(executionId)}/${route}?${query.toString()}`;
}

import type { EventStore } from '@switchyard/event-store';

/**
 * The stretch of the global log one filtered read may examine: `span` positions from `after` in
 * the read's direction, never past the head. The store filters inside it (`until`), so a type
 * that is rare, or absent, costs one bounded range of the log per request, not a scan of all of
 * it; the caller hands back `bound` as the cursor when the window held too few matches.
 * Undefined for a store whose positions are not dense (EventStoreDB: byte offsets, where a
 * window's end is no valid cursor): its reads go unwindowed, as before.
 */
export async function logWindow(
  store: Pick<EventStore, 'headPosition' | 'densePositions'>,
  direction: 'forwards' | 'backwards',
  after: number | undefined,
  span: number,
): Promise<{ readonly bound: number; readonly endsLog: boolean } | undefined> {
  if (!store.densePositions) return undefined;
  const head = await store.headPosition();
  if (direction === 'backwards') {
    // A cursor past the head starts at the head (it would otherwise walk down empty windows).
    const bound = Math.max(0, Math.min(after ?? head + 1, head + 1) - span);
    return { bound, endsLog: bound <= 0 };
  }
  const bound = Math.min(head, (after ?? -1) + span);
  return { bound, endsLog: bound >= head };
}

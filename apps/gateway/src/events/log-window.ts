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

/**
 * Margin of a seek by time: an event's recorded time (its append's start) may precede the one
 * before it in the log by the length of its append, so a seek starts this much earlier and the
 * read still filters by time.
 */
export const TIME_SEEK_MARGIN_MS = 60_000;

type TimeSearch = Pick<EventStore, 'positionAtTime'>;

/**
 * The cursor a time-bounded read of the whole log starts from when it has none: forwards, just
 * before the first event recorded at `since` (less the margin); backwards, just past the last one
 * recorded at `until` (plus it). Undefined where the store cannot search by time, or the read has
 * no bound on its starting side: it starts at the log's end it reads from, as before. Without it
 * "events since an hour ago" walked a log of three million events from position 0, a window per
 * request (483 requests and 56 s for three events).
 */
export async function timeSeek(
  store: TimeSearch,
  direction: 'forwards' | 'backwards',
  since: Date | undefined,
  until: Date | undefined,
): Promise<number | undefined> {
  if (!store.positionAtTime) return undefined;
  if (direction === 'forwards' && since)
    return (await store.positionAtTime(new Date(since.getTime() - TIME_SEEK_MARGIN_MS))) - 1;
  if (direction === 'backwards' && until) return store.positionAtTime(new Date(until.getTime() + TIME_SEEK_MARGIN_MS));
  return undefined;
}

/**
 * Whether a time-bounded read has nothing left past `cursor`: the rest of the log in its direction
 * was recorded wholly outside the range (backwards: before `since`; forwards: after `until`), so
 * the page's `next` is null instead of a walk over empty windows to the log's end.
 */
export async function pastTimeRange(
  store: TimeSearch,
  direction: 'forwards' | 'backwards',
  cursor: number,
  since: Date | undefined,
  until: Date | undefined,
): Promise<boolean> {
  if (!store.positionAtTime) return false;
  if (direction === 'backwards' && since)
    return cursor <= (await store.positionAtTime(new Date(since.getTime() - TIME_SEEK_MARGIN_MS)));
  if (direction === 'forwards' && until)
    return cursor >= (await store.positionAtTime(new Date(until.getTime() + TIME_SEEK_MARGIN_MS))) - 1;
  return false;
}

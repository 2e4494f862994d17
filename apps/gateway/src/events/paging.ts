import type { EventStore, RecordedEvent } from '@switchyard/event-store';
import { logWindow, pastTimeRange, timeSeek } from './log-window.js';
import { toEventJson, type EventsPage, type EventsQuery } from './schemas.js';

/** Most events one request examines when the gateway filters (time, or type on a stream) before it returns a short page. */
export const SCAN_CAP = 10_000;
/**
 * Most characters of JSON (payloads and metadata) one page carries: past it the page ends early
 * with `next`. Events may be a megabyte each (a definition and its input), so a page of 1,000 was
 * 200-400 MB, built in memory in one pass: six at once ended the process.
 */
export const PAGE_MAX_CHARS = 4 * 1024 * 1024;
/**
 * Most characters of JSON one request examines, matching or not: a filter the gateway applies
 * (time, or type on a stream) that matched nothing read a 100 MB execution's stream whole on every
 * request (7.9 s, the gateway's loop held a second at a time); past it the page ends with `next`
 * just after the last event examined (at least one is, so a caller paging on always advances).
 */
export const SCAN_MAX_CHARS = 2 * PAGE_MAX_CHARS;
/**
 * Events read per round trip: few at first, then as many as the page's remaining characters
 * allow at the sizes seen, at most twice the last batch (a log of small events followed by large
 * ones is read in batches that grow, not in one of a thousand).
 */
const FIRST_BATCH = 25;
const MAX_BATCH = 1_000;

type Cursor = { after: number } | { from_revision: number };

/**
 * Read one page of the event log for GET /api/v1/events.
 * 1. $all: the store filters type and stream prefix; stream: the gateway filters type.
 * 2. since/until are applied here (the port has no time filter), reading batches
 *    until the page is full, the log ends, or SCAN_CAP events or SCAN_MAX_CHARS characters were examined.
 * 3. A filtered read of $all examines one window of SCAN_CAP positions (see logWindow).
 * 4. A page ends early once its events hold PAGE_MAX_CHARS characters of JSON; reads go in
 *    batches sized from the events seen (each at most twice the last), so a page of large events
 *    never loads a thousand of them.
 * 5. `next` points just past the last examined event (or the window); null when the log ended.
 */
export async function readEventsPage(store: EventStore, q: EventsQuery, basePath: string): Promise<EventsPage> {
  const onStream = q.stream !== undefined;
  const types = q.type && q.type.length > 0 ? new Set(q.type) : undefined;
  const filtersHere = q.since !== undefined || q.until !== undefined || (onStream && types !== undefined);
  // A scan the gateway filters starts with one event: its size is not known before it is read.
  let batchSize = filtersHere ? 1 : Math.min(q.limit, FIRST_BATCH);
  const matches = (e: RecordedEvent) =>
    (!onStream || !types || types.has(e.type)) &&
    (!q.since || e.recordedAt >= q.since) &&
    (!q.until || e.recordedAt <= q.until);

  // A read of the whole log bounded in time and with no cursor starts where that time is.
  const start = onStream ? undefined : (q.after ?? (await timeSeek(store, q.direction, q.since, q.until)));
  let cursor: Cursor | undefined = onStream
    ? q.from_revision !== undefined
      ? { from_revision: q.from_revision }
      : undefined
    : start !== undefined
      ? { after: start }
      : undefined;
  const out: RecordedEvent[] = [];
  let scanned = 0;
  let ended = false;
  const filtered =
    types !== undefined || (q.stream_prefix?.length ?? 0) > 0 || q.since !== undefined || q.until !== undefined;
  const window = !onStream && filtered ? await logWindow(store, q.direction, start, SCAN_CAP) : undefined;

  let chars = 0;
  let examinedChars = 0;
  let full = false;
  while (out.length < q.limit && scanned < SCAN_CAP && examinedChars < SCAN_MAX_CHARS && !ended && !full) {
    const batch = await readBatch(store, q, cursor, batchSize, types, window?.bound);
    let examined = 0;
    let batchChars = 0;
    for (const e of batch) {
      examined++;
      cursor = after(e, q);
      const size = eventChars(e);
      batchChars += size;
      if (matches(e)) {
        out.push(e);
        chars += size;
      }
      if (out.length === q.limit || chars >= PAGE_MAX_CHARS) {
        full = chars >= PAGE_MAX_CHARS;
        break;
      }
    }
    scanned += examined;
    examinedChars += batchChars;
    if (full) break;
    const readToEnd = batch.length < batchSize && examined === batch.length;
    if (readToEnd && window) {
      // The window is read: the next request starts past it.
      cursor = { after: window.bound };
      ended = window.endsLog;
      break;
    }
    // A short batch read to its end means the log has no more; a stream read backwards also ends at revision 0.
    ended = readToEnd || (cursor !== undefined && 'from_revision' in cursor && cursor.from_revision < 0);
    // The next batch: what the page's remaining characters hold at this batch's average size (a
    // batch is in memory whole, matching or not); with filters here, not every event will match.
    if (examined > 0) {
      const average = Math.max(1, batchChars / examined);
      const room = Math.ceil((PAGE_MAX_CHARS - chars) / average);
      const scanRoom = Math.ceil((SCAN_MAX_CHARS - examinedChars) / average);
      batchSize = Math.max(
        1,
        Math.min(MAX_BATCH, 2 * batchSize, room, scanRoom, filtersHere ? MAX_BATCH : q.limit - out.length),
      );
    }
  }
  if (
    !ended &&
    cursor !== undefined &&
    'after' in cursor &&
    (await pastTimeRange(store, q.direction, cursor.after, q.since, q.until))
  )
    ended = true;
  return {
    events: out.map(toEventJson),
    next: ended || cursor === undefined ? null : { ...cursor, href: nextHref(basePath, q, cursor) },
  };
}

function readBatch(
  store: EventStore,
  q: EventsQuery,
  cursor: Cursor | undefined,
  maxCount: number,
  types: Set<string> | undefined,
  until: number | undefined,
): Promise<RecordedEvent[]> {
  if (q.stream !== undefined) {
    return store.readStream(q.stream, {
      direction: q.direction,
      maxCount,
      ...(cursor && 'from_revision' in cursor ? { fromRevision: cursor.from_revision } : {}),
    });
  }
  return store.readAll({
    direction: q.direction,
    maxCount,
    ...(cursor && 'after' in cursor ? { after: cursor.after } : {}),
    ...(types ? { types: [...types] } : {}),
    ...(q.stream_prefix && q.stream_prefix.length > 0 ? { streamPrefixes: q.stream_prefix } : {}),
    ...(until !== undefined ? { until } : {}),
  });
}

/** About the characters of an event's JSON in a page (its payload and metadata; the fixed fields are small). */
function eventChars(e: RecordedEvent): number {
  return (
    200 +
    e.type.length +
    e.streamId.length +
    (JSON.stringify(e.data)?.length ?? 0) +
    (JSON.stringify(e.metadata)?.length ?? 0)
  );
}

/** The cursor just past an event in the read's direction. */
function after(e: RecordedEvent, q: EventsQuery): Cursor {
  if (q.stream === undefined) return { after: e.position };
  return { from_revision: q.direction === 'backwards' ? e.revision - 1 : e.revision + 1 };
}

function nextHref(basePath: string, q: EventsQuery, cursor: Cursor): string {
  const p = new URLSearchParams();
  if (q.stream !== undefined) p.set('stream', q.stream);
  if ('after' in cursor) p.set('after', String(cursor.after));
  else p.set('from_revision', String(cursor.from_revision));
  p.set('limit', String(q.limit));
  p.set('direction', q.direction);
  if (q.type?.length) p.set('type', q.type.join(','));
  if (q.stream_prefix?.length) p.set('stream_prefix', q.stream_prefix.join(','));
  if (q.since) p.set('since', q.since.toISOString());
  if (q.until) p.set('until', q.until.toISOString());
  return `${basePath}?${p.toString()}`;
}

import type { RecordedEvent } from '../port.js';

export interface EventFilter {
  readonly types?: readonly string[];
  readonly streamPrefixes?: readonly string[];
}

/** True when the event passes the type and stream-prefix filters (an empty or absent list lets all through). */
export function matchesFilter(e: Pick<RecordedEvent, 'type' | 'streamId'>, f: EventFilter): boolean {
  if (f.types && f.types.length > 0 && !f.types.includes(e.type)) return false;
  if (f.streamPrefixes && f.streamPrefixes.length > 0 && !f.streamPrefixes.some((p) => e.streamId.startsWith(p)))
    return false;
  return true;
}

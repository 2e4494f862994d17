import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import { UnstorableEventError, type ExpectedRevision, type NewEvent } from '../port.js';
import { isStorableText } from './storable-text.js';

/**
 * A stream id or type names something: unlike data (see storable-text.ts), it is refused rather
 * than rewritten, or the event would land in another stream or under another type.
 */
const storableTextMessage = 'without U+0000 nor a lone UTF-16 surrogate';

/**
 * Every adapter validates its input the same way, so a bad call fails with the same
 * `validation` error whatever store is behind the port.
 */
const newEventSchema = z.object({
  id: z.string().uuid().optional(),
  type: z.string().min(1).max(200).refine(isStorableText, storableTextMessage),
  data: z.unknown(),
  metadata: z
    .object({
      correlationId: z.string().min(1),
      causationId: z.string().optional(),
      actor: z.string().optional(),
      timestamp: z.string().min(1),
    })
    .passthrough(),
});

const expectedSchema = z.union([
  z.literal('any'),
  z.literal('no_stream'),
  z.literal('stream_exists'),
  z.number().int().min(0),
]);

export function validateAppend(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): void {
  if (
    typeof streamId !== 'string' ||
    streamId.length === 0 ||
    streamId.length > 500 ||
    streamId.startsWith('$') ||
    !isStorableText(streamId)
  ) {
    throw new AppError(
      'validation',
      `streamId must be a non-empty string of at most 500 characters not starting with $, ${storableTextMessage}`,
      { streamId },
    );
  }
  if (!Array.isArray(events) || events.length === 0) {
    throw new AppError('validation', 'append needs at least one event', { streamId });
  }
  const exp = expectedSchema.safeParse(expected);
  if (!exp.success) throw new AppError('validation', `bad expectedRevision ${String(expected)}`, { streamId });
  for (const [i, e] of events.entries()) {
    // The usual event (no id of its own) checked by hand, on every append; anything else, and
    // the explanation of what is wrong, by the schema.
    if (plainValidEvent(e)) continue;
    const r = newEventSchema.safeParse(e);
    if (!r.success) {
      throw new UnstorableEventError(streamId, `event ${i} of the append to ${streamId} is invalid`, i, {
        issues: r.error.issues,
      });
    }
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const optionalString = (v: unknown): boolean => v === undefined || typeof v === 'string';

/** What newEventSchema accepts, for an event without an `id` (true: valid; false: ask the schema). */
function plainValidEvent(e: unknown): boolean {
  if (!isRecord(e) || e.id !== undefined) return false;
  const m = e.metadata;
  return (
    typeof e.type === 'string' &&
    e.type.length >= 1 &&
    e.type.length <= 200 &&
    isStorableText(e.type) &&
    isRecord(m) &&
    typeof m.correlationId === 'string' &&
    m.correlationId.length >= 1 &&
    typeof m.timestamp === 'string' &&
    m.timestamp.length >= 1 &&
    optionalString(m.causationId) &&
    optionalString(m.actor)
  );
}

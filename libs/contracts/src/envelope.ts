import { z } from 'zod';

/** Metadata every event carries (mirrors the event store port's EventMetadata). */
export const eventMetadataSchema = z
  .object({
    correlationId: z.string().min(1),
    causationId: z.string().min(1).optional(),
    actor: z.string().min(1).optional(),
    timestamp: z.iso.datetime({ offset: true }),
  })
  // Extra metadata keys are allowed and kept: the port allows them.
  .catchall(z.unknown());

/**
 * An event as published on NATS (`switchyard.events.<category>.<type>`), JSON encoded.
 * `position` is its place in the store's global order, `revision` its index in its stream.
 */
export const eventEnvelopeSchema = z.object({
  id: z.string().min(1),
  streamId: z.string().min(1),
  type: z.string().min(1),
  data: z.unknown(),
  metadata: eventMetadataSchema,
  revision: z.number().int().min(0),
  position: z.number().int().min(0),
  recordedAt: z.iso.datetime({ offset: true }),
});

export type EventEnvelope = z.infer<typeof eventEnvelopeSchema>;

/** The structural shape of a recorded event (the port's RecordedEvent) that can be enveloped. */
export interface RecordedEventLike {
  readonly id: string;
  readonly streamId: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata: { readonly correlationId: string; readonly timestamp: string; readonly [k: string]: unknown };
  readonly revision: number;
  readonly position: number;
  readonly recordedAt: Date;
}

/** Build the wire envelope of a recorded event (Date -> ISO string). */
export function toEventEnvelope(e: RecordedEventLike): EventEnvelope {
  return {
    id: e.id,
    streamId: e.streamId,
    type: e.type,
    data: e.data,
    metadata: e.metadata,
    revision: e.revision,
    position: e.position,
    recordedAt: e.recordedAt.toISOString(),
  };
}

/** Parse and validate an envelope from a message body (bytes or string). Throws a ZodError when invalid. */
export function parseEventEnvelope(body: Uint8Array | string): EventEnvelope {
  const text = typeof body === 'string' ? body : new TextDecoder().decode(body);
  return eventEnvelopeSchema.parse(JSON.parse(text));
}

import {
  JetStreamApiError,
  StorageType,
  RetentionPolicy,
  DiscardPolicy,
  type JetStreamManager,
  type StreamInfo,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { EVENTS_STREAM, EVENTS_STREAM_MAX_BYTES, EVENTS_SUBJECT_WILDCARD } from '@switchyard/contracts';
import { AppError, type Logger } from '@switchyard/platform';

export interface EventsStreamOptions {
  /** Stream name; default SWITCHYARD_EVENTS. Tests use their own to stay isolated. */
  readonly name?: string;
  /** Subjects; default `switchyard.events.>`. */
  readonly subjects?: readonly string[];
  /**
   * How long JetStream remembers Nats-Msg-Id values to drop re-publications.
   * It must cover the relay's worst restart time; default 10 minutes.
   */
  readonly duplicateWindowMs?: number;
  /** Drop messages older than this (0 = keep forever, the default: the store is the source of truth but replay is useful). */
  readonly maxAgeMs?: number;
  /** Bytes the stream keeps, the oldest messages dropped past it; default EVENTS_STREAM_MAX_BYTES, -1 none. */
  readonly maxBytes?: number;
  /** Copies of the stream in a JetStream cluster (NATS_STREAM_REPLICAS; 3 on a 3-node cluster). Default 1. */
  readonly replicas?: number;
  readonly logger?: Logger;
  /**
   * Whether this client may create or change the stream (default true). A role's own NATS user
   * may not (see natsRolePermissions): it uses the stream as it is, and a missing one is an
   * `unavailable` error saying who makes it.
   */
  readonly manage?: boolean;
}

/**
 * Create the JetStream stream for published events, or update it to the wanted
 * config when it exists (idempotent; safe for every instance to call at start).
 * File storage so a broker restart keeps the history; limits retention so any
 * number of consumers can replay independently.
 */
export async function ensureEventsStream(jsm: JetStreamManager, opts: EventsStreamOptions = {}): Promise<StreamInfo> {
  const name = opts.name ?? EVENTS_STREAM;
  const wanted: Partial<StreamConfig> & { name: string } = {
    name,
    subjects: [...(opts.subjects ?? [EVENTS_SUBJECT_WILDCARD])],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(opts.duplicateWindowMs ?? 10 * 60_000),
    max_age: nanos(opts.maxAgeMs ?? 0),
    max_bytes: opts.maxBytes ?? EVENTS_STREAM_MAX_BYTES,
    num_replicas: opts.replicas ?? 1,
  };
  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === 10059)) throw err; // 10059: stream not found
  }
  if (!existing && opts.manage === false)
    throw new AppError(
      'unavailable',
      `the JetStream stream ${name} does not exist, and this NATS user may not create it: the process that holds the NATS token makes it at its start (the Docker Compose setup: the nats-setup container)`,
      { stream: name },
    );
  if (!existing) {
    const info = await jsm.streams.add(wanted);
    opts.logger?.info(
      { stream: name, subjects: wanted.subjects, replicas: wanted.num_replicas },
      'created JetStream stream',
    );
    return info;
  }
  const c = existing.config;
  const same =
    JSON.stringify(c.subjects) === JSON.stringify(wanted.subjects) &&
    c.duplicate_window === wanted.duplicate_window &&
    c.max_age === wanted.max_age &&
    c.max_bytes === wanted.max_bytes &&
    c.num_replicas === wanted.num_replicas;
  if (same) return existing;
  if (opts.manage === false) {
    opts.logger?.warn(
      { stream: name, subjects: c.subjects, replicas: c.num_replicas },
      'the JetStream stream differs from this configuration, and this NATS user may not change it: using it as it is',
    );
    return existing;
  }
  // Storage type and retention cannot be changed in place; only update the mutable limits.
  const { storage: _s, retention: _r, ...mutable } = wanted;
  const info = await jsm.streams.update(name, mutable);
  opts.logger?.info({ stream: name }, 'updated JetStream stream config');
  return info;
}

import {
  jetstream,
  JetStreamApiError,
  StorageType,
  RetentionPolicy,
  DiscardPolicy,
  type JetStreamManager,
  type StreamInfo,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
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

export interface KvBucketOptions {
  /** Bucket name (its stream is `KV_<name>`). */
  readonly name: string;
  /** How long an entry lives after its last write. */
  readonly ttlMs: number;
  /** Bytes the bucket may hold. */
  readonly maxBytes: number;
  /**
   * Copies of the bucket in a JetStream cluster (NATS_STREAM_REPLICAS). An existing bucket with
   * fewer is raised to it (JetStream adds the copies in place); one with more is left as it is: a
   * process started without the setting must not take copies away that the setup gave it.
   */
  readonly replicas: number;
  /** Whether this client may create or change the bucket (default true; a role's own NATS user may not). */
  readonly manage?: boolean;
  /** How long each JetStream request of the bucket (and of its later reads and writes) waits; default 5 s. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

/**
 * Open a KV bucket with one value per key, creating it when missing, and bring an existing one
 * to the wanted replicas and size cap without rollup headers (a writer allowed them could empty
 * the whole bucket with one message). Logs what it changed. Idempotent.
 */
export async function ensureKvBucket(nc: NatsConnection, opts: KvBucketOptions): Promise<KV> {
  const js = jetstream(nc, opts.timeoutMs ? { timeout: opts.timeoutMs } : {});
  const stream = `KV_${opts.name}`;
  const jsm = await js.jetstreamManager();
  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(stream);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === 10059)) throw err; // 10059: stream not found
  }
  if (!existing && opts.manage === false)
    throw new AppError(
      'unavailable',
      `the KV bucket ${opts.name} does not exist, and this NATS user may not create it: the process that holds the NATS token makes it at its start (nats-setup.js)`,
      { bucket: opts.name },
    );
  const kv = await new Kvm(js).create(opts.name, {
    ttl: opts.ttlMs,
    history: 1,
    replicas: opts.replicas,
    max_bytes: opts.maxBytes,
  });
  // Kvm makes a bucket that allows rollup headers: the created one is brought to the wanted config too.
  const c = existing?.config ?? (await jsm.streams.info(stream)).config;
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  if (c.num_replicas < opts.replicas) changes.replicas = { from: c.num_replicas, to: opts.replicas };
  if (c.max_bytes !== opts.maxBytes) changes.maxBytes = { from: c.max_bytes, to: opts.maxBytes };
  if (c.allow_rollup_hdrs) changes.rollupHeaders = { from: true, to: false };
  if (!existing) opts.logger?.info({ bucket: opts.name, replicas: c.num_replicas }, 'created JetStream KV bucket');
  if (Object.keys(changes).length === 0) return kv;
  if (opts.manage === false) {
    opts.logger?.warn(
      { bucket: opts.name, differs: changes },
      'the KV bucket differs from this configuration, and this NATS user may not change it: using it as it is (run nats-setup.js)',
    );
    return kv;
  }
  try {
    await jsm.streams.update(stream, {
      ...c,
      num_replicas: Math.max(c.num_replicas, opts.replicas),
      max_bytes: opts.maxBytes,
      allow_rollup_hdrs: false,
    });
  } catch (err) {
    // Refused (a user without the right, a cluster short of nodes for the replicas): the bucket
    // still serves as it is, and failing here would leave every keyed call unshared.
    opts.logger?.warn(
      { bucket: opts.name, differs: changes, err: (err as Error).message },
      'the KV bucket differs from this configuration and could not be changed: using it as it is (run nats-setup.js)',
    );
    return kv;
  }
  if (existing) opts.logger?.info({ bucket: opts.name, changed: changes }, 'updated JetStream KV bucket');
  return kv;
}

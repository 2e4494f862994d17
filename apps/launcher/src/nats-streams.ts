import { jetstreamManager } from '@nats-io/jetstream';
import {
  EVENTS_STREAM,
  EVENTS_STREAM_MAX_BYTES,
  EVENTS_SUBJECT_WILDCARD,
  MCP_CALLS_BUCKET,
  MCP_CALLS_MAX_BYTES,
} from '@switchyard/contracts';
import { ensureEventsStream, ensureKvBucket, type NatsConnection } from '@switchyard/messaging';
import type { Logger } from '@switchyard/platform';

/** How long JetStream drops a re-published event (the relay's worst restart time). */
export const RELAY_DUPLICATE_WINDOW_MS = 600_000;
/** How long a keyed tool call's outcome stays in the shared bucket (as the per-process cache did). */
export const MCP_CALLS_TTL_MS = 600_000;

/**
 * Make the JetStream streams the roles use: the events stream the relay appends to and the
 * bucket the connectors share keyed calls through. The roles' own NATS users may read and append
 * to them but not create or change them (a stream's config runs with the account's rights), so a
 * client that may (the token, or the setup user) makes them before the roles start. Idempotent;
 * the size caps of streams made before them are set on the existing streams, and a bucket made
 * with fewer replicas than `replicas` is raised to it.
 */
export async function setUpNatsStreams(
  nc: NatsConnection,
  opts: { replicas: number; logger: Logger; eventsMaxBytes?: number },
): Promise<void> {
  try {
    await setUpStreams(nc, opts);
  } catch (err) {
    // JetStream reserves each stream's cap against 75 % of the disk's free space: say which setting.
    if (/insufficient storage/i.test(String(err)))
      throw new Error(
        `JetStream has not the disk space the streams reserve (the events stream's NATS_EVENTS_MAX_BYTES, ${opts.eventsMaxBytes ?? EVENTS_STREAM_MAX_BYTES} bytes, and the call bucket's ${MCP_CALLS_MAX_BYTES}, against 75 % of the free space): free some disk where DATA_DIR is, or lower NATS_EVENTS_MAX_BYTES`,
        { cause: err },
      );
    throw err;
  }
}

async function setUpStreams(
  nc: NatsConnection,
  opts: { replicas: number; logger: Logger; eventsMaxBytes?: number },
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await ensureEventsStream(jsm, {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECT_WILDCARD],
    duplicateWindowMs: RELAY_DUPLICATE_WINDOW_MS,
    replicas: opts.replicas,
    ...(opts.eventsMaxBytes ? { maxBytes: opts.eventsMaxBytes } : {}),
    logger: opts.logger,
  });
  // Every copy the events stream has, the call bucket has too: on a cluster that loses the node of
  // a single copy the connectors would lose cross-process deduplication (and wait on the bucket).
  await ensureKvBucket(nc, {
    name: MCP_CALLS_BUCKET,
    ttlMs: MCP_CALLS_TTL_MS,
    replicas: opts.replicas,
    maxBytes: MCP_CALLS_MAX_BYTES,
    logger: opts.logger,
  });
}

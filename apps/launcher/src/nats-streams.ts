import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  EVENTS_STREAM,
  EVENTS_STREAM_MAX_BYTES,
  EVENTS_SUBJECT_WILDCARD,
  MCP_CALLS_BUCKET,
  MCP_CALLS_MAX_BYTES,
} from '@switchyard/contracts';
import { ensureEventsStream, type NatsConnection } from '@switchyard/messaging';
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
 * the size caps of streams made before them are set on the existing streams.
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
  await new Kvm(nc).create(MCP_CALLS_BUCKET, {
    ttl: MCP_CALLS_TTL_MS,
    history: 1,
    replicas: opts.replicas,
    max_bytes: MCP_CALLS_MAX_BYTES,
  });
  // No rollup headers: the keyed-call cache never purges, and a writer allowed them could empty the
  // whole bucket with one message (`Nats-Rollup: all`).
  const bucket = await jsm.streams.info(`KV_${MCP_CALLS_BUCKET}`);
  if (bucket.config.max_bytes !== MCP_CALLS_MAX_BYTES || bucket.config.allow_rollup_hdrs) {
    await jsm.streams.update(`KV_${MCP_CALLS_BUCKET}`, {
      ...bucket.config,
      max_bytes: MCP_CALLS_MAX_BYTES,
      allow_rollup_hdrs: false,
    });
    opts.logger.info({ bucket: MCP_CALLS_BUCKET, maxBytes: MCP_CALLS_MAX_BYTES }, 'capped the shared call bucket');
  }
}

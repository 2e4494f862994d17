import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { EVENTS_STREAM, EVENTS_SUBJECT_WILDCARD, MCP_CALLS_BUCKET } from '@switchyard/contracts';
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
 * client that may (the token, or the setup user) makes them before the roles start. Idempotent.
 */
export async function setUpNatsStreams(nc: NatsConnection, opts: { replicas: number; logger: Logger }): Promise<void> {
  await ensureEventsStream(await jetstreamManager(nc), {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECT_WILDCARD],
    duplicateWindowMs: RELAY_DUPLICATE_WINDOW_MS,
    replicas: opts.replicas,
    logger: opts.logger,
  });
  await new Kvm(nc).create(MCP_CALLS_BUCKET, { ttl: MCP_CALLS_TTL_MS, history: 1, replicas: opts.replicas });
}
